//! Committed consumer-group offsets, kept durably in `<data-dir>/groups/offsets.log`.
//!
//! The file is a log of JSON lines (one commit per line, tombstones for deleted groups and
//! topics); the map in memory is its replay. It is rewritten compactly on start and whenever
//! it holds ten times more lines than live entries.
//!
//! # Guarantees
//! - Every write ends with a newline, so bytes after the last newline are a torn write (a
//!   crash mid-append): replay drops them, logged and counted
//!   (`ferry_broker_recovery_truncated_bytes_total{store="offsets",reason="torn_tail"}`).
//! - A line that does not parse *before* the last newline is damage, not a torn append (or,
//!   when the store does not fsync, pages the kernel wrote back out of order): it is
//!   reported — an error log line naming its line number, the `corrupt` reason of the same
//!   metric, and the file as found copied to `offsets.log.damaged` before the compacting
//!   rewrite drops it. The store still opens: a lost commit makes its group re-read from
//!   its previous position (records are delivered again, never lost), which beats refusing
//!   to start the broker.
//! - A failed append never leaves a partial line for the next one to be glued onto: the file
//!   is cut back to its previous length and nothing is applied. Unless the disk was merely
//!   full, or when the cut or the fsync fails, the store is then fenced
//!   ([`crate::storage::fences`]): commits are refused (and `/readyz` fails) until a restart.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, io_at};
use crate::metrics::Metrics;
use crate::storage::{Disk, DiskFile, RealDisk, fences};

/// One committed offset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Committed {
    /// The next offset the group will read.
    pub offset: i64,
    /// The leader epoch the client saw (-1 when unknown).
    pub leader_epoch: i32,
    /// The client's metadata string.
    pub metadata: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
enum Line {
    Commit {
        group: String,
        topic: String,
        partition: i32,
        #[serde(flatten)]
        committed: Committed,
    },
    DeleteGroup {
        group: String,
    },
    DeleteTopic {
        topic: String,
    },
    DeleteOffset {
        group: String,
        topic: String,
        partition: i32,
    },
}

type GroupOffsets = BTreeMap<(String, i32), Committed>;

#[derive(Debug)]
struct Inner<D: Disk> {
    file: D::File,
    /// Bytes in the file: where a failed append is cut back to.
    len: u64,
    lines: usize,
    groups: HashMap<String, GroupOffsets>,
    /// A write or fsync failed in a way that cannot be undone: no more writes.
    fenced: bool,
}

/// The file holds this many times more lines than live entries (and at least
/// [`COMPACT_MIN_LINES`]) before it is rewritten compactly.
const COMPACT_RATIO: usize = 10;
const COMPACT_MIN_LINES: usize = 10_000;

/// The offset store, on the machine's disk or (in tests) a simulated one.
#[derive(Debug)]
pub struct OffsetStore<D: Disk = RealDisk> {
    disk: D,
    path: PathBuf,
    fsync: bool,
    metrics: Arc<Metrics>,
    /// [`COMPACT_MIN_LINES`]; lower in tests, so that they compact often.
    compact_min_lines: usize,
    inner: Mutex<Inner<D>>,
}

/// What replaying the file found.
#[derive(Debug, Default)]
struct Replay {
    groups: HashMap<String, GroupOffsets>,
    /// Bytes after the last newline: a torn write.
    torn_tail: usize,
    /// 1-based line numbers and sizes (newline included) of lines that do not parse.
    damaged: Vec<(usize, usize)>,
}

/// Replays the file's bytes (pure).
fn replay(text: &[u8]) -> Replay {
    let complete = text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let mut out = Replay {
        torn_tail: text.len() - complete,
        ..Replay::default()
    };
    for (i, raw) in text[..complete].split(|b| *b == b'\n').enumerate() {
        if raw.is_empty() {
            continue;
        }
        match serde_json::from_slice::<Line>(raw) {
            Ok(line) => apply(&mut out.groups, line),
            Err(_) => out.damaged.push((i + 1, raw.len() + 1)),
        }
    }
    out
}

