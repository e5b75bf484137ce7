//! A segment's offset or time index: every entry in its file, only a summary in memory.
//!
//! An index gains an entry per 4 KiB of log, so holding whole indexes in memory made the
//! broker's heap grow with the data it retains (about 40 MB an hour at 2,000 events/s of
//! 1 KiB, and never given back while the segments stay). Kafka maps its index files instead;
//! here the file holds every entry, and memory holds the first entry of each block of
//! [`BLOCK`] entries plus the whole last block. A lookup in the last block (a consumer at the
//! tail) touches memory only; one further back reads that block from the file: one
//! `BLOCK * LEN`-byte read.

use std::path::Path;

use super::disk::DiskFile;
use crate::error::{Error, Result};

/// Entries per block: memory holds one entry in this many, and a lookup reads at most this
/// many from the file.
pub const BLOCK: usize = 64;

/// An index entry as stored: fixed length, big-endian, as in Kafka.
pub trait Entry: Copy + PartialEq + std::fmt::Debug {
    /// Bytes per entry in the file.
    const LEN: usize;
    /// The file's extension beside the segment's `.log`.
    const EXT: &'static str;
    /// Appends the stored form to `out`.
    fn encode(&self, out: &mut Vec<u8>);
    /// Reads an entry from the first [`Self::LEN`] bytes of `b`.
    fn decode(b: &[u8]) -> Self;
}

/// Offset index entry: relative offset, log position.
impl Entry for (u32, u32) {
    const LEN: usize = 8;
    const EXT: &'static str = "index";
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0.to_be_bytes());
        out.extend_from_slice(&self.1.to_be_bytes());
    }
    fn decode(b: &[u8]) -> Self {
        (be_u32(&b[..4]), be_u32(&b[4..8]))
    }
}

/// Time index entry: largest timestamp so far, relative offset.
impl Entry for (i64, u32) {
    const LEN: usize = 12;
    const EXT: &'static str = "timeindex";
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0.to_be_bytes());
        out.extend_from_slice(&self.1.to_be_bytes());
    }
    fn decode(b: &[u8]) -> Self {
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&b[..8]);
        (i64::from_be_bytes(ts), be_u32(&b[8..12]))
    }
}

/// An I/O error on `T`'s index file beside the log at `log`.
fn io_error<T: Entry>(log: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: log.with_extension(T::EXT),
        source,
    }
}

fn be_u32(b: &[u8]) -> u32 {
    let mut x = [0u8; 4];
    x.copy_from_slice(b);
    u32::from_be_bytes(x)
}

/// One index: its entries in the file, the summary in memory, and the entries noted by an
/// append that is not written yet.
#[derive(Debug)]
pub struct Index<T: Entry> {
    /// The first entry of every block written.
    firsts: Vec<T>,
    /// The entries of the last block written (at most [`BLOCK`]).
    tail: Vec<T>,
    /// Noted, not yet written.
    fresh: Vec<T>,
}

impl<T: Entry> Default for Index<T> {
    fn default() -> Self {
        Index {
            firsts: Vec::new(),
            tail: Vec::new(),
            fresh: Vec::new(),
        }
    }
}

impl<T: Entry> Index<T> {
    /// Entries in the file.
    pub fn written(&self) -> usize {
        match self.firsts.len() {
            0 => 0,
            n => (n - 1) * BLOCK + self.tail.len(),
        }
    }

    /// Notes an entry to write with the next [`Index::encode_fresh`].
    pub fn note(&mut self, entry: T) {
        self.fresh.push(entry);
    }

    /// The last entry, written or noted.
    pub fn last(&self) -> Option<T> {
        self.fresh.last().or(self.tail.last()).copied()
    }

    /// Whether the index holds no entry, written or noted.
    pub fn is_empty(&self) -> bool {
        self.fresh.is_empty() && self.tail.is_empty()
    }

