//! Durability discipline through the real file system, seen by `strace`.
//!
//! The simulated storage checks the log's sync discipline from the inside (its trace); this
//! checks what the operating system actually received. The test re-executes its own binary
//! under `strace -f -y` as a child that runs a tree workload on real files (inserts, atomic
//! batches, flushes, checkpoints: new file, rename, removal of the old one; segment cleaning;
//! file growth; three sessions, so reopening too) and writes an acknowledgement line to stdout
//! after each `open`, `flush` and `checkpoint` returns. The parent parses the trace and checks,
//! at every acknowledgement, that every file written before it was `fsync`/`fdatasync`ed
//! after its last write and before the acknowledgement, and every directory whose entries
//! changed was `fsync`ed (`common/strace.rs`; `sync_file_range` does not count).
//!
//! Needs `strace` (set `STRACE=<path>` or put it on `PATH`) and permission to ptrace a child;
//! without either the test fails and says so (`.ci/run` installs strace when it is missing).

mod common;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use bwtree::{Batch, Config};
use common::strace::{check, parse, ACK, TRACED};
use logstore::io::SimRng;

/// Set for the traced child: the directory to work in.
const CHILD_ENV: &str = "BWTREE_STRACE_CHILD_DIR";
/// Sessions x rounds of the child's workload.
const SESSIONS: u64 = 3;
const ROUNDS: u64 = 12;

fn ack(what: &str) {
    let mut out = std::io::stdout().lock();
    // One `write` on fd 1, right after the call it acknowledges returned.
    writeln!(out, "{ACK} {what}").expect("stdout");
    out.flush().expect("stdout");
}

fn child_config(path: &Path) -> Config {
    Config::new()
        .path(path)
        .node_max_entries(8)
        .cache_capacity_bytes(64 << 10)
        .flush_every_ms(None)
        .checkpoint_every_ms(None)
        .clean_every_ms(None)
        .segment_size_bytes(16 << 10)
        .io_buffer_size_bytes(16 << 10)
}

fn insert_some(tree: &bwtree::Tree, rng: &mut SimRng, n: u64) {
    for _ in 0..n {
        let key = rng.below(3000).to_be_bytes();
        let value = vec![rng.below(256) as u8; rng.below(300) as usize];
        tree.insert(key, value).expect("insert");
    }
}

/// The traced workload. Runs only as the child (the variable is unset in a normal test run).
#[test]
fn strace_child_workload() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let cfg = child_config(&PathBuf::from(dir).join("db"));
    let mut rng = SimRng::new(42);
    for session in 0..SESSIONS {
        let db = cfg.open().expect("open");
        ack(&format!("open {session}"));
        let tree = db.open_tree("second").expect("open tree");
        for round in 0..ROUNDS {
            insert_some(&db, &mut rng, 40);
            insert_some(&tree, &mut rng, 10);
            if round % 3 == 1 {
                let mut batch = Batch::default();
                for i in 0..20u64 {
                    match rng.below(3) {
                        0 => batch.remove(i.to_be_bytes()),
                        _ => batch.insert(i.to_be_bytes(), [round as u8; 40]),
                    }
                }
                db.apply_batch(batch).expect("batch");
            }
            db.flush().expect("flush");
            ack("flush");
            match round % 4 {
                1 => {
                    db.clean().expect("clean");
                    db.flush().expect("flush after cleaning");
                    ack("flush after cleaning");
                }
                3 => {
                    db.checkpoint().expect("checkpoint");
                    ack("checkpoint");
                }
                _ => {}
            }
        }
    }
}

fn find_strace() -> PathBuf {
    if let Some(p) = std::env::var_os("STRACE") {
        return PathBuf::from(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("strace"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "strace is not installed: this test checks fsync discipline through the real \
                 file system and needs it (Debian/Ubuntu: apt-get install strace; or set \
                 STRACE=<path>)"
            )
        })
}

