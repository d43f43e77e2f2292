//! [`DirLock`]: one open store per directory.
//!
//! Two stores open on one directory would both append to `log.dat` and both rewrite the
//! checkpoints: each would destroy what the other wrote. The log is the lowest layer that owns
//! the directory, so it takes the directory's exclusive lock ([`Storage::lock_dir`]: `flock` on
//! `<dir>/LOCK` on the real file system) before it reads or writes anything there, and holds it
//! for its whole life: every layer above is protected without doing anything. A layer that must
//! read the directory before it can open the log (the page cache loads its checkpoint to learn
//! the LSN to recover from) takes the lock first with [`DirLock::acquire`] and hands it to
//! [`Log::open_locked`](crate::Log::open_locked).
//!
//! The lock is advisory and per open file: a second open in the same process fails like one in
//! another process, and the operating system releases it when the holder dies (SIGKILL
//! included), so no stale lock survives a crash.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::io::{DirLockGuard, Storage};

/// The held exclusive lock of a store's directory. Dropping it releases the lock.
pub struct DirLock {
    dir: PathBuf,
    _guard: Box<dyn DirLockGuard>,
}

impl DirLock {
    /// Creates `dir` (and missing parents, durably) if needed and takes its lock.
    ///
    /// # Errors
    /// [`Error::Locked`] if another open store (in this process or another) holds it;
    /// [`Error::Io`] if the directory cannot be created or the lock file cannot be opened.
    pub fn acquire(storage: &dyn Storage, dir: &Path) -> Result<DirLock> {
        crate::log::ensure_dir(storage, dir)?;
        match storage.lock_dir(dir) {
            Ok(guard) => Ok(DirLock {
                dir: dir.to_path_buf(),
                _guard: guard,
            }),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(Error::Locked {
                path: dir.to_path_buf(),
            }),
            Err(e) => Err(Error::io("lock directory", dir, e)),
        }
    }

    /// The locked directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl fmt::Debug for DirLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirLock").field("dir", &self.dir).finish()
    }
}
