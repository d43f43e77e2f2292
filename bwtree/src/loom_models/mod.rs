//! Loom models of the tree's latch-free protocols on a whole [`Db`](crate::Db) opened inside
//! the model: two threads race on a tiny, pre-populated tree, then the main thread checks the
//! structure (fences, sibling links, parent entries: `harness::check_structure`), a full scan
//! and every key.
//!
//! The database runs on the log's simulated storage with no background threads: under loom
//! the log starts no I/O writer or flusher (durability waiters write buffers themselves) and
//! the page cache no checkpoint/cleaning thread. Loom then explores every interleaving of the
//! modelled atomics within the preemption bound: the radix slot words every page CAS goes
//! through, the log buffer words every write reserves on, and crossbeam-epoch.
//!
//! - `split`: a leaf split (and its index entry) racing an insert into the same leaf;
//! - `merge`: a leaf merged into its left sibling while another thread reads and scans;
//! - `merge_post`: a half-done split's right half merged back while a reader posts its
//!   index entry from a header read before;
//! - `consolidation`: consolidation racing a prepend on the same page;
//! - `cas`: compare-and-swap increments of one counter from two threads.
//!
//! Run: `RUSTFLAGS="--cfg loom --cfg crossbeam_loom --cfg crossbeam_sanitize"
//! LOOM_MAX_PREEMPTIONS=2 cargo test --release -p bwtree --lib loom_models`.

mod cas;
mod consolidation;
mod harness;
mod merge;
mod merge_post;
mod split;
