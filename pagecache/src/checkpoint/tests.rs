//! Checkpoint files through the simulated file system: round trips, naming, retention,
//! fallback past every kind of corruption, sync discipline, and power loss at every step of a
//! write. Randomized tests print their seed; set `CHECKPOINT_SEED` to reproduce one.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use logstore::io::{
    CrashMode, DirLockGuard, Fault, FaultPlan, FaultRule, FileStorage, SimRng, SimStorage, Site,
    Storage, StorageFile,
};

use super::*;

const DIR: &str = "/db";

fn dir() -> &'static Path {
    Path::new(DIR)
}

fn seed() -> u64 {
    logstore::io::seed_from_env("CHECKPOINT_SEED")
}

/// A simulated disk holding a durable, empty database directory with the log's own files.
fn sim_with_dir() -> SimStorage {
    let sim = SimStorage::new();
    sim.create_dir_all(&dir().join("blobs")).unwrap();
    let log = sim.open_file(&dir().join("log.dat"), true).unwrap();
    log.write_all_at(b"log bytes", 0).unwrap();
    log.sync_all().unwrap();
    for d in ["/", DIR] {
        sim.sync_dir(Path::new(d)).unwrap();
    }
    sim
}

/// A checkpoint of `pages` pages with random gaps between pids and 1-4 fragments each.
fn random_checkpoint(lsn: u64, pages: u64, rng: &mut SimRng) -> Checkpoint {
    let mut next = 0;
    let pages = (0..pages)
        .map(|_| {
            let pid = Pid::new(next + rng.below(3)).unwrap();
            next = pid.get() + 1;
            let locations = (0..1 + rng.below(4))
                .map(|_| {
                    let word = (1 + rng.below(crate::MAX_RECORD_LEN)) << 39
                        | rng.below(crate::MAX_FILE_BYTES);
                    Location::from_word(word).unwrap()
                })
                .collect();
            (pid, locations)
        })
        .collect();
    Checkpoint {
        lsn: Lsn(lsn),
        next_fresh: next + rng.below(5),
        pages,
    }
}

/// A deterministic checkpoint per `(lsn, pages)`.
fn checkpoint(lsn: u64, pages: u64) -> Checkpoint {
    random_checkpoint(lsn, pages, &mut SimRng::new(lsn ^ pages << 32))
}

fn path_of(lsn: u64) -> PathBuf {
    dir().join(file_name(Lsn(lsn)))
}

fn tmp_of(lsn: u64) -> PathBuf {
    dir().join(format!("{}{TMP_SUFFIX}", file_name(Lsn(lsn))))
}

