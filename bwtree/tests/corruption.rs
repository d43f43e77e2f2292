//! Damaged files of a closed database. A seeded workload builds a database (two sessions, so
//! two checkpoints exist), flushes and closes it and records the model; then every case damages
//! a copy of the directory in one way (bit flips, truncation, a zeroed range, two data-file
//! segments swapped, a checkpoint deleted or garbled), opens it, reads every key, scans,
//! closes, opens again and reads again.
//!
//! What is acceptable, given that the database was flushed and closed cleanly (nothing was in
//! flight, so no damage can be explained as a torn tail):
//! - the open fails with `Error::Corruption` naming a file of the database directory;
//! - or it opens, and every read returns exactly the model's value or an `Err`; a scan returns
//!   only model entries (with the model's values) until it ends or errs, and a scan that ends
//!   without an error returns the whole model. A missing key, a resurrected key or a different
//!   value is silent data loss and fails the case. A damaged newest checkpoint may be replaced
//!   by the older one plus replay: that must give the model exactly, too.
//!
//! Never acceptable: a panic (each case runs under `catch_unwind`), any other error kind at
//! open, or an allocation larger than [`MAX_ALLOCATION`] (a counting global allocator records
//! the largest request of each case: a length field read from damaged bytes must be validated
//! before it sizes an allocation).
//!
//! `BWTREE_CORRUPTION_CASES=<n>` (default 200) and `BWTREE_CORRUPTION_SEED=<n>`; a failure
//! prints its case seed, and `BWTREE_CORRUPTION_CASE=<seed>` runs that one case.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use bwtree::{Config, Db, Error};
use logstore::io::SimRng;

const SEGMENT_BYTES: u64 = 64 << 10;
/// Far above anything the small configuration needs (64 KiB buffers, files of a few hundred
/// KiB), far below what a garbage length would ask for.
const MAX_ALLOCATION: usize = 32 << 20;

