//! The broker library's errors: one enum, each message saying what was wrong and what to do.
//!
//! Some errors also answer Kafka requests (a refused append, a topic that cannot be created):
//! [`Error::kafka_code`] is the protocol error code the client gets, with the message as the
//! error message. Codes a handler decides on its own stay plain `i16` constants next to it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Everything that can go wrong in the broker library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Flags clap rejects; the text is clap's (it names the flag and shows the usage).
    #[error("{0}")]
    Flags(String),
    /// Settings that parse but do not fit together; the text names the flag and what to use.
    #[error("{0}")]
    InvalidSetting(String),
    /// A `--flush` value that is not a policy.
    #[error("`{0}` is not a flush policy; use always, interval:<ms> (e.g. interval:5) or os")]
    FlushPolicy(String),
    /// A `--sasl-mechanisms` entry the broker does not offer.
    #[error("unknown SASL mechanism `{0}`; use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")]
    UnknownMechanism(String),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}; choose another address with {flag}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Which flag sets it.
        flag: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// Opening the data directory panicked: a bug.
    #[error("opening the data directory failed unexpectedly: {0}; please report this with the log")]
    OpenPanicked(String),

    /// A file named by a flag cannot be read.
    #[error("cannot read {flag} {}: {source}; check the path and its permissions", path.display())]
    ReadFile {
        /// The flag.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A PEM file holds no usable certificate or key.
    #[error("{flag} {}: {problem}", path.display())]
    Pem {
        /// The flag.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong, and what the file should hold.
        problem: String,
    },
    /// The key does not belong to the certificate.
    #[error(
        "--tls-key {} does not fit --tls-cert {}: {problem}; give the key the certificate was issued for",
        key.display(),
        cert.display()
    )]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls' reason.
        problem: String,
    },
    /// A bad line in the `--sasl-users` file.
    #[error("--sasl-users {} line {line}: {problem} (format: one USER:PASSWORD per line)", path.display())]
    SaslUsers {
        /// The file.
        path: PathBuf,
        /// 1-based line number (0: the whole file).
        line: usize,
        /// What is wrong (never the password).
        problem: String,
    },

    /// A file operation under the data directory failed.
    #[error("{}: {source}; check the disk's free space and the broker's permissions on --data-dir", path.display())]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A write under the data directory failed and was undone: the file was cut back to its
    /// previous length and nothing of the write is kept, so a retry is safe.
    #[error("{}: {source}; the write was undone and nothing was stored; free space on the disk under --data-dir (or fix the error), then retry", path.display())]
    WriteRolledBack {
        /// The file involved.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A partition that takes no writes since a disk write or fsync of its log failed.
    #[error(
        "partition {topic}-{partition} stopped taking writes after a disk write or fsync failed; check the disk under --data-dir (the broker log names the error), then restart the broker, which recovers what reached the disk"
    )]
    PartitionFenced {
        /// The topic.
        topic: String,
        /// The partition index.
        partition: i32,
    },
    /// The offset store takes no writes since a write or fsync of its file failed.
    #[error(
        "committed offsets cannot be stored: a write or fsync of {} failed earlier; check the disk under --data-dir (the broker log names the error), then restart the broker",
        path.display()
    )]
    OffsetsFenced {
        /// The store's file.
        path: PathBuf,
    },
    /// A segment damaged before valid data: recovery will not drop acknowledged records
    /// silently ([`crate::storage::Recovery`]).
    #[error(
        "{}: the batch at byte {position} is damaged and {follows}, so this is not a torn write from a crash; recovery refuses to drop them silently. Keep a copy of the file for inspection; to start anyway, restart with --truncate-corrupt-segments, which cuts the log at byte {position} ({bytes} bytes, acknowledged records among them)",
        path.display()
    )]
    CorruptSegment {
        /// The segment's log file.
        path: PathBuf,
        /// Where the damage starts.
        position: u64,
        /// Bytes from there to the end of the file.
        bytes: u64,
        /// What valid data follows the damage.
        follows: String,
    },
    /// A metadata file (`meta.json`, `topic.json`) that does not parse.
    #[error(
        "{} is damaged: {problem}; restore it from a backup, or remove it (for a topic, its directory) to start that part afresh",
        path.display()
    )]
    Damaged {
        /// The file.
        path: PathBuf,
        /// The parser's complaint.
        problem: String,
    },
    /// A read below the log start or past the end.
    #[error(
        "offset {requested} is out of range: the log holds {start}..{next}; reset the consumer's position"
    )]
    OffsetOutOfRange {
        /// The offset asked for.
        requested: i64,
        /// First offset still stored.
        start: i64,
        /// Offset the next record will get.
        next: i64,
    },

    /// DeleteRecords past the high watermark (or a negative offset other than -1).
    #[error(
        "cannot delete records before offset {requested}: the partition's high watermark is {high_watermark}; give an offset up to it, or -1 for the high watermark"
    )]
    DeleteBeyondHighWatermark {
        /// The offset asked for.
        requested: i64,
        /// The partition's high watermark.
        high_watermark: i64,
    },

    /// Fewer bytes than a record batch's header or declared length needs.
    #[error("record batch at byte {at} is truncated: needs {need} bytes, {have} present")]
    BatchTruncated {
        /// Offset of the batch in the buffer.
        at: usize,
        /// Bytes the batch needs.
        need: usize,
        /// Bytes present.
        have: usize,
    },
    /// A `batchLength` smaller than a header.
    #[error("record batch at byte {at} declares length {length}, smaller than its header")]
    BatchLength {
        /// Offset of the batch in the buffer.
        at: usize,
        /// The declared length.
        length: i32,
    },
    /// A batch that is not magic v2 (Kafka 0.11+ clients send v2).
    #[error(
        "record batch at byte {at} has magic {magic}; only v2 batches are supported (use a Kafka 0.11+ client)"
    )]
    BatchMagic {
        /// Offset of the batch in the buffer.
        at: usize,
        /// The magic byte found.
        magic: i8,
    },
    /// A batch whose stored CRC does not match its content.
    #[error(
        "record batch at byte {at} fails its CRC: stored {stored:#010x}, computed {computed:#010x}"
    )]
    BatchCrc {
        /// Offset of the batch in the buffer.
        at: usize,
        /// CRC in the header.
        stored: u32,
        /// CRC of the content.
        computed: u32,
    },
    /// A batch whose record count and last offset delta disagree, or an empty batch.
    #[error("record batch at byte {at} holds {count} records but lastOffsetDelta is {delta}")]
    BatchCounts {
        /// Offset of the batch in the buffer.
        at: usize,
        /// `recordsCount`.
        count: i32,
        /// `lastOffsetDelta`.
        delta: i32,
    },
    /// A batch that cannot be decompressed (or whose records do not decode) when the
    /// topic's `compression.type` asks for re-compression.
    #[error(
        "record batch at byte {at} cannot be re-compressed into the topic's compression.type: {problem}"
    )]
    BatchCodec {
        /// Offset of the batch in the buffer.
        at: usize,
        /// What failed.
        problem: String,
    },
    /// A produced batch whose records do not decode into what its header declares (count,
    /// offset deltas 0, 1, 2, …, lengths inside the batch).
    #[error("record batch at byte {at} does not hold the records its header declares: {problem}")]
    BatchRecords {
        /// Offset of the batch in the buffer.
        at: usize,
        /// What does not match.
        problem: String,
    },
    /// Records without a key sent to a compacted topic (Kafka's message, which clients show).
    #[error(
        "Compacted topic cannot accept message without key in topic partition {topic}-{partition}."
    )]
    KeylessRecords {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// Each keyless record's index in its batch (KIP-467's `batch_index`).
        indexes: Vec<i32>,
    },
    /// A control batch (a transaction marker) sent by a producer.
    #[error(
        "record batch at byte {at} is a control batch; clients may not write control records (Ferry's broker has no transactions)"
    )]
    ControlBatch {
        /// Offset of the batch in the buffer.
        at: usize,
    },
    /// A batch with a producer id but no sequence number.
    #[error(
        "record batch at byte {at} has producer id {producer_id} but no base sequence; an idempotent producer numbers its batches"
    )]
    BatchSequence {
        /// Offset of the batch in the buffer.
        at: usize,
        /// The producer id.
        producer_id: i64,
    },
    /// A batch larger than the topic's `max.message.bytes`.
    #[error(
        "a record batch of {size} bytes exceeds max.message.bytes ({max}); send smaller batches or raise the topic's max.message.bytes"
    )]
    BatchTooLarge {
        /// The batch's size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// An idempotent producer's batch that does not continue its sequence.
    #[error("batch sequence {got} is out of order: the producer's next sequence is {expected}")]
    OutOfOrderSequence {
        /// The batch's first sequence.
        got: i32,
        /// The sequence expected next.
        expected: i32,
    },
    /// An idempotent producer's batch from an epoch older than the producer's current one (a
    /// zombie producer).
    #[error(
        "producer epoch {got} is older than the current epoch {current}: a newer instance of this producer took over"
    )]
    StaleProducerEpoch {
        /// The epoch the batch carries.
        got: i16,
        /// The producer's current epoch.
        current: i16,
    },

    /// Not a legal Kafka topic name.
    #[error(
        "`{0}` is not a valid topic name: use 1-249 characters from [a-zA-Z0-9._-], not `.` or `..`"
    )]
    InvalidTopicName(String),
    /// The topic exists.
    #[error("topic `{0}` already exists")]
    TopicExists(String),
    /// No such topic.
    #[error("topic `{0}` does not exist; create it first or check the name")]
    TopicNotFound(String),
    /// A partition count that is not allowed; the text says which are.
    #[error("{0}")]
    InvalidPartitions(String),
    /// Replication other than 1 on a single-node broker.
    #[error(
        "replication factor {0} is not possible on Ferry's single-node broker; use 1 or -1 (the default)"
    )]
    InvalidReplicationFactor(i16),
    /// Replica assignments naming brokers other than this one.
    #[error("replica assignments may only name broker 0, the only broker")]
    InvalidAssignment,
    /// A topic, broker or group config name Ferry does not know.
    #[error("unknown {resource} config `{name}`; Ferry supports {supported}")]
    UnknownConfig {
        /// `topic`, `broker` or `group`.
        resource: &'static str,
        /// The name given.
        name: String,
        /// The names Ferry supports, comma-separated.
        supported: String,
    },
    /// A config that Ferry cannot take as asked; the text says why and what to do.
    #[error("{0}")]
    ConfigRefused(String),
    /// A topic, broker or group config value that does not parse or is out of range.
    #[error("{resource} config `{name}` = `{value}` is invalid: use {expected}")]
    InvalidConfig {
        /// `topic`, `broker` or `group`.
        resource: &'static str,
        /// The config name.
        name: String,
        /// The value given.
        value: String,
        /// What is accepted.
        expected: &'static str,
    },

    /// A SASL message that does not follow its mechanism's grammar.
    #[error("malformed {message} message: {problem}")]
    SaslMalformed {
        /// Which message (`PLAIN`, `SCRAM client-first`, `SCRAM client-final`).
        message: &'static str,
        /// What is wrong (never a secret).
        problem: String,
    },
    /// The authorization id differs from the user name (Kafka allows no impersonation).
    #[error(
        "the authorization id differs from the user name; leave it empty or give the user name"
    )]
    SaslAuthzid,
    /// The client asked for channel binding, which Kafka does not offer.
    #[error(
        "the client requires channel binding, which is not supported; turn it off in the client"
    )]
    SaslChannelBinding,
    /// The SCRAM client-final message's channel binding differs from the client-first header.
    #[error("the channel binding in the final message does not match the first message")]
    SaslChannelBindingMismatch,
    /// The SCRAM client-final message's nonce is not the combined nonce.
    #[error("the nonce in the final message does not match")]
    SaslNonceMismatch,
    /// The SCRAM proof does not verify: a wrong password.
    #[error("invalid client proof (a wrong password)")]
    SaslInvalidProof,
    /// A SASL exchange failed; the text is the log line's reason (never a password).
    #[error("{0}")]
    SaslFailed(String),

    /// A request frame the broker cannot answer; the connection is closed, as Kafka does.
    #[error("{0}")]
    BadRequest(String),
    /// A response that cannot be encoded: a bug.
    #[error("cannot encode the response: {0}; please report this")]
    EncodeResponse(String),
}

