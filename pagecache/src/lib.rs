//! # pagecache (not built yet)
//!
//! The LLAMA-style page cache between the Bw-tree and the log: logical pages are delta chains in
//! memory and fragments in the log; page-in, eviction under a byte budget, checkpoints and segment
//! cleaning. See `docs/ARCHITECTURE.md`. This crate is intentionally empty until its issue lands:
//! it exports nothing, so nothing can depend on behaviour that does not exist yet.
