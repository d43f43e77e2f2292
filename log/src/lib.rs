//! # logstore: the log-structured store under bwtree (in progress)
//!
//! Everything bwtree persists is a record in this log. So far this crate holds the I/O seam
//! ([`io`]); the reservation protocol, segments and recovery land with their issue.

pub mod io;