/// The broker library's `Result`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Kafka's error codes for the errors that answer requests.
mod code {
    pub const UNKNOWN_SERVER_ERROR: i16 = -1;
    pub const OFFSET_OUT_OF_RANGE: i16 = 1;
    pub const CORRUPT_MESSAGE: i16 = 2;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const MESSAGE_TOO_LARGE: i16 = 10;
    pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
    pub const TOPIC_ALREADY_EXISTS: i16 = 36;
    pub const INVALID_PARTITIONS: i16 = 37;
    pub const INVALID_REPLICATION_FACTOR: i16 = 38;
    pub const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
    pub const INVALID_CONFIG: i16 = 40;
    pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
    pub const INVALID_PRODUCER_EPOCH: i16 = 47;
    pub const KAFKA_STORAGE_ERROR: i16 = 56;
    pub const INVALID_RECORD: i16 = 87;
}

impl Error {
    /// The Kafka error code a client gets for this error; `UNKNOWN_SERVER_ERROR` (-1) for
    /// errors that never answer a request.
    pub fn kafka_code(&self) -> i16 {
        match self {
            Error::Io { .. }
            | Error::WriteRolledBack { .. }
            | Error::CorruptSegment { .. }
            | Error::OffsetsFenced { .. }
            | Error::Damaged { .. }
            | Error::PartitionFenced { .. } => code::KAFKA_STORAGE_ERROR,
            Error::OffsetOutOfRange { .. } | Error::DeleteBeyondHighWatermark { .. } => {
                code::OFFSET_OUT_OF_RANGE
            }
            Error::BatchCrc { .. } | Error::BatchCodec { .. } | Error::BatchRecords { .. } => {
                code::CORRUPT_MESSAGE
            }
            Error::BatchTruncated { .. }
            | Error::KeylessRecords { .. }
            | Error::ControlBatch { .. }
            | Error::BatchSequence { .. }
            | Error::BatchLength { .. }
            | Error::BatchMagic { .. }
            | Error::BatchCounts { .. } => code::INVALID_RECORD,
            Error::BatchTooLarge { .. } => code::MESSAGE_TOO_LARGE,
            Error::OutOfOrderSequence { .. } => code::OUT_OF_ORDER_SEQUENCE_NUMBER,
            Error::StaleProducerEpoch { .. } => code::INVALID_PRODUCER_EPOCH,
            Error::InvalidTopicName(_) => code::INVALID_TOPIC_EXCEPTION,
            Error::TopicExists(_) => code::TOPIC_ALREADY_EXISTS,
            Error::TopicNotFound(_) => code::UNKNOWN_TOPIC_OR_PARTITION,
            Error::InvalidPartitions(_) => code::INVALID_PARTITIONS,
            Error::InvalidReplicationFactor(_) => code::INVALID_REPLICATION_FACTOR,
            Error::InvalidAssignment => code::INVALID_REPLICA_ASSIGNMENT,
            Error::UnknownConfig { .. } | Error::InvalidConfig { .. } | Error::ConfigRefused(_) => {
                code::INVALID_CONFIG
            }
            Error::Flags(_)
            | Error::InvalidSetting(_)
            | Error::FlushPolicy(_)
            | Error::UnknownMechanism(_)
            | Error::Bind { .. }
            | Error::OpenPanicked(_)
            | Error::ReadFile { .. }
            | Error::Pem { .. }
            | Error::KeyMismatch { .. }
            | Error::SaslUsers { .. }
            | Error::SaslMalformed { .. }
            | Error::SaslAuthzid
            | Error::SaslChannelBinding
            | Error::SaslChannelBindingMismatch
            | Error::SaslNonceMismatch
            | Error::SaslInvalidProof
            | Error::SaslFailed(_)
            | Error::BadRequest(_)
            | Error::EncodeResponse(_) => code::UNKNOWN_SERVER_ERROR,
        }
    }
}

