//! One egress's consumer loop: read records, map and filter them, hand them to delivery (per
//! key in order, or concurrently), and store offsets only up to the lowest unsettled one.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cloudevents::{AttributesReader, Event};
use ferry_api::contract::KafkaAuth;
use ferry_api::eventing::DeliveryOrder;
use ferry_api::sources::InitialOffset;
use ferry_runtime::telemetry::Parent;
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{ClientContext, Offset, Statistics, TopicPartitionList};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use super::EgressSettings;
use super::deliver::Deliverer;
use super::source::{RecordView, map_record};
use super::tracker::OffsetTracker;
use crate::binding;
use crate::metrics::{EgressOutcome, Metrics};
use crate::{Error, Result};

/// Feeds librdkafka's statistics (consumer lag per partition) into the metrics.
struct LagReporter {
    metrics: Arc<Metrics>,
    label: String,
}

impl ClientContext for LagReporter {
    fn stats(&self, stats: Statistics) {
        for (topic, t) in &stats.topics {
            for (id, p) in &t.partitions {
                if p.partition >= 0 && p.consumer_lag >= 0 && p.fetch_state != "none" {
                    self.metrics.lag(&self.label, topic, *id, p.consumer_lag);
                }
            }
        }
    }
}

impl ConsumerContext for LagReporter {}

type EgressConsumer = StreamConsumer<LagReporter>;

/// One consumed event on its way to delivery.
struct Job {
    event: Event,
    topic: String,
    partition: i32,
    offset: i64,
    appended_ms: Option<i64>,
    /// The record's key: ordered delivery's key when the event has no `partitionkey`.
    record_key: Option<String>,
    /// The trace the delivery continues (while tracing is on): the record's `traceparent`
    /// header, else the event's own.
    parent: Parent,
    permit: Option<OwnedSemaphorePermit>,
}

/// State shared by the loop and the delivery tasks.
struct Shared {
    deliverer: Deliverer,
    consumer: EgressConsumer,
    tracker: Mutex<OffsetTracker>,
    /// Ordered mode: events waiting behind an in-flight event of the same (partition, key).
    lanes: Mutex<HashMap<(i32, String), VecDeque<Job>>>,
    /// One permit per event in flight.
    permits: Arc<Semaphore>,
    max_in_flight: usize,
}

impl Shared {
    fn report_in_flight(&self) {
        let busy = self
            .max_in_flight
            .saturating_sub(self.permits.available_permits());
        self.deliverer.counters.in_flight(busy);
    }
}

/// Runs the egress until `stop` fires, then waits (bounded) for in-flight deliveries and
/// commits what settled.
///
/// An event's path: `consume` reads it and `admit`s it (decoded, filtered), `dispatch` hands
/// it to `process`, which delivers it (retried or dead-lettered by the egress's policy) and
/// `settle`s its offset with the tracker.
///
/// # Errors
/// [`Error::Consumer`]: the consumer could not be created or subscribed.
pub async fn run(
    deliverer: Deliverer,
    bootstrap: String,
    auth: Option<KafkaAuth>,
    topics: Vec<String>,
    settings: EgressSettings,
    stop: CancellationToken,
    started: tokio::sync::oneshot::Sender<()>,
) -> Result<()> {
    let consumer = create_consumer(&deliverer, &bootstrap, auth.as_ref(), &settings)?;
    let (consumer, topics) = fix_start_offsets(&deliverer, consumer, topics).await?;
    // Where this group starts is fixed now: an event accepted from here on is delivered.
    let _ = started.send(());
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&names)
        .map_err(|source| consumer_error(&deliverer, source))?;
    tracing::info!(egress = %deliverer.label, group = %deliverer.egress.consumer_group, ?topics, "egress started");
    let shared = Arc::new(Shared {
        deliverer,
        consumer,
        tracker: Mutex::new(OffsetTracker::default()),
        lanes: Mutex::new(HashMap::new()),
        permits: Arc::new(Semaphore::new(settings.max_in_flight)),
        max_in_flight: settings.max_in_flight,
    });
    consume(&shared, &stop).await;
    drain_and_close(shared, settings.drain_timeout).await;
    Ok(())
}

fn consumer_error(deliverer: &Deliverer, source: KafkaError) -> Error {
    Error::Consumer {
        egress: deliverer.label.clone(),
        source,
    }
}

