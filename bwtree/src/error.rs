//! The crate's one error type. Every message says what happened and what the caller can do.

use std::fmt;
use std::path::PathBuf;

use crate::value::Value;

/// What went wrong. Operating errors only: a broken internal invariant panics.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A file-system call failed. Data acknowledged by an earlier `flush` is safe.
    ///
    /// A full disk ([`Error::is_storage_full`]) is recoverable without reopening: the write
    /// that met it did not happen (nothing of it is visible or logged), reads go on, and once
    /// space is freed writes and `flush` succeed again on the same open database. For other
    /// causes, fix them and reopen.
    Io {
        /// The operation that failed.
        op: String,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// Bytes on disk are not what the database wrote.
    Corruption {
        /// What was found wrong.
        what: String,
        /// Where: the file, and the byte offset when known.
        at: String,
    },
    /// The request cannot be served as asked: an oversize key or value, a bad configuration,
    /// a directory holding something else.
    Unsupported(String),
    /// An earlier sync failed (never retried: the kernel may have dropped the data it could
    /// not write), or a write failed for a reason other than a full disk, so the database
    /// refuses further writes: data it had accepted may not be on disk. Reopen it to recover
    /// the durable state.
    Poisoned(String),
    /// The database is already open, by this process or another (only one open handle per
    /// directory: its `LOCK` file is held while the database is open).
    Locked {
        /// The database directory.
        path: PathBuf,
    },
    /// An operation kept losing races past its retry bound (reported instead of spinning
    /// forever). Retrying the call is safe.
    Contention(&'static str),
}

/// Results of this crate.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Whether this is a full disk (`ENOSPC`, or `EDQUOT`): the failed write changed nothing
    /// and poisoned nothing; retry it (and `flush`) once space is freed. Note that the first
    /// report of a failed *sync* may carry `ENOSPC` too; then the database is poisoned and
    /// the next write says [`Error::Poisoned`].
    pub fn is_storage_full(&self) -> bool {
        match self {
            Error::Io { source, .. } => {
                source.kind() == std::io::ErrorKind::StorageFull
                    || source.kind() == std::io::ErrorKind::QuotaExceeded
            }
            _ => false,
        }
    }
}

/// A failed [`compare_and_swap`](crate::Tree::compare_and_swap): what the key held instead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompareAndSwapError {
    /// The current value (`None`: absent).
    pub current: Option<Value>,
    /// The value that was proposed.
    pub proposed: Option<Value>,
}

impl fmt::Display for CompareAndSwapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "compare and swap failed: the key holds {:?}",
            self.current
        )
    }
}

impl std::error::Error for CompareAndSwapError {}

impl From<pagecache::Error> for Error {
    fn from(e: pagecache::Error) -> Error {
        use pagecache::Error as P;
        match e {
            P::Log(l) => Error::from(l),
            P::Corruption { what, path, offset } => Error::Corruption {
                what,
                at: match offset {
                    Some(offset) => format!("{} at byte {offset}", path.display()),
                    None => path.display().to_string(),
                },
            },
            P::Config(what) => Error::Unsupported(format!("configuration: {what}")),
            P::Io { op, path, source } => Error::Io {
                op: op.to_string(),
                path,
                source,
            },
            other => Error::Unsupported(other.to_string()),
        }
    }
}

impl From<logstore::Error> for Error {
    fn from(e: logstore::Error) -> Error {
        use logstore::Error as L;
        match e {
            L::Io { op, path, source } => Error::Io {
                op: op.to_string(),
                path,
                source,
            },
            L::Corruption { what, path, offset } => Error::Corruption {
                what,
                at: format!("{} at byte {offset}", path.display()),
            },
            L::Poisoned { cause } => Error::Poisoned(cause),
            L::Locked { path } => Error::Locked { path },
            // A node pointer whose record no longer carries its LSN: the bytes there are not
            // what the tree wrote (a bit flip in the header, or a recycled segment).
            L::StalePointer(what) => Error::Corruption {
                what,
                at: "a log record pointer".into(),
            },
            L::Config(what) => Error::Unsupported(format!("configuration: {what}")),
            other => Error::Unsupported(other.to_string()),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { op, path, source } => write!(
                f,
                "{op} failed for {}: {source}; data flushed before this is safe: if the disk is \
                 full, free space and retry the call; otherwise fix the cause and \
                 reopen",
                path.display()
            ),
            Error::Corruption { what, at } => write!(
                f,
                "the database is corrupt ({at}): {what}; restore from a backup"
            ),
            Error::Unsupported(what) => write!(f, "unsupported: {what}"),
            Error::Poisoned(cause) => write!(
                f,
                "the database stopped accepting writes after an I/O failure ({cause}); reopen \
                 it to recover the durable state"
            ),
            Error::Locked { path } => write!(
                f,
                "{} is already open in this or another process; drop the other handle (or \
                 stop the other process) and retry, or use another directory",
                path.display()
            ),
            Error::Contention(what) => write!(
                f,
                "{what} lost too many races with concurrent writers; retry the call"
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