fn apply(groups: &mut HashMap<String, GroupOffsets>, line: Line) {
    match line {
        Line::Commit {
            group,
            topic,
            partition,
            committed,
        } => {
            groups
                .entry(group)
                .or_default()
                .insert((topic, partition), committed);
        }
        Line::DeleteGroup { group } => {
            groups.remove(&group);
        }
        Line::DeleteOffset {
            group,
            topic,
            partition,
        } => {
            if let Some(offsets) = groups.get_mut(&group) {
                offsets.remove(&(topic, partition));
                if offsets.is_empty() {
                    groups.remove(&group);
                }
            }
        }
        Line::DeleteTopic { topic } => {
            for offsets in groups.values_mut() {
                offsets.retain(|(t, _), _| *t != topic);
            }
            groups.retain(|_, o| !o.is_empty());
        }
    }
}

fn render(line: &Line, out: &mut Vec<u8>) {
    // Serializing these plain structs cannot fail.
    let _ = serde_json::to_writer(&mut *out, line);
    out.push(b'\n');
}

impl OffsetStore {
    /// Replays and compacts the store in `data_dir/groups` (see the module's guarantees for
    /// torn and damaged lines; what was dropped is counted in `metrics`). `fsync` makes every
    /// commit durable before it is acknowledged.
    ///
    /// # Errors
    /// I/O errors.
    pub fn open(data_dir: &Path, fsync: bool, metrics: Arc<Metrics>) -> Result<Self> {
        Self::open_on(RealDisk, data_dir, fsync, metrics)
    }
}

impl<D: Disk> OffsetStore<D> {
    /// [`OffsetStore::open`] on `disk`.
    ///
    /// # Errors
    /// I/O errors.
    pub fn open_on(disk: D, data_dir: &Path, fsync: bool, metrics: Arc<Metrics>) -> Result<Self> {
        let dir = data_dir.join("groups");
        disk.create_dir_all(&dir).map_err(io_at(&dir))?;
        let path = dir.join("offsets.log");
        let mut found = Replay::default();
        match disk.read(&path) {
            Ok(text) => {
                found = replay(&text);
                Self::report(&disk, &path, &text, &found, &metrics)?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_at(&path)(e)),
        }
        let (file, lines, len) = Self::rewrite(&disk, &path, &found.groups)?;
        Ok(OffsetStore {
            disk,
            path,
            fsync,
            metrics,
            compact_min_lines: COMPACT_MIN_LINES,
            inner: Mutex::new(Inner {
                file,
                len,
                lines,
                groups: found.groups,
                fenced: false,
            }),
        })
    }

    /// Logs and counts what replay dropped; keeps a copy of a damaged file (`text`).
    fn report(disk: &D, path: &Path, text: &[u8], found: &Replay, metrics: &Metrics) -> Result<()> {
        if found.torn_tail > 0 {
            tracing::warn!(
                path = %path.display(),
                bytes = found.torn_tail,
                "dropping a torn last line of committed offsets (an append cut short by a crash)"
            );
            metrics.recovery_truncated("offsets", "torn_tail", found.torn_tail as u64);
        }
        if !found.damaged.is_empty() {
            let copy = path.with_extension("log.damaged");
            disk.replace(&copy, text).map_err(io_at(&copy))?;
            let lines: Vec<usize> = found.damaged.iter().map(|(n, _)| *n).collect();
            tracing::error!(
                path = %path.display(),
                ?lines,
                copy = %copy.display(),
                "damaged lines in the committed offsets, not a torn write: the commits they held are lost and their groups re-read from an earlier position; the file as found is kept in the copy"
            );
            let bytes = found.damaged.iter().map(|(_, b)| *b as u64).sum();
            metrics.recovery_truncated("offsets", "corrupt", bytes);
        }
        Ok(())
    }

