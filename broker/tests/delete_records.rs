//! DeleteRecords against the real broker: librdkafka's admin client moves a partition's log
//! start; afterwards ListOffsets EARLIEST answers it, fetches below it answer
//! OFFSET_OUT_OF_RANGE, fetch responses carry it as `log_start_offset`, a consumer from the
//! beginning starts there, whole segments below it are gone from disk, and it survives a
//! restart. Refusals carry Kafka's codes (on the wire, where each one can be asked for).

mod support;

use std::path::Path;
use std::time::Duration;

use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::{DeleteRecordsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Message, Offset, TopicPartitionList};
use support::BrokerProcess;
use support::clients::{admin, consumer, create_topic_with, opts, rt};
use support::wire::{Wire, batch, fetch_one, list_offset, produce};

const OFFSET_OUT_OF_RANGE: i16 = 1;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const EARLIEST: i64 = -2;
const TOPIC: &str = "trimmed";

/// Ten batches of five records: offsets 0..50.
fn fill(w: &mut Wire) {
    for i in 0..10 {
        let values: Vec<String> = (0..5)
            .map(|j| format!("record {} {}", i * 5 + j, "x".repeat(40)))
            .collect();
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        assert_eq!(produce(w, TOPIC, 0, batch(&values)), (0, i * 5));
    }
}

fn segment_files(data_dir: &Path) -> usize {
    std::fs::read_dir(data_dir.join("topics").join(TOPIC).join("0"))
        .expect("partition directory")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".log"))
        })
        .count()
}

/// librdkafka's DeleteRecords for partition 0: the low watermark, or the partition's error.
fn delete_before(bootstrap: &str, offset: Offset) -> Result<i64, KafkaError> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(TOPIC, 0, offset).expect("tpl");
    let result = rt()
        .block_on(admin(bootstrap).delete_records(&tpl, &opts()))
        .expect("delete_records");
    let p = result.find_partition(TOPIC, 0).expect("partition 0");
    p.error()?;
    match p.offset() {
        Offset::Offset(o) => Ok(o),
        other => panic!("low watermark {other:?}"),
    }
}

/// DeleteRecords v2 on the wire: `(error_code, low_watermark)` per `(topic, partition, offset)`.
fn wire_delete(w: &mut Wire, targets: &[(&str, i32, i64)]) -> Vec<(i16, i64)> {
    let topics = targets
        .iter()
        .map(|(t, p, o)| {
            DeleteRecordsTopic::default()
                .with_name(TopicName(StrBytes::from_string((*t).to_owned())))
                .with_partitions(vec![
                    DeleteRecordsPartition::default()
                        .with_partition_index(*p)
                        .with_offset(*o),
                ])
        })
        .collect();
    let resp = w.call(
        &DeleteRecordsRequest::default()
            .with_topics(topics)
            .with_timeout_ms(5000),
        2,
    );
    resp.topics
        .iter()
        .map(|t| (t.partitions[0].error_code, t.partitions[0].low_watermark))
        .collect()
}

/// The offset of the first message a consumer from the beginning gets.
fn first_consumed(c: &BaseConsumer) -> i64 {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(TOPIC, 0, Offset::Beginning)
        .expect("tpl");
    c.assign(&tpl).expect("assign");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => return m.offset(),
            Some(Err(e)) => panic!("consume: {e}"),
            None => {}
        }
    }
    panic!("no message within 20 s");
}

#[test]
fn deleted_records_move_the_log_start_for_every_reader_and_survive_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The records are from 2023: kept forever, rolled one segment per batch (segment.ms).
    let args = ["--flush", "always", "--retention", "forever"];
    let broker = BrokerProcess::start(dir.path(), &args);
    let bs = broker.bootstrap();
    create_topic_with(&bs, TOPIC, 1, &[]);
    let mut w = Wire::connect(broker.kafka);
    fill(&mut w);
    assert_eq!(segment_files(dir.path()), 10, "one segment per batch");

    // Offset 23 is inside the batch 20..25.
    assert_eq!(delete_before(&bs, Offset::Offset(23)), Ok(23));
    assert_eq!(list_offset(&mut w, TOPIC, 0, EARLIEST, 5), (0, 23, -1));
    let below = fetch_one(&mut w, TOPIC, 0, 10);
    assert_eq!(
        (
            below.error_code,
            below.log_start_offset,
            below.high_watermark
        ),
        (OFFSET_OUT_OF_RANGE, 23, 50)
    );
    let from = fetch_one(&mut w, TOPIC, 0, 23);
    assert_eq!((from.error_code, from.log_start_offset), (0, 23));
    assert!(from.records.as_ref().is_some_and(|r| !r.is_empty()));
    assert_eq!(
        segment_files(dir.path()),
        6,
        "the segments wholly below 23 (0, 5, 10, 15) are deleted; 20..25 stays"
    );
    let c = consumer(&bs, "trimmed-readers", &[]);
    assert_eq!(
        first_consumed(&c),
        23,
        "a consumer from the beginning starts at the log start"
    );
    drop(c);

    assert_eq!(
        delete_before(&bs, Offset::Offset(5)),
        Ok(23),
        "an offset below the start changes nothing"
    );
    let refused = delete_before(&bs, Offset::Offset(51));
    assert_eq!(
        refused.map_err(|e| e.rdkafka_error_code()),
        Err(Some(RDKafkaErrorCode::OffsetOutOfRange)),
        "past the high watermark"
    );

    let kafka = broker.kafka;
    broker.stop();
    let broker = BrokerProcess::restart_after_stop(dir.path(), kafka, &args);
    let bs = broker.bootstrap();
    let mut w = Wire::connect(broker.kafka);
    assert_eq!(
        list_offset(&mut w, TOPIC, 0, EARLIEST, 5),
        (0, 23, -1),
        "the log start survives a restart"
    );
    assert_eq!(
        fetch_one(&mut w, TOPIC, 0, 22).error_code,
        OFFSET_OUT_OF_RANGE
    );

    // Offset::End is -1: everything below the high watermark.
    assert_eq!(delete_before(&bs, Offset::End), Ok(50));
    assert_eq!(list_offset(&mut w, TOPIC, 0, EARLIEST, 5).1, 50);
    assert_eq!(produce(&mut w, TOPIC, 0, batch(&["after"])), (0, 50));
    assert_eq!(fetch_one(&mut w, TOPIC, 0, 50).log_start_offset, 50);
    broker.stop();
}

#[test]
fn refused_deletes_answer_kafkas_codes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = BrokerProcess::start(dir.path(), &["--retention", "forever"]);
    create_topic_with(&broker.bootstrap(), TOPIC, 1, &[]);
    let mut w = Wire::connect(broker.kafka);
    fill(&mut w);
    let answers = wire_delete(
        &mut w,
        &[
            (TOPIC, 0, 51),
            (TOPIC, 0, -7),
            (TOPIC, 3, 1),
            ("absent", 0, 1),
            (TOPIC, 0, 10),
        ],
    );
    assert_eq!(
        answers,
        [
            (OFFSET_OUT_OF_RANGE, -1),
            (OFFSET_OUT_OF_RANGE, -1),
            (UNKNOWN_TOPIC_OR_PARTITION, -1),
            (UNKNOWN_TOPIC_OR_PARTITION, -1),
            (0, 10),
        ]
    );
    assert_eq!(list_offset(&mut w, TOPIC, 0, EARLIEST, 5).1, 10);
    broker.stop();
}