/// The egress's consumer: offsets stored only once settled and committed every
/// `commit_interval`, a small prefetch, lag statistics every 5 s.
fn create_consumer(
    deliverer: &Deliverer,
    bootstrap: &str,
    auth: Option<&KafkaAuth>,
    settings: &EgressSettings,
) -> Result<EgressConsumer> {
    let egress = &deliverer.egress;
    let reset = match egress.initial_offset {
        InitialOffset::Earliest => "earliest",
        InitialOffset::Latest => "latest",
    };
    let session_timeout_ms = settings.session_timeout.as_millis();
    let context = LagReporter {
        metrics: deliverer.metrics.clone(),
        label: deliverer.label.clone(),
    };
    crate::kafka::client(bootstrap, auth)
        .set("group.id", &egress.consumer_group)
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set(
            "auto.commit.interval.ms",
            settings.commit_interval.as_millis().to_string(),
        )
        .set("auto.offset.reset", reset)
        .set("session.timeout.ms", session_timeout_ms.to_string())
        .set(
            "heartbeat.interval.ms",
            (session_timeout_ms / 3).max(100).to_string(),
        )
        .set(
            "max.poll.interval.ms",
            settings.max_poll_interval.as_millis().to_string(),
        )
        .set(
            "queued.max.messages.kbytes",
            settings.prefetch_kbytes.to_string(),
        )
        .set(
            "fetch.max.bytes",
            (settings.prefetch_kbytes.max(1024) * 1024).to_string(),
        )
        .set("max.partition.fetch.bytes", "1048576")
        // librdkafka pauses fetching for this long when its local queue is full (default 1 s);
        // the queue is small here, so come back quickly.
        .set("fetch.queue.backoff.ms", "20")
        .set("socket.nagle.disable", "true")
        .set("statistics.interval.ms", "5000")
        .set("topic.metadata.refresh.interval.ms", "10000")
        .create_with_context(context)
        .map_err(|source| consumer_error(deliverer, source))
}

/// Commits the group's start offsets where it has none ([`pin_initial_offsets`], off the
/// async workers: broker round trips) and logs what it did; a failure is logged, not fatal.
///
/// # Errors
/// [`Error::Consumer`] when the blocking task did not complete.
async fn fix_start_offsets(
    deliverer: &Deliverer,
    consumer: EgressConsumer,
    topics: Vec<String>,
) -> Result<(EgressConsumer, Vec<String>)> {
    let initial = deliverer.egress.initial_offset;
    let (consumer, topics, pinned) = tokio::task::spawn_blocking(move || {
        let pinned = pin_initial_offsets(&consumer, &topics, initial);
        (consumer, topics, pinned)
    })
    .await
    .map_err(|_| consumer_error(deliverer, KafkaError::Canceled))?;
    match pinned {
        Ok(0) => {}
        Ok(n) => {
            tracing::info!(egress = %deliverer.label, partitions = n, ?initial, "initial offsets committed for partitions the group had none for")
        }
        Err(e) => {
            tracing::warn!(egress = %deliverer.label, error = %e, "could not commit initial offsets; partitions without one start at the initial offset when assigned")
        }
    }
    Ok((consumer, topics))
}

/// Reads records until `stop` fires: each takes an in-flight slot, is [`admit`]ted (decoded
/// and filtered), and what passes is [`dispatch`]ed to delivery.
async fn consume(shared: &Arc<Shared>, stop: &CancellationToken) {
    loop {
        let permit = tokio::select! {
            _ = stop.cancelled() => return,
            p = shared.permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
        };
        let Some(message) = next_record(shared, stop).await else {
            return;
        };
        if let Some(job) = admit(shared, message, permit) {
            dispatch(shared, job);
        }
    }
}

/// The next record, retrying failed reads with a backoff of 100 ms, 200 ms, … up to 5 s
/// (logging the 1st, 2nd, 4th, 8th… failure in a row); `None` once `stop` fires.
async fn next_record<'c>(
    shared: &'c Shared,
    stop: &CancellationToken,
) -> Option<BorrowedMessage<'c>> {
    let mut failures: u32 = 0;
    loop {
        let received = tokio::select! {
            _ = stop.cancelled() => return None,
            m = shared.consumer.recv() => m,
        };
        let e = match received {
            Ok(message) => return Some(message),
            Err(e) => e,
        };
        failures += 1;
        if failures.is_power_of_two() {
            tracing::warn!(egress = %shared.deliverer.label, error = %e, failures, "consume failed; retrying");
        }
        let backoff = Duration::from_millis(100u64 << failures.min(6)).min(Duration::from_secs(5));
        tokio::select! {
            _ = stop.cancelled() => return None,
            _ = tokio::time::sleep(backoff) => {}
        }
    }
}

