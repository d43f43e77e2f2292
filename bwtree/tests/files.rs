//! The database directory as a file-system object: one open handle per directory (in this
//! process or another, released when the holder dies), and owner-only permissions on every
//! file and directory the store creates.
//!
//! The cross-process tests re-execute this test binary as a child (selected by the
//! `BWTREE_FILES_CHILD` environment variable) that opens the database and reports on stdout.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};

use bwtree::{Config, Error};

const CHILD_ENV: &str = "BWTREE_FILES_CHILD";
/// What the child does: `hold` (open, write, flush, then wait to be killed) or `try` (open
/// once and report the outcome).
const CHILD_MODE_ENV: &str = "BWTREE_FILES_CHILD_MODE";
/// Marks the child's report: the test harness prints `test files_child_entry ... ` without a
/// newline first, so the report may share a line with it.
const REPORT: &str = "report: ";

fn small(dir: &Path) -> Config {
    Config::new()
        .path(dir)
        .node_max_entries(8)
        .consolidation_threshold(3)
        .flush_every_ms(None)
        .checkpoint_every_ms(None)
        .io_buffer_size_bytes(64 << 10)
        .segment_size_bytes(64 << 10)
}

fn assert_locked(result: bwtree::Result<bwtree::Db>, dir: &Path) {
    match result {
        Err(Error::Locked { path }) => {
            assert_eq!(path, dir);
            let msg = Error::Locked { path }.to_string();
            assert!(msg.contains("already open"), "{msg}");
        }
        Err(other) => panic!("expected Error::Locked, got {other}"),
        Ok(_) => panic!("a second open of {} succeeded", dir.display()),
    }
}

#[test]
fn a_second_open_in_the_same_process_is_refused_until_the_first_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let db = small(dir.path()).open().unwrap();
    db.insert(b"k", b"v").unwrap();
    assert_locked(small(dir.path()).open(), dir.path());
    // The refused open changed nothing: the first handle still works.
    db.insert(b"k2", b"v2").unwrap();
    // A clone is the same handle, not a second open; dropping one clone keeps the lock.
    let clone = db.clone();
    drop(db);
    assert_locked(small(dir.path()).open(), dir.path());
    drop(clone);
    let db = small(dir.path()).open().unwrap();
    assert_eq!(db.get(b"k2").unwrap().unwrap(), b"v2");
}

#[test]
fn temporary_databases_open_side_by_side() {
    let a = Config::new().temporary(true).open().unwrap();
    let b = Config::new().temporary(true).open().unwrap();
    a.insert(b"k", b"a").unwrap();
    b.insert(b"k", b"b").unwrap();
    assert_eq!(a.get(b"k").unwrap().unwrap(), b"a");
    assert_eq!(b.get(b"k").unwrap().unwrap(), b"b");
}

/// The child: runs only when re-executed by a test below.
#[test]
fn files_child_entry() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mode = std::env::var(CHILD_MODE_ENV).unwrap();
    let report = |what: String| {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{REPORT}{what}").unwrap();
        out.flush().unwrap();
    };
    match small(Path::new(&dir)).open() {
        Ok(db) if mode == "hold" => {
            db.insert(b"held", b"yes").unwrap();
            db.flush().unwrap();
            report("open".into());
            // Hold the database until the parent kills this process.
            loop {
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
        }
        Ok(_) => report("opened".into()),
        Err(Error::Locked { path }) => report(format!("locked {}", path.display())),
        Err(other) => report(format!("error {other}")),
    }
}

/// A child process that is killed if the test panics before it ends (an orphaned child would
/// hold the test's output pipe open forever).
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_child(dir: &Path, mode: &str) -> (ChildGuard, BufReader<ChildStdout>) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "files_child_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir)
        .env(CHILD_MODE_ENV, mode)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    (ChildGuard(child), out)
}

/// The child's report (the harness's own output around it is skipped).
fn child_report(out: &mut BufReader<ChildStdout>) -> String {
    let mut all = String::new();
    loop {
        let mut line = String::new();
        let read = out.read_line(&mut line).unwrap();
        assert!(read > 0, "child ended without a report; its output:\n{all}");
        if let Some((_, report)) = line.split_once(REPORT) {
            return report.trim().to_string();
        }
        all.push_str(&line);
    }
}

#[test]
fn another_process_cannot_open_a_database_this_process_holds() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = small(dir.path()).open().unwrap();
    let (mut child, mut out) = spawn_child(dir.path(), "try");
    let report = child_report(&mut out);
    assert!(child.0.wait().unwrap().success());
    assert_eq!(report, format!("locked {}", dir.path().display()));
    drop(db);
    let (mut child, mut out) = spawn_child(dir.path(), "try");
    assert_eq!(child_report(&mut out), "opened");
    assert!(child.0.wait().unwrap().success());
}

#[test]
fn a_killed_holder_releases_the_database() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (mut child, mut out) = spawn_child(dir.path(), "hold");
    assert_eq!(child_report(&mut out), "open");
    assert_locked(small(dir.path()).open(), dir.path());
    child.0.kill().unwrap(); // SIGKILL: no destructor runs, the OS drops the flock.
    child.0.wait().unwrap();
    let db = small(dir.path()).open().unwrap();
    assert_eq!(db.get(b"held").unwrap().unwrap(), b"yes");
}

/// Every file and directory under `dir` (recursively), with its permission bits.
fn modes(dir: &Path, into: &mut Vec<(std::path::PathBuf, bool, u32)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        let mode = meta.permissions().mode() & 0o777;
        into.push((entry.path(), meta.is_dir(), mode));
        if meta.is_dir() {
            modes(&entry.path(), into);
        }
    }
}

#[test]
fn every_file_and_directory_the_store_creates_is_owner_only() {
    let parent = tempfile::tempdir().unwrap();
    // Two levels the store creates itself.
    let dir = parent.path().join("nested/db");
    let cfg = small(&dir).checkpoint_every_ms(Some(2));
    let db = cfg.open().unwrap();
    for i in 0..3000u32 {
        db.insert(i.to_be_bytes(), vec![i as u8; 100]).unwrap();
        if i % 500 == 0 {
            db.flush().unwrap();
        }
    }
    db.flush().unwrap();
    drop(db);
    drop(cfg.open().unwrap()); // a restart writes checkpoints too
    let mut found = Vec::new();
    modes(parent.path(), &mut found);
    let checkpoints = found
        .iter()
        .filter(|(p, _, _)| p.to_string_lossy().contains("checkpoint-"))
        .count();
    assert!(checkpoints >= 1, "no checkpoint written: {found:?}");
    assert!(found.len() >= 5, "{found:?}");
    for (path, is_dir, mode) in &found {
        let want = if *is_dir { 0o700 } else { 0o600 };
        assert_eq!(*mode, want, "{} has mode {mode:o}", path.display());
    }
}
