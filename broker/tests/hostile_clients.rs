//! Hostile clients against the real broker process: forged and control batches, huge frame
//! claims, connection floods, slowloris, idle and unauthenticated connections. Each attack is
//! refused or cut off, and a normal client is served throughout.

mod support;

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use kafka_protocol::messages::{ApiVersionsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use support::BrokerProcess;
use support::wire::{Wire, batch, frame, list_offset, produce};

/// A broker started with `flags`, holding topic `t` (one partition).
fn broker_with_topic(dir: &std::path::Path, flags: &[&str]) -> BrokerProcess {
    use kafka_protocol::messages::CreateTopicsRequest;
    use kafka_protocol::messages::create_topics_request::CreatableTopic;
    let broker = BrokerProcess::start(dir, flags);
    let mut w = Wire::connect(broker.kafka);
    let created = w.call(
        &CreateTopicsRequest::default().with_topics(vec![
            CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_num_partitions(1)
                .with_replication_factor(1),
        ]),
        5,
    );
    assert_eq!(created.topics[0].error_code, 0, "topic t created");
    broker
}

/// The broker's resident memory, from /proc/<pid>/status.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kib * 1024
}

/// A normal client: ApiVersions answered, one produce appended.
fn served(addr: SocketAddr, topic: &str) {
    let mut w = Wire::connect(addr);
    let versions = w.call(&ApiVersionsRequest::default(), 3);
    assert_eq!(versions.error_code, 0);
    let (code, _) = produce(&mut w, topic, 0, batch(&["still", "served"]));
    assert_eq!(code, 0, "a normal client's produce succeeds");
}

/// How long until the broker closes `w` (reads EOF); panics after `within`.
fn closed_after(w: &mut Wire, within: Duration) -> Duration {
    let started = Instant::now();
    assert!(w.closed(), "the broker closes the connection");
    let took = started.elapsed();
    assert!(
        took < within,
        "closed after {took:?}, expected within {within:?}"
    );
    took
}

fn metric(broker: &BrokerProcess, series: &str) -> Option<f64> {
    broker
        .admin_get("/metrics")
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

/// `batch` with header bytes from `at` replaced by `value` and the CRC recomputed.
fn forged(batch: &[u8], patches: &[(usize, &[u8])]) -> bytes::Bytes {
    let mut b = batch.to_vec();
    for (at, value) in patches {
        b[*at..*at + value.len()].copy_from_slice(value);
    }
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    bytes::Bytes::from(b)
}

#[test]
fn a_forged_record_count_is_refused_and_moves_no_offsets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = broker_with_topic(dir.path(), &[]);
    let mut w = Wire::connect(broker.kafka);
    assert_eq!(produce(&mut w, "t", 0, batch(&["a", "b"])).0, 0);
    let one = batch(&["x"]);
    // lastOffsetDelta 2^31-2 and recordsCount 2^31-1 agree; the batch holds one record.
    let huge = forged(
        &one,
        &[
            (23, &(i32::MAX - 1).to_be_bytes()),
            (57, &i32::MAX.to_be_bytes()),
        ],
    );
    assert!(huge.len() < 100, "{} bytes", huge.len());
    assert_eq!(
        produce(&mut w, "t", 0, huge).0,
        2,
        "CORRUPT_MESSAGE for 2^31-1 records claimed"
    );
    // Three records claimed, one present.
    let three = forged(
        &one,
        &[(23, &2i32.to_be_bytes()), (57, &3i32.to_be_bytes())],
    );
    assert_eq!(produce(&mut w, "t", 0, three).0, 2, "CORRUPT_MESSAGE");
    assert_eq!(
        list_offset(&mut w, "t", 0, -1, 1).1,
        2,
        "high watermark unchanged"
    );
    assert_eq!(produce(&mut w, "t", 0, batch(&["c"])), (0, 2));
    assert_eq!(list_offset(&mut w, "t", 0, -1, 1).1, 3);
}

#[test]
fn control_batches_from_producers_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = broker_with_topic(dir.path(), &[]);
    let mut w = Wire::connect(broker.kafka);
    assert_eq!(produce(&mut w, "t", 0, batch(&["a"])).0, 0);
    // Attributes with the control bit (0x20) set, as a transaction marker has.
    let control = forged(&batch(&["m"]), &[(21, &0x0020i16.to_be_bytes())]);
    assert_eq!(
        produce(&mut w, "t", 0, control).0,
        87,
        "INVALID_RECORD, as Kafka answers a client's control batch"
    );
    assert_eq!(list_offset(&mut w, "t", 0, -1, 1).1, 1, "nothing appended");
}

#[test]
fn huge_frame_claims_cost_only_the_bytes_sent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = broker_with_topic(dir.path(), &[]);
    served(broker.kafka, "t");
    let before = rss_bytes(broker.pid());
    // An ApiVersions header's first bytes, then nothing more.
    let start = &frame(&ApiVersionsRequest::default(), 3, 1)[..8];
    for _wave in 0..3 {
        let attackers: Vec<Wire> = (0..32)
            .map(|_| {
                let mut w = Wire::connect(broker.kafka);
                w.send_raw(&(100i32 << 20).to_be_bytes());
                w.send_raw(start);
                w.send_raw(&[0u8; 1000]);
                w
            })
            .collect();
        std::thread::sleep(Duration::from_millis(500));
        served(broker.kafka, "t");
        let grown = rss_bytes(broker.pid()).saturating_sub(before);
        assert!(
            grown < 48 << 20,
            "32 connections each claiming a 100 MiB frame grew RSS by {} MiB",
            grown >> 20
        );
        drop(attackers);
    }
}

