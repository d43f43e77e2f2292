//! Checkpoint files: the page table (pid -> fragment locations) written now and then, so that
//! opening the database replays the log only from the checkpoint's LSN on, not from the start.
//!
//! # Protocol
//! A checkpoint of LSN `L` lives in `<dir>/checkpoint-<L as 16 lower-case hex digits>`.
//! [`write`] makes it durable before it becomes visible under that name: encode into one
//! buffer, write `<name>.tmp`, `sync_all`, rename to `<name>`, `sync_dir(dir)`. Only then does it
//! retire older files: every checkpoint but the newest two, and any stray `.tmp` left by a
//! crash, followed by another `sync_dir`. So at any instant of power loss the directory holds
//! the new checkpoint complete or not at all, next to the previous one, which stays complete.
//!
//! [`load`] tries the files newest first (ordered by the LSN in the name, then checked against
//! the header) and falls back to the previous one if the newest does not validate. The log must
//! therefore keep every record from the *oldest* kept checkpoint's LSN on: [`write`] returns
//! that LSN as the caller's log reuse horizon. If checkpoint files exist but none validates,
//! [`load`] fails loudly rather than start an empty database over real data.
//!
//! One writer per directory at a time: the caller serialises checkpoints.
//!
//! # Format
//! All integers little-endian; the checksum is CRC32C over every byte after the CRC field.
//! ```text
//!  0       4         8       12         16      24           32           40          48
//!  +-------+---------+-------+----------+-------+------------+------------+-----------+-- - -
//!  | magic | version |  crc  | reserved |  lsn  | next_fresh | page_count | body_len  | body
//!  +-------+---------+-------+----------+-------+------------+------------+-----------+-- - -
//!  magic = "BWCK", version = FORMAT_VERSION (u32), reserved = 0 (u32), then u64 fields.
//!  body = page_count entries, strictly increasing pid, each:
//!     pid u64 | fragment_count u32 (>= 1) | fragment_count x Location word u64, oldest first
//!  file length = HEADER_LEN + body_len exactly; every pid < next_fresh <= Pid::MAX + 1.
//! ```
//! Format versions (bump [`FORMAT_VERSION`] with a line here on any change of layout or meaning):
//! - 1: initial layout (48-byte header, entries as above).

mod decode;
mod encode;
#[cfg(test)]
mod tests;

use std::io;
use std::path::{Path, PathBuf};

use logstore::io::Storage;
use logstore::Lsn;
use radix::Pid;

use crate::error::{Error, Result};
use crate::location::Location;

/// Decodes a whole checkpoint file (the fuzz targets' entry point).
#[cfg(feature = "fuzzing")]
pub(crate) fn decode_bytes(b: &[u8]) -> std::result::Result<Checkpoint, String> {
    decode::decode(b)
}

/// Format version of checkpoint files (see the module docs for the history).
pub(crate) const FORMAT_VERSION: u32 = 1;
pub(crate) const MAGIC: [u8; 4] = *b"BWCK";

pub(crate) const MAGIC_AT: usize = 0;
pub(crate) const VERSION_AT: usize = 4;
pub(crate) const CRC_AT: usize = 8;
/// The CRC covers the file from here to its end.
pub(crate) const CRC_FROM: usize = 12;
pub(crate) const RESERVED_AT: usize = 12;
pub(crate) const LSN_AT: usize = 16;
pub(crate) const NEXT_FRESH_AT: usize = 24;
pub(crate) const PAGE_COUNT_AT: usize = 32;
pub(crate) const BODY_LEN_AT: usize = 40;
pub(crate) const HEADER_LEN: usize = 48;

/// Bytes of an entry before its location words: `pid u64 | fragment_count u32`.
pub(crate) const ENTRY_FIXED_LEN: usize = 12;
/// Bytes of one fragment location word.
pub(crate) const LOCATION_LEN: usize = 8;
/// The smallest entry (one fragment): bounds `page_count` by the body length.
pub(crate) const MIN_ENTRY_LEN: usize = ENTRY_FIXED_LEN + LOCATION_LEN;

const _: () = assert!(MAGIC_AT + MAGIC.len() == VERSION_AT);
const _: () = assert!(VERSION_AT + 4 == CRC_AT);
const _: () = assert!(CRC_AT + 4 == CRC_FROM);
const _: () = assert!(RESERVED_AT + 4 == LSN_AT);
const _: () = assert!(LSN_AT + 8 == NEXT_FRESH_AT);
const _: () = assert!(NEXT_FRESH_AT + 8 == PAGE_COUNT_AT);
const _: () = assert!(PAGE_COUNT_AT + 8 == BODY_LEN_AT);
const _: () = assert!(BODY_LEN_AT + 8 == HEADER_LEN);
const _: () = assert!(LOCATION_LEN == std::mem::size_of::<u64>());