/// Names of the files directly in the database directory, sorted.
fn names(sim: &SimStorage) -> Vec<String> {
    let mut names: Vec<String> = sim
        .read_dir(dir())
        .unwrap()
        .iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

fn put(sim: &SimStorage, path: &Path, bytes: &[u8]) {
    let f = sim.open_file(path, true).unwrap();
    f.set_len(0).unwrap();
    f.write_all_at(bytes, 0).unwrap();
}

fn loaded(sim: &dyn Storage) -> Loaded {
    load(sim, dir()).unwrap().expect("a checkpoint")
}

#[test]
fn write_then_load_roundtrips_empty_and_many_pages() {
    let sim = sim_with_dir();
    for c in [checkpoint(100, 0), checkpoint(200, 5000)] {
        write(&sim, dir(), &c).unwrap();
        let l = loaded(&sim);
        assert_eq!(l.checkpoint, c);
        assert!(!l.fell_back);
        assert!(l.corrupt.is_empty());
    }
    let seed = seed();
    let mut rng = SimRng::new(seed);
    for lsn in 300..310 {
        let pages = rng.below(2000);
        let c = random_checkpoint(lsn, pages, &mut rng);
        write(&sim, dir(), &c).unwrap();
        assert_eq!(loaded(&sim).checkpoint, c, "seed {seed}, lsn {lsn}");
    }
}

#[test]
fn no_checkpoint_files_is_none() {
    let sim = SimStorage::new();
    assert!(load(&sim, dir()).unwrap().is_none(), "missing directory");
    let sim = sim_with_dir();
    assert!(load(&sim, dir()).unwrap().is_none(), "only the log's files");
    for other in [
        "checkpoint-00000000000000AB",
        "checkpoint-abc",
        "checkpoint-000000000000000001",
        "xcheckpoint-0000000000000001",
        "checkpoint-0000000000000001.tmp",
    ] {
        put(&sim, &dir().join(other), b"not a checkpoint");
    }
    assert!(load(&sim, dir()).unwrap().is_none(), "other names");
    assert_eq!(names(&sim).len(), 7, "load never changes the directory");
}

#[test]
fn names_parse_back_and_nothing_else_does() {
    for lsn in [0, 1, 0xabc, u64::MAX] {
        let name = file_name(Lsn(lsn));
        assert_eq!(name.len(), FILE_PREFIX.len() + 16);
        assert_eq!(parse_name(&name), Some(Lsn(lsn)));
        assert_eq!(parse_name(&format!("{name}{TMP_SUFFIX}")), None);
    }
    assert_eq!(file_name(Lsn(0xabc)), "checkpoint-0000000000000abc");
    for bad in [
        "checkpoint-",
        "checkpoint-+000000000000abc",
        "checkpoint-000000000000ABC0",
    ] {
        assert_eq!(parse_name(bad), None, "{bad}");
    }
}

#[test]
fn keeps_exactly_the_newest_two_and_returns_the_oldest_kept_lsn() {
    let sim = sim_with_dir();
    let mut expected_horizon = 10;
    for lsn in [10, 20, 30, 40] {
        let horizon = write(&sim, dir(), &checkpoint(lsn, 30)).unwrap();
        assert_eq!(horizon, Lsn(expected_horizon));
        expected_horizon = lsn;
    }
    let expected = [file_name(Lsn(30)), file_name(Lsn(40))];
    let mut expected = expected.to_vec();
    expected.extend(["blobs".to_owned(), "log.dat".to_owned()]);
    expected.sort();
    assert_eq!(names(&sim), expected);

    // The same LSN again replaces the newest one and keeps the previous.
    let again = checkpoint(40, 31);
    assert_eq!(write(&sim, dir(), &again).unwrap(), Lsn(30));
    assert_eq!(names(&sim), expected);
    assert_eq!(loaded(&sim).checkpoint, again);
}

#[test]
fn refuses_a_checkpoint_behind_the_newest() {
    let sim = sim_with_dir();
    write(&sim, dir(), &checkpoint(50, 3)).unwrap();
    let before = names(&sim);
    match write(&sim, dir(), &checkpoint(40, 3)) {
        Err(Error::CheckpointBehind { lsn, newest, path }) => {
            assert_eq!((lsn, newest, path), (Lsn(40), Lsn(50), path_of(50)));
        }
        other => panic!("expected CheckpointBehind, got {other:?}"),
    }
    assert_eq!(names(&sim), before);
    assert_eq!(loaded(&sim).checkpoint, checkpoint(50, 3));
}

#[test]
fn stale_tmp_files_are_ignored_then_removed() {
    let sim = sim_with_dir();
    write(&sim, dir(), &checkpoint(10, 3)).unwrap();
    put(&sim, &tmp_of(20), &encode::encode(&checkpoint(20, 3)));
    put(&sim, &tmp_of(5), b"torn");
    // A leftover under the very name the next write uses, longer than what it will write.
    put(&sim, &tmp_of(30), &vec![0xEE; 4096]);
    let l = loaded(&sim);
    assert_eq!(l.checkpoint, checkpoint(10, 3), "a .tmp is never loaded");
    assert!(!l.fell_back);

    write(&sim, dir(), &checkpoint(30, 3)).unwrap();
    assert_eq!(
        names(&sim),
        [
            "blobs".to_owned(),
            file_name(Lsn(10)),
            file_name(Lsn(30)),
            "log.dat".to_owned()
        ]
    );
    assert_eq!(loaded(&sim).checkpoint, checkpoint(30, 3));
    sim.trace().assert_all_durable();
}

/// Writes A (LSN 10) then B (LSN 20, small), returns both.
fn two_checkpoints(sim: &SimStorage) -> (Checkpoint, Checkpoint) {
    let (a, b) = (checkpoint(10, 40), checkpoint(20, 3));
    write(sim, dir(), &a).unwrap();
    write(sim, dir(), &b).unwrap();
    (a, b)
}

/// Loads `sim` and checks it fell back from a corrupt B to A.
#[track_caller]
fn assert_fell_back_to(sim: &SimStorage, a: &Checkpoint, what: &str) {
    let l = load(sim, dir()).unwrap_or_else(|e| panic!("{what}: {e}"));
    let l = l.unwrap_or_else(|| panic!("{what}: no checkpoint"));
    assert_eq!(&l.checkpoint, a, "{what}");
    assert!(l.fell_back, "{what}");
    assert_eq!(l.corrupt, [path_of(20)], "{what}");
}

#[test]
fn a_flipped_byte_anywhere_in_the_newest_falls_back_to_the_previous() {
    let sim = sim_with_dir();
    let (a, _) = two_checkpoints(&sim);
    let bytes = sim.volatile_contents(&path_of(20)).unwrap();
    for (at, byte) in bytes.iter().enumerate() {
        for mask in [0x01u8, 0x80, 0xff] {
            let copy = sim.snapshot();
            let f = copy.open_file(&path_of(20), false).unwrap();
            f.write_all_at(&[byte ^ mask], at as u64).unwrap();
            assert_fell_back_to(&copy, &a, &format!("byte {at} ^ {mask:#x}"));
        }
    }
}

#[test]
fn a_truncated_or_extended_newest_falls_back_to_the_previous() {
    let sim = sim_with_dir();
    let (a, _) = two_checkpoints(&sim);
    let len = sim.volatile_contents(&path_of(20)).unwrap().len() as u64;
    for to in (0..len).chain([len + 1, len + 4096]) {
        let copy = sim.snapshot();
        copy.open_file(&path_of(20), false)
            .unwrap()
            .set_len(to)
            .unwrap();
        assert_fell_back_to(&copy, &a, &format!("length {to} of {len}"));
    }
}

#[test]
fn a_newest_with_a_bad_version_or_wrong_lsn_falls_back_to_the_previous() {
    let sim = sim_with_dir();
    let (a, b) = two_checkpoints(&sim);
    let mut bytes = encode::encode(&b);
    bytes[VERSION_AT..CRC_AT].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    let crc = crc32c::crc32c(&bytes[CRC_FROM..]);
    bytes[CRC_AT..CRC_FROM].copy_from_slice(&crc.to_le_bytes());
    let copy = sim.snapshot();
    put(&copy, &path_of(20), &bytes);
    assert_fell_back_to(&copy, &a, "version");

    // A valid checkpoint under another LSN's name.
    let copy = sim.snapshot();
    put(&copy, &path_of(20), &encode::encode(&checkpoint(15, 3)));
    assert_fell_back_to(&copy, &a, "name and header disagree");
}

#[test]
fn all_checkpoints_corrupt_is_an_error_not_an_empty_start() {
    let sim = sim_with_dir();
    two_checkpoints(&sim);
    for lsn in [10, 20] {
        let f = sim.open_file(&path_of(lsn), false).unwrap();
        f.write_all_at(b"XXXX", 20).unwrap();
    }
    match load(&sim, dir()) {
        Err(Error::Corruption { what, path, .. }) => {
            assert_eq!(path, dir());
            assert!(what.contains(&file_name(Lsn(10))), "{what}");
            assert!(what.contains(&file_name(Lsn(20))), "{what}");
            assert!(what.contains("CRC"), "{what}");
        }
        other => panic!("expected Corruption, got {other:?}"),
    }
    let sim = sim_with_dir();
    put(&sim, &path_of(7), b"");
    assert!(matches!(load(&sim, dir()), Err(Error::Corruption { .. })));
}

#[test]
fn write_leaves_the_new_file_and_its_entry_durable() {
    let sim = sim_with_dir();
    put(&sim, &tmp_of(1), b"stale");
    for lsn in [10, 20, 30] {
        let c = checkpoint(lsn, 100);
        write(&sim, dir(), &c).unwrap();
        sim.trace().assert_all_durable();
        assert_eq!(
            sim.durable_contents(&path_of(lsn)),
            Some(encode::encode(&c))
        );
        assert_eq!(sim.durable_contents(&tmp_of(lsn)), None);
        assert_eq!(sim.durable_contents(&tmp_of(1)), None);
    }
    assert_eq!(sim.durable_contents(&path_of(10)), None, "retired for good");
    sim.crash(0, CrashMode::DROP_UNSYNCED);
    assert_eq!(loaded(&sim).checkpoint, checkpoint(30, 100));
}

#[test]
fn io_errors_are_reported_as_log_io_errors() {
    let sim = sim_with_dir();
    write(&sim, dir(), &checkpoint(10, 3)).unwrap();
    sim.set_fault_plan(Some(FaultPlan::new(1).rule(FaultRule::nth(
        Site::SyncAll,
        1,
        Fault::Eio,
    ))));
    match write(&sim, dir(), &checkpoint(20, 3)) {
        Err(e @ Error::Log(logstore::Error::Io { op, .. })) => {
            assert_eq!(op, "fsync checkpoint file");
            assert!(
                e.to_string().contains("checkpoint-0000000000000014.tmp"),
                "{e}"
            );
        }
        other => panic!("expected an I/O error, got {other:?}"),
    }
    assert_eq!(loaded(&sim).checkpoint, checkpoint(10, 3), "never renamed");
    sim.set_fault_plan(Some(FaultPlan::new(1).rule(FaultRule::nth(
        Site::Read,
        1,
        Fault::Eio,
    ))));
    assert!(matches!(
        load(&sim, dir()),
        Err(Error::Log(logstore::Error::Io { .. }))
    ));
}

/// A process that dies after `budget` more changes to storage: every later change fails
/// without effect. Reads pass (they change nothing a crash could expose).
#[derive(Debug)]
struct DiesAfter {
    sim: SimStorage,
    budget: Arc<Mutex<u64>>,
}

#[derive(Debug)]
struct DyingFile {
    inner: Arc<dyn StorageFile>,
    budget: Arc<Mutex<u64>>,
}

fn step(budget: &Mutex<u64>) -> io::Result<()> {
    let mut left = budget.lock().unwrap_or_else(PoisonError::into_inner);
    if *left == 0 {
        return Err(io::Error::other("simulated process death"));
    }
    *left -= 1;
    Ok(())
}

impl Storage for DiesAfter {
    fn open_file(&self, path: &Path, create: bool) -> io::Result<Arc<dyn StorageFile>> {
        if create {
            step(&self.budget)?;
        }
        Ok(Arc::new(DyingFile {
            inner: self.sim.open_file(path, create)?,
            budget: Arc::clone(&self.budget),
        }))
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        step(&self.budget)?;
        self.sim.create_dir_all(path)
    }
    fn read_dir(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        self.sim.read_dir(dir)
    }
    fn exists(&self, path: &Path) -> io::Result<bool> {
        self.sim.exists(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        step(&self.budget)?;
        self.sim.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        step(&self.budget)?;
        self.sim.remove_file(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        step(&self.budget)?;
        self.sim.sync_dir(dir)
    }
    fn lock_dir(&self, dir: &Path) -> io::Result<Box<dyn DirLockGuard>> {
        self.sim.lock_dir(dir)
    }
}

impl StorageFile for DyingFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.inner.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        step(&self.budget)?;
        self.inner.write_at(buf, offset)
    }
    fn sync_data(&self) -> io::Result<()> {
        step(&self.budget)?;
        self.inner.sync_data()
    }
    fn sync_all(&self) -> io::Result<()> {
        step(&self.budget)?;
        self.inner.sync_all()
    }
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        step(&self.budget)?;
        self.inner.set_len(len)
    }
}

