//! Writes the seed corpora under `fuzz/corpus/<target>/` from real files: a small log and a
//! small database written on simulated storage, whole and sliced.
//!
//! `cargo run --release --example make_seeds` (from `fuzz/`; replaces the seed files it names).

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bwtree_fuzz::{
    db_config, log_config, DirSpec, FileKind, FileSpec, DB_DIR, DB_SEGMENT_BYTES, LOG_SEGMENT_BYTES,
};
use logstore::io::SimStorage;
use logstore::{Log, Lsn};

fn main() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let log_file = write_log();
    log_seeds(&corpus, &log_file);
    let db = write_db();
    db_seeds(&corpus, &db);
}

fn seed(corpus: &Path, target: &str, name: &str, bytes: &[u8]) {
    let dir = corpus.join(target);
    fs::create_dir_all(&dir).expect("create corpus dir");
    fs::write(dir.join(name), bytes).expect("write seed");
}

fn with_flags(flags: u8, bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![flags];
    out.extend_from_slice(bytes);
    out
}

/// A log of a few segments: small records, padding from aborted reservations, a blob record.
fn write_log() -> Vec<u8> {
    let storage = Arc::new(SimStorage::new());
    let (log, _) = Log::open(log_config(), storage.clone(), Lsn(0)).expect("open log");
    for i in 0..60u32 {
        let len = [0, 1, 17, 100, 700, 1500][i as usize % 6];
        log.append(&vec![i as u8; len]).expect("append");
        if i % 9 == 0 {
            log.reserve(40).expect("reserve").abort();
        }
    }
    log.append(&vec![7u8; 3000]).expect("blob append");
    log.flush().expect("flush");
    drop(log);
    storage
        .durable_contents(&Path::new(DB_DIR).join(logstore::DATA_FILE))
        .expect("log.dat exists")
}

fn log_seeds(corpus: &Path, file: &[u8]) {
    let seg = LOG_SEGMENT_BYTES;
    let slots = file.len().div_ceil(seg);
    for slot in 0..slots.min(6) {
        let s = &file[slot * seg..((slot + 1) * seg).min(file.len())];
        seed(corpus, "log_record", &format!("segment-{slot}"), s);
        for cut in [64, 300, 1000] {
            seed(
                corpus,
                "log_record",
                &format!("segment-{slot}-cut{cut}"),
                &s[..cut.min(s.len())],
            );
        }
        seed(
            corpus,
            "log_record",
            &format!("records-{slot}"),
            &s[32..s.len().min(2048)],
        );
        seed(
            corpus,
            "log_recovery",
            &format!("from-{slot}"),
            &with_flags((slot as u8) << 1, file),
        );
    }
    let two = &file[..(2 * seg).min(file.len())];
    for (flags, name) in [(0, "two-segments"), (1, "two-segments-fixcrc")] {
        seed(corpus, "log_recovery", name, &with_flags(flags, two));
    }
    let mut torn = two.to_vec();
    torn[seg + 500] ^= 0xff;
    seed(
        corpus,
        "log_recovery",
        "torn-second-segment",
        &with_flags(0, &torn),
    );
    for cut in [31, 4000, seg + 100] {
        seed(
            corpus,
            "log_recovery",
            &format!("cut-{cut}"),
            &with_flags(0, &file[..cut.min(file.len())]),
        );
    }
}

/// A database with the default tree and two named trees, written over two opens (so there is
/// a checkpoint and a log tail after it).
fn write_db() -> SimStorage {
    let storage = SimStorage::new();
    for round in 0..2u32 {
        let db = db_config()
            .open_on_storage(Arc::new(storage.clone()))
            .expect("open db");
        let named = db.open_tree(format!("tree-{round}")).expect("open tree");
        for i in 0..40u32 {
            let key = format!("key-{:04}", i * 7 + round);
            db.insert(&key, vec![round as u8; (i % 9) as usize * 13])
                .expect("insert");
            named.insert(&key, key.as_bytes()).expect("insert named");
            if i % 5 == 0 {
                db.remove(format!("key-{:04}", i * 3)).expect("remove");
            }
        }
        db.flush().expect("flush");
    }
    storage
}

