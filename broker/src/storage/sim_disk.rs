//! A simulated disk for tests: files in memory that remember what reached the platter, so a
//! test can cut the power at any point, fail an fsync, or run out of space — deterministically,
//! from a seed.
//!
//! # Model
//! - Each file has its *durable* content and the operations (writes, truncations) since, in
//!   order; reads see them all (the page cache). An fsync applies them to the durable content.
//! - A failed fsync throws them away for good while reads still see them, as Linux does after
//!   a writeback error ("fsyncgate"): a later successful fsync does not bring them back.
//! - Power loss keeps, per file, the durable content plus a random prefix of the pending
//!   operations, the last of which may be torn (only the start of a write arrives).
//! - A created or removed file's name is durable after a sync of its directory (or through
//!   [`Disk::replace`], which is atomic and durable). Directories are always durable.
//! - With a capacity, a write that grows the files past it writes what fits and fails with
//!   ENOSPC, as a full file system does.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::disk::{Disk, DiskFile};

/// A deterministic random number generator (SplitMix64) for seeded simulations.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Debug)]
enum Op {
    Write { pos: u64, bytes: Vec<u8> },
    SetLen(u64),
}

fn apply(data: &mut Vec<u8>, op: &Op) {
    match op {
        Op::Write { pos, bytes } => {
            let (pos, end) = (*pos as usize, *pos as usize + bytes.len());
            if data.len() < end {
                data.resize(end, 0);
            }
            data[pos..end].copy_from_slice(bytes);
        }
        Op::SetLen(len) => data.resize(*len as usize, 0),
    }
}

#[derive(Debug, Default)]
struct Inode {
    /// What reads see.
    data: Vec<u8>,
    /// What survives power loss for sure.
    durable: Vec<u8>,
    /// Applied to `data`, not yet to `durable`.
    pending: Vec<Op>,
}

#[derive(Debug, Default)]
struct State {
    inodes: Vec<Inode>,
    names: BTreeMap<PathBuf, usize>,
    durable_names: BTreeMap<PathBuf, usize>,
    dirs: BTreeSet<PathBuf>,
    capacity: Option<u64>,
    /// How many of the next fsyncs fail.
    failing_syncs: u64,
}

impl State {
    fn used(&self) -> u64 {
        self.names
            .values()
            .map(|&i| self.inodes[i].data.len() as u64)
            .sum()
    }
}

/// The simulated disk; clones share it.
#[derive(Clone, Debug, Default)]
pub(crate) struct SimDisk(Arc<Mutex<State>>);

/// An open file of a [`SimDisk`].
#[derive(Debug)]
pub(crate) struct SimFile {
    disk: SimDisk,
    inode: usize,
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, path.display().to_string())
}

impl SimDisk {
    fn state(&self) -> MutexGuard<'_, State> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Bytes in all files.
    pub(crate) fn used(&self) -> u64 {
        self.state().used()
    }

    /// Limits the bytes all files may hold (`None`: no limit).
    pub(crate) fn set_capacity(&self, capacity: Option<u64>) {
        self.state().capacity = capacity;
    }

    /// Makes the next `count` fsyncs (of files or directories) fail with EIO; later ones
    /// succeed again, as after a transient device error.
    pub(crate) fn fail_syncs(&self, count: u64) {
        self.state().failing_syncs = count;
    }

    /// Cuts the power: every file keeps what was synced plus a random prefix of its pending
    /// operations, the last possibly torn; unsynced names are forgotten. Faults are cleared.
    pub(crate) fn power_loss(&self, rng: &mut Rng) {
        let mut st = self.state();
        for inode in &mut st.inodes {
            let pending = std::mem::take(&mut inode.pending);
            let kept = rng.below(pending.len() as u64 + 1) as usize;
            for op in &pending[..kept] {
                apply(&mut inode.durable, op);
            }
            if let Some(Op::Write { pos, bytes }) = pending.get(kept)
                && bytes.len() > 1
            {
                let torn = 1 + rng.below(bytes.len() as u64 - 1) as usize;
                let op = Op::Write {
                    pos: *pos,
                    bytes: bytes[..torn].to_vec(),
                };
                apply(&mut inode.durable, &op);
            }
            inode.data = inode.durable.clone();
        }
        st.names = st.durable_names.clone();
        st.capacity = None;
        st.failing_syncs = 0;
    }

    fn sync_failed(st: &mut State) -> Option<io::Error> {
        let fail = st.failing_syncs > 0;
        st.failing_syncs = st.failing_syncs.saturating_sub(1);
        fail.then(|| io::Error::other("injected EIO on fsync"))
    }
}

