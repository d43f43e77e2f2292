//! SIGKILL torture of bwtree through its public API: runs the benchmark binary's `crash` suite
//! (`src/crash/`) for a bounded number of cycles. Each cycle kills a child process writing to
//! three trees with frequent flushes, checkpoints and cleaning, and checks that the state the
//! next child recovers is the model after a prefix of the writes containing every acknowledged
//! one.
//!
//! `BWTREE_CRASH_CYCLES=<n>` (default 200) and `BWTREE_CRASH_SEED=<n>` (the workload and the
//! kill moments; where a kill lands in the child is timing and does not reproduce exactly).
//! The long form is `cargo run --release -- --suite crash --minutes <m>`.

use std::process::Command;

#[test]
fn sigkill_cycles_recover_a_prefix_with_everything_acknowledged() {
    let cycles: u64 = std::env::var("BWTREE_CRASH_CYCLES")
        .map(|v| v.parse().expect("BWTREE_CRASH_CYCLES must be a number"))
        .unwrap_or(200);
    let seed = logstore::io::seed_from_env("BWTREE_CRASH_SEED");
    let out = tempfile::tempdir().unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_bench"))
        .args(["--suite", "crash", "--cycles", &cycles.to_string()])
        .args(["--seed", &seed.to_string()])
        .arg("--out")
        .arg(out.path())
        .status()
        .unwrap();
    if !status.success() {
        // Keep the failing chain's directory (the report names it) for a look at the files.
        let kept = out.keep();
        panic!(
            "the crash suite failed ({status}): see its report above (files under {}); rerun \
             with BWTREE_CRASH_SEED={seed}",
            kept.display()
        );
    }
}
