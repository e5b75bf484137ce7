//! The shared state directory: one `<cart>.jsonl` log per cart, guarded by file locks so several
//! processes can append, read and wipe at once.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use crate::cart::Record;

/// Lock file in the state directory: appends hold it shared, `DELETE /carts` exclusively, so a
/// wipe never races an append into a file that is being unlinked.
const DIR_LOCK: &str = ".lock";

/// Opens (creating it and the directory if missing) and locks the state directory's lock file.
fn lock_dir(dir: &Path, exclusive: bool) -> io::Result<File> {
    fs::create_dir_all(dir)?;
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(DIR_LOCK))?;
    if exclusive {
        file.lock()?
    } else {
        file.lock_shared()?
    }
    Ok(file)
}

fn cart_path(dir: &Path, cart: &str) -> PathBuf {
    dir.join(format!("{cart}.jsonl"))
}

/// Appends one record to the cart's log under an exclusive lock (one `write` of a whole line).
pub(crate) fn append(dir: &Path, cart: &str, record: &Record) -> io::Result<()> {
    let _dir_lock = lock_dir(dir, false)?;
    let mut line = serde_json::to_vec(record)?;
    line.push(b'\n');
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(cart_path(dir, cart))?;
    file.lock()?;
    file.write_all(&line)
}

/// Reads a cart's log under a shared lock; `None` when the cart has no events.
pub(crate) fn read_cart(dir: &Path, cart: &str) -> io::Result<Option<Vec<Record>>> {
    let file = match File::open(cart_path(dir, cart)) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    file.lock_shared()?;
    let mut records = Vec::new();
    for line in BufReader::new(&file).lines() {
        let line = line?;
        if !line.trim().is_empty() {
            let record = serde_json::from_str(&line).map_err(|e| {
                io::Error::new(io::ErrorKind::InvalidData, format!("{cart}.jsonl: {e}"))
            })?;
            records.push(record);
        }
    }
    Ok(Some(records))
}

/// Removes every cart log in the state directory.
pub(crate) fn wipe(dir: &Path) -> io::Result<()> {
    let _dir_lock = lock_dir(dir, true)?;
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "jsonl") {
            fs::remove_file(path)?;
        }
    }
    Ok(())
}
