//! A real, small filesystem for tests that run a disk full: a tmpfs mounted on a temporary
//! directory (needs root, as in Ferry's test sandbox; tests skip with a printed line where
//! mounting is not permitted). The library's unit tests have the same in `storage`.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A mounted tmpfs, unmounted when dropped.
pub struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// Mounts a tmpfs of `bytes` bytes; `None` (after printing why) where that is not
    /// permitted.
    pub fn mount(bytes: u64) -> Option<Self> {
        let dir = tempfile::tempdir().expect("tempdir");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
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
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Takes every free page with a file (returned; delete it to free the space).
    pub fn fill(&self) -> PathBuf {
        let path = self.path().join("filler");
        let mut f = File::create(&path).expect("filler");
        let page = [0u8; 4096];
        while f.write_all(&page).is_ok() {}
        path
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
