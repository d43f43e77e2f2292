//! [`SimStorage`]: an in-memory file system that can lose power.
//!
//! Why: a SIGKILL test cannot catch a missing fsync, because the kernel page cache survives the
//! kill (VERIFY.md, "Crash consistency"). This simulator keeps, for every file, a **durable**
//! image (what the disk holds) and a **volatile** image (what reads see: the page cache), and
//! for the directory tree a durable and a volatile namespace.
//!
//! The model:
//! - `write_at`/`set_len` change the volatile image and are remembered as pending until a
//!   successful `sync_data`/`sync_all` of that file applies them to the durable image.
//! - `open_file(create)`, `create_dir_all`, `rename` and `remove_file` change the volatile
//!   namespace; each edit becomes durable only when `sync_dir` is called on the directory that
//!   holds the entry (a rename across directories needs both). See `sim/namespace.rs`.
//! - [`SimStorage::crash`] is power loss: pending namespace edits are dropped (or a random prefix
//!   kept), each pending write is dropped, kept, or torn at [`SECTOR_SIZE`] granularity (see
//!   `sim/inode.rs`), optionally in a shuffled order, all per [`CrashMode`] and deterministically
//!   per seed. Then the volatile side restarts as the durable side, and every handle opened
//!   before fails with `EBADF`: the caller must reopen, as a restarted process would.
//! - `lock_dir` keeps the set of locked directories in memory; a crash releases them all (the
//!   process died) and guards from before it release nothing.
//! - A capacity (total bytes of linked files) makes writes short, then `ENOSPC`; raise it with
//!   [`SimStorage::set_capacity`] and writes succeed again.
//! - A [`FaultPlan`] injects errors at every call site (see [`super::fault`]); every call is
//!   recorded in a [`Trace`] that can check sync discipline.
//!
//! Everything sits behind one `std::sync::Mutex`: this is test infrastructure (not loom-modelled,
//! not on any real hot path). `SimStorage` is a cheap handle: clones share the same disk;
//! [`SimStorage::snapshot`] makes an independent copy (for "recover twice, compare" tests).

mod inode;
mod namespace;
#[cfg(test)]
mod proptests;
mod state;
#[cfg(test)]
mod tests;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

pub use self::inode::SECTOR_SIZE;
use self::namespace::{normalize, Entry};
use self::state::State;
use super::fault::{FaultCounts, FaultPlan};
use super::trace::{FileId, Trace};
use super::{DirLockGuard, Storage, StorageFile};

/// What power loss does to changes that were not made durable. `tear` and `reorder` only
/// matter when `keep_unsynced_writes` is set (a dropped write cannot be torn).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CrashMode {
    /// Each unsynced write or `set_len` independently survives or not; if `false`, all are lost.
    pub keep_unsynced_writes: bool,
    /// A surviving write may be torn: each 512-byte sector of it survives independently.
    pub tear: bool,
    /// Unsynced writes reach the disk in a random order (matters where they overlap).
    pub reorder: bool,
    /// A random prefix of the unsynced namespace edits survives (renames stay atomic); if
    /// `false`, all are lost.
    pub keep_unsynced_namespace: bool,
}

impl CrashMode {
    /// Every unsynced change is lost: the deterministic worst case for "was it synced?".
    pub const DROP_UNSYNCED: Self = Self {
        keep_unsynced_writes: false,
        tear: false,
        reorder: false,
        keep_unsynced_namespace: false,
    };
    /// Each unsynced write is kept or dropped whole; namespace edits are lost.
    pub const RANDOM_WRITES: Self = Self {
        keep_unsynced_writes: true,
        ..Self::DROP_UNSYNCED
    };
    /// Unsynced writes are kept, dropped or torn at sector granularity; namespace edits lost.
    pub const TORN: Self = Self {
        tear: true,
        ..Self::RANDOM_WRITES
    };
    /// Everything at once: torn, reordered writes and a random prefix of namespace edits.
    pub const CHAOS: Self = Self {
        keep_unsynced_writes: true,
        tear: true,
        reorder: true,
        keep_unsynced_namespace: true,
    };
}

/// A simulated file system with power loss, capacity limits and fault injection.
#[derive(Debug, Clone, Default)]
pub struct SimStorage {
    state: Arc<Mutex<State>>,
}

