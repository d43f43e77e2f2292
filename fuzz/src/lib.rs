//! Shared harness code of the fuzz targets: the structured input of `open_dir` (a few files
//! of a database directory) and how it is written into simulated storage, the recovery scan
//! driver of `log_recovery`, and the fixed configurations the seed corpora were made with.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arbitrary::{Arbitrary, Unstructured};
use logstore::io::{SimStorage, Storage};
use logstore::Lsn;

/// Where the database (and its log) lives in the simulated storage.
pub const DB_DIR: &str = "/db";

/// Segment size of the `log_recovery` log (`logstore::Config::small`).
pub const LOG_SEGMENT_BYTES: usize = 8 << 10;

/// Segment size of the `open_dir` database.
pub const DB_SEGMENT_BYTES: usize = 16 << 10;

/// At most this many files per directory, and this many items read per tree.
const MAX_FILES: usize = 8;
const MAX_ITEMS_PER_TREE: usize = 100_000;

/// The configuration `open_dir` opens with (small segments and nodes, nothing in the
/// background, so each run is deterministic).
pub fn db_config() -> bwtree::Config {
    bwtree::Config::new()
        .path(DB_DIR)
        .node_max_entries(4)
        .consolidation_threshold(3)
        .cache_capacity_bytes(64 << 10)
        .flush_every_ms(None)
        .checkpoint_every_ms(None)
        .io_buffer_size_bytes(DB_SEGMENT_BYTES as u64)
        .segment_size_bytes(DB_SEGMENT_BYTES)
}

/// The configuration of the `log_recovery` log.
pub fn log_config() -> logstore::Config {
    logstore::Config::small(DB_DIR)
}

/// Runs the recovery scan over `file` as the log's data file. `flags` bit 0: rewrite the CRCs
/// first; the other bits pick the segment boundary to recover from.
pub fn recover_data_file(flags: u8, file: &[u8]) -> logstore::Result<usize> {
    let config = log_config();
    let mut file = file.to_vec();
    if flags & 1 != 0 {
        logstore::fuzzing::fix_crcs(&mut file, LOG_SEGMENT_BYTES);
    }
    let storage = Arc::new(SimStorage::new());
    write_file(
        &storage,
        &Path::new(DB_DIR).join(logstore::DATA_FILE),
        &file,
    );
    let from = Lsn(u64::from(flags >> 1) * config.segment_size_bytes);
    logstore::fuzzing::recover(&config, &storage, from).map(|records| records.len())
}

/// The kind of a file in a database directory, as the store names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// `log.dat`
    Log,
    /// `checkpoint-<n as 16 hex digits>`
    Checkpoint,
    /// `checkpoint-<n as 16 hex digits>.tmp`
    CheckpointTmp,
    /// `blobs/<n as 16 hex digits>`
    Blob,
    /// A name the store does not use.
    Other,
}

const KINDS: [FileKind; 5] = [
    FileKind::Log,
    FileKind::Checkpoint,
    FileKind::CheckpointTmp,
    FileKind::Blob,
    FileKind::Other,
];

/// One file of the directory. `number` is the checkpoint LSN or blob id in the name;
/// `fix_crc` rewrites the CRCs of a log or checkpoint file before it is written.
#[derive(Clone, Debug)]
pub struct FileSpec {
    pub kind: FileKind,
    pub number: u64,
    pub fix_crc: bool,
    pub bytes: Vec<u8>,
}

/// A database directory's contents. Encoded per file as `kind u8 | flags u8 | number u64 |
/// len u32 | bytes` (little-endian; a short tail takes what is left), so seeds can be made
/// from real files with [`DirSpec::encode`].
#[derive(Clone, Debug, Default)]
pub struct DirSpec {
    pub files: Vec<FileSpec>,
}

