//! SIGKILL crash test. The parent re-executes this test binary as a child (selected by the
//! `LOGSTORE_SIGKILL_CHILD` environment variable) that appends numbered records and prints the
//! highest record number it saw durable after each `flush`; the parent kills it at a random
//! moment, reopens the log, and checks: every record reported durable is recovered, and the
//! recovered records are exactly records `0..n` (a prefix of the completion order).
//!
//! Necessary but not sufficient (VERIFY.md): the kernel page cache survives SIGKILL, so this
//! cannot catch a missing fsync; the power-loss model test does. `SIGKILL_CYCLES=<n>` (or
//! `LOG_CRASH_CYCLES`, as `sanitizers.sh` sets it; default 30) and `SIGKILL_SEED=<n>`.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use logstore::io::FileStorage;
use logstore::io::SimRng;
use logstore::{Config, Log, Lsn};

const CHILD_ENV: &str = "LOGSTORE_SIGKILL_CHILD";

fn cfg(dir: &Path) -> Config {
    Config {
        flush_every_ms: Some(3),
        ..Config::small(dir)
    }
}

fn record(k: u64) -> Vec<u8> {
    let len = 8 + (k * 7919 % 1500) as usize + if k % 97 == 0 { 4000 } else { 0 };
    let mut b = body(k, len);
    b[..8].copy_from_slice(&k.to_le_bytes());
    b
}

/// The child: runs only when re-executed by the parent.
#[test]
fn sigkill_child_entry() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (log, recs) =
        Log::open(cfg(Path::new(&dir)), Arc::new(FileStorage::new()), Lsn(0)).unwrap();
    let mut k = recs.len() as u64;
    let mut out = std::io::stdout().lock();
    loop {
        for _ in 0..(k % 13 + 1) {
            log.append(&record(k)).unwrap();
            k += 1;
        }
        log.flush().unwrap();
        writeln!(out, "durable {}", k - 1).unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn sigkill_cycles_keep_a_durable_prefix() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let cycles = env_u64(&["SIGKILL_CYCLES", "LOG_CRASH_CYCLES"], 30);
    let mut rng = SimRng::new(seed("SIGKILL_SEED"));
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let exe = std::env::current_exe().unwrap();
    let mut last_count = 0usize;
    for cycle in 0..cycles {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "sigkill_child_entry",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &db)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let durable = Arc::new(Mutex::new(None::<u64>));
        let reader = {
            let durable = durable.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if let Some(n) = line.strip_prefix("durable ").and_then(|n| n.parse().ok()) {
                        *durable.lock().unwrap() = Some(n);
                    }
                }
            })
        };
        std::thread::sleep(Duration::from_millis(20 + rng.below(200)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        let durable = *durable.lock().unwrap();
        let (log, recs) = Log::open(cfg(&db), Arc::new(FileStorage::new()), Lsn(0)).unwrap();
        for (i, r) in recs.iter().enumerate() {
            assert_eq!(
                r.body,
                record(i as u64),
                "cycle {cycle}: record {i} is not the {i}th appended"
            );
        }
        if let Some(d) = durable {
            assert!(
                recs.len() as u64 > d,
                "cycle {cycle}: durable record {d} lost ({} recovered)",
                recs.len()
            );
        }
        assert!(
            recs.len() >= last_count,
            "cycle {cycle}: recovered fewer than last time"
        );
        last_count = recs.len();
        drop(log);
    }
    eprintln!("{cycles} SIGKILL cycles, {last_count} records at the end");
    assert!(last_count > 0, "the child never made progress");
}
