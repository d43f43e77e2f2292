//! The key-value stores under test behind one small interface, so every suite drives each of
//! them with the same operations.
//!
//! Writes go through [`Engine::write`]: one atomic group of operations that is durable when it
//! returns if asked for [`Durability::Durable`] (one commit: a transaction for redb and LMDB, a
//! batch for the others, then their sync). Reads go through a [`Reader`], a read snapshot taken
//! once per phase and thread, as the redb benchmark does; stores without snapshots read the live
//! tree. Size on disk is measured by the harness, the same way for every store (see
//! [`dir_size_bytes`]).

use std::path::{Path, PathBuf};

mod bwtree;
#[cfg(feature = "peers")]
mod fjall;
#[cfg(feature = "peers")]
mod lmdb;
#[cfg(feature = "peers")]
mod redb;
#[cfg(feature = "rocksdb")]
mod rocksdb;
#[cfg(feature = "peers")]
mod sled;

/// Errors of the stores, as their own types boxed: the harness reports them, never inspects them.
pub type Error = Box<dyn std::error::Error + Send + Sync>;
pub type Result<T> = std::result::Result<T, Error>;

/// When a write must be on stable storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Synced before `write` returns.
    Durable,
    /// No sync: the data is durable after the next [`Engine::flush`].
    None,
}

/// One operation of a write group.
#[derive(Clone, Copy, Debug)]
pub enum Op<'a> {
    Insert(&'a [u8], &'a [u8]),
    Remove(&'a [u8]),
}

/// How a store is opened: the same for every store of a run.
#[derive(Clone, Debug)]
pub struct OpenOptions {
    /// A fresh, empty directory of its own.
    pub dir: PathBuf,
    /// The cache budget: the store's page/block cache size in bytes (LMDB has none: it leaves
    /// caching to the kernel's page cache).
    pub cache_capacity_bytes: u64,
    /// An upper bound on the data, for stores that must reserve address space up front (LMDB).
    // Read only by peer adapters: unused when the `peers` feature is off.
    #[cfg_attr(not(feature = "peers"), allow(dead_code))]
    pub max_data_bytes: u64,
    /// Background threads a store may start, where it lets us choose (2 on a 2-core machine).
    #[cfg_attr(not(feature = "peers"), allow(dead_code))]
    pub background_threads: usize,
}

/// A key-value store under test.
pub trait Engine: Send + Sync {
    /// Applies `ops` atomically, in order.
    fn write(&self, ops: &[Op<'_>], durability: Durability) -> Result<()>;
    /// Makes every earlier write durable.
    fn flush(&self) -> Result<()>;
    /// A read view for the calling thread.
    fn reader(&self) -> Result<Box<dyn Reader + '_>>;
    /// The number of keys (counted, for stores that do not track it).
    fn len(&self) -> Result<u64>;

    fn insert(&self, key: &[u8], value: &[u8], durability: Durability) -> Result<()> {
        self.write(&[Op::Insert(key, value)], durability)
    }
    // Single removals: no kv phase uses them (removals go in groups), the adapter tests do.
    #[allow(dead_code)]
    fn remove(&self, key: &[u8], durability: Durability) -> Result<()> {
        self.write(&[Op::Remove(key)], durability)
    }
}

/// Point and range reads from one snapshot (or the live tree).
pub trait Reader {
    /// The length of the value under `key`, if present. The value is read, not just located.
    fn get(&mut self, key: &[u8]) -> Result<Option<usize>>;
    /// Visits up to `n` pairs from the first key `>= start` on, returning how many it found.
    fn scan(&mut self, start: &[u8], n: usize) -> Result<usize>;
}

/// The engines built into this binary, in table order (bwtree first).
pub fn available() -> Vec<&'static str> {
    let mut names = vec!["bwtree"];
    if cfg!(feature = "peers") {
        names.extend(["sled", "redb", "fjall", "lmdb"]);
    }
    if cfg!(feature = "rocksdb") {
        names.push("rocksdb");
    }
    names
}

/// Opens the engine called `name` on `options.dir`.
pub fn open(name: &str, options: &OpenOptions) -> Result<Box<dyn Engine>> {
    match name {
        "bwtree" => Ok(Box::new(bwtree::BwTree::open(options)?)),
        #[cfg(feature = "peers")]
        "sled" => Ok(Box::new(sled::Sled::open(options)?)),
        #[cfg(feature = "peers")]
        "redb" => Ok(Box::new(redb::Redb::open(options)?)),
        #[cfg(feature = "peers")]
        "fjall" => Ok(Box::new(fjall::Fjall::open(options)?)),
        #[cfg(feature = "peers")]
        "lmdb" => Ok(Box::new(lmdb::Lmdb::open(options)?)),
        #[cfg(feature = "rocksdb")]
        "rocksdb" => Ok(Box::new(rocksdb::Rocks::open(options)?)),
        other => Err(format!(
            "engine `{other}` is not built into this binary (built: {}); peers need the default \
             `peers` feature, RocksDB the `rocksdb` feature",
            available().join(", ")
        )
        .into()),
    }
}

/// Bytes allocated on disk under `dir` (file blocks, so sparse files such as LMDB's map count only
/// what they use), measured the same way for every store.
pub fn dir_size_bytes(dir: &Path) -> std::io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            dir_size_bytes(&entry.path())?
        } else {
            meta.blocks() * 512
        };
    }
    Ok(total)
}

#[cfg(test)]
mod tests;