/// Maps an I/O error to [`Error::Io`] naming `path`.
pub(crate) fn io_at(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_that_answer_requests_carry_kafkas_codes() {
        let io = || std::io::Error::other("disk on fire");
        for (error, code) in [
            (Error::TopicExists("orders".into()), 36),
            (Error::TopicNotFound("orders".into()), 3),
            (Error::InvalidTopicName("a/b".into()), 17),
            (Error::InvalidAssignment, 39),
            (
                Error::BatchCrc {
                    at: 0,
                    stored: 1,
                    computed: 2,
                },
                2,
            ),
            (Error::BatchMagic { at: 0, magic: 1 }, 87),
            (Error::BatchTooLarge { size: 2, max: 1 }, 10),
            (
                Error::OutOfOrderSequence {
                    got: 6,
                    expected: 5,
                },
                45,
            ),
            (Error::StaleProducerEpoch { got: 0, current: 1 }, 47),
            (
                Error::OffsetOutOfRange {
                    requested: 9,
                    start: 0,
                    next: 5,
                },
                1,
            ),
            (
                Error::Io {
                    path: "p".into(),
                    source: io(),
                },
                56,
            ),
            (Error::BadRequest("garbage".into()), -1),
        ] {
            assert_eq!(error.kafka_code(), code, "{error}");
        }
    }
}
