//! The crate's one error type. Every message says what happened and what the caller can do.

use std::fmt;
use std::path::PathBuf;

use crate::value::Value;

/// What went wrong. Operating errors only: a broken internal invariant panics.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A file-system call failed (including a full disk). Data acknowledged by an earlier
    /// `flush` is safe; reopen the database after fixing the cause.
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
    /// An earlier write or sync failed, so the database refuses further writes: data it had
    /// accepted may not be on disk. Reopen it to recover the durable state.
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
                "{op} failed for {}: {source}; data flushed before this is safe: fix the cause \
                 (disk space, permissions) and reopen",
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
