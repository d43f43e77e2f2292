//! The crate's one error type. Every message says what happened and what the caller can do.

use std::fmt;
use std::path::PathBuf;

use logstore::Lsn;
use radix::Pid;

/// What went wrong in the page cache. Operating errors only: broken invariants panic.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The log below failed (I/O, corruption, poisoning, oversize record, bad configuration).
    Log(logstore::Error),
    /// A checkpoint file or page fragment is not what the page cache wrote.
    Corruption {
        /// What was found wrong.
        what: String,
        /// The file it was found in.
        path: PathBuf,
        /// The byte offset in that file, when one place is to blame.
        offset: Option<u64>,
    },
    /// The configuration is invalid.
    Config(String),
    /// A page fragment lies beyond the largest data file a slot word can address
    /// ([`MAX_FILE_BYTES`](crate::MAX_FILE_BYTES)).
    DatabaseTooLarge {
        /// The fragment's file offset.
        offset: u64,
    },
    /// A file-system call of the page cache itself (checkpoint files, directory) failed.
    Io {
        /// The operation that failed.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The page does not exist (never allocated, or freed).
    NoSuchPage(Pid),
    /// A checkpoint was asked to be written at an LSN below the newest checkpoint already in
    /// the directory: writing it would move recovery backwards, so it was refused.
    CheckpointBehind {
        /// The LSN of the refused checkpoint.
        lsn: Lsn,
        /// The LSN of the newest checkpoint on disk.
        newest: Lsn,
        /// That checkpoint's file.
        path: PathBuf,
    },
    /// A page fragment, or an atomic group's record, does not fit in one log record (pages
    /// and groups must be smaller than the log's I/O buffer).
    FragmentTooLarge {
        /// The fragment's encoded length.
        len: u64,
        /// The largest fragment the log stores inline.
        max: u64,
    },
}

/// Results of this crate.
pub type Result<T> = std::result::Result<T, Error>;

impl From<logstore::Error> for Error {
    fn from(e: logstore::Error) -> Self {
        Error::Log(e)
    }
}

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corruption(what: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        Error::Corruption {
            what: what.into(),
            path: path.into(),
            offset: None,
        }
    }

    pub(crate) fn corruption_at(
        what: impl Into<String>,
        path: impl Into<PathBuf>,
        offset: u64,
    ) -> Self {
        Error::Corruption {
            what: what.into(),
            path: path.into(),
            offset: Some(offset),
        }
    }
}

impl Error {
    /// Whether this is a full disk met by a write ([`logstore::Error::is_storage_full`], or the
    /// same `ENOSPC`/`EDQUOT` from a checkpoint file): nothing of the failed operation was
    /// published, the cache is not poisoned, and the operation may be retried once space is
    /// freed.
    pub fn is_storage_full(&self) -> bool {
        match self {
            Error::Log(l) => l.is_storage_full(),
            Error::Io { source, .. } => {
                source.kind() == std::io::ErrorKind::StorageFull
                    || source.kind() == std::io::ErrorKind::QuotaExceeded
            }
            _ => false,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Log(e) => write!(f, "{e}"),
            Error::Corruption { what, path, offset } => write!(
                f,
                "page cache data in {}{} is corrupt: {what}; restore from a backup or reopen \
                 to fall back to the previous checkpoint",
                path.display(),
                offset.map(|o| format!(" at byte {o}")).unwrap_or_default()
            ),
            Error::Config(what) => write!(f, "invalid page cache configuration: {what}"),
            Error::DatabaseTooLarge { offset } => write!(
                f,
                "the data file grew past {} bytes (a fragment at offset {offset}); the page \
                 cache cannot address it",
                crate::MAX_FILE_BYTES
            ),
            Error::Io { op, path, source } => write!(
                f,
                "{op} failed for {}: {source}; check the disk and permissions, then reopen",
                path.display()
            ),
            Error::NoSuchPage(pid) => write!(f, "page {pid:?} does not exist"),
            Error::CheckpointBehind { lsn, newest, path } => write!(
                f,
                "refused to write a checkpoint at LSN {lsn}: {} is newer (LSN {newest}); the \
                 directory may hold another database's files, otherwise this is a bug",
                path.display()
            ),
            Error::FragmentTooLarge { len, max } => write!(
                f,
                "a page fragment or group record of {len} bytes exceeds the {max} bytes a log \
                 record holds; split the page or the group, or raise the log's \
                 io_buffer_size_bytes"
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Log(e) => Some(e),
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
