//! Shared by the fault, disk-full and strace tests: the workload and its model, the trace
//! checker.

#![allow(dead_code)] // Each test binary uses a different part.

pub mod strace;
pub mod workload;

/// A count from the first of `vars` that is set and parses, else `default`.
pub fn env_count(vars: &[&str], default: u64) -> u64 {
    vars.iter()
        .find_map(|v| std::env::var(v).ok()?.parse().ok())
        .unwrap_or(default)
}