impl Disk for SimDisk {
    type File = SimFile;

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.state();
        for d in dir.ancestors() {
            st.dirs.insert(d.to_owned());
        }
        Ok(())
    }

    fn dir_exists(&self, dir: &Path) -> bool {
        self.state().dirs.contains(dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let st = self.state();
        if !st.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        let children = st.names.keys().chain(st.dirs.iter());
        Ok(children
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| Some(p.file_name()?.to_str()?.to_owned()))
            .collect())
    }

    fn open(&self, path: &Path) -> io::Result<SimFile> {
        let mut st = self.state();
        let inode = match st.names.get(path) {
            Some(&i) => i,
            None if path.parent().is_some_and(|d| st.dirs.contains(d)) => {
                st.inodes.push(Inode::default());
                let i = st.inodes.len() - 1;
                st.names.insert(path.to_owned(), i);
                i
            }
            None => return Err(not_found(path)),
        };
        Ok(SimFile {
            disk: self.clone(),
            inode,
        })
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        self.state()
            .names
            .remove(path)
            .map(|_| ())
            .ok_or_else(|| not_found(path))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut st = self.state();
        let i = st.names.remove(from).ok_or_else(|| not_found(from))?;
        st.names.insert(to.to_owned(), i);
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.state();
        if let Some(e) = Self::sync_failed(&mut st) {
            return Err(e);
        }
        let st = &mut *st;
        st.durable_names.retain(|p, _| p.parent() != Some(dir));
        for (p, &i) in &st.names {
            if p.parent() == Some(dir) {
                st.durable_names.insert(p.clone(), i);
            }
        }
        Ok(())
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let st = self.state();
        let &i = st.names.get(path).ok_or_else(|| not_found(path))?;
        Ok(st.inodes[i].data.clone())
    }

    fn replace(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let mut st = self.state();
        if let Some(e) = Self::sync_failed(&mut st) {
            return Err(e);
        }
        st.inodes.push(Inode {
            data: bytes.to_vec(),
            durable: bytes.to_vec(),
            pending: Vec::new(),
        });
        let i = st.inodes.len() - 1;
        st.names.insert(path.to_owned(), i);
        st.durable_names.insert(path.to_owned(), i);
        Ok(())
    }
}

impl DiskFile for SimFile {
    fn size(&self) -> io::Result<u64> {
        Ok(self.disk.state().inodes[self.inode].data.len() as u64)
    }

    fn read_exact_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()> {
        let st = self.disk.state();
        let data = &st.inodes[self.inode].data;
        let from = pos as usize;
        let src = data
            .get(from..from + buf.len())
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        let mut st = self.disk.state();
        let len = st.inodes[self.inode].data.len() as u64;
        let room = st
            .capacity
            .map_or(u64::MAX, |c| c.saturating_sub(st.used()));
        let end = (pos + buf.len() as u64).min(len.max(pos).saturating_add(room));
        let fits = end.saturating_sub(pos) as usize;
        let op = Op::Write {
            pos,
            bytes: buf[..fits.min(buf.len())].to_vec(),
        };
        let inode = &mut st.inodes[self.inode];
        apply(&mut inode.data, &op);
        inode.pending.push(op);
        if fits < buf.len() {
            return Err(io::Error::from(io::ErrorKind::StorageFull));
        }
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut st = self.disk.state();
        let inode = &mut st.inodes[self.inode];
        let op = Op::SetLen(len);
        apply(&mut inode.data, &op);
        inode.pending.push(op);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut st = self.disk.state();
        let failed = SimDisk::sync_failed(&mut st);
        let inode = &mut st.inodes[self.inode];
        let pending = std::mem::take(&mut inode.pending);
        match failed {
            // The kernel dropped the pages: they never reach the disk.
            Some(e) => Err(e),
            None => {
                for op in &pending {
                    apply(&mut inode.durable, op);
                }
                Ok(())
            }
        }
    }

    fn try_clone(&self) -> io::Result<Self> {
        Ok(SimFile {
            disk: self.disk.clone(),
            inode: self.inode,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A synced file with a pending write, and a synced file whose name never was.
    fn scenario() -> SimDisk {
        let disk = SimDisk::default();
        let dir = Path::new("/d");
        disk.create_dir_all(dir).expect("dir");
        let f = disk.open(&dir.join("f")).expect("open");
        f.write_all_at(b"synced", 0).expect("write");
        f.sync_data().expect("sync");
        disk.sync_dir(dir).expect("sync dir");
        f.write_all_at(b"-pending", 6).expect("write");
        let lost = disk.open(&dir.join("never-dir-synced")).expect("open");
        lost.write_all_at(b"x", 0).expect("write");
        lost.sync_data().expect("sync");
        disk
    }

    #[test]
    fn power_loss_keeps_what_was_synced_and_at_most_a_prefix_of_the_rest() {
        let mut kept = BTreeSet::new();
        for seed in 0..200 {
            let disk = scenario();
            disk.power_loss(&mut Rng::new(seed));
            let text = disk.read(Path::new("/d/f")).expect("kept");
            assert!(
                b"synced-pending".starts_with(&text) && text.len() >= 6,
                "{seed}"
            );
            kept.insert(text.len());
            assert!(disk.read(Path::new("/d/never-dir-synced")).is_err());
        }
        assert!(kept.len() > 3, "torn at many points: {kept:?}");
    }

    #[test]
    fn a_failed_fsync_loses_the_pages_for_good_and_a_full_disk_writes_what_fits() {
        let disk = SimDisk::default();
        let dir = Path::new("/d");
        disk.create_dir_all(dir).expect("dir");
        let f = disk.open(&dir.join("f")).expect("open");
        disk.sync_dir(dir).expect("sync dir");
        f.write_all_at(b"lost", 0).expect("write");
        disk.fail_syncs(1);
        assert!(f.sync_data().is_err());
        let mut buf = [0u8; 4];
        f.read_exact_at(&mut buf, 0).expect("still cached");
        assert_eq!(&buf, b"lost");
        f.sync_data().expect("a later sync succeeds");
        disk.power_loss(&mut Rng::new(1));
        assert!(
            disk.read(&dir.join("f")).expect("file").is_empty(),
            "the dropped pages never arrived"
        );

        disk.set_capacity(Some(3));
        let err = f.write_all_at(b"12345", 0).expect_err("full");
        assert_eq!(err.kind(), io::ErrorKind::StorageFull);
        assert_eq!(disk.read(&dir.join("f")).expect("file"), b"123");
    }
}