fn db_files(storage: &SimStorage) -> Vec<FileSpec> {
    let mut files = Vec::new();
    for path in storage.files() {
        let bytes = storage.durable_contents(&path).expect("listed file");
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_owned();
        let (kind, number) = if name == logstore::DATA_FILE {
            (FileKind::Log, 0)
        } else if let Some(hex) = name.strip_prefix("checkpoint-") {
            let tmp = hex.ends_with(".tmp");
            let n = u64::from_str_radix(hex.trim_end_matches(".tmp"), 16).expect("hex name");
            (
                if tmp {
                    FileKind::CheckpointTmp
                } else {
                    FileKind::Checkpoint
                },
                n,
            )
        } else {
            (FileKind::Other, 0)
        };
        files.push(FileSpec {
            kind,
            number,
            fix_crc: false,
            bytes,
        });
    }
    files
}

fn db_seeds(corpus: &Path, storage: &SimStorage) {
    let files = db_files(storage);
    let names: Vec<PathBuf> = storage.files();
    eprintln!("database files: {names:?}");
    let whole = DirSpec {
        files: files.clone(),
    };
    seed(corpus, "open_dir", "whole", &whole.encode());
    let log: Vec<FileSpec> = files
        .iter()
        .filter(|f| f.kind == FileKind::Log)
        .cloned()
        .collect();
    seed(
        corpus,
        "open_dir",
        "log-only",
        &DirSpec { files: log.clone() }.encode(),
    );
    for f in files.iter().filter(|f| f.kind == FileKind::Checkpoint) {
        let name = format!("checkpoint-{:x}", f.number);
        seed(corpus, "checkpoint", &name, &with_flags(0, &f.bytes));
        seed(
            corpus,
            "checkpoint",
            &format!("{name}-fixcrc"),
            &with_flags(1, &f.bytes),
        );
        seed(
            corpus,
            "checkpoint",
            &format!("{name}-header"),
            &with_flags(1, &f.bytes[..48.min(f.bytes.len())]),
        );
        let only = DirSpec {
            files: vec![f.clone()],
        };
        seed(corpus, "open_dir", &format!("{name}-only"), &only.encode());
    }
    if let Some(l) = log.first() {
        for cut in [100, DB_SEGMENT_BYTES / 2, DB_SEGMENT_BYTES + 200] {
            let mut cut_files = files.clone();
            for f in cut_files.iter_mut().filter(|f| f.kind == FileKind::Log) {
                f.bytes.truncate(cut);
                f.fix_crc = true;
            }
            seed(
                corpus,
                "open_dir",
                &format!("log-cut-{cut}"),
                &DirSpec { files: cut_files }.encode(),
            );
        }
        page_seeds(corpus, &l.bytes);
    }
}

/// The page records of the database's log, as the page cache reads them.
fn page_seeds(corpus: &Path, log_file: &[u8]) {
    let storage = Arc::new(SimStorage::new());
    let mut config = logstore::Config::small(DB_DIR);
    config.segment_size_bytes = DB_SEGMENT_BYTES as u64;
    config.io_buffer_size_bytes = DB_SEGMENT_BYTES as u64;
    let path = Path::new(DB_DIR).join(logstore::DATA_FILE);
    {
        use logstore::io::Storage;
        storage.create_dir_all(Path::new(DB_DIR)).expect("mkdir");
        let f = storage.open_file(&path, true).expect("create");
        f.write_all_at(log_file, 0).expect("write");
    }
    let records =
        logstore::fuzzing::recover(&config, &storage, Lsn(0)).expect("recover the db log");
    eprintln!("database log: {} records", records.len());
    // Spread the picks over the log: early records are catalog and root pages, later ones
    // deltas, splits and group records.
    let step = (records.len() / 30).max(1);
    for (i, rec) in records.iter().enumerate().step_by(step) {
        seed(corpus, "page_record", &format!("record-{i}"), &rec.body);
    }
}