/// Runs `write(new)` on a copy of `base` whose process dies after `budget` storage changes.
/// Returns the copy and whether the write returned `Ok`.
fn write_dying(base: &SimStorage, new: &Checkpoint, budget: u64) -> (SimStorage, bool, u64) {
    let sim = base.snapshot();
    let dying = DiesAfter {
        sim: sim.clone(),
        budget: Arc::new(Mutex::new(budget)),
    };
    let ok = write(&dying, dir(), new).is_ok();
    let left = *dying.budget.lock().unwrap();
    (sim, ok, budget - left)
}

#[test]
fn power_loss_at_every_step_of_a_write_keeps_the_new_or_the_previous_checkpoint() {
    let seed = seed();
    let base = sim_with_dir();
    let (_, b) = two_checkpoints(&base);
    put(&base, &tmp_of(5), b"stale leftover");
    // Multi-sector, so torn writes have something to tear.
    let new = checkpoint(300, 300);
    let (_, ok, steps) = write_dying(&base, &new, u64::MAX);
    assert!(ok);
    let modes = [
        CrashMode::DROP_UNSYNCED,
        CrashMode::RANDOM_WRITES,
        CrashMode::TORN,
        CrashMode::CHAOS,
    ];
    let mut rng = SimRng::new(seed);
    for budget in 0..=steps {
        for mode in modes {
            for _ in 0..6 {
                let crash_seed = rng.next_u64();
                let ctx = format!("seed {seed}, crash seed {crash_seed}, {budget} steps, {mode:?}");
                let (sim, finished, _) = write_dying(&base, &new, budget);
                assert_eq!(finished, budget == steps, "{ctx}");
                sim.crash(crash_seed, mode);
                let l = load(&sim, dir())
                    .unwrap_or_else(|e| panic!("{ctx}: {e}"))
                    .unwrap_or_else(|| panic!("{ctx}: no checkpoint"));
                assert!(l.checkpoint == new || l.checkpoint == b, "{ctx}: garbage");
                assert!(
                    !l.fell_back && l.corrupt.is_empty(),
                    "{ctx}: {:?}",
                    l.corrupt
                );
                if finished {
                    assert_eq!(l.checkpoint, new, "{ctx}: acknowledged write lost");
                }
                // The restarted process writes the same checkpoint again, cleanly.
                assert_eq!(write(&sim, dir(), &new).unwrap(), b.lsn, "{ctx}");
                assert_eq!(loaded(&sim).checkpoint, new, "{ctx}");
                let mut expected = vec![
                    "blobs".to_owned(),
                    file_name(b.lsn),
                    file_name(new.lsn),
                    "log.dat".to_owned(),
                ];
                expected.sort();
                assert_eq!(names(&sim), expected, "{ctx}");
                sim.trace().assert_all_durable();
            }
        }
    }
}

