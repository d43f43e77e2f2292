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
//! ## Durability
//! A write is durable once a [`Db::flush`] that started after it returns, or after the
//! configured flush interval. After a crash, the database holds a prefix of the completed
//! writes: everything flushed, perhaps some more, batches all or nothing.

mod batch;
mod config;
mod consolidate;
mod core;
mod db;
mod descend;
mod error;
mod iter;
mod node;
mod range;
mod search;
mod smo;
mod stats;
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