    /// The stored form of the noted entries, to write at `written() * LEN`.
    pub fn encode_fresh(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.fresh.len() * T::LEN);
        for e in &self.fresh {
            e.encode(&mut out);
        }
        out
    }

    /// The noted entries are in the file now.
    pub fn written_fresh(&mut self) {
        for e in std::mem::take(&mut self.fresh) {
            if self.tail.len() == BLOCK || self.firsts.is_empty() {
                self.firsts.push(e);
                self.tail.clear();
            }
            self.tail.push(e);
        }
    }

    /// Forgets the noted entries (their write failed and was undone).
    pub fn drop_fresh(&mut self) {
        self.fresh.clear();
    }

    /// The last entry for which `before` holds, where `before` holds for a prefix of the
    /// entries (as `partition_point` takes it); `None` when it holds for none. Reads at
    /// most one block from `file`, the index's file beside the segment's log at `log`. Only
    /// between appends: noted entries are not searched.
    ///
    /// # Errors
    /// I/O errors reading the block.
    pub fn last_where<F: DiskFile>(
        &self,
        file: &F,
        log: &Path,
        before: impl Fn(&T) -> bool,
    ) -> Result<Option<T>> {
        let block = match self.firsts.partition_point(&before) {
            0 => return Ok(None),
            i => i - 1,
        };
        if block + 1 == self.firsts.len() {
            return Ok(Some(self.tail[self.tail.partition_point(&before) - 1]));
        }
        let mut buf = vec![0u8; BLOCK * T::LEN];
        file.read_exact_at(&mut buf, (block * BLOCK * T::LEN) as u64)
            .map_err(|e| io_error::<T>(log, e))?;
        let entries: Vec<T> = buf.chunks_exact(T::LEN).map(T::decode).collect();
        if entries[0] != self.firsts[block] {
            // The file does not hold what was written (changed behind the broker's back):
            // the block's first entry is still a correct, if earlier, answer.
            tracing::warn!(
                path = %log.with_extension(T::EXT).display(),
                block,
                "index block differs from memory; scanning from its first entry"
            );
            return Ok(Some(self.firsts[block]));
        }
        Ok(Some(entries[entries.partition_point(&before).max(1) - 1]))
    }

    /// Every written entry, read from `file`: for tests and tools.
    ///
    /// # Errors
    /// I/O errors.
    pub fn read_all<F: DiskFile>(&self, file: &F, log: &Path) -> Result<Vec<T>> {
        let mut buf = vec![0u8; self.written() * T::LEN];
        file.read_exact_at(&mut buf, 0)
            .map_err(|e| io_error::<T>(log, e))?;
        Ok(buf.chunks_exact(T::LEN).map(T::decode).collect())
    }

    /// Bytes of memory the summary holds (capacity), for tests.
    #[cfg(test)]
    pub fn held(&self) -> usize {
        (self.firsts.capacity() + self.tail.capacity() + self.fresh.capacity())
            * std::mem::size_of::<T>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::disk::{Disk, RealDisk};

    /// Writes `n` entries (rel = 10·i, pos = 100·i) a few at a time, as appends do.
    fn written(n: u32, file: &std::fs::File) -> Index<(u32, u32)> {
        let mut index = Index::default();
        let mut i = 0;
        while i < n {
            for _ in 0..(i % 7 + 1).min(n - i) {
                index.note((i * 10, i * 100));
                i += 1;
            }
            let at = index.written() * 8;
            file.write_all_at(&index.encode_fresh(), at as u64)
                .expect("write");
            index.written_fresh();
        }
        index
    }

    #[test]
    fn lookups_agree_with_a_search_of_every_entry() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("i");
        let file = RealDisk.open(&path).expect("open");
        for n in [0, 1, 63, 64, 65, 128, 1000] {
            file.set_len(0).expect("cut");
            let index = written(n, &file);
            assert_eq!(index.written(), n as usize);
            let all = index.read_all(&file, &path).expect("all");
            assert_eq!(all.len(), n as usize);
            for rel in (0..n * 10 + 20).step_by(3) {
                let want = all.iter().rev().find(|(r, _)| *r <= rel).copied();
                let got = index
                    .last_where(&file, &path, |(r, _)| *r <= rel)
                    .expect("lookup");
                assert_eq!(got, want, "n = {n}, rel = {rel}");
            }
        }
    }

    #[test]
    fn memory_holds_a_block_and_a_sixty_fourth_of_the_rest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("i");
        let file = RealDisk.open(&path).expect("open");
        let index = written(100_000, &file);
        let whole = 100_000 * std::mem::size_of::<(u32, u32)>();
        assert!(
            index.held() * 30 < whole,
            "{} bytes held for {whole} bytes of entries",
            index.held()
        );
    }

    #[test]
    fn a_block_changed_on_disk_answers_its_first_entry() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("i");
        let file = RealDisk.open(&path).expect("open");
        let index = written(200, &file);
        file.write_all_at(&[0xFF; 8], 0).expect("scribble");
        let got = index
            .last_where(&file, &path, |(r, _)| *r <= 500)
            .expect("lookup");
        assert_eq!(got, Some((0, 0)));
        file.set_len(100).expect("cut");
        assert!(
            index.last_where(&file, &path, |(r, _)| *r <= 700).is_err(),
            "a short index file is an I/O error, not a wrong answer"
        );
    }
}