/// Timing for the report, not a test of speed: run with
/// `cargo test --release -p pagecache -- --ignored --nocapture million`.
#[test]
#[ignore]
fn million_page_checkpoint_timing() {
    let mut rng = SimRng::new(1);
    let c = Checkpoint {
        lsn: Lsn(1 << 30),
        next_fresh: 1_000_000,
        pages: (0..1_000_000)
            .map(|i| {
                let word = (1 + rng.below(4096)) << 40 | rng.below(1 << 39);
                (
                    Pid::new(i).unwrap(),
                    vec![Location::from_word(word).unwrap()],
                )
            })
            .collect(),
    };
    let t = std::time::Instant::now();
    let bytes = encode::encode(&c);
    let encoded = t.elapsed();
    let t = std::time::Instant::now();
    let back = decode::decode(&bytes).unwrap();
    let decoded = t.elapsed();
    assert_eq!(back, c);

    let tmp = tempfile::tempdir().unwrap();
    let fs = FileStorage::new();
    let t = std::time::Instant::now();
    write(&fs, tmp.path(), &c).unwrap();
    let written = t.elapsed();
    let t = std::time::Instant::now();
    let l = load(&fs, tmp.path()).unwrap().unwrap();
    let loaded = t.elapsed();
    assert_eq!(l.checkpoint, c);
    eprintln!(
        "1M pages, {} bytes: encode {encoded:?}, decode {decoded:?}, write (incl. fsyncs) \
         {written:?}, load {loaded:?}",
        bytes.len()
    );
}