    /// Writes `groups` compactly to a new file that replaces the store's (a fsynced temporary
    /// file renamed over it, then the directory fsynced); returns it, its line count and
    /// length.
    ///
    /// # Errors
    /// [`Error::WriteRolledBack`] when the new file could not be written (the old one is
    /// untouched); [`Error::Io`] when the rename or the directory's fsync failed.
    fn rewrite(
        disk: &D,
        path: &Path,
        groups: &HashMap<String, GroupOffsets>,
    ) -> Result<(D::File, usize, u64)> {
        let mut out = Vec::new();
        let mut lines = 0;
        for (group, offsets) in groups {
            for ((topic, partition), committed) in offsets {
                let line = Line::Commit {
                    group: group.clone(),
                    topic: topic.clone(),
                    partition: *partition,
                    committed: committed.clone(),
                };
                render(&line, &mut out);
                lines += 1;
            }
        }
        let tmp = path.with_extension("log.tmp");
        let written = disk.open(&tmp).and_then(|f| {
            f.set_len(0)?;
            f.write_all_at(&out, 0)?;
            f.sync_data()?;
            Ok(f)
        });
        let file = match written {
            Ok(file) => file,
            Err(e) => {
                // The old file is untouched; leave no half-written copy behind.
                let _ = disk.remove(&tmp);
                return Err(Error::WriteRolledBack {
                    path: tmp,
                    source: e,
                });
            }
        };
        disk.rename(&tmp, path).map_err(io_at(path))?;
        if let Some(dir) = path.parent() {
            disk.sync_dir(dir).map_err(io_at(dir))?;
        }
        Ok((file, lines, out.len() as u64))
    }

    /// Appends `lines` (durably when the store fsyncs), then applies them.
    ///
    /// # Errors
    /// [`Error::OffsetsFenced`] once fenced; [`Error::WriteRolledBack`] when the write
    /// failed and was cut back (nothing stored); [`Error::Io`] otherwise (nothing applied,
    /// the store fenced per [`fences`]).
    fn write(&self, inner: &mut Inner<D>, lines: Vec<Line>) -> Result<()> {
        if inner.fenced {
            return Err(Error::OffsetsFenced {
                path: self.path.clone(),
            });
        }
        let mut out = Vec::new();
        for line in &lines {
            render(line, &mut out);
        }
        if let Err(e) = self.append(inner, &out) {
            inner.fenced = fences(&e);
            let outcome = if inner.fenced {
                "fenced"
            } else {
                "rolled_back"
            };
            self.metrics.storage_write_failed("offsets", outcome);
            tracing::error!(path = %self.path.display(), error = %e, outcome, "writing committed offsets failed");
            return Err(e);
        }
        inner.len += out.len() as u64;
        inner.lines += lines.len();
        for line in lines {
            apply(&mut inner.groups, line);
        }
        let live: usize = inner.groups.values().map(BTreeMap::len).sum();
        if inner.lines > self.compact_min_lines && inner.lines > live * COMPACT_RATIO {
            self.compact(inner);
        }
        Ok(())
    }

    /// Writes `out` at the end of the file and fsyncs it when the store does; a failed write
    /// is cut back to the previous length.
    fn append(&self, inner: &Inner<D>, out: &[u8]) -> Result<()> {
        if let Err(source) = inner.file.write_all_at(out, inner.len) {
            let path = self.path.clone();
            return Err(match inner.file.set_len(inner.len) {
                Ok(()) => Error::WriteRolledBack { path, source },
                Err(_) => Error::Io { path, source },
            });
        }
        if self.fsync {
            inner.file.sync_data().map_err(io_at(&self.path))?;
        }
        Ok(())
    }

    /// Rewrites the file compactly. The commit that asked for it is already durable, so a
    /// failure does not fail it: one before the new file replaced the old leaves the old in
    /// use (compaction is tried again later); one after it fences the store, whose open
    /// handle may be on the replaced file.
    fn compact(&self, inner: &mut Inner<D>) {
        match Self::rewrite(&self.disk, &self.path, &inner.groups) {
            Ok((file, lines, len)) => {
                inner.file = file;
                inner.lines = lines;
                inner.len = len;
            }
            Err(e) => {
                inner.fenced = !matches!(e, Error::WriteRolledBack { .. });
                tracing::error!(path = %self.path.display(), error = %e, fenced = inner.fenced, "compacting committed offsets failed");
                if inner.fenced {
                    self.metrics.storage_write_failed("offsets", "fenced");
                }
            }
        }
    }

