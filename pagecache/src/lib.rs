//! # pagecache: delta chains in memory, fragments in the log
//!
//! The LLAMA-style layer between the Bw-tree and the log. It knows pages and fragments, never
//! keys: the tree describes its pages through [`PageModel`] (an encodable base, encodable
//! deltas, their heap sizes, and consolidation).
//!
//! ## Pages
//! A page id ([`Pid`](radix::Pid)) names one radix slot. The slot holds either the newest node
//! of the page's in-memory delta chain (newest delta -> ... -> base), or, for an evicted page,
//! one 62-bit [`Location`] of its single on-disk base fragment, or nothing (free).
//!
//! ## Protocol
//! Every mutation ([`PageCache::allocate`], [`prepend`](PageCache::prepend),
//! [`replace`](PageCache::replace), [`free`](PageCache::free), eviction, page-in, cleaning) is
//! a CAS on the slot from the state the caller read ([`PageView`]) to the new one. Writes go
//! reserve -> encode into the reservation -> CAS -> complete, or abort when the CAS loses, so
//! the log holds exactly the published states, in CAS order per page. Chains that leave a slot
//! are dropped through crossbeam-epoch, never while a pinned reader can hold them. Invariants
//! are listed in `node.rs` and `inner.rs`.
//!
//! ## Disk
//! A page's durable state is a base fragment plus delta fragments (at most
//! [`Config::fragment_cap`]); each fragment record is self-contained for replay
//! (`fragment.rs`). Checkpoints (`checkpointing.rs`, `checkpoint/`) save the page table while
//! running; recovery (`recovery/`) loads the newest valid one (falling back to the previous)
//! and replays the log after it. Cleaning (`cleaner.rs`) rewrites the live pages of sparse
//! segments so the log can reuse them. Eviction (`evict.rs`) keeps resident heap bytes under
//! [`Config::cache_capacity_bytes`] with a scan-resistant CLOCK.
//!
//! ## Atomic groups
//! [`PageCache::begin_group`] stages deltas on several pages (installed but invisible, each its
//! page's head, so nobody else changes those pages), then [`Group::commit`] writes them as one
//! log record and makes them visible at one instant; [`Group::abort`] (or dropping the group)
//! takes them out again. Recovery replays a group record whole or not at all (`group/`).

mod cache;
mod chain;
mod checkpoint;
mod checkpointing;
mod cleaner;
mod codec;
mod config;
mod error;
mod evict;
mod fragment;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod group;
mod inner;
mod location;
mod model;
mod node;
mod recovery;
mod stats;
mod sync;
mod view;

#[cfg(all(test, loom))]
mod loom_models;

pub use cache::PageCache;
pub use cleaner::CleanReport;
pub use config::Config;
pub use error::{Error, Result};
pub use group::Group;
pub use inner::Installed;
pub use location::{Location, MAX_FILE_BYTES, MAX_RECORD_LEN};
pub use model::PageModel;
pub use stats::{PageCacheStats, CHAIN_LEN_BUCKETS};
pub use view::{Fragment, PageView};