/// Starts tracking a record's offset and decodes it. A record the filters let pass by, or
/// one that is not a valid CloudEvent, is counted and settled here (`None`); any other
/// becomes a job holding `permit` until it settles.
fn admit(
    shared: &Shared,
    message: BorrowedMessage<'_>,
    permit: OwnedSemaphorePermit,
) -> Option<Job> {
    let (topic, partition, offset) = (
        message.topic().to_owned(),
        message.partition(),
        message.offset(),
    );
    lock(&shared.tracker).begin(&topic, partition, offset);
    let appended_ms = message.timestamp().to_millis();
    let record_key = message
        .key()
        .map(|k| String::from_utf8_lossy(k).into_owned());
    let d = &shared.deliverer;
    let decoded = decode(d, &message);
    let traced = d
        .telemetry
        .enabled()
        .then(|| crate::log::record_traceparent(&message));
    drop(message);
    match decoded {
        Ok(Some(event)) if d.filter.matches(&event) => Some(Job {
            parent: match traced {
                Some(header) => Parent::remote(
                    header
                        .or_else(|| binding::attribute(&event, "traceparent"))
                        .as_deref(),
                ),
                None => Parent::None,
            },
            event,
            topic,
            partition,
            offset,
            appended_ms,
            record_key,
            permit: Some(permit),
        }),
        Ok(event) => {
            if let Some(event) = event {
                d.record(&event, (&topic, partition, offset), None);
            }
            d.counters.count(EgressOutcome::Filtered);
            settle(shared, &topic, partition, offset);
            None
        }
        Err(e) => {
            tracing::error!(egress = %d.label, %topic, partition, offset, error = %e, "record is not a valid CloudEvent; skipped");
            d.counters.count(EgressOutcome::Malformed);
            settle(shared, &topic, partition, offset);
            None
        }
    }
}

/// Hands a job to delivery: in ordered mode behind the events of its (partition, key) still
/// in flight, otherwise at once.
fn dispatch(shared: &Arc<Shared>, mut job: Job) {
    if shared.deliverer.egress.ordering == DeliveryOrder::Ordered {
        let key = binding::attribute(&job.event, "partitionkey")
            .or(job.record_key.take())
            .unwrap_or_default();
        enqueue_ordered(shared, (job.partition, key), job);
    } else {
        let shared = shared.clone();
        tokio::spawn(async move { process(&shared, job).await });
    }
    shared.report_in_flight();
}

/// Waits up to `drain_timeout` for every in-flight event to settle, then commits what settled
/// and leaves the group.
async fn drain_and_close(shared: Arc<Shared>, drain_timeout: Duration) {
    let label = shared.deliverer.label.clone();
    // Every permit back means every consumed event settled.
    let max = u32::try_from(shared.max_in_flight).unwrap_or(u32::MAX);
    if tokio::time::timeout(drain_timeout, shared.permits.acquire_many(max))
        .await
        .is_err()
    {
        tracing::warn!(egress = %label, in_flight = lock(&shared.tracker).in_flight(), "stopping with deliveries in flight; they will be redelivered");
    }
    // The final commit, leaving the group and closing the consumer block on broker round
    // trips: off the async workers, which may be serving that very broker (`ferry dev` runs
    // it in-process).
    let closing = label.clone();
    let closed = tokio::task::spawn_blocking(move || {
        if let Err(e) = shared.consumer.commit_consumer_state(CommitMode::Sync) {
            tracing::debug!(egress = %closing, error = %e, "final commit");
        }
        shared.consumer.unsubscribe();
        drop(shared);
    })
    .await;
    if let Err(e) = closed {
        tracing::warn!(egress = %label, error = %e, "closing the consumer failed");
    }
    tracing::info!(egress = %label, "egress stopped");
}

