//! # bwtree: an embedded, persistent, ordered key-value store
//!
//! A latch-free B-link Bw-tree over a log-structured page cache (the Bw-tree and LLAMA
//! papers). Keys and values are byte strings, ordered by bytes.
//!
//! ```
//! # fn main() -> bwtree::Result<()> {
//! let db = bwtree::Config::new().temporary(true).open()?;
//! db.insert(b"apple", b"red")?;
//! db.insert(b"banana", b"yellow")?;
//! assert_eq!(db.get(b"apple")?.unwrap(), b"red");
//! let keys: Vec<_> = db.iter().map(|r| r.map(|(k, _)| k)).collect::<Result<_, _>>()?;
//! assert_eq!(keys, [&b"apple"[..], &b"banana"[..]]);
//! db.flush()?; // durable once this returns
//! # Ok(()) }
//! ```
//!
//! ## How it works
//! Every tree node is a page of the page cache: a base node plus a chain of delta records
//! (insert, delete, split, merge, ...), each change published by one CAS on the page's
//! mapping-table slot. Writers never latch: a lost CAS means re-read and retry, and any thread
//! that finds a half-finished split or merge finishes it first (`smo/`). Nodes follow the
//! B-link discipline (low and high fences, right siblings), so a descent can always recover
//! from a concurrent split by moving right. Readers never block and never hold an epoch
//! between two items of an iteration.
//!
//! ## One open handle per directory
//! An open [`Db`] holds an exclusive lock on its directory (`flock` on `<dir>/LOCK`, taken by
//! the log underneath before it reads anything) until its last handle is dropped. A second
//! [`open`] of the same directory, from this process or another, fails with
//! [`Error::Locked`] instead of two stores overwriting each other's files; clone the [`Db`] to
//! share it. The operating system releases the lock when the holding process dies. Files are
//! created readable by their owner only (`0o600`, directories `0o700`).
//!
//! ## Durability
//! A write is durable once a [`Db::flush`] that started after it returns, or after the
//! configured flush interval. After a crash, the database holds a prefix of the completed
//! writes: everything flushed, perhaps some more, batches all or nothing.

mod base;
mod batch;
mod config;
mod consolidate;
mod core;
mod db;
mod descend;
mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod iter;
mod leaf_scan;
mod node;
mod orphans;
mod range;
mod search;
mod smo;
mod stats;
mod stuck;
mod sync;
mod tree;
mod value;

#[cfg(all(test, loom))]
mod loom_models;

pub use batch::Batch;
pub use config::Config;
pub use db::{open, Db};
pub use error::{CompareAndSwapError, Error, Result};
pub use iter::Iter;
pub use stats::Stats;
pub use tree::{Tree, MAX_KEY_BYTES, MAX_VALUE_BYTES};
pub use value::Value;
