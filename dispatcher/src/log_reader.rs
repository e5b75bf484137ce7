//! Reading the log without a consumer group, as `ferry tail`, `ferry trace`, `ferry replay` and
//! the dispatcher's journal endpoint do: where to start ([`StartAt`]), a consumer that commits
//! nothing, and a read up to each partition's end as it was when the read began
//! ([`BoundedRead`]).

use std::time::Duration;

use chrono::{DateTime, Utc};
use ferry_api::contract::KafkaAuth;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::{Error, Result};

/// How long one metadata or offsets request to the log may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a read starts (`--from`, `--since`).
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
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "earliest" => Ok(StartAt::Earliest),
            "latest" => Ok(StartAt::Latest),
            _ => s
                .parse::<i64>()
                .ok()
                .filter(|o| *o >= 0)
                .map(StartAt::Offset)
                .or_else(|| {
                    DateTime::parse_from_rfc3339(s)
                        .ok()
                        .map(|t| StartAt::Time(t.with_timezone(&Utc)))
                })
                .ok_or_else(|| Error::NotAStart { text: s.to_owned() }),
        }
    }
}

/// The text [`StartAt`] is parsed from (`earliest`, `latest`, an offset, an RFC 3339 time).
impl std::fmt::Display for StartAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartAt::Earliest => f.write_str("earliest"),
            StartAt::Latest => f.write_str("latest"),
            StartAt::Offset(o) => write!(f, "{o}"),
            StartAt::Time(t) => {
                f.write_str(&t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
            }
        }
    }
}

/// A consumer of the log at `kafka` that commits nothing (`group` only names it to the log),
/// connecting as a resource with `auth` does (`None`: Ferry's own log, with the same
/// `FERRY_KAFKA_*` variables Ferry's components read for SASL and TLS).
///
/// # Errors
/// [`Error::LogRead`]: the client could not be created (a malformed `kafka`).
pub fn consumer(kafka: &str, auth: Option<&KafkaAuth>, group: &str) -> Result<BaseConsumer> {
    crate::kafka::client(kafka, auth)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .map_err(Error::LogRead)
}

/// The partitions of `topic`.
///
/// # Errors
/// [`Error::LogUnreachable`] or [`Error::TopicNotFound`].
pub fn partitions_of<C: rdkafka::consumer::ConsumerContext>(
    consumer: &BaseConsumer<C>,
    kafka: &str,
    topic: &str,
) -> Result<Vec<i32>> {
    let metadata = consumer
        .fetch_metadata(Some(topic), REQUEST_TIMEOUT)
        .map_err(|source| Error::LogUnreachable {
            kafka: kafka.to_owned(),
            source,
        })?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(Error::TopicNotFound {
            topic: topic.to_owned(),
            kafka: kafka.to_owned(),
        });
    }
    Ok(partitions)
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
) -> Result<(i64, i64), KafkaError> {
    let (low, high) = consumer.fetch_watermarks(topic, partition, REQUEST_TIMEOUT)?;
    let start = match from {
        StartAt::Earliest => low,
        StartAt::Latest => high,
        StartAt::Offset(o) => (*o).clamp(low, high),
        StartAt::Time(t) => {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(topic, partition, Offset::Offset(t.timestamp_millis()))?;
            let found = consumer.offsets_for_times(tpl, REQUEST_TIMEOUT)?;
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
/// trace` (and the journal endpoint) read.
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
    /// Resolves `from` on every partition of `topics` of the log at `kafka` (connecting as a
    /// resource with `auth` does) and assigns the ranges (blocking).
    ///
    /// # Errors
    /// The log cannot be reached, or a topic does not exist.
    pub fn open(
        kafka: &str,
        auth: Option<&KafkaAuth>,
        group: &str,
        topics: &[String],
        from: &StartAt,
    ) -> Result<Self> {
        let consumer = consumer(kafka, auth, group)?;
        let mut ranges = Vec::new();
        let mut tpl = TopicPartitionList::new();
        for topic in topics {
            for p in partitions_of(&consumer, kafka, topic)? {
                let (start, end) = bounds(&consumer, topic, p, from).map_err(|source| {
                    Error::PartitionOffsets {
                        topic: topic.clone(),
                        partition: p,
                        source,
                    }
                })?;
                // Empty ranges are assigned too: after `keep_reading`, what is written there
                // next is read (the first entry of an empty journal, say).
                tpl.add_partition_offset(topic, p, Offset::Offset(start))
                    .map_err(Error::LogRead)?;
                ranges.push((topic.clone(), p, start, end));
            }
        }
        if !ranges.is_empty() {
            consumer.assign(&tpl).map_err(Error::LogRead)?;
        }
        let open = ranges
            .iter()
            .filter(|(_, _, start, end)| start < end)
            .count();
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

    /// Reads past the ends found at open: from now on records keep coming as they are
    /// written, and [`Read::Done`] never comes.
    pub fn keep_reading(&mut self) {
        for range in &mut self.ranges {
            range.3 = i64::MAX;
        }
        self.open = self.ranges.len();
    }

    /// Polls once (blocking up to `wait`).
    ///
    /// # Errors
    /// [`Error::LogRead`]: the log failed the fetch.
    pub fn next(&mut self, wait: Duration) -> Result<Read<'_>> {
        if self.open == 0 {
            return Ok(Read::Done);
        }
        let Some(message) = self.consumer.poll(wait) else {
            return Ok(Read::Nothing);
        };
        let m = message.map_err(Error::LogRead)?;
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
    fn start_positions() {
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
                .to_string()
                .contains("is not earliest, latest")
        );
        assert!("yesterday".parse::<StartAt>().is_err());
        for text in ["earliest", "latest", "42", "2026-11-25T10:00:00.250Z"] {
            let at: StartAt = text.parse().unwrap();
            assert_eq!(at.to_string(), text);
        }
    }
}
