//! The OpenTelemetry spans of Produce and Fetch: one server span per request, from the
//! moment it is decoded until its response is ready, so a produce's wait for durability and a fetch's long poll (up
//! to the request's `max_wait_ms`) are part of it. Attributes follow the OpenTelemetry
//! messaging conventions (`messaging.system` = `kafka`, the first topic as
//! `messaging.destination.name`, `messaging.batch.message_count`, `messaging.client.id`),
//! with Ferry's own `ferry.kafka.*` for what those do not name; a partition answered with an
//! error code fails the span, `error.type` naming the code.
//!
//! Kafka requests carry no trace context, so every span is the root of its own trace and the
//! sampling rate (`OTEL_TRACES_SAMPLER_ARG`) decides which are kept.
//!
//! # Cost
//! While tracing is off, [`start`] is a match and one atomic load and [`finish`] one branch:
//! nothing is allocated. Attributes are computed only for spans that record (sampled).

use std::net::SocketAddr;

use ferry_runtime::telemetry::{Parent, Span, SpanKind, Telemetry};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    FetchRequest, FetchResponse, ProduceRequest, ProduceResponse, RequestHeader, RequestKind,
    ResponseKind,
};

use crate::storage::{RecordCount, count};

/// Starts the span of a Produce or Fetch request; an empty span for any other request, while
/// tracing is off, and (attribute-less) for a trace not sampled.
pub(super) fn start(
    telemetry: &Telemetry,
    header: &RequestHeader,
    body: &RequestKind,
    peer: SocketAddr,
) -> Span {
    let (name, operation) = match body {
        RequestKind::Produce(_) => ("produce", "send"),
        RequestKind::Fetch(_) => ("fetch", "receive"),
        _ => return Span::none(),
    };
    let mut span = telemetry.start(name, SpanKind::Server, &Parent::None);
    if !span.is_recording() {
        return span;
    }
    span.set("messaging.system", "kafka");
    span.set("messaging.operation.type", operation);
    span.set("messaging.operation.name", name);
    if let Some(client) = header.client_id.as_deref().filter(|c| !c.is_empty()) {
        span.set("messaging.client.id", client.to_owned());
    }
    span.set(
        "ferry.kafka.api_version",
        i64::from(header.request_api_version),
    );
    span.set("network.peer.address", peer.ip().to_string());
    span.set("network.peer.port", i64::from(peer.port()));
    match body {
        RequestKind::Produce(req) => {
            set_destination(&mut span, &produced_to(req));
            set_counts(&mut span, produced(req));
            span.set("ferry.kafka.acks", i64::from(req.acks));
        }
        RequestKind::Fetch(req) => {
            set_destination(&mut span, &fetched_from(req));
            span.set("ferry.kafka.max_wait_ms", i64::from(req.max_wait_ms));
            span.set("ferry.kafka.min_bytes", i64::from(req.min_bytes));
        }
        _ => {}
    }
    span
}

/// Completes the span with what the response says (`None`: no response, as for a produce
/// with acks=0); the span ends when dropped.
pub(super) fn finish(span: &mut Span, response: Option<&ResponseKind>) {
    if !span.is_recording() {
        return;
    }
    let failure = match response {
        Some(ResponseKind::Produce(r)) => produce_failure(r),
        Some(ResponseKind::Fetch(r)) => {
            set_counts(span, fetched(r));
            fetch_failure(r)
        }
        _ => None,
    };
    if let Some(f) = failure {
        let error = ResponseError::try_from_code(f.code)
            .map_or_else(|| f.code.to_string(), |e| e.to_string());
        let more = match f.partitions {
            1 => String::new(),
            n => format!(" and {} more partitions", n - 1),
        };
        span.fail(format!("{error} on {}-{}{more}", f.topic, f.partition));
        span.set("error.type", error);
        span.set("ferry.kafka.error_code", i64::from(f.code));
        span.set(
            "ferry.kafka.failed_partition_count",
            usize_attr(f.partitions),
        );
    }
}

/// Which topics and partitions a request names.
#[derive(Debug, PartialEq, Eq)]
struct Destination<'a> {
    /// The first topic.
    topic: Option<&'a str>,
    topics: usize,
    partitions: usize,
    /// The partition, when the request names exactly one.
    partition: Option<i32>,
}

/// The destination of requests whose topics are `(name, partition indexes)`.
fn destination<'a, P: Iterator<Item = i32>>(
    topics: impl ExactSizeIterator<Item = (&'a str, P)>,
) -> Destination<'a> {
    let mut out = Destination {
        topic: None,
        topics: topics.len(),
        partitions: 0,
        partition: None,
    };
    for (topic, partitions) in topics {
        out.topic.get_or_insert(topic);
        for p in partitions {
            out.partitions += 1;
            out.partition = Some(p);
        }
    }
    if out.partitions != 1 {
        out.partition = None;
    }
    out
}

