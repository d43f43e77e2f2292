//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::sync::Arc;

use logstore::io::SimStorage;
use logstore::{Config, Log, Lsn, RecoveredRecord};

/// A deterministic body for record number `i` of length `len`.
pub fn body(i: u64, len: usize) -> Vec<u8> {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The seed from `$name` or a fresh one, printed so a failure reproduces.
pub fn seed(name: &str) -> u64 {
    logstore::io::seed_from_env(name)
}

pub fn small_config() -> Config {
    Config::small("/db")
}

pub fn open_sim(sim: &SimStorage, cfg: &Config) -> (Log, Vec<RecoveredRecord>) {
    Log::open(cfg.clone(), Arc::new(sim.clone()), Lsn(0)).expect("open log")
}

pub fn bodies(recs: &[RecoveredRecord]) -> Vec<Vec<u8>> {
    recs.iter().map(|r| r.body.clone()).collect()
}

/// The first of the environment variables `names` that parses, else `default`.
pub fn env_u64(names: &[&str], default: u64) -> u64 {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok().and_then(|v| v.parse().ok()))
        .unwrap_or(default)
}

/// `LOG_STRESS_MS` (set by `sanitizers.sh --quick`): a wall-clock budget for stress loops.
pub fn stress_deadline() -> Option<std::time::Instant> {
    let ms = std::env::var("LOG_STRESS_MS").ok()?.parse().ok()?;
    Some(std::time::Instant::now() + std::time::Duration::from_millis(ms))
}

/// Whether the stress budget is spent.
pub fn past(deadline: Option<std::time::Instant>) -> bool {
    deadline.is_some_and(|d| std::time::Instant::now() > d)
}

/// Why `got` is not a valid recovery of `completed` (bodies in completion order) given that the
/// first `at_least` were acknowledged durable: it must be a prefix of `completed` at least
/// `at_least` long. `None` when it is.
#[allow(dead_code)] // not every test binary that includes `common` checks prefixes
pub fn prefix_violation<B: AsRef<[u8]>>(
    got: &[Vec<u8>],
    completed: &[B],
    at_least: usize,
) -> Option<String> {
    if got.len() > completed.len() {
        return Some(format!(
            "recovered {} records, only {} were completed",
            got.len(),
            completed.len()
        ));
    }
    if let Some(i) = (0..got.len()).find(|&i| got[i] != completed[i].as_ref()) {
        return Some(format!(
            "record {i} differs from the completed one: not a prefix"
        ));
    }
    if got.len() < at_least {
        return Some(format!(
            "recovered {} records, but {at_least} were acknowledged durable",
            got.len()
        ));
    }
    None
}
