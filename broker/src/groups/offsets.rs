//! Committed consumer-group offsets, kept durably in `<data-dir>/groups/offsets.log`.
//!
//! The file is a log of JSON lines (one commit per line, tombstones for deleted groups and
//! topics); the map in memory is its replay. A torn last line (a crash mid-write) is ignored,
//! and the file is rewritten compactly on start and whenever it holds ten times more lines
//! than live entries.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::error::{Result, io_at};

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
struct Inner {
    file: File,
    lines: usize,
    groups: HashMap<String, GroupOffsets>,
}

/// The offset store.
#[derive(Debug)]
pub struct OffsetStore {
    path: PathBuf,
    fsync: bool,
    inner: Mutex<Inner>,
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
    /// Replays and compacts the store in `data_dir/groups`. `fsync` makes every commit
    /// durable before it is acknowledged.
    ///
    /// # Errors
    /// I/O errors.
    pub fn open(data_dir: &Path, fsync: bool) -> Result<Self> {
        let dir = data_dir.join("groups");
        fs::create_dir_all(&dir).map_err(io_at(&dir))?;
        let path = dir.join("offsets.log");
        let mut groups = HashMap::new();
        if path.exists() {
            let text = fs::read(&path).map_err(io_at(&path))?;
            for raw in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                match serde_json::from_slice::<Line>(raw) {
                    Ok(line) => apply(&mut groups, line),
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "skipping a torn offset-commit line");
                    }
                }
            }
        }
        let (file, lines) = Self::rewrite(&path, &groups)?;
        Ok(OffsetStore {
            path,
            fsync,
            inner: Mutex::new(Inner {
                file,
                lines,
                groups,
            }),
        })
    }

    fn rewrite(path: &Path, groups: &HashMap<String, GroupOffsets>) -> Result<(File, usize)> {
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
        fs::write(&tmp, &out).map_err(io_at(&tmp))?;
        File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(io_at(&tmp))?;
        fs::rename(&tmp, path).map_err(io_at(path))?;
        if let Some(dir) = path.parent() {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io_at(dir))?;
        }
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(io_at(path))?;
        Ok((file, lines))
    }

    fn write(&self, inner: &mut Inner, lines: Vec<Line>) -> Result<()> {
        let mut out = Vec::new();
        for line in &lines {
            render(line, &mut out);
        }
        inner.file.write_all(&out).map_err(io_at(&self.path))?;
        if self.fsync {
            inner.file.sync_data().map_err(io_at(&self.path))?;
        }
        inner.lines += lines.len();
        for line in lines {
            apply(&mut inner.groups, line);
        }
        let live: usize = inner.groups.values().map(BTreeMap::len).sum();
        if inner.lines > 10_000 && inner.lines > live * 10 {
            let (file, lines) = Self::rewrite(&self.path, &inner.groups)?;
            inner.file = file;
            inner.lines = lines;
        }
        Ok(())
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
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
        let store = OffsetStore::open(dir.path(), true).expect("open");
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
        text.extend_from_slice(b"{\"commit\":{\"group\":\"g1\",\"top");
        std::fs::write(&path, text).expect("tear");

        let store = OffsetStore::open(dir.path(), true).expect("reopen");
        assert_eq!(store.fetch("g1", "c", 0), Some(c(3)));
        assert_eq!(store.fetch("g1", "a", 0), None, "topic a was deleted");
        assert_eq!(store.fetch("g2", "b", 0), None, "group g2 was deleted");
        assert_eq!(store.groups(), vec!["g1".to_owned()]);
        assert_eq!(store.group("g1").len(), 1);
    }

    #[test]
    fn deleted_offsets_stay_deleted_after_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = OffsetStore::open(dir.path(), true).expect("open");
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
        let store = OffsetStore::open(dir.path(), true).expect("reopen");
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
