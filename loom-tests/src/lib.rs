//! # loom-tests: loom models of protocols that span crates
//!
//! Each model lives in `tests/` and compiles only under `--cfg loom`; see the README for the
//! command. Protocols that live inside one crate are modelled next to their code instead.
