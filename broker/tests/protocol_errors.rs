//! Bad input on the wire: each gets the Kafka error code or, for undecodable frames, a closed
//! connection — and the broker keeps serving with its log intact.

mod support;

use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiVersionsRequest, ApiVersionsResponse, CreateTopicsRequest, FetchRequest, ListOffsetsRequest,
    ProduceRequest, TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use support::BrokerProcess;
use support::wire::{Wire, batch};

fn topic(name: &'static str) -> TopicName {
    TopicName(StrBytes::from_static_str(name))
}

fn produce(name: &'static str, partition: i32, records: bytes::Bytes) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(topic(name))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(records)),
                ]),
        ])
}

fn latest(w: &mut Wire, name: &'static str) -> i64 {
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    let resp = w.call(
        &ListOffsetsRequest::default().with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(topic(name))
                .with_partitions(vec![ListOffsetsPartition::default().with_timestamp(-1)]),
        ]),
        6,
    );
    let p = &resp.topics[0].partitions[0];
    assert_eq!(p.error_code, 0);
    p.offset
}

#[test]
fn errors_are_answered_with_kafka_codes_and_nothing_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = BrokerProcess::start(dir.path(), &["--flush", "always"]);
    let mut w = Wire::connect(broker.kafka);
    let created = w.call(
        &CreateTopicsRequest::default().with_topics(vec![
            kafka_protocol::messages::create_topics_request::CreatableTopic::default()
                .with_name(topic("t"))
                .with_num_partitions(1)
                .with_replication_factor(1),
            kafka_protocol::messages::create_topics_request::CreatableTopic::default()
                .with_name(topic("bad/name"))
                .with_num_partitions(1)
                .with_replication_factor(1),
        ]),
        5,
    );
    assert_eq!(created.topics[0].error_code, 0);
    assert_eq!(created.topics[1].error_code, 17, "INVALID_TOPIC_EXCEPTION");
    assert!(
        created.topics[1]
            .error_message
            .as_ref()
            .is_some_and(|m| m.contains("[a-zA-Z0-9._-]")),
        "the message says what is allowed"
    );

    let ok = w.call(&produce("t", 0, batch(&["a", "b"])), 9);
    assert_eq!(ok.responses[0].partition_responses[0].error_code, 0);
    assert_eq!(latest(&mut w, "t"), 2);

    let unknown = w.call(&produce("nope", 0, batch(&["a"])), 9);
    assert_eq!(unknown.responses[0].partition_responses[0].error_code, 3);
    let no_partition = w.call(&produce("t", 7, batch(&["a"])), 9);
    assert_eq!(
        no_partition.responses[0].partition_responses[0].error_code,
        3
    );

    let mut corrupt = batch(&["c"]).to_vec();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    let bad = w.call(&produce("t", 0, corrupt.into()), 9);
    assert_eq!(
        bad.responses[0].partition_responses[0].error_code, 2,
        "CORRUPT_MESSAGE"
    );
    let truncated = batch(&["d"]).slice(..30);
    let bad = w.call(&produce("t", 0, truncated), 9);
    assert_eq!(
        bad.responses[0].partition_responses[0].error_code, 87,
        "INVALID_RECORD"
    );
    let bad_acks = w.call(&produce("t", 0, batch(&["e"])).with_acks(2), 9);
    assert_eq!(bad_acks.responses[0].partition_responses[0].error_code, 21);
    assert_eq!(latest(&mut w, "t"), 2, "refused batches wrote nothing");

    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    let fetch = w.call(
        &FetchRequest::default()
            .with_max_wait_ms(10)
            .with_max_bytes(1 << 20)
            .with_topics(vec![
                FetchTopic::default()
                    .with_topic(topic("t"))
                    .with_partitions(vec![
                        FetchPartition::default()
                            .with_fetch_offset(99)
                            .with_partition_max_bytes(1 << 20),
                    ]),
            ]),
        12,
    );
    assert_eq!(
        fetch.responses[0].partitions[0].error_code, 1,
        "OFFSET_OUT_OF_RANGE"
    );
    broker.stop();
}

#[test]
fn undecodable_frames_close_the_connection_and_the_broker_keeps_serving() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = BrokerProcess::start(dir.path(), &["--max-request-bytes", "4096"]);

    // An ApiVersions newer than supported is answered (v0, UNSUPPORTED_VERSION) so clients
    // can negotiate down.
    let mut w = Wire::connect(broker.kafka);
    w.send_frame(
        &support::wire::frame(&ApiVersionsRequest::default(), 3, 5)[..]
            .iter()
            .enumerate()
            .map(|(i, b)| if i == 3 { 99 } else { *b })
            .collect::<Vec<u8>>(),
    );
    let mut body = w.read_frame().expect("answer");
    let _correlation = bytes::Buf::get_i32(&mut body);
    let resp = ApiVersionsResponse::decode(&mut body, 0).expect("v0 body");
    assert_eq!(resp.error_code, 35);
    assert!(
        resp.api_keys
            .iter()
            .any(|k| k.api_key == 0 && k.max_version >= 9)
    );

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated header", vec![0, 0, 0, 3, 0, 18, 0]),
        ("unknown API key", {
            let mut f = vec![0, 0, 0, 10];
            f.extend_from_slice(&[0x03, 0xe7, 0, 0, 0, 0, 0, 1, 0, 0]);
            f
        }),
        ("unsupported Produce version", {
            let body = support::wire::frame(&ProduceRequest::default(), 9, 1).to_vec();
            let mut body = body;
            body[3] = 2; // v2 is below the supported range
            let mut f = (body.len() as i32).to_be_bytes().to_vec();
            f.extend(body);
            f
        }),
        ("oversized request", {
            let mut f = 1_000_000i32.to_be_bytes().to_vec();
            f.extend_from_slice(&[0; 64]);
            f
        }),
        ("negative size", (-5i32).to_be_bytes().to_vec()),
        ("garbage body", {
            let mut f = 12i32.to_be_bytes().to_vec();
            f.extend_from_slice(&[0, 3, 0, 12, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0x7f]);
            f
        }),
    ];
    for (what, bytes) in cases {
        let mut w = Wire::connect(broker.kafka);
        w.send_raw(&bytes);
        assert!(w.closed(), "{what}: connection closed");
        // Still serving.
        let mut ok = Wire::connect(broker.kafka);
        let resp = ok.call(&ApiVersionsRequest::default(), 3);
        assert_eq!(resp.error_code, 0, "{what}: broker still answers");
    }
    broker.stop();
}