/// The system allocator, recording the largest single request.
struct MaxRequest;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to `System`, which upholds the contract; the only
// addition is a statistic.
unsafe impl GlobalAlloc for MaxRequest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // Relaxed: a statistic read by the same thread after the case, no ordering needed.
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded with the caller's layout, as `GlobalAlloc::alloc` requires.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout` (every allocation goes there).
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: as in `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: `ptr` came from `System` with `layout`; the caller upholds the rest.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: MaxRequest = MaxRequest;

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

fn config(dir: &Path) -> Config {
    Config::new()
        .path(dir)
        .node_max_entries(8)
        .consolidation_threshold(3)
        .flush_every_ms(None)
        .checkpoint_every_ms(None)
        .cache_capacity_bytes(64 << 10)
        .io_buffer_size_bytes(SEGMENT_BYTES)
        .segment_size_bytes(SEGMENT_BYTES as usize)
}

/// Two sessions of seeded inserts, overwrites and removes; returns the model.
fn build(dir: &Path, seed: u64) -> Model {
    let mut rng = SimRng::new(seed);
    let mut model = Model::new();
    for _session in 0..2 {
        let db = config(dir).open().unwrap();
        for _ in 0..1500 {
            let key = (rng.below(600) as u32).to_be_bytes().to_vec();
            if rng.chance(0.2) {
                db.remove(&key).unwrap();
                model.remove(&key);
            } else {
                let len = 1 + rng.below(200) as usize;
                let value = vec![rng.below(256) as u8; len];
                db.insert(&key, value.clone()).unwrap();
                model.insert(key, value);
            }
        }
        db.flush().unwrap();
    }
    model
}

/// One way to damage a copy of the database.
#[derive(Debug)]
enum Damage {
    FlipBits {
        file: PathBuf,
        bits: Vec<u64>,
    },
    Truncate {
        file: PathBuf,
        len: u64,
    },
    Zero {
        file: PathBuf,
        at: u64,
        len: u64,
    },
    SwapSegments {
        a: u64,
        b: u64,
    },
    DeleteCheckpoint {
        file: PathBuf,
    },
    GarbleCheckpoint {
        file: PathBuf,
        at: u64,
        bytes: Vec<u8>,
    },
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path));
        } else if std::fs::metadata(&path).unwrap().len() > 0 {
            out.push(path);
        }
    }
    out.sort();
    out
}

fn relative(dir: &Path, path: &Path) -> PathBuf {
    path.strip_prefix(dir).unwrap().to_path_buf()
}

fn pick_damage(dir: &Path, rng: &mut SimRng) -> Damage {
    let all = files(dir);
    let checkpoints: Vec<_> = all
        .iter()
        .filter(|p| p.to_string_lossy().contains("checkpoint-"))
        .cloned()
        .collect();
    assert!(checkpoints.len() >= 2, "two sessions leave two checkpoints");
    let pick = |rng: &mut SimRng, v: &[PathBuf]| v[rng.below(v.len() as u64) as usize].clone();
    let len_of = |p: &Path| std::fs::metadata(p).unwrap().len();
    match rng.below(6) {
        0 => {
            let file = pick(rng, &all);
            let n = 1 + rng.below(8);
            let bits = (0..n).map(|_| rng.below(len_of(&file) * 8)).collect();
            Damage::FlipBits { file, bits }
        }
        1 => {
            let file = pick(rng, &all);
            let len = rng.below(len_of(&file));
            Damage::Truncate { file, len }
        }
        2 => {
            let file = pick(rng, &all);
            let at = rng.below(len_of(&file));
            let len = 1 + rng.below(4096);
            Damage::Zero { file, at, len }
        }
        3 => {
            let slots = len_of(&dir.join(logstore::DATA_FILE)) / SEGMENT_BYTES;
            assert!(slots >= 2, "the workload fills several segments");
            let a = rng.below(slots);
            let b = (a + 1 + rng.below(slots - 1)) % slots;
            Damage::SwapSegments { a, b }
        }
        4 => Damage::DeleteCheckpoint {
            file: pick(rng, &checkpoints),
        },
        _ => {
            let file = pick(rng, &checkpoints);
            let at = rng.below(len_of(&file));
            let bytes = (0..1 + rng.below(64))
                .map(|_| rng.below(256) as u8)
                .collect();
            Damage::GarbleCheckpoint { file, at, bytes }
        }
    }
    .relative_to(dir)
}

impl Damage {
    fn relative_to(self, dir: &Path) -> Damage {
        match self {
            Damage::FlipBits { file, bits } => Damage::FlipBits {
                file: relative(dir, &file),
                bits,
            },
            Damage::Truncate { file, len } => Damage::Truncate {
                file: relative(dir, &file),
                len,
            },
            Damage::Zero { file, at, len } => Damage::Zero {
                file: relative(dir, &file),
                at,
                len,
            },
            Damage::DeleteCheckpoint { file } => Damage::DeleteCheckpoint {
                file: relative(dir, &file),
            },
            Damage::GarbleCheckpoint { file, at, bytes } => Damage::GarbleCheckpoint {
                file: relative(dir, &file),
                at,
                bytes,
            },
            swap @ Damage::SwapSegments { .. } => swap,
        }
    }

    fn apply(&self, dir: &Path) {
        let edit = |file: &Path, f: &mut dyn FnMut(&mut Vec<u8>)| {
            let path = dir.join(file);
            let mut bytes = std::fs::read(&path).unwrap();
            f(&mut bytes);
            std::fs::write(&path, bytes).unwrap();
        };
        match self {
            Damage::FlipBits { file, bits } => edit(file, &mut |b| {
                for &bit in bits {
                    b[(bit / 8) as usize] ^= 1 << (bit % 8);
                }
            }),
            Damage::Truncate { file, len } => edit(file, &mut |b| b.truncate(*len as usize)),
            Damage::Zero { file, at, len } => edit(file, &mut |b| {
                let end = (at + len).min(b.len() as u64) as usize;
                b[*at as usize..end].fill(0);
            }),
            Damage::SwapSegments { a, b } => edit(Path::new(logstore::DATA_FILE), &mut |d| {
                let seg = SEGMENT_BYTES as usize;
                let (a, b) = (*a as usize * seg, *b as usize * seg);
                let copy = d[a..a + seg].to_vec();
                d.copy_within(b..b + seg, a);
                d[b..b + seg].copy_from_slice(&copy);
            }),
            Damage::DeleteCheckpoint { file } => std::fs::remove_file(dir.join(file)).unwrap(),
            Damage::GarbleCheckpoint { file, at, bytes } => edit(file, &mut |b| {
                for (i, &x) in bytes.iter().enumerate() {
                    if let Some(slot) = b.get_mut(*at as usize + i) {
                        *slot = x;
                    }
                }
            }),
        }
    }
}

/// What one open-and-read pass saw.
#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    refused: bool,
    read_errors: usize,
}

/// Checks a corruption error names a file of the database (or the directory itself, when no
/// checkpoint is valid), and a byte offset when it blames the data file.
fn check_corruption(err: &Error, dir: &Path) -> Result<(), String> {
    let Error::Corruption { at, what } = err else {
        return Err(format!("wrong error: {err:?}"));
    };
    if !at.starts_with(&*dir.to_string_lossy()) {
        return Err(format!(
            "corruption not located in the database: {at} ({what})"
        ));
    }
    if at.contains(logstore::DATA_FILE) && !at.contains(" at byte ") {
        return Err(format!(
            "data file corruption without an offset: {at} ({what})"
        ));
    }
    Ok(())
}

/// Opens the damaged copy and checks every read against the model.
fn open_and_read(dir: &Path, model: &Model) -> Result<Seen, String> {
    let db: Db = match config(dir).open() {
        Ok(db) => db,
        Err(e) => {
            check_corruption(&e, dir).map_err(|why| format!("open failed: {why}"))?;
            return Ok(Seen {
                refused: true,
                read_errors: 0,
            });
        }
    };
    let mut seen = Seen::default();
    for (key, want) in model {
        match db.get(key) {
            Ok(Some(got)) if got == want[..] => {}
            Ok(got) => return Err(format!("key {key:?}: read {got:?}, model has {want:?}")),
            Err(_) => seen.read_errors += 1,
        }
    }
    let mut scanned = 0;
    for item in db.iter() {
        let Ok((k, v)) = item else {
            seen.read_errors += 1;
            break;
        };
        match model.get(&k[..]) {
            Some(want) if v == want[..] => scanned += 1,
            want => return Err(format!("scan: key {k:?} = {v:?}, model has {want:?}")),
        }
    }
    if seen.read_errors == 0 && scanned != model.len() {
        return Err(format!("scan returned {scanned} of {} keys", model.len()));
    }
    // `len` walks the same leaves: a page the scan could not read must make it fail too,
    // never return a short count.
    match db.len() {
        Ok(n) if n == model.len() => {}
        Ok(n) => return Err(format!("len {n}, model has {} keys", model.len())),
        Err(e) if seen.read_errors > 0 => drop(e),
        Err(e) => return Err(format!("len failed ({e}) where the scan did not")),
    }
    drop(db);
    Ok(seen)
}

/// Runs one case; `Err` describes the failure.
fn run_case(pristine: &Path, model: &Model, seed: u64) -> Result<(Damage, Seen), String> {
    let copy = tempfile::tempdir().unwrap();
    let dir = copy.path().join("db");
    copy_dir(pristine, &dir);
    let mut rng = SimRng::new(seed);
    let damage = pick_damage(&dir, &mut rng);
    damage.apply(&dir);
    LARGEST.store(0, Ordering::Relaxed);
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let first = open_and_read(&dir, model)?;
        // The first open may repair (fall back, cut a tail, rewrite checkpoints): what it left
        // must still be the model or refused.
        let second = open_and_read(&dir, model).map_err(|e| format!("second open: {e}"))?;
        Ok::<_, String>(Seen {
            refused: first.refused && second.refused,
            read_errors: first.read_errors + second.read_errors,
        })
    }));
    let largest = LARGEST.load(Ordering::Relaxed);
    let result = match outcome {
        Ok(r) => r,
        Err(panic) => Err(format!("panicked: {}", panic_text(&panic))),
    };
    let result = result.and_then(|seen| {
        if largest > MAX_ALLOCATION {
            Err(format!("allocated {largest} bytes at once"))
        } else {
            Ok(seen)
        }
    });
    match result {
        Ok(seen) => Ok((damage, seen)),
        Err(why) => Err(format!("case {seed} ({damage:?}): {why}")),
    }
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

fn env_u64(var: &str) -> Option<u64> {
    std::env::var(var).ok().map(|v| v.parse().unwrap())
}

#[test]
fn damaged_files_give_the_model_or_a_corruption_error_never_wrong_data() {
    let seed = logstore::io::seed_from_env("BWTREE_CORRUPTION_SEED");
    let cases = env_u64("BWTREE_CORRUPTION_CASES").unwrap_or(200);
    let pristine = tempfile::tempdir().unwrap();
    let model = build(pristine.path(), seed);
    let case_seeds: Vec<u64> = match env_u64("BWTREE_CORRUPTION_CASE") {
        Some(one) => vec![one],
        None => {
            let mut rng = SimRng::new(seed);
            (0..cases).map(|_| rng.next_u64()).collect()
        }
    };
    let mut failures = Vec::new();
    let (mut refused, mut read_errors, mut clean) = (0, 0, 0);
    for &case in &case_seeds {
        match run_case(pristine.path(), &model, case) {
            Ok((_, seen)) if seen.refused => refused += 1,
            Ok((_, seen)) if seen.read_errors > 0 => read_errors += 1,
            Ok(_) => clean += 1,
            Err(why) => failures.push(why),
        }
    }
    eprintln!(
        "{} cases over {} keys: {refused} refused at open, {read_errors} opened with read \
         errors, {clean} read back exactly, {} failed",
        case_seeds.len(),
        model.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "seed BWTREE_CORRUPTION_SEED={seed}:\n{}",
        failures.join("\n")
    );
}

/// Regression: a page location that names no record any more (here: the data file cut to one
/// segment, so the slots the checkpoint points into are gone) was reported as the log's
/// `StalePointer`, which the tree surfaced as `Unsupported`. The page cache now reports it as
/// corruption of the data file at the page's offset.
#[test]
fn a_truncated_data_file_is_corruption_at_an_offset() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path(), 7);
    let data = dir.path().join(logstore::DATA_FILE);
    let file = std::fs::OpenOptions::new().write(true).open(&data).unwrap();
    file.set_len(SEGMENT_BYTES).unwrap();
    drop(file);
    let err = config(dir.path()).open().expect_err("open must fail");
    check_corruption(&err, dir.path()).unwrap();
    let Error::Corruption { at, .. } = &err else {
        unreachable!("checked above")
    };
    assert!(at.starts_with(&*data.to_string_lossy()), "{err}");
}