/// Commits, for every partition of `topics` on which the group has no committed offset, the
/// offset the egress's initial offset resolves to now; returns how many it committed.
///
/// `auto.offset.reset` alone is not enough: a partition that never carried an event for this
/// group keeps no commit, so an egress restarted later (a contract change, a new pod) would
/// resolve `latest` again and skip what arrived meanwhile. Pinned once, every restart resumes
/// where the group was. Blocking (broker round trips). A group with active members (another
/// replica) refuses commits from outside the group: that replica pins them.
fn pin_initial_offsets(
    consumer: &EgressConsumer,
    topics: &[String],
    initial: InitialOffset,
) -> Result<usize, KafkaError> {
    let timeout = Duration::from_secs(10);
    let mut all = TopicPartitionList::new();
    for topic in topics {
        let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
        for t in metadata.topics().iter().filter(|t| t.error().is_none()) {
            for p in t.partitions() {
                all.add_partition(topic, p.id());
            }
        }
    }
    if all.count() == 0 {
        return Ok(0);
    }
    let committed = consumer.committed_offsets(all, timeout)?;
    let mut pin = TopicPartitionList::new();
    for e in committed.elements() {
        if matches!(e.offset(), Offset::Offset(_)) {
            continue;
        }
        let (low, high) = consumer.fetch_watermarks(e.topic(), e.partition(), timeout)?;
        let at = match initial {
            InitialOffset::Earliest => low,
            InitialOffset::Latest => high,
        };
        pin.add_partition_offset(e.topic(), e.partition(), Offset::Offset(at))?;
    }
    if pin.count() > 0 {
        consumer.commit(&pin, CommitMode::Sync)?;
    }
    Ok(pin.count())
}

/// The event a record carries: a CloudEvent in binary or structured mode, or for a
/// KafkaSource the mapped record. `Ok(None)`: not a CloudEvent (only possible for brokers and
/// channels, whose records Ferry wrote itself).
///
/// # Errors
/// A record that is not a valid CloudEvent (or, for a KafkaSource, cannot be mapped).
pub fn decode(deliverer: &Deliverer, m: &BorrowedMessage<'_>) -> Result<Option<Event>> {
    let headers = crate::log::record_headers(m);
    match &deliverer.egress.source {
        Some(mapping) => {
            let view = RecordView {
                topic: m.topic(),
                partition: m.partition(),
                offset: m.offset(),
                timestamp_ms: m.timestamp().to_millis(),
                key: m.key(),
                value: m.payload(),
                headers,
            };
            let r = &deliverer.egress.reference;
            map_record(&view, &r.namespace, &r.name, mapping).map(Some)
        }
        None => match binding::from_kafka(headers.into_iter(), m.payload())? {
            Some(event) => Ok(Some(event)),
            None => Err(Error::InvalidEvent(
                "record has no CloudEvents headers; write to this topic through the ingress".into(),
            )),
        },
    }
}

fn enqueue_ordered(shared: &Arc<Shared>, key: (i32, String), job: Job) {
    {
        let mut lanes = lock(&shared.lanes);
        if let Some(queue) = lanes.get_mut(&key) {
            queue.push_back(job);
            return;
        }
        lanes.insert(key.clone(), VecDeque::new());
    }
    let shared = shared.clone();
    tokio::spawn(async move {
        let mut next = Some(job);
        while let Some(job) = next {
            process(&shared, job).await;
            let mut lanes = lock(&shared.lanes);
            next = lanes.get_mut(&key).and_then(VecDeque::pop_front);
            if next.is_none() {
                lanes.remove(&key);
            }
        }
    });
}

async fn process(shared: &Shared, mut job: Job) {
    let d = &shared.deliverer;
    let settled = d.deliver(&job.event, &job.parent).await;
    let outcome = settled.outcome;
    d.counters.count(outcome);
    d.record(
        &job.event,
        (&job.topic, job.partition, job.offset),
        Some(&settled),
    );
    if outcome == EgressOutcome::Delivered
        && let Some(ms) = job.appended_ms
        && let Ok(since) = u64::try_from(chrono::Utc::now().timestamp_millis() - ms)
    {
        d.counters.end_to_end(Duration::from_millis(since));
    }
    tracing::debug!(egress = %d.label, event.id = %job.event.id(), ?outcome, "settled");
    settle(shared, &job.topic, job.partition, job.offset);
    drop(job.permit.take());
    shared.report_in_flight();
}

fn settle(shared: &Shared, topic: &str, partition: i32, offset: i64) {
    let Some(position) = lock(&shared.tracker).settle(topic, partition, offset) else {
        return;
    };
    let mut tpl = TopicPartitionList::new();
    if tpl
        .add_partition_offset(topic, partition, Offset::Offset(position))
        .is_ok()
        && let Err(e) = shared.consumer.store_offsets(&tpl)
    {
        // The partition was revoked meanwhile; its new owner reads from the last commit.
        tracing::debug!(%topic, partition, position, error = %e, "offset not stored");
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
