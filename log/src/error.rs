//! The crate's one error type. Every message says what happened and what the caller can do.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// What went wrong in the log. Operating errors only: broken internal invariants panic.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A storage call failed.
    Io {
        /// The operation that failed, e.g. "write buffer" or "fdatasync".
        op: &'static str,
        /// The file or directory it was applied to.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// Bytes on disk are not what the log wrote, in a place where a torn tail cannot explain it.
    Corruption {
        /// What was found wrong.
        what: String,
        /// The file.
        path: PathBuf,
        /// The byte offset in the file.
        offset: u64,
    },
    /// An earlier sync failed, or a write failed for a reason other than a full disk; the log
    /// refuses all further writes because data it had accepted may be lost (fsync errors are
    /// not retryable). Reopen the log to recover. (A full disk is not poison: see
    /// [`Error::is_storage_full`].)
    Poisoned {
        /// The text of the original failure.
        cause: String,
    },
    /// A record is larger than [`MAX_RECORD_BYTES`](crate::MAX_RECORD_BYTES).
    RecordTooLarge {
        /// The requested body length.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// The configuration is invalid or does not match the log on disk.
    Config(String),
    /// A [`DiskPtr`](crate::DiskPtr) no longer names a record of this log (its segment was
    /// reused, or it never came from this log).
    StalePointer(String),
    /// Another open store holds the directory's lock (in this process or another).
    Locked {
        /// The locked directory.
        path: PathBuf,
    },
}

/// Results of this crate.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// Whether this is a full disk (`ENOSPC`, or `EDQUOT`) met while writing a buffer,
    /// creating or growing a file, or writing a blob. Such a failure acknowledged nothing and
    /// poisons nothing: the log keeps the data in memory and retries; durability waits,
    /// and reservations once every buffer waits for the stalled one, fail with this error
    /// until space is freed, then succeed again on the same open log.
    ///
    /// A failed sync reports the error it got once (possibly `ENOSPC` too) and `Poisoned`
    /// afterwards: only [`Error::Poisoned`] says the log gave up.
    pub fn is_storage_full(&self) -> bool {
        matches!(self, Error::Io { source, .. } if is_out_of_space(source))
    }

    pub(crate) fn corruption(
        what: impl Into<String>,
        path: impl Into<PathBuf>,
        offset: u64,
    ) -> Self {
        Error::Corruption {
            what: what.into(),
            path: path.into(),
            offset,
        }
    }
}

/// `ENOSPC` or `EDQUOT`: the write may succeed once space is freed.
pub(crate) fn is_out_of_space(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::StorageFull
        || e.kind() == io::ErrorKind::QuotaExceeded
        || e.raw_os_error() == Some(libc::EDQUOT)
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { op, path, source } => write!(
                f,
                "log I/O failed: {op} on {}: {source}; if the disk is full, free space and retry \
                 (the log retries its buffered writes); otherwise check the device and reopen",
                path.display()
            ),
            Error::Corruption { what, path, offset } => write!(
                f,
                "log corruption in {} at byte {offset}: {what}; restore from a backup or \
                 recover from an earlier LSN",
                path.display()
            ),
            Error::Poisoned { cause } => write!(
                f,
                "log refuses work after an earlier I/O failure ({cause}); writes accepted since \
                 the last successful flush may be lost: reopen the log to recover"
            ),
            Error::RecordTooLarge { len, max } => {
                write!(
                    f,
                    "record of {len} bytes exceeds the maximum of {max} bytes; split it"
                )
            }
            Error::Config(msg) => write!(f, "invalid log configuration: {msg}"),
            Error::StalePointer(msg) => write!(f, "stale disk pointer: {msg}"),
            Error::Locked { path } => write!(
                f,
                "{} is already open (its LOCK is held by this or another process); close \
                 the other handle first, or open a different directory",
                path.display()
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
