//! Rough throughput numbers (not a benchmark harness; the real one belongs in `bench/`):
//! appends of 64 B / 1 KiB / 16 KiB records with 1 and 2 threads, no sync until the end,
//! against a raw sequential `write_all` loop on the same file system. Ignored by default:
//! `cargo test --release -p logstore --test throughput -- --ignored --nocapture`.

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use logstore::io::FileStorage;
use logstore::{Config, Log, Lsn};

const TOTAL_BYTES: usize = 256 << 20;

fn raw(dir: &std::path::Path, size: usize) -> f64 {
    let path = dir.join(format!("raw-{size}"));
    let mut f = std::fs::File::create(&path).unwrap();
    let buf = vec![7u8; size];
    let start = Instant::now();
    for _ in 0..TOTAL_BYTES / size {
        f.write_all(&buf).unwrap();
    }
    f.sync_data().unwrap();
    TOTAL_BYTES as f64 / start.elapsed().as_secs_f64()
}

fn log_run(dir: &std::path::Path, size: usize, threads: usize) -> (f64, f64) {
    let cfg = Config {
        flush_every_ms: None,
        ..Config::new(dir.join(format!("log-{size}-{threads}")))
    };
    let (log, _) = Log::open(cfg, Arc::new(FileStorage::new()), Lsn(0)).unwrap();
    let per_thread = TOTAL_BYTES / size / threads;
    let body = vec![7u8; size];
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            let (log, body) = (&log, &body);
            s.spawn(move || {
                for _ in 0..per_thread {
                    log.append(body).unwrap();
                }
            });
        }
    });
    log.flush().unwrap();
    let secs = start.elapsed().as_secs_f64();
    let records = (per_thread * threads) as f64;
    (records / secs, records * size as f64 / secs)
}

#[test]
#[ignore]
fn append_throughput_vs_raw_writes() {
    let dir = tempfile::tempdir_in(std::env::var("THROUGHPUT_DIR").unwrap_or_else(|_| ".".into()))
        .unwrap();
    for size in [64usize, 1024, 16 << 10] {
        let raw_bw = raw(dir.path(), size);
        for threads in [1, 2] {
            let (rps, bw) = log_run(dir.path(), size, threads);
            println!(
                "{size:>6} B x {threads} thr: {:>10.0} rec/s {:>8.1} MB/s  raw {:>8.1} MB/s  ratio {:.2}",
                rps,
                bw / 1e6,
                raw_bw / 1e6,
                bw / raw_bw
            );
        }
    }
}