/// Name prefix of checkpoint files; the LSN follows as 16 lower-case hex digits.
const FILE_PREFIX: &str = "checkpoint-";
/// Suffix of a checkpoint being written (never loaded; removed by the next [`write`]).
const TMP_SUFFIX: &str = ".tmp";
const LSN_HEX_DIGITS: usize = 16;

/// A snapshot of the page table, and where to resume log replay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Checkpoint {
    /// Replay the log from here on open.
    pub(crate) lsn: Lsn,
    /// The page-id allocator's next fresh id.
    pub(crate) next_fresh: u64,
    /// Every live page and its fragments' locations, oldest fragment first (>= 1 each),
    /// sorted by strictly increasing pid (a broken order is a caller bug and panics).
    pub(crate) pages: Vec<(Pid, Vec<Location>)>,
}

/// What [`load`] found.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub(crate) checkpoint: Checkpoint,
    /// The newest checkpoint file was unreadable and an older one was used.
    pub(crate) fell_back: bool,
    /// Names of files found corrupt (for the caller's log/counters).
    pub(crate) corrupt: Vec<PathBuf>,
}

/// Writes `ckpt` durably as the newest checkpoint in `dir`, then retires all but the newest two
/// checkpoints and any stray `.tmp` file. Returns the LSN of the oldest checkpoint still kept:
/// the log must keep every record from there on, since a later open may fall back to it.
///
/// A checkpoint with the same LSN as the newest existing one replaces it atomically.
///
/// # Errors
/// [`Error::CheckpointBehind`] if `dir` already holds a checkpoint newer than `ckpt.lsn`;
/// [`Error::Log`] with [`logstore::Error::Io`] if a storage call fails (the new checkpoint may
/// or may not be durable then: keep the previous horizon).
pub(crate) fn write(storage: &dyn Storage, dir: &Path, ckpt: &Checkpoint) -> Result<Lsn> {
    let listing = list(storage, dir).map_err(io_error("list checkpoint directory", dir))?;
    if let Some(&(newest, ref path)) = listing.checkpoints.first() {
        if newest > ckpt.lsn {
            return Err(Error::CheckpointBehind {
                lsn: ckpt.lsn,
                newest,
                path: path.clone(),
            });
        }
    }
    let bytes = encode::encode(ckpt);
    let path = dir.join(file_name(ckpt.lsn));
    let tmp = dir.join(format!("{}{TMP_SUFFIX}", file_name(ckpt.lsn)));
    if let Err(e) = write_synced(storage, &tmp, &bytes) {
        // Nothing names the tmp file yet. Remove it so that after a full disk it does not
        // hold the space the next attempt needs (best effort: the next `write` removes stray
        // tmp files anyway). A failed `sync_all` of it is no fsyncgate hazard either: the file
        // is discarded, never trusted.
        let _ = storage.remove_file(&tmp);
        return Err(e);
    }
    storage
        .rename(&tmp, &path)
        .map_err(io_error("rename checkpoint into place", &tmp))?;
    storage
        .sync_dir(dir)
        .map_err(io_error("sync checkpoint directory", dir))?;

    // The new checkpoint is durable. Keep it and the newest older one; `listing` is newest
    // first and may already hold `ckpt.lsn` (then the rename replaced that file).
    let previous = listing.checkpoints.iter().find(|(lsn, _)| *lsn < ckpt.lsn);
    let horizon = previous.map_or(ckpt.lsn, |&(lsn, _)| lsn);
    let retired = listing
        .checkpoints
        .iter()
        .filter(|(lsn, _)| *lsn < horizon)
        .map(|(_, p)| p)
        .chain(listing.tmps.iter().filter(|p| **p != tmp));
    let mut removed_any = false;
    for old in retired {
        storage
            .remove_file(old)
            .map_err(io_error("remove old checkpoint", old))?;
        removed_any = true;
    }
    if removed_any {
        storage
            .sync_dir(dir)
            .map_err(io_error("sync checkpoint directory", dir))?;
    }
    Ok(horizon)
}

