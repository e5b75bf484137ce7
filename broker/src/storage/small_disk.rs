//! A real, small filesystem for tests that run a disk full: a tmpfs of a few pages mounted on
//! a temporary directory (needs root, as in Ferry's test sandbox; tests skip with a printed
//! line where mounting is not permitted). The integration tests include this same file
//! (`tests/support/mod.rs`).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A mounted tmpfs, unmounted when dropped.
pub(crate) struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// Mounts a tmpfs of `bytes` bytes; `None` (after printing why) where that is not
    /// permitted.
    pub(crate) fn mount(bytes: u64) -> Option<Self> {
        Self::mount_options(bytes, &format!("size={bytes}"))
    }

    /// Mounts a tmpfs of `bytes` bytes and at most `inodes` files and directories.
    pub(crate) fn mount_with(bytes: u64, inodes: u64) -> Option<Self> {
        Self::mount_options(bytes, &format!("size={bytes},nr_inodes={inodes}"))
    }

    fn mount_options(bytes: u64, options: &str) -> Option<Self> {
        let dir = tempfile::tempdir().expect("tempdir");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir.path())
            .status();
        match status {
            Ok(s) if s.success() => Some(SmallDisk { dir }),
            other => {
                println!(
                    "SKIPPED: cannot mount a {bytes}-byte tmpfs ({other:?}); run the tests as root to cover a full disk"
                );
                None
            }
        }
    }

    /// The mount point.
    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Takes every free page with a file (returned; delete it to free the space).
    pub(crate) fn fill(&self) -> PathBuf {
        let path = self.path().join("filler");
        let mut f = File::create(&path).expect("filler");
        let page = [0u8; 4096];
        while f.write_all(&page).is_ok() {}
        path
    }
}

impl SmallDisk {
    /// Takes every free inode with empty files (returned; delete them to free the inodes).
    pub(crate) fn fill_inodes(&self) -> Vec<PathBuf> {
        (0..100_000)
            .map(|i| self.path().join(format!("inode-{i}")))
            .take_while(|p| File::create(p).is_ok())
            .collect()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}
