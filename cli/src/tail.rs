//! `ferry tail`: follow a Broker's topic (or any topic) as CloudEvents.

use std::io::Write;
use std::time::Duration;

use chrono::{DateTime, Utc};
use cloudevents::AttributesReader;
use ferry_api::contract::broker_topic;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use ferry_dispatcher::binding;

/// Where `ferry tail` starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartAt {
    /// The oldest retained record.
    Earliest,
    /// Only new records.
    Latest,
    /// This offset in every partition.
    Offset(i64),
    /// The first record at or after this time.
    Time(DateTime<Utc>),
}

impl std::str::FromStr for StartAt {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "earliest" => Ok(StartAt::Earliest),
            "latest" => Ok(StartAt::Latest),
            _ => s
                .parse::<i64>()
                .ok()
                .filter(|o| *o >= 0)
                .map(StartAt::Offset)
                .or_else(|| DateTime::parse_from_rfc3339(s).ok().map(|t| StartAt::Time(t.with_timezone(&Utc))))
                .ok_or_else(|| format!("{s:?} is not earliest, latest, an offset or an RFC 3339 time (2026-11-25T10:00:00Z)")),
        }
    }
}

/// The topic for `<namespace>/<broker>` (Knative's naming), or the argument itself.
pub fn topic_for(source: &str) -> String {
    match source.split_once('/') {
        Some((ns, name)) => broker_topic(ns, name),
        None => source.to_owned(),
    }
}

/// Options of one tail.
pub struct Tail {
    /// Bootstrap servers.
    pub kafka: String,
    /// Topic to read.
    pub topic: String,
    /// Where to start.
    pub from: StartAt,
    /// One JSON object per line instead of a table.
    pub json: bool,
    /// Stop after this many records.
    pub max: Option<usize>,
}

/// The partitions of `topic`, or an error that says whether the log is unreachable or the
/// topic does not exist.
///
/// # Errors
/// The log cannot be reached, or has no such topic.
fn partitions_of<C: rdkafka::consumer::ConsumerContext>(
    consumer: &BaseConsumer<C>,
    kafka: &str,
    topic: &str,
) -> anyhow::Result<Vec<i32>> {
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .map_err(|e| {
            anyhow::anyhow!("cannot reach the log at {kafka}: {e}; pass --kafka host:port")
        })?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        anyhow::bail!(
            "topic {topic} not found at {kafka}; check the name (namespace/broker or a topic)"
        );
    }
    Ok(partitions)
}

/// Follows the topic, writing one line per record, until `max` records or forever.
///
/// # Errors
/// The log cannot be reached or the topic does not exist.
pub fn run(tail: &Tail, out: &mut impl Write) -> anyhow::Result<()> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &tail.kafka)
        .set("group.id", "ferry-tail")
        .set("enable.auto.commit", "false")
        .create()?;
    let partitions = partitions_of(&consumer, &tail.kafka, &tail.topic)?;
    let mut tpl = TopicPartitionList::new();
    for p in &partitions {
        let offset = match &tail.from {
            StartAt::Earliest => Offset::Beginning,
            StartAt::Latest => Offset::End,
            StartAt::Offset(o) => Offset::Offset(*o),
            StartAt::Time(t) => Offset::Offset(t.timestamp_millis()),
        };
        tpl.add_partition_offset(&tail.topic, *p, offset)?;
    }
    if matches!(tail.from, StartAt::Time(_)) {
        tpl = consumer.offsets_for_times(tpl, Duration::from_secs(10))?;
    }
    consumer.assign(&tpl)?;
    if !tail.json {
        writeln!(
            out,
            "{:<5} {:<8} {:<24} {:<28} {:<24} ID",
            "PART", "OFFSET", "TIME", "TYPE", "SOURCE"
        )?;
    }
    let mut seen = 0;
    while tail.max.is_none_or(|max| seen < max) {
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = message?;
        seen += 1;
        let headers = ferry_dispatcher::log::record_headers(&m);
        let event = binding::from_kafka(headers.into_iter(), m.payload());
        if tail.json {
            let line = match &event {
                Ok(Some(e)) => {
                    serde_json::json!({"partition": m.partition(), "offset": m.offset(), "event": e})
                }
                Ok(None) => {
                    serde_json::json!({"partition": m.partition(), "offset": m.offset(), "value": String::from_utf8_lossy(m.payload().unwrap_or_default())})
                }
                Err(e) => {
                    serde_json::json!({"partition": m.partition(), "offset": m.offset(), "error": e.0})
                }
            };
            writeln!(out, "{line}")?;
        } else {
            let time = m
                .timestamp()
                .to_millis()
                .and_then(DateTime::<Utc>::from_timestamp_millis)
                .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
                .unwrap_or_default();
            let (ty, source, id) = match &event {
                Ok(Some(e)) => (e.ty().to_owned(), e.source().to_string(), e.id().to_owned()),
                Ok(None) => ("(not a CloudEvent)".into(), String::new(), String::new()),
                Err(e) => (format!("(invalid: {})", e.0), String::new(), String::new()),
            };
            writeln!(
                out,
                "{:<5} {:<8} {:<24} {:<28} {:<24} {id}",
                m.partition(),
                m.offset(),
                time,
                ty,
                source
            )?;
        }
        out.flush()?;
    }
    Ok(())
}