/// Loads the newest valid checkpoint in `dir`, falling back to older ones past corrupt files.
/// `Ok(None)` if `dir` holds no checkpoint file (or does not exist). Never changes `dir`.
///
/// # Errors
/// [`Error::Corruption`] if checkpoint files exist but none is valid; [`Error::Log`] with
/// [`logstore::Error::Io`] if a storage call fails (an I/O error is reported, not skipped:
/// a failing device should not silently cost the newest checkpoint).
pub(crate) fn load(storage: &dyn Storage, dir: &Path) -> Result<Option<Loaded>> {
    let listing = match list(storage, dir) {
        Ok(listing) => listing,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error("list checkpoint directory", dir)(e)),
    };
    if listing.checkpoints.is_empty() {
        return Ok(None);
    }
    let mut corrupt = Vec::new();
    let mut reasons = Vec::new();
    for (lsn, path) in &listing.checkpoints {
        let bytes = read_all(storage, path)?;
        let decoded = decode::decode(&bytes).and_then(|ckpt| {
            if ckpt.lsn == *lsn {
                Ok(ckpt)
            } else {
                Err(format!(
                    "header LSN {} disagrees with the file name",
                    ckpt.lsn
                ))
            }
        });
        match decoded {
            Ok(checkpoint) => {
                return Ok(Some(Loaded {
                    checkpoint,
                    fell_back: !corrupt.is_empty(),
                    corrupt,
                }))
            }
            Err(why) => {
                reasons.push(format!("{}: {why}", path.display()));
                corrupt.push(path.clone());
            }
        }
    }
    Err(Error::corruption(
        format!(
            "none of the {} checkpoint files is valid ({}); refusing to start from an empty \
             page table",
            corrupt.len(),
            reasons.join("; ")
        ),
        dir,
    ))
}

/// The checkpoint-related entries of a directory.
#[derive(Debug, Default)]
struct Listing {
    /// Complete checkpoints by name, newest first.
    checkpoints: Vec<(Lsn, PathBuf)>,
    /// `.tmp` files of interrupted writes.
    tmps: Vec<PathBuf>,
}

/// Sorts the entries of `dir` into checkpoints and leftovers; other names are ignored.
fn list(storage: &dyn Storage, dir: &Path) -> io::Result<Listing> {
    let mut listing = Listing::default();
    for path in storage.read_dir(dir)? {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if let Some(lsn) = parse_name(name) {
            listing.checkpoints.push((lsn, path));
        } else if name.strip_suffix(TMP_SUFFIX).and_then(parse_name).is_some() {
            listing.tmps.push(path);
        }
    }
    listing
        .checkpoints
        .sort_unstable_by_key(|(lsn, _)| std::cmp::Reverse(*lsn));
    Ok(listing)
}

/// The file name of the checkpoint at `lsn`.
fn file_name(lsn: Lsn) -> String {
    format!("{FILE_PREFIX}{:0width$x}", lsn.0, width = LSN_HEX_DIGITS)
}

/// The LSN of a checkpoint file name, or `None` for any other name (exactly 16 lower-case hex
/// digits, so every name [`file_name`] produces parses back and nothing else does).
fn parse_name(name: &str) -> Option<Lsn> {
    let hex = name.strip_prefix(FILE_PREFIX)?;
    let well_formed = hex.len() == LSN_HEX_DIGITS
        && hex
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c));
    if !well_formed {
        return None;
    }
    u64::from_str_radix(hex, 16).ok().map(Lsn)
}

/// Creates (or empties) `path`, writes `bytes` and syncs them.
fn write_synced(storage: &dyn Storage, path: &Path, bytes: &[u8]) -> Result<()> {
    let file = storage
        .open_file(path, true)
        .map_err(io_error("create checkpoint file", path))?;
    file.set_len(0)
        .map_err(io_error("truncate checkpoint file", path))?;
    file.write_all_at(bytes, 0)
        .map_err(io_error("write checkpoint file", path))?;
    file.sync_all()
        .map_err(io_error("fsync checkpoint file", path))?;
    Ok(())
}

/// Reads the whole file at `path`. Its length comes from the file system, not from its bytes.
fn read_all(storage: &dyn Storage, path: &Path) -> Result<Vec<u8>> {
    let file = storage
        .open_file(path, false)
        .map_err(io_error("open checkpoint file", path))?;
    let len = file.len().map_err(io_error("size checkpoint file", path))?;
    let len = usize::try_from(len).map_err(|_| {
        io_error("size checkpoint file", path)(io::Error::new(
            io::ErrorKind::OutOfMemory,
            format!("{len} bytes do not fit in memory"),
        ))
    })?;
    let mut bytes = vec![0u8; len];
    file.read_exact_at(&mut bytes, 0)
        .map_err(io_error("read checkpoint file", path))?;
    Ok(bytes)
}

/// Wraps an I/O failure of `op` on `path` as the log's I/O error.
fn io_error<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Error + 'a {
    move |source| {
        Error::Log(logstore::Error::Io {
            op,
            path: path.to_path_buf(),
            source,
        })
    }
}