fn produced_to(req: &ProduceRequest) -> Destination<'_> {
    destination(
        req.topic_data
            .iter()
            .map(|t| (t.name.as_str(), t.partition_data.iter().map(|p| p.index))),
    )
}

fn fetched_from(req: &FetchRequest) -> Destination<'_> {
    destination(
        req.topics
            .iter()
            .map(|t| (t.topic.as_str(), t.partitions.iter().map(|p| p.partition))),
    )
}

fn set_destination(span: &mut Span, d: &Destination<'_>) {
    if let Some(topic) = d.topic {
        span.set("messaging.destination.name", topic.to_owned());
    }
    if let Some(p) = d.partition {
        span.set("messaging.destination.partition.id", p.to_string());
    }
    span.set("ferry.kafka.topic_count", usize_attr(d.topics));
    span.set("ferry.kafka.partition_count", usize_attr(d.partitions));
}

/// Batches, records and bytes: `(counts, bytes)`.
fn set_counts(span: &mut Span, (counts, bytes): (RecordCount, u64)) {
    span.set("messaging.batch.message_count", u64_attr(counts.records));
    span.set("ferry.kafka.batch_count", u64_attr(counts.batches));
    span.set("ferry.kafka.record_bytes", u64_attr(bytes));
}

/// What a produce request carries.
fn produced(req: &ProduceRequest) -> (RecordCount, u64) {
    sum(req
        .topic_data
        .iter()
        .flat_map(|t| &t.partition_data)
        .filter_map(|p| p.records.as_deref()))
}

/// What a fetch response carries.
fn fetched(resp: &FetchResponse) -> (RecordCount, u64) {
    sum(resp
        .responses
        .iter()
        .flat_map(|t| &t.partitions)
        .filter_map(|p| p.records.as_deref()))
}

fn sum<'a>(records: impl Iterator<Item = &'a [u8]>) -> (RecordCount, u64) {
    records.fold((RecordCount::default(), 0), |(total, bytes), r| {
        let c = count(r);
        (
            RecordCount {
                batches: total.batches + c.batches,
                records: total.records + c.records,
            },
            bytes + r.len() as u64,
        )
    })
}

/// The first partition answered with an error, and how many were.
#[derive(Debug, PartialEq, Eq)]
struct Failure<'a> {
    code: i16,
    topic: &'a str,
    partition: i32,
    partitions: usize,
}

fn failure<'a>(answers: impl Iterator<Item = (&'a str, i32, i16)>) -> Option<Failure<'a>> {
    let mut out: Option<Failure<'a>> = None;
    for (topic, partition, code) in answers.filter(|(_, _, code)| *code != 0) {
        match &mut out {
            Some(f) => f.partitions += 1,
            None => {
                out = Some(Failure {
                    code,
                    topic,
                    partition,
                    partitions: 1,
                });
            }
        }
    }
    out
}

fn produce_failure(resp: &ProduceResponse) -> Option<Failure<'_>> {
    failure(resp.responses.iter().flat_map(|t| {
        t.partition_responses
            .iter()
            .map(|p| (t.name.as_str(), p.index, p.error_code))
    }))
}

fn fetch_failure(resp: &FetchResponse) -> Option<Failure<'_>> {
    failure(resp.responses.iter().flat_map(|t| {
        t.partitions
            .iter()
            .map(|p| (t.topic.as_str(), p.partition_index, p.error_code))
    }))
}