impl FileSpec {
    fn path(&self) -> PathBuf {
        let dir = Path::new(DB_DIR);
        let n = self.number;
        match self.kind {
            FileKind::Log => dir.join(logstore::DATA_FILE),
            FileKind::Checkpoint => dir.join(format!("checkpoint-{n:016x}")),
            FileKind::CheckpointTmp => dir.join(format!("checkpoint-{n:016x}.tmp")),
            FileKind::Blob => dir.join("blobs").join(format!("{n:016x}")),
            FileKind::Other => dir.join(format!("other-{}", n % 4)),
        }
    }

    fn contents(&self) -> Vec<u8> {
        let mut bytes = self.bytes.clone();
        if self.fix_crc {
            match self.kind {
                FileKind::Log => logstore::fuzzing::fix_crcs(&mut bytes, DB_SEGMENT_BYTES),
                FileKind::Checkpoint | FileKind::CheckpointTmp => {
                    pagecache::fuzzing::fix_checkpoint_crc(&mut bytes)
                }
                FileKind::Blob | FileKind::Other => {}
            }
        }
        bytes
    }
}

impl DirSpec {
    /// The input bytes that decode to `self`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for f in &self.files {
            let kind = KINDS
                .iter()
                .position(|&k| k == f.kind)
                .expect("a known kind");
            out.push(kind as u8);
            out.push(u8::from(f.fix_crc));
            out.extend_from_slice(&f.number.to_le_bytes());
            let len = u32::try_from(f.bytes.len()).expect("seed files are small");
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&f.bytes);
        }
        out
    }
}

fn take<const N: usize>(u: &mut Unstructured<'_>) -> arbitrary::Result<[u8; N]> {
    Ok(u.bytes(N)?.try_into().expect("N bytes"))
}

impl<'a> Arbitrary<'a> for DirSpec {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let mut files = Vec::new();
        while files.len() < MAX_FILES && !u.is_empty() {
            let [kind, flags] = take::<2>(u)?;
            let number = u64::from_le_bytes(take::<8>(u)?);
            let len = u32::from_le_bytes(take::<4>(u)?) as usize;
            let bytes = u.bytes(len.min(u.len()))?.to_vec();
            files.push(FileSpec {
                kind: KINDS[kind as usize % KINDS.len()],
                number,
                fix_crc: flags & 1 != 0,
                bytes,
            });
        }
        Ok(DirSpec { files })
    }
}

/// Writes (durably) `bytes` as the file at `path`, creating its directory.
fn write_file(storage: &SimStorage, path: &Path, bytes: &[u8]) {
    let dir = path.parent().expect("files live in a directory");
    storage.create_dir_all(dir).expect("simulated mkdir");
    let file = storage.open_file(path, true).expect("simulated create");
    file.set_len(0).expect("simulated truncate");
    file.write_all_at(bytes, 0).expect("simulated write");
    file.sync_all().expect("simulated fsync");
    storage.sync_dir(dir).expect("simulated directory fsync");
}

/// Writes the directory into fresh simulated storage.
pub fn storage_with(spec: &DirSpec) -> Arc<SimStorage> {
    let storage = Arc::new(SimStorage::new());
    storage
        .create_dir_all(Path::new(DB_DIR))
        .expect("simulated mkdir");
    for f in &spec.files {
        write_file(&storage, &f.path(), &f.contents());
    }
    storage
}

/// Opens the database over `spec` and reads every tree through; returns the items read, or
/// the first error (open and reads must fail with an error, never a panic).
pub fn open_and_read(spec: &DirSpec) -> bwtree::Result<usize> {
    let storage = storage_with(spec);
    let db = db_config().open_on_storage(storage)?;
    let mut items = read_all(&db)?;
    for name in db.tree_names()? {
        items += read_all(&db.open_tree(&name)?)?;
    }
    Ok(items)
}

fn read_all(tree: &bwtree::Tree) -> bwtree::Result<usize> {
    let mut n = 0;
    for item in tree.iter().take(MAX_ITEMS_PER_TREE) {
        let (key, _value) = item?;
        tree.get(&key)?;
        n += 1;
    }
    Ok(n)
}
