//! The simulated kernel: every [`Storage`](crate::io::Storage) call as a method on one
//! [`State`], run under the `SimStorage` mutex. Each call first asks the fault plan whether to
//! misbehave, then checks its preconditions like POSIX would, then changes the volatile side,
//! then records an [`Op`]. Failed calls change nothing (torn writes excepted, by design).

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};

use super::inode::{Inode, Pending};
use super::namespace::{normalize, parent, Entry, Namespace};
use super::CrashMode;
use crate::io::fault::{Fault, FaultCounts, FaultPlan, Site};
use crate::io::trace::{FileId, Op, Trace};

fn os_error(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

/// Everything a `SimStorage` knows. Cloning it is a full, independent snapshot.
#[derive(Debug, Clone, Default)]
pub(crate) struct State {
    pub(crate) ns: Namespace,
    pub(crate) inodes: BTreeMap<FileId, Inode>,
    next_id: FileId,
    /// Bumped by every crash; handles from an older generation are dead.
    pub(crate) generation: u64,
    /// Total bytes the volatile files may hold; `None` is unlimited.
    pub(crate) capacity: Option<u64>,
    pub(crate) trace: Trace,
    pub(crate) faults: Option<FaultPlan>,
    pub(crate) fault_counts: FaultCounts,
    /// Directories locked by live guards (`Storage::lock_dir`). Process state, not disk
    /// state: a crash releases every lock, and a snapshot starts with none.
    pub(crate) locked_dirs: BTreeSet<PathBuf>,
}

impl State {
    /// Asks the fault plan about this call; records an injected fault in counts and trace.
    pub(crate) fn inject(&mut self, site: Site, path: &Path) -> Option<Fault> {
        let fault = self.faults.as_mut()?.decide(site, path)?;
        self.fault_counts.record(site);
        self.trace.push(Op::Fault {
            site,
            path: path.to_path_buf(),
            fault,
        });
        Some(fault)
    }

    /// Injects a fault that simply fails the call (for sites with no partial effect).
    fn inject_error(&mut self, site: Site, path: &Path) -> io::Result<()> {
        match self.inject(site, path) {
            Some(fault) => Err(fault.error()),
            None => Ok(()),
        }
    }

    /// Bytes held by the files currently linked in the volatile tree.
    pub(crate) fn used_bytes(&self) -> u64 {
        self.ns
            .files(false)
            .iter()
            .map(|(_, id)| self.inodes[id].volatile().len() as u64)
            .sum()
    }

    /// How many of `len` bytes, written so the file's end moves from `old_end` to at most
    /// `old_end.max(offset + len)`, fit under the capacity.
    fn room_for(&self, file_len: u64, offset: u64, len: u64) -> u64 {
        let Some(capacity) = self.capacity else {
            return len;
        };
        let free = capacity.saturating_sub(self.used_bytes());
        let max_end = file_len + free;
        len.min(max_end.saturating_sub(offset))
    }

    pub(crate) fn open(&mut self, path: &Path, create: bool) -> io::Result<FileId> {
        let path = normalize(path);
        match self.ns.lookup(&path) {
            Some(Entry::File(id)) => {
                self.inject_error(Site::Open, &path)?;
                self.trace.push(Op::Open { file: id, path });
                Ok(id)
            }
            Some(Entry::Dir) => Err(os_error(libc::EISDIR)),
            None if !create => Err(io::ErrorKind::NotFound.into()),
            None => {
                if !self.ns.is_dir(&parent(&path)) {
                    return Err(io::ErrorKind::NotFound.into());
                }
                self.inject_error(Site::Create, &path)?;
                let id = self.next_id;
                self.next_id += 1;
                self.inodes.insert(id, Inode::default());
                self.ns.change(&[(&path, Some(Entry::File(id)))]);
                self.trace.push(Op::Create { file: id, path });
                Ok(id)
            }
        }
    }

    pub(crate) fn create_dir_all(&mut self, path: &Path) -> io::Result<()> {
        let path = normalize(path);
        self.inject_error(Site::CreateDir, &path)?;
        let mut prefix = PathBuf::new();
        for component in path.components() {
            prefix.push(component);
            match self.ns.lookup(&prefix) {
                Some(Entry::Dir) => {}
                Some(Entry::File(_)) => return Err(os_error(libc::ENOTDIR)),
                None => {
                    self.ns.change(&[(&prefix, Some(Entry::Dir))]);
                    self.trace.push(Op::CreateDir {
                        path: prefix.clone(),
                    });
                }
            }
        }
        Ok(())
    }

    pub(crate) fn read_dir(&mut self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        let dir = normalize(dir);
        match self.ns.lookup(&dir) {
            Some(Entry::Dir) => {}
            Some(Entry::File(_)) => return Err(os_error(libc::ENOTDIR)),
            None => return Err(io::ErrorKind::NotFound.into()),
        }
        self.inject_error(Site::ReadDir, &dir)?;
        Ok(self.ns.children(&dir))
    }

    pub(crate) fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        let (from, to) = (normalize(from), normalize(to));
        let id = match self.ns.lookup(&from) {
            Some(Entry::File(id)) => id,
            // Directory renames would have to move a subtree; the log never needs them.
            Some(Entry::Dir) => return Err(io::ErrorKind::Unsupported.into()),
            None => return Err(io::ErrorKind::NotFound.into()),
        };
        let replaced = match self.ns.lookup(&to) {
            Some(Entry::Dir) => return Err(os_error(libc::EISDIR)),
            Some(Entry::File(old)) => Some(old),
            None if self.ns.is_dir(&parent(&to)) => None,
            None => return Err(io::ErrorKind::NotFound.into()),
        };
        self.inject_error(Site::Rename, &from)?;
        if from == to {
            return Ok(());
        }
        self.ns
            .change(&[(&from, None), (&to, Some(Entry::File(id)))]);
        self.trace.push(Op::Rename {
            from,
            to,
            file: id,
            replaced,
        });
        Ok(())
    }

    pub(crate) fn remove_file(&mut self, path: &Path) -> io::Result<()> {
        let path = normalize(path);
        let id = match self.ns.lookup(&path) {
            Some(Entry::File(id)) => id,
            Some(Entry::Dir) => return Err(os_error(libc::EISDIR)),
            None => return Err(io::ErrorKind::NotFound.into()),
        };
        self.inject_error(Site::Remove, &path)?;
        self.ns.change(&[(&path, None)]);
        self.trace.push(Op::Remove { file: id, path });
        Ok(())
    }

    pub(crate) fn sync_dir(&mut self, dir: &Path) -> io::Result<()> {
        let dir = normalize(dir);
        if !self.ns.is_dir(&dir) {
            return Err(io::ErrorKind::NotFound.into());
        }
        self.inject_error(Site::SyncDir, &dir)?;
        self.ns.sync_dir(&dir);
        self.trace.push(Op::SyncDir { path: dir });
        Ok(())
    }

    pub(crate) fn read(
        &mut self,
        id: FileId,
        path: &Path,
        buf: &mut [u8],
        offset: u64,
    ) -> io::Result<usize> {
        let fault = self.inject(Site::Read, path);
        if let Some(Fault::Eio) = fault {
            return Err(Fault::Eio.error());
        }
        let image = self.inodes[&id].volatile();
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(image.len());
        let n = buf.len().min(image.len() - start);
        buf[..n].copy_from_slice(&image[start..start + n]);
        if fault == Some(Fault::BitFlip) && n > 0 {
            let rng = self.faults.as_mut().expect("a fault implies a plan").rng();
            let bit = rng.below(n as u64 * 8) as usize;
            buf[bit / 8] ^= 1 << (bit % 8);
        }
        Ok(n)
    }

    pub(crate) fn write(
        &mut self,
        id: FileId,
        path: &Path,
        buf: &[u8],
        offset: u64,
    ) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let len = buf.len() as u64;
        let fault = self.inject(Site::Write, path);
        let (want, fail) = match fault {
            None => (len, None),
            Some(Fault::ShortWrite) => (self.fault_prefix(1, len), None),
            Some(Fault::TornWrite) => (self.fault_prefix(0, len), Some(Fault::Eio)),
            Some(other) => return Err(other.error()),
        };
        let file_len = self.inodes[&id].volatile().len() as u64;
        let n = self.room_for(file_len, offset, want);
        if n > 0 {
            let data = buf[..n as usize].to_vec();
            self.inodes
                .get_mut(&id)
                .expect("open inode")
                .change(Pending::Write { offset, data });
            self.trace.push(Op::Write {
                file: id,
                path: path.to_path_buf(),
                offset,
                len: n,
            });
        }
        match fail {
            Some(fault) => Err(fault.error()),
            None if n == 0 => Err(Fault::Enospc.error()),
            None => Ok(n as usize),
        }
    }

    /// A random prefix length in `min..len` for short and torn writes (`len` if that is empty).
    fn fault_prefix(&mut self, min: u64, len: u64) -> u64 {
        if len <= min {
            return len;
        }
        let rng = self.faults.as_mut().expect("a fault implies a plan").rng();
        min + rng.below(len - min)
    }

    pub(crate) fn set_len(&mut self, id: FileId, path: &Path, len: u64) -> io::Result<()> {
        self.inject_error(Site::SetLen, path)?;
        let file_len = self.inodes[&id].volatile().len() as u64;
        if len > file_len && self.room_for(file_len, file_len, len - file_len) < len - file_len {
            return Err(Fault::Enospc.error());
        }
        self.inodes
            .get_mut(&id)
            .expect("open inode")
            .change(Pending::SetLen(len));
        self.trace.push(Op::SetLen {
            file: id,
            path: path.to_path_buf(),
            len,
        });
        Ok(())
    }

    /// `sync_data` (`all == false`) or `sync_all`. The simulator keeps no metadata beyond the
    /// size, which both make durable, so they differ only in the site and the trace.
    pub(crate) fn sync(&mut self, id: FileId, path: &Path, all: bool) -> io::Result<()> {
        let site = if all { Site::SyncAll } else { Site::SyncData };
        let path = path.to_path_buf();
        if let Some(fault) = self.inject(site, &path) {
            // Like a crash limited to this file: some unsynced writes may have reached the disk,
            // the rest are gone, and the page cache no longer holds them either.
            let plan = self.faults.as_mut().expect("a fault implies a plan");
            let inode = self.inodes.get_mut(&id).expect("open inode");
            inode.crash(CrashMode::TORN, plan.rng());
            self.trace.push(Op::SyncFailed { file: id, path });
            return Err(fault.error());
        }
        self.inodes.get_mut(&id).expect("open inode").sync();
        let op = if all {
            Op::SyncAll { file: id, path }
        } else {
            Op::SyncData { file: id, path }
        };
        self.trace.push(op);
        Ok(())
    }

    /// Power loss. Consumes `rng` draws in a fixed order (namespace, then inodes by number) so
    /// the outcome depends only on the state and the seed.
    pub(crate) fn crash(&mut self, seed: u64, mode: CrashMode) {
        let mut rng = crate::io::rng::SimRng::new(seed);
        self.ns.crash(mode.keep_unsynced_namespace, &mut rng);
        for inode in self.inodes.values_mut() {
            inode.crash(mode, &mut rng);
        }
        let linked: Vec<FileId> = self.ns.files(true).into_iter().map(|(_, id)| id).collect();
        self.inodes.retain(|id, _| linked.contains(id));
        self.generation += 1;
        self.locked_dirs.clear();
        self.trace.push(Op::Crash { seed });
    }

    /// Takes the lock of directory `dir`; `WouldBlock` if it is held.
    pub(crate) fn lock_dir(&mut self, dir: &Path) -> io::Result<PathBuf> {
        let dir = normalize(dir);
        match self.ns.lookup(&dir) {
            Some(Entry::Dir) => {}
            Some(Entry::File(_)) => return Err(os_error(libc::ENOTDIR)),
            None => return Err(os_error(libc::ENOENT)),
        }
        if !self.locked_dirs.insert(dir.clone()) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(dir)
    }
}