fn usize_attr(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn u64_attr(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::produce_response::{
        PartitionProduceResponse, TopicProduceResponse,
    };
    use kafka_protocol::protocol::StrBytes;

    use super::*;
    use crate::storage::testing::batch;

    fn name(topic: &str) -> TopicName {
        TopicName(StrBytes::from_string(topic.to_owned()))
    }

    /// A partition's index and records.
    type Part = (i32, Option<Vec<u8>>);

    fn produce(topics: &[(&str, &[Part])]) -> ProduceRequest {
        ProduceRequest::default().with_topic_data(
            topics
                .iter()
                .map(|(t, parts)| {
                    TopicProduceData::default()
                        .with_name(name(t))
                        .with_partition_data(
                            parts
                                .iter()
                                .map(|(i, r)| {
                                    PartitionProduceData::default()
                                        .with_index(*i)
                                        .with_records(r.clone().map(Bytes::from))
                                })
                                .collect(),
                        )
                })
                .collect(),
        )
    }

    fn fetch(topics: &[(&str, &[i32])]) -> FetchRequest {
        FetchRequest::default().with_topics(
            topics
                .iter()
                .map(|(t, parts)| {
                    FetchTopic::default().with_topic(name(t)).with_partitions(
                        parts
                            .iter()
                            .map(|p| FetchPartition::default().with_partition(*p))
                            .collect(),
                    )
                })
                .collect(),
        )
    }

    #[test]
    fn the_destination_is_the_first_topic_with_counts_and_a_lone_partition() {
        let one = Destination {
            topic: Some("orders"),
            topics: 1,
            partitions: 1,
            partition: Some(3),
        };
        assert_eq!(produced_to(&produce(&[("orders", &[(3, None)])])), one);
        assert_eq!(fetched_from(&fetch(&[("orders", &[3])])), one);
        assert_eq!(
            fetched_from(&fetch(&[("orders", &[0, 1]), ("audit", &[0])])),
            Destination {
                topic: Some("orders"),
                topics: 2,
                partitions: 3,
                partition: None,
            }
        );
        assert_eq!(
            produced_to(&produce(&[("orders", &[]), ("audit", &[(5, None)])])),
            Destination {
                topic: Some("orders"),
                topics: 2,
                partitions: 1,
                partition: Some(5),
            }
        );
        assert_eq!(
            fetched_from(&fetch(&[])),
            Destination {
                topic: None,
                topics: 0,
                partitions: 0,
                partition: None,
            }
        );
    }

    #[test]
    fn records_batches_and_bytes_are_summed_over_partitions() {
        let mut two = batch(3, 0, 0, b"abc");
        two.extend(batch(2, 0, 0, b"de"));
        let one = batch(4, 0, 0, b"f");
        let bytes = (two.len() + one.len()) as u64;
        let req = produce(&[
            ("orders", &[(0, Some(two.clone())), (1, None)]),
            ("audit", &[(0, Some(one.clone()))]),
        ]);
        let expected = (
            RecordCount {
                batches: 3,
                records: 9,
            },
            bytes,
        );
        assert_eq!(produced(&req), expected);
        let resp = FetchResponse::default().with_responses(vec![
            FetchableTopicResponse::default().with_partitions(vec![
                PartitionData::default().with_records(Some(Bytes::from(two))),
                PartitionData::default().with_records(None),
            ]),
            FetchableTopicResponse::default().with_partitions(vec![
                PartitionData::default().with_records(Some(Bytes::from(one))),
            ]),
        ]);
        assert_eq!(fetched(&resp), expected);
    }

    #[test]
    fn the_first_failed_partition_is_named_and_the_others_counted() {
        let answered = |topic: &str, codes: &[(i32, i16)]| {
            TopicProduceResponse::default()
                .with_name(name(topic))
                .with_partition_responses(
                    codes
                        .iter()
                        .map(|(i, c)| {
                            PartitionProduceResponse::default()
                                .with_index(*i)
                                .with_error_code(*c)
                        })
                        .collect(),
                )
        };
        let ok = ProduceResponse::default().with_responses(vec![answered("a", &[(0, 0)])]);
        assert_eq!(produce_failure(&ok), None);
        let failed = ProduceResponse::default().with_responses(vec![
            answered("a", &[(0, 0), (1, 0)]),
            answered("b", &[(0, 0), (2, 3), (3, 56)]),
        ]);
        assert_eq!(
            produce_failure(&failed),
            Some(Failure {
                code: 3,
                topic: "b",
                partition: 2,
                partitions: 2,
            })
        );
        let fetched = FetchResponse::default().with_responses(vec![
            FetchableTopicResponse::default()
                .with_topic(name("c"))
                .with_partitions(vec![
                    PartitionData::default()
                        .with_partition_index(7)
                        .with_error_code(1),
                ]),
        ]);
        assert_eq!(
            fetch_failure(&fetched),
            Some(Failure {
                code: 1,
                topic: "c",
                partition: 7,
                partitions: 1,
            })
        );
    }

    #[test]
    fn while_tracing_is_off_no_span_is_started() {
        let header = RequestHeader::default().with_client_id(Some(StrBytes::from_static_str("c")));
        let peer = SocketAddr::from(([127, 0, 0, 1], 9));
        let off = Telemetry::off();
        let req = RequestKind::Produce(produce(&[("orders", &[(0, None)])]));
        let mut span = start(&off, &header, &req, peer);
        assert!(!span.is_some());
        finish(&mut span, None);
        assert!(!span.is_some());
    }
}