#[test]
fn a_connection_flood_hits_the_caps_and_clients_are_served_after() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = broker_with_topic(
        dir.path(),
        &["--max-connections", "12", "--max-connections-per-ip", "8"],
    );
    let ok = |w: &mut Wire| w.call(&ApiVersionsRequest::default(), 3).error_code == 0;
    // The clients that created the topic may still be closing; they count until they are gone.
    support::eventually(
        "the set-up's connections closed",
        Duration::from_secs(10),
        || (metric(&broker, "ferry_broker_connections_open") == Some(0.0)).then_some(()),
    );
    let mut held: Vec<Wire> = (0..8).map(|_| Wire::connect(broker.kafka)).collect();
    assert!(held.iter_mut().all(ok), "8 from 127.0.0.1 are admitted");
    for _ in 0..20 {
        let mut refused = Wire::connect(broker.kafka);
        closed_after(&mut refused, Duration::from_secs(5));
    }
    let mut others: Vec<Wire> = (0..4)
        .map(|_| from_address([127, 0, 0, 2], broker.kafka))
        .collect();
    assert!(others.iter_mut().all(ok), "another address has its own cap");
    let mut over = from_address([127, 0, 0, 3], broker.kafka);
    closed_after(&mut over, Duration::from_secs(5));
    let per_ip = "ferry_broker_connections_refused_total{reason=\"max_connections_per_ip\"}";
    assert_eq!(metric(&broker, per_ip), Some(20.0));
    let total = "ferry_broker_connections_refused_total{reason=\"max_connections\"}";
    assert_eq!(metric(&broker, total), Some(1.0));
    assert_eq!(metric(&broker, "ferry_broker_connections_open"), Some(12.0));
    drop((held, others));
    support::eventually("every connection closed", Duration::from_secs(10), || {
        (metric(&broker, "ferry_broker_connections_open") == Some(0.0)).then_some(())
    });
    served(broker.kafka, "t");
}

/// A blocking connection to `to` from the loopback address `from`.
fn from_address(from: [u8; 4], to: SocketAddr) -> Wire {
    let socket = socket_from(from, to);
    Wire::from_stream(socket)
}

fn socket_from(from: [u8; 4], to: SocketAddr) -> TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("runtime");
    let stream = rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind(SocketAddr::from((from, 0)))
            .expect("bind a loopback address");
        socket.connect(to).await.expect("connect")
    });
    let stream = stream.into_std().expect("std stream");
    stream.set_nonblocking(false).expect("blocking");
    stream
}

#[test]
fn a_half_sent_frame_is_closed_after_the_read_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = broker_with_topic(dir.path(), &["--request-read-timeout", "1s"]);
    let mut slow = Wire::connect(broker.kafka);
    let whole = frame(&ApiVersionsRequest::default(), 3, 1);
    slow.send_raw(&i32::try_from(whole.len()).expect("len").to_be_bytes());
    slow.send_raw(&whole[..whole.len() / 2]);
    served(broker.kafka, "t");
    let took = closed_after(&mut slow, Duration::from_secs(5));
    assert!(took >= Duration::from_millis(500), "closed after {took:?}");
    let series = "ferry_broker_connections_timed_out_total{reason=\"request_read\"}";
    assert_eq!(metric(&broker, series), Some(1.0));
    served(broker.kafka, "t");
}

#[test]
fn an_idle_connection_is_closed_and_a_busy_one_is_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = BrokerProcess::start(dir.path(), &["--connections-max-idle", "1s"]);
    let mut busy = Wire::connect(broker.kafka);
    let mut idle = Wire::connect(broker.kafka);
    assert_eq!(idle.call(&ApiVersionsRequest::default(), 3).error_code, 0);
    let started = Instant::now();
    for _ in 0..8 {
        assert_eq!(busy.call(&ApiVersionsRequest::default(), 3).error_code, 0);
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(started.elapsed() > Duration::from_secs(2));
    closed_after(&mut idle, Duration::from_secs(1));
    assert_eq!(
        busy.call(&ApiVersionsRequest::default(), 3).error_code,
        0,
        "a connection that keeps sending requests stays open"
    );
    let series = "ferry_broker_connections_timed_out_total{reason=\"idle\"}";
    assert_eq!(metric(&broker, series), Some(1.0));
}

#[test]
fn an_unauthenticated_connection_is_closed_at_the_login_deadline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let users = dir.path().join("users.txt");
    std::fs::write(&users, "alice:secret\n").expect("users");
    let broker = BrokerProcess::start(
        dir.path(),
        &[
            "--sasl-users",
            users.to_str().expect("utf-8"),
            "--sasl-login-timeout",
            "1s",
        ],
    );
    // ApiVersions is allowed before authentication, but does not extend the deadline.
    let mut w = Wire::connect(broker.kafka);
    let started = Instant::now();
    let mut answered = 0;
    while started.elapsed() < Duration::from_secs(5) {
        if !w.try_send_frame(&frame(&ApiVersionsRequest::default(), 3, 1)) {
            break;
        }
        if w.read_frame().is_none() {
            break;
        }
        answered += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    let took = started.elapsed();
    assert!(answered >= 2, "answered {answered} before the deadline");
    assert!(
        (Duration::from_millis(900)..Duration::from_secs(4)).contains(&took),
        "closed after {took:?}"
    );
    let series = "ferry_broker_connections_timed_out_total{reason=\"sasl_login\"}";
    assert_eq!(metric(&broker, series), Some(1.0));
}