#[test]
fn every_acknowledgement_follows_fsyncs_of_everything_it_covers() {
    let strace = find_strace();
    let dir = tempfile::tempdir().expect("temp dir");
    let (work, trace) = (dir.path().join("work"), dir.path().join("trace"));
    std::fs::create_dir(&work).expect("work dir");
    let started = Instant::now();
    let out = Command::new(&strace)
        .args(["-f", "-y", "-qq", "-s", "48", "-e"])
        .arg(format!("trace={TRACED}"))
        .arg("-o")
        .arg(&trace)
        .arg(std::env::current_exe().expect("test binary"))
        .args(["--exact", "strace_child_workload", "--nocapture"])
        .env(CHILD_ENV, &work)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", strace.display()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the traced child failed ({}); if strace says ptrace is not permitted, run where it is \
         (e.g. docker --cap-add SYS_PTRACE):\n{stderr}",
        out.status
    );
    let printed = String::from_utf8_lossy(&out.stdout).matches(ACK).count();
    let text = std::fs::read_to_string(&trace).expect("trace file");
    let calls = parse(&text);
    let count = |names: &[&str]| calls.iter().filter(|c| names.contains(&&*c.name)).count();
    let syncs = count(&["fsync", "fdatasync"]);
    let renames = count(&["rename", "renameat", "renameat2"]);
    let unlinks = count(&["unlink", "unlinkat"]);
    let resizes = count(&["ftruncate", "fallocate"]);
    let acks = check(&calls, &work).unwrap_or_else(|violations| {
        panic!(
            "{} durability violations in {} ({} calls):\n{}",
            violations.len(),
            trace.display(),
            calls.len(),
            violations.join("\n")
        )
    });
    println!(
        "strace: {acks} acknowledgements checked, {} traced calls ({syncs} fsync/fdatasync, \
         {renames} renames, {unlinks} unlinks, {resizes} resizes) in {:.1?}",
        calls.len(),
        started.elapsed()
    );
    let expected = (SESSIONS * (1 + ROUNDS + ROUNDS / 2)) as usize;
    assert_eq!(printed, expected, "the child printed every acknowledgement");
    assert_eq!(
        acks, expected,
        "every printed acknowledgement was found in the trace"
    );
    assert!(
        renames > 0 && unlinks > 0,
        "checkpoints renamed and removed files"
    );
}

/// The checker itself, on a hand-written trace: an interleaved (unfinished/resumed) write, a
/// sync that started before the write completed, a rename carrying unsynced data, and an
/// acknowledgement with a directory change still unsynced.
#[test]
fn the_checker_flags_what_is_not_durable_at_an_acknowledgement() {
    let trace = r#"7 openat(AT_FDCWD</w>, "/w/db/a.tmp", O_RDWR|O_CREAT|O_CLOEXEC, 0644) = 3</w/db/a.tmp>
7 fsync(4</w/db>) = 0
7 write(1</dev/null>, "BWTREE-ACK one\n", 15) = 15
8 pwrite64(3</w/db/a.tmp>, "x", 1, 0 <unfinished ...>
7 fdatasync(3</w/db/a.tmp> <unfinished ...>
8 <... pwrite64 resumed>) = 1
7 <... fdatasync resumed>) = 0
7 rename("/w/db/a.tmp", "/w/db/a") = 0
7 fsync(4</w/db>) = 0
7 write(1</dev/null>, "BWTREE-ACK two\n", 15) = 15
7 fdatasync(3</w/db/a>) = 0
7 unlink("/w/db/old") = 0
7 sync_file_range(5</w/db>, 0, 0, 0) = 0
7 write(1</dev/null>, "BWTREE-ACK three\n", 17) = 17
7 fsync(5</w/db>) = 0
7 write(1</dev/null>, "BWTREE-ACK four\n", 16) = 16
"#;
    let calls = parse(trace);
    assert_eq!(
        calls.len(),
        14,
        "two unfinished calls merge with their resumptions"
    );
    let violations =
        check(&calls, Path::new("/w")).expect_err("two acknowledgements break the rule");
    assert_eq!(violations.len(), 2, "{violations:#?}");
    assert!(violations[0].contains("#2") && violations[0].contains("file data /w/db/a "));
    assert!(violations[1].contains("#3") && violations[1].contains("directory /w/db "));
    // The same with the sync started after the write completed: only the unlink is left.
    let interleaved = "8 pwrite64(3</w/db/a.tmp>, \"x\", 1, 0 <unfinished ...>\n\
        7 fdatasync(3</w/db/a.tmp> <unfinished ...>\n\
        8 <... pwrite64 resumed>) = 1\n\
        7 <... fdatasync resumed>) = 0\n";
    let in_order = "8 pwrite64(3</w/db/a.tmp>, \"x\", 1, 0) = 1\n\
        7 fdatasync(3</w/db/a.tmp>) = 0\n";
    assert!(trace.contains(interleaved));
    let synced_first = trace.replace(interleaved, in_order);
    let violations = check(&parse(&synced_first), Path::new("/w")).expect_err("the unlink");
    assert_eq!(violations.len(), 1, "{violations:#?}");
}
