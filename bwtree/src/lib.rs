//! # bwtree (not built yet)
//!
//! The B-link Bw-tree (delta records, consolidation, latch-free splits and merges) and the public
//! `bwtree::Db` API. See `docs/ARCHITECTURE.md`. This crate is intentionally empty until its issue
//! lands: it exports nothing, so nothing can depend on behaviour that does not exist yet.