/// The first offset at or after `from` and the end offset (exclusive) of one partition.
///
/// # Errors
/// The log did not answer.
fn bounds(
    consumer: &BaseConsumer,
    topic: &str,
    partition: i32,
    from: &StartAt,
) -> Result<(i64, i64), rdkafka::error::KafkaError> {
    let timeout = Duration::from_secs(10);
    let (low, high) = consumer.fetch_watermarks(topic, partition, timeout)?;
    let start = match from {
        StartAt::Earliest => low,
        StartAt::Latest => high,
        StartAt::Offset(o) => (*o).clamp(low, high),
        StartAt::Time(t) => {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(topic, partition, Offset::Offset(t.timestamp_millis()))?;
            let found = consumer.offsets_for_times(tpl, timeout)?;
            match found.find_partition(topic, partition).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => o.clamp(low, high),
                _ => high,
            }
        }
    };
    Ok((start, high))
}

/// A read of topics from a start position up to each partition's end as it was when the read
/// began, without a consumer group (nothing is committed): what `ferry replay` and `ferry
/// trace` read.
pub struct BoundedRead {
    consumer: BaseConsumer,
    /// Per partition: topic, partition, next offset to read, end (exclusive).
    ranges: Vec<(String, i32, i64, i64)>,
    open: usize,
}

/// One step of a [`BoundedRead`].
pub enum Read<'a> {
    /// A record inside the ranges.
    Record(rdkafka::message::BorrowedMessage<'a>),
    /// Nothing arrived within the poll interval.
    Nothing,
    /// Every partition has been read to its end.
    Done,
}

impl BoundedRead {
    /// Resolves `from` on every partition of `topics` and assigns the ranges (blocking).
    ///
    /// # Errors
    /// The log cannot be reached, or a topic does not exist.
    pub fn open(
        kafka: &str,
        group: &str,
        topics: &[String],
        from: &StartAt,
    ) -> anyhow::Result<Self> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", kafka)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()?;
        let mut ranges = Vec::new();
        let mut tpl = TopicPartitionList::new();
        for topic in topics {
            for p in partitions_of(&consumer, kafka, topic)? {
                let (start, end) = bounds(&consumer, topic, p, from)
                    .map_err(|e| anyhow::anyhow!("{topic}/{p}: {e}"))?;
                if start < end {
                    tpl.add_partition_offset(topic, p, Offset::Offset(start))?;
                    ranges.push((topic.clone(), p, start, end));
                }
            }
        }
        if !ranges.is_empty() {
            consumer.assign(&tpl)?;
        }
        let open = ranges.len();
        Ok(BoundedRead {
            consumer,
            ranges,
            open,
        })
    }

    /// Records in the ranges.
    pub fn total(&self) -> u64 {
        self.ranges
            .iter()
            .map(|(_, _, start, end)| u64::try_from(end - start).unwrap_or(0))
            .sum()
    }

    /// Polls once (blocking up to `wait`).
    ///
    /// # Errors
    /// The log failed the fetch.
    pub fn next(&mut self, wait: Duration) -> Result<Read<'_>, rdkafka::error::KafkaError> {
        if self.open == 0 {
            return Ok(Read::Done);
        }
        let Some(message) = self.consumer.poll(wait) else {
            return Ok(Read::Nothing);
        };
        let m = message?;
        let Some(range) = self
            .ranges
            .iter_mut()
            .find(|(t, p, _, _)| t == m.topic() && *p == m.partition())
        else {
            return Ok(Read::Nothing);
        };
        if range.2 >= range.3 || m.offset() >= range.3 {
            return Ok(Read::Nothing);
        }
        range.2 = m.offset() + 1;
        if range.2 >= range.3 {
            self.open -= 1;
        }
        Ok(Read::Record(m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_values() {
        assert_eq!("earliest".parse::<StartAt>().unwrap(), StartAt::Earliest);
        assert_eq!("latest".parse::<StartAt>().unwrap(), StartAt::Latest);
        assert_eq!("42".parse::<StartAt>().unwrap(), StartAt::Offset(42));
        assert!(matches!(
            "2026-11-25T10:00:00Z".parse::<StartAt>().unwrap(),
            StartAt::Time(_)
        ));
        assert!(
            "-1".parse::<StartAt>()
                .unwrap_err()
                .contains("is not earliest, latest")
        );
        assert!("yesterday".parse::<StartAt>().is_err());
        assert_eq!(topic_for("default/orders"), "knative-broker-default-orders");
        assert_eq!(topic_for("payments"), "payments");
    }
}