    /// Whether a failed write or fsync stopped the store's writes (until a restart).
    pub fn fenced(&self) -> bool {
        self.inner().fenced
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner<D>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores `offsets` for `group` (durably first when the store fsyncs).
    ///
    /// # Errors
    /// I/O errors; nothing is stored then.
    pub fn commit(&self, group: &str, offsets: Vec<(String, i32, Committed)>) -> Result<()> {
        let lines = offsets
            .into_iter()
            .map(|(topic, partition, committed)| Line::Commit {
                group: group.to_owned(),
                topic,
                partition,
                committed,
            })
            .collect();
        let mut inner = self.inner();
        self.write(&mut inner, lines)
    }

    /// The committed offset of `group` for `topic`/`partition`.
    pub fn fetch(&self, group: &str, topic: &str, partition: i32) -> Option<Committed> {
        self.inner()
            .groups
            .get(group)?
            .get(&(topic.to_owned(), partition))
            .cloned()
    }

    /// Every committed offset of `group`.
    pub fn group(&self, group: &str) -> Vec<(String, i32, Committed)> {
        self.inner()
            .groups
            .get(group)
            .map(|o| {
                o.iter()
                    .map(|((t, p), c)| (t.clone(), *p, c.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Groups that have committed offsets.
    pub fn groups(&self) -> Vec<String> {
        self.inner().groups.keys().cloned().collect()
    }

    /// Forgets `group`'s offsets.
    ///
    /// # Errors
    /// I/O errors.
    pub fn delete_group(&self, group: &str) -> Result<()> {
        let mut inner = self.inner();
        if inner.groups.contains_key(group) {
            self.write(
                &mut inner,
                vec![Line::DeleteGroup {
                    group: group.to_owned(),
                }],
            )?;
        }
        Ok(())
    }

    /// Forgets `group`'s offsets for `partitions` (OffsetDelete); partitions without one are
    /// skipped.
    ///
    /// # Errors
    /// I/O errors; nothing is forgotten then.
    pub fn delete_offsets(&self, group: &str, partitions: &[(String, i32)]) -> Result<()> {
        let mut inner = self.inner();
        let Some(offsets) = inner.groups.get(group) else {
            return Ok(());
        };
        let lines: Vec<Line> = partitions
            .iter()
            .filter(|(t, p)| offsets.contains_key(&(t.clone(), *p)))
            .map(|(topic, partition)| Line::DeleteOffset {
                group: group.to_owned(),
                topic: topic.clone(),
                partition: *partition,
            })
            .collect();
        if lines.is_empty() {
            return Ok(());
        }
        self.write(&mut inner, lines)
    }

    /// Forgets every group's offsets for a deleted topic.
    ///
    /// # Errors
    /// I/O errors.
    pub fn delete_topic(&self, topic: &str) -> Result<()> {
        let mut inner = self.inner();
        self.write(
            &mut inner,
            vec![Line::DeleteTopic {
                topic: topic.to_owned(),
            }],
        )
    }

    /// Forces the file to disk (for shutdown).
    ///
    /// # Errors
    /// I/O errors.
    pub fn sync(&self) -> Result<()> {
        self.inner().file.sync_data().map_err(io_at(&self.path))
    }
}

#[cfg(test)]
mod power_loss;

#[cfg(test)]
mod tests {
    use super::*;

    fn c(offset: i64) -> Committed {
        Committed {
            offset,
            leader_epoch: -1,
            metadata: Some("m".into()),
        }
    }

    #[test]
    fn commits_survive_reopen_and_torn_tails() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = OffsetStore::open(dir.path(), true, Arc::default()).expect("open");
        store
            .commit("g1", vec![("a".into(), 0, c(5)), ("a".into(), 1, c(7))])
            .expect("commit");
        store
            .commit("g1", vec![("a".into(), 0, c(9))])
            .expect("commit");
        store
            .commit("g2", vec![("b".into(), 0, c(1))])
            .expect("commit");
        store
            .commit("g3", vec![("a".into(), 0, c(2))])
            .expect("commit");
        store.delete_group("g2").expect("delete");
        store.delete_topic("a").expect("delete topic");
        store
            .commit("g1", vec![("c".into(), 0, c(3))])
            .expect("commit");
        drop(store);
        let path = dir.path().join("groups/offsets.log");
        let mut text = std::fs::read(&path).expect("read");
        let torn = b"{\"commit\":{\"group\":\"g1\",\"top";
        text.extend_from_slice(torn);
        std::fs::write(&path, text).expect("tear");

        let metrics = Arc::new(Metrics::default());
        let store = OffsetStore::open(dir.path(), true, metrics.clone()).expect("reopen");
        assert!(
            metrics.render().contains(&format!(
                "ferry_broker_recovery_truncated_bytes_total{{store=\"offsets\",reason=\"torn_tail\"}} {}",
                torn.len()
            )),
            "the torn line is counted"
        );
        let text = std::fs::read(&path).expect("read");
        assert!(text.ends_with(b"\n") && replay(&text).damaged.is_empty());
        assert!(!dir.path().join("groups/offsets.log.damaged").exists());
        assert_eq!(store.fetch("g1", "c", 0), Some(c(3)));
        assert_eq!(store.fetch("g1", "a", 0), None, "topic a was deleted");
        assert_eq!(store.fetch("g2", "b", 0), None, "group g2 was deleted");
        assert_eq!(store.groups(), vec!["g1".to_owned()]);
        assert_eq!(store.group("g1").len(), 1);
        // The next commit starts a line of its own and survives the next start.
        store
            .commit("g1", vec![("d".into(), 0, c(4))])
            .expect("commit");
        drop(store);
        let store = OffsetStore::open(dir.path(), true, Arc::default()).expect("reopen");
        assert_eq!(store.fetch("g1", "d", 0), Some(c(4)));
    }

    #[test]
    fn a_damaged_line_in_the_middle_is_reported_and_kept_aside() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = OffsetStore::open(dir.path(), true, Arc::default()).expect("open");
        store
            .commit("g", vec![("a".into(), 0, c(1))])
            .expect("commit");
        drop(store);
        let path = dir.path().join("groups/offsets.log");
        let mut text = std::fs::read(&path).expect("read");
        // What the old store left when a commit was glued onto a torn one.
        let glued = b"{\"commit\":{\"group\":\"g\",\"top{\"commit\":{}}\n";
        text.extend_from_slice(glued);
        let good = Line::Commit {
            group: "g".into(),
            topic: "b".into(),
            partition: 0,
            committed: c(2),
        };
        render(&good, &mut text);
        std::fs::write(&path, &text).expect("damage");

        let metrics = Arc::new(Metrics::default());
        let store = OffsetStore::open(dir.path(), true, metrics.clone()).expect("reopen");
        assert_eq!(store.fetch("g", "a", 0), Some(c(1)));
        assert_eq!(
            store.fetch("g", "b", 0).map(|c| c.offset),
            Some(2),
            "lines after the damage still count"
        );
        let kept = std::fs::read(dir.path().join("groups/offsets.log.damaged")).expect("copy");
        assert_eq!(kept, text, "the file as found is kept");
        assert!(metrics.render().contains(&format!(
            "ferry_broker_recovery_truncated_bytes_total{{store=\"offsets\",reason=\"corrupt\"}} {}",
            glued.len()
        )));
        assert_eq!(replay(&text).damaged, vec![(2, glued.len())], "line 2");
    }

    #[test]
    fn a_failed_append_is_cut_back_and_the_next_commit_survives() {
        let Some(disk) = crate::storage::small_disk::SmallDisk::mount(64 * 1024) else {
            return;
        };
        let metrics = Arc::new(Metrics::default());
        let store = OffsetStore::open(disk.path(), true, metrics.clone()).expect("open");
        store
            .commit("g", vec![("a".into(), 0, c(1))])
            .expect("commit");
        let path = disk.path().join("groups/offsets.log");
        let len = std::fs::metadata(&path).expect("meta").len();
        let filler = disk.fill();
        // Larger than a page: part of it fits the file's last page before ENOSPC.
        let big = Committed {
            offset: 2,
            leader_epoch: -1,
            metadata: Some("m".repeat(6000)),
        };
        let err = store
            .commit("g", vec![("a".into(), 0, big.clone())])
            .expect_err("disk full");
        assert!(matches!(err, Error::WriteRolledBack { .. }), "{err}");
        assert_eq!(
            std::fs::metadata(&path).expect("meta").len(),
            len,
            "cut back"
        );
        assert_eq!(store.fetch("g", "a", 0), Some(c(1)), "nothing applied");
        assert!(!store.fenced(), "a full disk is retriable");

        std::fs::remove_file(filler).expect("free");
        store
            .commit("g", vec![("a".into(), 0, big.clone())])
            .expect("retry");
        store
            .commit("g", vec![("b".into(), 0, c(3))])
            .expect("commit");
        drop(store);
        let store = OffsetStore::open(disk.path(), true, Arc::default()).expect("reopen");
        assert_eq!(store.fetch("g", "a", 0), Some(big));
        assert_eq!(store.fetch("g", "b", 0), Some(c(3)));
        assert!(metrics.render().contains(
            "ferry_broker_storage_write_failures_total{store=\"offsets\",outcome=\"rolled_back\"} 1"
        ));
    }

    #[test]
    fn a_write_that_cannot_be_undone_fences_the_store() {
        let dir = tempfile::tempdir().expect("tempdir");
        let metrics = Arc::new(Metrics::default());
        let store = OffsetStore::open(dir.path(), true, metrics.clone()).expect("open");
        store
            .commit("g", vec![("a".into(), 0, c(1))])
            .expect("commit");
        // A file that fails every write with ENOSPC and cannot be cut back.
        store.inner().file = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full");
        let err = store
            .commit("g", vec![("a".into(), 0, c(2))])
            .expect_err("fails");
        assert!(matches!(err, Error::Io { .. }), "{err}");
        assert!(store.fenced());
        let refused = store
            .commit("g", vec![("a".into(), 0, c(3))])
            .expect_err("fenced");
        assert!(matches!(refused, Error::OffsetsFenced { .. }), "{refused}");
        assert_eq!(store.fetch("g", "a", 0), Some(c(1)));
        assert!(metrics.render().contains(
            "ferry_broker_storage_write_failures_total{store=\"offsets\",outcome=\"fenced\"} 1"
        ));
    }

    #[test]
    fn deleted_offsets_stay_deleted_after_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = OffsetStore::open(dir.path(), true, Arc::default()).expect("open");
        store
            .commit("g", vec![("a".into(), 0, c(5)), ("b".into(), 0, c(7))])
            .expect("commit");
        store
            .delete_offsets("g", &[("a".into(), 0), ("a".into(), 9), ("zz".into(), 0)])
            .expect("delete");
        store
            .delete_offsets("unknown", &[("a".into(), 0)])
            .expect("no-op");
        assert_eq!(store.fetch("g", "a", 0), None);
        drop(store);
        let store = OffsetStore::open(dir.path(), true, Arc::default()).expect("reopen");
        assert_eq!(store.fetch("g", "a", 0), None);
        assert_eq!(store.fetch("g", "b", 0), Some(c(7)));
        store
            .delete_offsets("g", &[("b".into(), 0)])
            .expect("delete");
        assert!(
            store.groups().is_empty(),
            "a group without offsets is forgotten"
        );
    }
}
