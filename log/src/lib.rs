//! # logstore: the log-structured store under bwtree
//!
//! Everything bwtree persists is a record in this log. The problem it solves: many threads
//! append small records concurrently, each must learn its position ([`Lsn`]) and location
//! ([`DiskPtr`]) immediately, appends must not serialize on a lock, durability must be real
//! (`fdatasync`) but batched, and after a crash at any instant recovery must return exactly a
//! prefix of the completed records.
//!
//! ## Protocol
//! 1. [`Log::reserve`] claims space in the current in-memory I/O buffer with one CAS on the
//!    buffer's packed state word (offset, writer count, sealed and installing flags,
//!    generation; see `buffer/state.rs`). The holder fills [`Reservation::body_mut`] in place, then
//!    [`Reservation::complete`] writes the record header with its CRC32C, or
//!    [`Reservation::abort`] (or drop) writes a padding header recovery skips.
//! 2. A buffer that cannot fit a reservation is sealed; the last writer out hands it to the
//!    I/O writer thread; the sealer installs the next of several rotating buffers. Buffers
//!    never cross a segment boundary; the end of a segment is padded.
//! 3. The I/O writer writes buffers (possibly out of order); durability waiters write queued
//!    buffers too and lead one `fdatasync` at a time for everyone written so far (group
//!    commit, waiting briefly for committers it expects: [`Config::group_commit_wait_us`]);
//!    the durable LSN is the end of the longest contiguous written-and-synced prefix.
//!    [`Log::make_stable`] and [`Log::flush`] wait for it.
//!
//!    A full disk (`ENOSPC`/`EDQUOT` on a write, file growth or blob) is recoverable
//!    ([`Error::is_storage_full`]): the buffer stays in memory, readable, and is rewritten at
//!    the same offset later; `written_end` and the durable LSN never pass it. Durability
//!    waits, and reservations once every buffer waits for the stalled one, return the typed
//!    [`Error::Io`] promptly instead of waiting; once space is freed the same log goes on
//!    (`writer/stall.rs`). Any sync failure (whatever its error: after a failed `fsync` the
//!    kernel may have dropped the dirty pages, so it is never retried) and any other write
//!    failure poison the log: every later write returns [`Error::Poisoned`].
//! 4. Records larger than a buffer go to a blob file, fsynced with its directory, before a
//!    small pointer record is completed.
//! 5. [`Log::open`] scans segments in LSN order from a start LSN, stops at the first invalid
//!    record or LSN gap, destroys (and syncs) everything after it, and continues appending
//!    there.
//! 6. Space: [`Log::mark_dead`] lowers a segment's live bytes; an empty sealed segment is
//!    freed once that is durable, its LSN range is below the reuse horizon
//!    ([`Log::set_reuse_horizon`]: the LSN later opens recover from) and an epoch has passed.
//!    After a restart [`Log::reset_live`] hands the log the upper layer's live set.
//! 7. One open log per directory: [`Log::open`] takes the directory's exclusive lock
//!    ([`DirLock`], `flock` on `<dir>/LOCK`) before touching anything and holds it until the
//!    log is dropped; a second open gets [`Error::Locked`].
//! 8. [`Log::read`] treats its [`DiskPtr`] as untrusted input (pointers may be stale, or
//!    decoded from disk with [`DiskPtr::from_bytes`]): checked arithmetic, the record's LSN
//!    and CRC checked, and buffer memory copied only once the buffer is handed off (sealed, no
//!    holders); a read into the buffer being filled seals it and waits for that.
//!
//! Every segment incarnation has a random salt that its records and [`DiskPtr`]s carry, so bytes
//! left in a reused slot never validate, and a pointer to a record of a cut tail never reads
//! the record that later got its LSN (recovery closes the segment it stopped in, so new records
//! start a new incarnation).
//!
//! ## Not built
//! Reads use `pread` only (no memory maps; the mapping-lifetime machinery DESIGN.md asks for
//! if they are used is therefore absent too).
//!
//! The on-disk format is in `docs/LOG_FORMAT.md` and [`mod@format`].

mod blob;
mod buffer;
mod config;
#[cfg(all(any(test, feature = "debug-delay"), not(loom)))]
mod debug_delay;
mod error;
pub mod format;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod io;
mod locate;
mod lock;
mod log;
#[cfg(all(test, loom))]
mod loom_models;
mod recovery;
mod reservation;
mod segments;
mod shared;
mod stats;
mod sync;
mod types;
mod writer;

pub use config::{Config, MAX_RECORD_BYTES};
pub use error::{Error, Result};
pub use lock::DirLock;
pub use log::{Log, DATA_FILE};
pub use recovery::RecoveredRecord;
pub use reservation::Reservation;
pub use segments::{SegmentState, SegmentStats};
pub use stats::LogStats;
pub use types::{BlobId, DiskPtr, Lsn, SegmentId};
