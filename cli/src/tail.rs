//! `ferry tail`: follow a Broker's topic (or any topic) as CloudEvents.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, Utc};
use cloudevents::AttributesReader;
use ferry_api::contract::broker_topic;
use ferry_dispatcher::binding;
use rdkafka::consumer::Consumer;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};

use crate::{Output, Result};
use ferry_dispatcher::log_reader::{self as log, StartAt};

/// `ferry tail`'s flags.
#[derive(clap::Args, Clone, Debug)]
pub struct Tail {
    /// `<namespace>/<broker>`, or a topic name.
    pub source: String,
    /// Kafka bootstrap servers of the log.
    #[arg(long, default_value = "127.0.0.1:9092", env = "FERRY_KAFKA")]
    pub kafka: String,
    /// earliest, latest, an offset, or an RFC 3339 time.
    #[arg(long, default_value = "latest")]
    pub from: StartAt,
    /// Stop after this many records.
    #[arg(long)]
    pub max: Option<usize>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// The topic for `<namespace>/<broker>` (Knative's naming), or the argument itself.
pub fn topic_for(source: &str) -> String {
    match source.split_once('/') {
        Some((ns, name)) => broker_topic(ns, name),
        None => source.to_owned(),
    }
}

/// Runs `ferry tail`: exit 0 after `--max` records, 1 when the log or topic cannot be read.
pub fn command(tail: &Tail) -> ExitCode {
    match run(tail, &mut std::io::stdout().lock()) {
        Ok(()) => ExitCode::SUCCESS,
        // 1 for every failure: `ferry tail` does not tell them apart as send, trace and replay
        // do (Error::exit_code).
        Err(e) => {
            eprintln!("ferry tail: {e}");
            ExitCode::from(1)
        }
    }
}

/// Follows the topic, writing one line per record, until `max` records or forever.
///
/// # Errors
/// The log cannot be reached or the topic does not exist; `out` cannot be written.
pub fn run(tail: &Tail, out: &mut impl Write) -> Result<()> {
    let topic = topic_for(&tail.source);
    let consumer = log::consumer(&tail.kafka, None, "ferry-tail")?;
    let mut tpl = TopicPartitionList::new();
    for p in log::partitions_of(&consumer, &tail.kafka, &topic)? {
        let offset = match &tail.from {
            StartAt::Earliest => Offset::Beginning,
            StartAt::Latest => Offset::End,
            StartAt::Offset(o) => Offset::Offset(*o),
            StartAt::Time(t) => Offset::Offset(t.timestamp_millis()),
        };
        tpl.add_partition_offset(&topic, p, offset)?;
    }
    if matches!(tail.from, StartAt::Time(_)) {
        tpl = consumer.offsets_for_times(tpl, Duration::from_secs(10))?;
    }
    consumer.assign(&tpl)?;
    let json = tail.output == Output::Json;
    if !json {
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
        let line = if json {
            json_line(&m).to_string()
        } else {
            table_line(&m)
        };
        writeln!(out, "{line}")?;
        out.flush()?;
    }
    Ok(())
}

/// A record as one JSON object: the event, or the raw value, or why it is not a CloudEvent.
fn json_line(m: &BorrowedMessage<'_>) -> serde_json::Value {
    let headers = ferry_dispatcher::log::record_headers(m);
    let (partition, offset) = (m.partition(), m.offset());
    match binding::from_kafka(headers.into_iter(), m.payload()) {
        Ok(Some(e)) => serde_json::json!({"partition": partition, "offset": offset, "event": e}),
        Ok(None) => {
            let value = String::from_utf8_lossy(m.payload().unwrap_or_default());
            serde_json::json!({"partition": partition, "offset": offset, "value": value})
        }
        Err(e) => {
            serde_json::json!({"partition": partition, "offset": offset, "error": e.to_string()})
        }
    }
}

/// A record as a row under the header `run` writes.
fn table_line(m: &BorrowedMessage<'_>) -> String {
    let time = m
        .timestamp()
        .to_millis()
        .and_then(DateTime::<Utc>::from_timestamp_millis)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default();
    let headers = ferry_dispatcher::log::record_headers(m);
    let (ty, source, id) = match binding::from_kafka(headers.into_iter(), m.payload()) {
        Ok(Some(e)) => (e.ty().to_owned(), e.source().to_string(), e.id().to_owned()),
        Ok(None) => ("(not a CloudEvent)".into(), String::new(), String::new()),
        Err(e) => (format!("(invalid: {e})"), String::new(), String::new()),
    };
    format!(
        "{:<5} {:<8} {:<24} {:<28} {:<24} {id}",
        m.partition(),
        m.offset(),
        time,
        ty,
        source
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brokers_name_their_topic() {
        assert_eq!(topic_for("default/orders"), "knative-broker-default-orders");
        assert_eq!(topic_for("payments"), "payments");
    }
}
