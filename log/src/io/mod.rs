//! The I/O seam: everything the log (and the layers above, for checkpoint files) does to the file
//! system goes through [`Storage`] and [`StorageFile`], so tests can swap the real file system for
//! a simulated one that loses unsynced writes on `crash()` and injects faults at every call site.
//!
//! Contract shared by every implementation:
//! - `lock_dir` is exclusive across handles, threads and processes; the lock lives in the
//!   guard it returns (the real file system: `flock(2)` on `<dir>/LOCK`).
//! - `write_at` may write fewer bytes than asked (a short write) and says how many it wrote; a
//!   write is durable only after a later `sync_data`/`sync_all` of the same file returns `Ok`.
//! - Creating, renaming or removing a directory entry is durable only after `sync_dir` of the
//!   parent directory returns `Ok`.
//! - Once a `sync_*` call has failed, the data it covered must be assumed lost (fsync errors are
//!   not retryable): callers poison themselves rather than retry.
//!
//! Implementations and test tools:
//! - [`FileStorage`]: the real file system (`pread`/`pwrite`, `fdatasync`/`fsync`, directory
//!   fsync). The only one production code uses.
//! - [`SimStorage`]: in-memory, with a durable and a volatile image per file and a two-level
//!   namespace; [`SimStorage::crash`] loses, keeps or tears unsynced writes per [`CrashMode`] and
//!   seed. It also enforces a capacity (`ENOSPC`), injects faults per a [`FaultPlan`] at every
//!   [`Site`] (counted in [`FaultCounts`]), and records a [`Trace`] of [`Op`]s whose
//!   [`Trace::unsynced_at`] / [`Trace::assert_all_durable`] check sync discipline.
//! - [`SimRng`]: the seeded generator behind crash and fault schedules, stable across versions.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod fault;
mod file;
mod rng;
mod sim;
mod trace;

pub use fault::{Fault, FaultCounts, FaultPlan, FaultRule, Site, Trigger};
pub use file::{FileHandle, FileStorage, DIR_MODE, FILE_MODE, LOCK_FILE};
pub use rng::{seed_from_env, SimRng};
pub use sim::{CrashMode, SimFile, SimStorage, SECTOR_SIZE};
pub use trace::{FileId, Op, Trace, Unsynced};

/// A file system as the log sees it.
pub trait Storage: Send + Sync + fmt::Debug {
    /// Opens `path` for reading and writing, creating an empty file first if `create` is set and
    /// the file does not exist. A creation is durable only after `sync_dir` of the parent.
    fn open_file(&self, path: &Path, create: bool) -> io::Result<Arc<dyn StorageFile>>;
    /// Creates `path` and its missing parents. Durable only after `sync_dir` of each parent.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// The full paths of the entries directly inside `dir`, in no particular order.
    fn read_dir(&self, dir: &Path) -> io::Result<Vec<PathBuf>>;
    /// Whether `path` names an existing file or directory.
    fn exists(&self, path: &Path) -> io::Result<bool>;
    /// Atomically replaces `to` with `from`. Durable only after `sync_dir` of the parent(s).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes the file at `path`. Durable only after `sync_dir` of the parent.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Makes the entries of directory `dir` (creations, renames, removals) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Takes the exclusive lock of the existing directory `dir` for as long as the returned
    /// guard lives. Fails with [`io::ErrorKind::WouldBlock`] while another guard holds it, in
    /// this process or another; a holder's death (or a simulated crash) releases it.
    fn lock_dir(&self, dir: &Path) -> io::Result<Box<dyn DirLockGuard>>;
}

/// A held directory lock (see [`Storage::lock_dir`]): dropping it releases the lock.
pub trait DirLockGuard: Send + Sync + fmt::Debug {}

/// An open file. Positional I/O only, so one handle is shared by many threads.
pub trait StorageFile: Send + Sync + fmt::Debug {
    /// Reads up to `buf.len()` bytes at `offset`; returns fewer only at end of file.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Writes up to `buf.len()` bytes at `offset`, extending the file if needed; may write fewer.
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize>;
    /// Makes the file's data (and the size, if it changed) durable: `fdatasync`.
    fn sync_data(&self) -> io::Result<()>;
    /// Makes the file's data and all metadata durable: `fsync`.
    fn sync_all(&self) -> io::Result<()>;
    /// The current size of the file in bytes.
    fn len(&self) -> io::Result<u64>;
    /// Grows (with zeroes) or truncates the file. Durable only after a later sync.
    fn set_len(&self, len: u64) -> io::Result<()>;

    /// Whether the file is empty (added with the implementations: `len` without `is_empty`
    /// trips `clippy::len_without_is_empty`).
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Reads exactly `buf.len()` bytes at `offset`, or fails with `UnexpectedEof`.
    fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(buf, offset) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => {
                    buf = &mut buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Writes all of `buf` at `offset`, retrying short writes; fails with `WriteZero` if a write
    /// makes no progress.
    fn write_all_at(&self, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.write_at(buf, offset) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    buf = &buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
