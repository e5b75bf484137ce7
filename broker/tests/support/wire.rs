//! A minimal Kafka wire client for tests that need exact requests (errors, malformed frames).

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use indexmap::IndexMap;
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// Encodes `req` as a full frame body (header + request, no length prefix).
pub fn frame<R: Request>(req: &R, version: i16, correlation_id: i32) -> Bytes {
    let api = ApiKey::try_from(R::KEY).expect("api key");
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("wire-test")))
        .encode(&mut buf, api.request_header_version(version))
        .expect("header");
    req.encode(&mut buf, version).expect("request");
    buf.freeze()
}

/// Decodes a response frame body (no length prefix) for request type `R`.
pub fn response<R: Request>(mut body: Bytes, version: i16) -> (i32, R::Response) {
    let header = ResponseHeader::decode(&mut body, R::Response::header_version(version))
        .expect("response header");
    let resp = R::Response::decode(&mut body, version).expect("response body");
    (header.correlation_id, resp)
}

/// A v2 record batch of `values`, uncompressed, timestamped in November 2023.
pub fn batch(values: &[&str]) -> Bytes {
    batch_at(values, 1_700_000_000_000)
}

/// A v2 record batch of `values`, uncompressed, the first timestamped `timestamp` (ms) and
/// each next one a millisecond later.
pub fn batch_at(values: &[&str], timestamp: i64) -> Bytes {
    batch_with(values, timestamp, Compression::None)
}

/// A v2 record batch of `values` compressed with `compression`, the first timestamped
/// `timestamp` (ms) and each next one a millisecond later.
pub fn batch_with(values: &[&str], timestamp: i64, compression: Compression) -> Bytes {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder starts a new batch where `offset - sequence` changes.
            sequence: i as i32 - 1,
            timestamp: timestamp + i as i64,
            key: None,
            value: Some(Bytes::copy_from_slice(v.as_bytes())),
            headers: IndexMap::new(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .expect("batch");
    buf.freeze()
}

/// A blocking connection.
pub struct Wire {
    stream: TcpStream,
    next_id: i32,
}

impl Wire {
    /// Connects to `addr`.
    pub fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        Wire { stream, next_id: 1 }
    }

    /// Wraps a connected stream (e.g. one bound to a chosen local address).
    pub fn from_stream(stream: TcpStream) -> Self {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        Wire { stream, next_id: 1 }
    }

    /// Sends a length-prefixed frame; `false` when the connection is gone.
    pub fn try_send_frame(&mut self, body: &[u8]) -> bool {
        let len = i32::try_from(body.len()).expect("len");
        self.stream.write_all(&len.to_be_bytes()).is_ok() && self.stream.write_all(body).is_ok()
    }

    /// Sends raw bytes as they are.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    /// Sends a length-prefixed frame.
    pub fn send_frame(&mut self, body: &[u8]) {
        let len = i32::try_from(body.len()).expect("len");
        self.send_raw(&len.to_be_bytes());
        self.send_raw(body);
    }

    /// Reads one response frame body; `None` if the broker closed the connection.
    pub fn read_frame(&mut self) -> Option<Bytes> {
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).ok()?;
        let mut body = vec![0u8; usize::try_from(i32::from_be_bytes(len)).ok()?];
        self.stream.read_exact(&mut body).ok()?;
        Some(Bytes::from(body))
    }

    /// Whether the broker closed the connection (reads EOF).
    pub fn closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.stream.read(&mut b), Ok(0) | Err(_))
    }

    /// Sends `req` at `version` and decodes the answer.
    pub fn call<R: Request>(&mut self, req: &R, version: i16) -> R::Response {
        let id = self.next_id;
        self.next_id += 1;
        self.send_frame(&frame(req, version, id));
        let body = self.read_frame().expect("a response");
        let (got, resp) = response::<R>(body, version);
        assert_eq!(got, id, "correlation id");
        resp
    }
}