/// Locks the simulator. A panic while holding the lock (a failed assertion in a test thread)
/// leaves the state consistent, since every change is applied before any panic point.
fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SimStorage {
    /// An empty simulated disk with unlimited capacity.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty simulated disk that holds at most `bytes` bytes of file data.
    pub fn with_capacity(bytes: u64) -> Self {
        let sim = Self::new();
        sim.set_capacity(Some(bytes));
        sim
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Sets (or with `None` removes) the limit on total file bytes. Lowering it below the
    /// current use makes every growing write fail with `ENOSPC`; nothing is discarded.
    pub fn set_capacity(&self, bytes: Option<u64>) {
        self.lock().capacity = bytes;
    }

    /// Bytes held by the files currently in the (volatile) namespace.
    pub fn used_bytes(&self) -> u64 {
        self.lock().used_bytes()
    }

    /// Simulates power loss with the seeded outcome `mode` allows, then restarts: reads see the
    /// surviving durable state and every existing handle fails with `EBADF`.
    pub fn crash(&self, rng_seed: u64, mode: CrashMode) {
        self.lock().crash(rng_seed, mode);
    }

    /// An independent copy of the whole disk (both images, namespace, trace, fault plan and
    /// its position). Handles opened on `self` do not reach the copy.
    pub fn snapshot(&self) -> SimStorage {
        let mut copy = self.lock().clone();
        // Locks belong to the processes using the disk, not to the disk.
        copy.locked_dirs.clear();
        SimStorage {
            state: Arc::new(Mutex::new(copy)),
        }
    }

    /// Installs (or with `None` removes) a fault plan. Counts are kept across plans.
    pub fn set_fault_plan(&self, plan: Option<FaultPlan>) {
        self.lock().faults = plan;
    }

    /// Faults injected so far, per site.
    pub fn fault_counts(&self) -> FaultCounts {
        self.lock().fault_counts.clone()
    }

    /// A copy of the operation trace so far.
    pub fn trace(&self) -> Trace {
        self.lock().trace.clone()
    }

    /// The trace position now, to check sync discipline at this point later.
    pub fn trace_len(&self) -> usize {
        self.lock().trace.len()
    }

    /// What reads of `path` return now, or `None` if no file is there.
    pub fn volatile_contents(&self, path: &Path) -> Option<Vec<u8>> {
        let st = self.lock();
        match st.ns.lookup(&normalize(path))? {
            Entry::File(id) => Some(st.inodes[&id].volatile().to_vec()),
            Entry::Dir => None,
        }
    }

    /// What `path` would hold after a crash that drops every unsynced change, or `None` if
    /// the file would not exist then (its entry, or a parent's, is not durable).
    pub fn durable_contents(&self, path: &Path) -> Option<Vec<u8>> {
        let snapshot = self.snapshot();
        snapshot.crash(0, CrashMode::DROP_UNSYNCED);
        snapshot.volatile_contents(path)
    }

    /// Every regular file in the volatile namespace, sorted.
    pub fn files(&self) -> Vec<PathBuf> {
        self.lock()
            .ns
            .files(false)
            .into_iter()
            .map(|(p, _)| p)
            .collect()
    }

    /// Whether some file has writes not yet synced (a cheap sync-discipline check).
    pub fn has_unsynced_writes(&self) -> bool {
        self.lock().inodes.values().any(|inode| inode.has_pending())
    }
}

impl Storage for SimStorage {
    fn open_file(&self, path: &Path, create: bool) -> io::Result<Arc<dyn StorageFile>> {
        let mut st = self.lock();
        let id = st.open(path, create)?;
        Ok(Arc::new(SimFile {
            state: Arc::clone(&self.state),
            id,
            generation: st.generation,
            path: normalize(path),
        }))
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.lock().create_dir_all(path)
    }

    fn read_dir(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        self.lock().read_dir(dir)
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        Ok(self.lock().ns.lookup(&normalize(path)).is_some())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.lock().rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.lock().remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.lock().sync_dir(dir)
    }

    fn lock_dir(&self, dir: &Path) -> io::Result<Box<dyn DirLockGuard>> {
        let mut st = self.lock();
        let dir = st.lock_dir(dir)?;
        Ok(Box::new(SimDirLock {
            state: Arc::clone(&self.state),
            dir,
            generation: st.generation,
        }))
    }
}

/// A held lock of a [`SimStorage`] directory. A crash since it was taken already released it.
#[derive(Debug)]
struct SimDirLock {
    state: Arc<Mutex<State>>,
    dir: PathBuf,
    generation: u64,
}

impl DirLockGuard for SimDirLock {}

impl Drop for SimDirLock {
    fn drop(&mut self) {
        let mut st = lock(&self.state);
        if st.generation == self.generation {
            let held = st.locked_dirs.remove(&self.dir);
            assert!(held, "a live lock guard's directory is in the locked set");
        }
    }
}

/// An open file of a [`SimStorage`]. It names the file itself (an inode), not its path: it
/// keeps working after a rename or removal, and dies at the next crash.
#[derive(Debug)]
pub struct SimFile {
    state: Arc<Mutex<State>>,
    id: FileId,
    generation: u64,
    path: PathBuf,
}

impl SimFile {
    /// The simulator's inode number of this file, as the trace records it.
    pub fn file_id(&self) -> FileId {
        self.id
    }

    /// Locks the simulator, or fails with `EBADF` if it crashed since this handle was opened.
    fn live(&self) -> io::Result<MutexGuard<'_, State>> {
        let st = lock(&self.state);
        if st.generation != self.generation {
            return Err(io::Error::from_raw_os_error(libc::EBADF));
        }
        Ok(st)
    }
}

impl StorageFile for SimFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.live()?.read(self.id, &self.path, buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        self.live()?.write(self.id, &self.path, buf, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.live()?.sync(self.id, &self.path, false)
    }

    fn sync_all(&self) -> io::Result<()> {
        self.live()?.sync(self.id, &self.path, true)
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.live()?.inodes[&self.id].volatile().len() as u64)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.live()?.set_len(self.id, &self.path, len)
    }
}