/// ListOffsets (at `version`) for one partition: `(error_code, offset, timestamp)`.
pub fn list_offset(
    w: &mut Wire,
    topic: &str,
    partition: i32,
    timestamp: i64,
    version: i16,
) -> (i16, i64, i64) {
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    use kafka_protocol::messages::{BrokerId, ListOffsetsRequest, TopicName};
    let resp = w.call(
        &ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![
                ListOffsetsTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
                    .with_partitions(vec![
                        ListOffsetsPartition::default()
                            .with_partition_index(partition)
                            .with_timestamp(timestamp),
                    ]),
            ]),
        version,
    );
    let p = &resp.topics[0].partitions[0];
    (p.error_code, p.offset, p.timestamp)
}

/// One Fetch (v12, no wait) of `partitions` (index, offset) of `topic`: the record bytes of
/// each partition, in request order.
pub fn fetch(
    w: &mut Wire,
    topic: &str,
    partitions: &[(i32, i64)],
    max_bytes: i32,
    partition_max_bytes: i32,
) -> Vec<Bytes> {
    fetch_version(w, 12, topic, partitions, max_bytes, partition_max_bytes)
}

/// [`fetch`] at `version` (the broker serves v4 to v12).
pub fn fetch_version(
    w: &mut Wire,
    version: i16,
    topic: &str,
    partitions: &[(i32, i64)],
    max_bytes: i32,
    partition_max_bytes: i32,
) -> Vec<Bytes> {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{BrokerId, FetchRequest, TopicName};
    let resp = w.call(
        &FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_min_bytes(0)
            .with_max_bytes(max_bytes)
            .with_session_epoch(-1)
            .with_topics(vec![
                FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(topic.to_owned())))
                    .with_partitions(
                        partitions
                            .iter()
                            .map(|(p, offset)| {
                                FetchPartition::default()
                                    .with_partition(*p)
                                    .with_fetch_offset(*offset)
                                    .with_partition_max_bytes(partition_max_bytes)
                            })
                            .collect(),
                    ),
            ]),
        version,
    );
    resp.responses[0]
        .partitions
        .iter()
        .map(|p| {
            assert_eq!(p.error_code, 0, "fetch error");
            p.records.clone().unwrap_or_default()
        })
        .collect()
}

/// `(base offset, record count)` of each batch in `records`.
pub fn batches_of(records: &Bytes) -> Vec<(i64, i32)> {
    let mut buf = records.clone();
    kafka_protocol::records::RecordBatchDecoder::decode_batch_info(&mut buf)
        .expect("batches")
        .iter()
        .map(|b| (b.min_offset, b.record_count))
        .collect()
}

/// Produces `records` (acks=all, v9) to one partition: `(error_code, base_offset)`.
pub fn produce(w: &mut Wire, topic: &str, partition: i32, records: Bytes) -> (i16, i64) {
    let p = produce_answer(w, topic, partition, records);
    (p.error_code, p.base_offset)
}

/// One Produce (v9, acks=all) of `records` to `topic`/`partition`: the partition's answer.
pub fn produce_answer(
    w: &mut Wire,
    topic: &str,
    partition: i32,
    records: Bytes,
) -> kafka_protocol::messages::produce_response::PartitionProduceResponse {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{ProduceRequest, TopicName};
    let mut resp = w.call(
        &ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(5000)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
                    .with_partition_data(vec![
                        PartitionProduceData::default()
                            .with_index(partition)
                            .with_records(Some(records)),
                    ]),
            ]),
        9,
    );
    resp.responses.remove(0).partition_responses.remove(0)
}

/// One Fetch (v12, no wait) of one partition from `offset`, answered as it is, errors
/// included.
pub fn fetch_one(
    w: &mut Wire,
    topic: &str,
    partition: i32,
    offset: i64,
) -> kafka_protocol::messages::fetch_response::PartitionData {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{BrokerId, FetchRequest, TopicName};
    let resp = w.call(
        &FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_min_bytes(0)
            .with_max_bytes(1 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![
                FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(topic.to_owned())))
                    .with_partitions(vec![
                        FetchPartition::default()
                            .with_partition(partition)
                            .with_fetch_offset(offset)
                            .with_partition_max_bytes(1 << 20),
                    ]),
            ]),
        12,
    );
    resp.responses[0].partitions[0].clone()
}
