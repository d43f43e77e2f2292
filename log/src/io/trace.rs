//! The operation trace of a [`SimStorage`](super::SimStorage), and the sync-discipline checker.
//!
//! The simulator appends one [`Op`] per call that changed (or tried to make durable) something,
//! in the order the calls took effect; failed calls are not recorded, except injected faults
//! ([`Op::Fault`]) and failed syncs ([`Op::SyncFailed`]). Reads are not recorded.
//!
//! [`Trace::unsynced_at`] replays a prefix of the trace and answers the question VERIFY.md asks
//! after every acknowledged `flush()`: is there a file written since its last successful sync,
//! or a directory whose entries changed since its last `sync_dir`? A file whose sync failed is
//! reported until the next crash, even if a later sync succeeds: the kernel may have dropped the
//! dirty pages, so the later sync proves nothing about them.
//!
//! Files are identified by [`FileId`] (the simulator's inode number), not by path, so writes
//! through a handle opened under a name that was later renamed are still attributed correctly.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use super::fault::{Fault, Site};

/// The simulator's inode number: stable across renames, never reused within one `SimStorage`.
pub type FileId = u64;

/// One recorded call. `path` fields of per-file operations are the name the handle was opened
/// with, kept for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Op {
    /// An existing file was opened.
    Open { file: FileId, path: PathBuf },
    /// A new, empty file was created (a new entry in its parent directory).
    Create { file: FileId, path: PathBuf },
    /// A directory was created (a new entry in its parent directory).
    CreateDir { path: PathBuf },
    /// `len` bytes were written at `offset` (after short or torn writes: the bytes applied).
    Write {
        file: FileId,
        path: PathBuf,
        offset: u64,
        len: u64,
    },
    /// The file was truncated or extended to `len`.
    SetLen {
        file: FileId,
        path: PathBuf,
        len: u64,
    },
    /// `sync_data` (fdatasync) succeeded.
    SyncData { file: FileId, path: PathBuf },
    /// `sync_all` (fsync) succeeded.
    SyncAll { file: FileId, path: PathBuf },
    /// A sync failed; the data written since the last good sync is partly or wholly lost.
    SyncFailed { file: FileId, path: PathBuf },
    /// `sync_dir` succeeded.
    SyncDir { path: PathBuf },
    /// `from` was renamed to `to`, replacing the file `replaced` if there was one.
    Rename {
        from: PathBuf,
        to: PathBuf,
        file: FileId,
        replaced: Option<FileId>,
    },
    /// The entry `path` of file `file` was removed.
    Remove { file: FileId, path: PathBuf },
    /// A fault was injected at `site` (the call then failed or misbehaved as `fault` says).
    Fault {
        site: Site,
        path: PathBuf,
        fault: Fault,
    },
    /// Power was lost (`SimStorage::crash`); every handle opened before is now invalid.
    Crash { seed: u64 },
}

/// Everything not durable at some point of a trace. Empty means "safe to acknowledge".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unsynced {
    /// Files written or resized since their last successful sync.
    pub files: Vec<(FileId, PathBuf)>,
    /// Directories whose entries changed since their last successful `sync_dir`.
    pub dirs: Vec<PathBuf>,
    /// Files with a failed sync since the last crash: their data may be lost whatever follows.
    pub failed_syncs: Vec<(FileId, PathBuf)>,
}

impl Unsynced {
    /// Whether everything written so far is durable.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty() && self.dirs.is_empty() && self.failed_syncs.is_empty()
    }
}

impl fmt::Display for Unsynced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (id, path) in &self.files {
            writeln!(
                f,
                "file {id} ({}) written since its last sync",
                path.display()
            )?;
        }
        for dir in &self.dirs {
            writeln!(
                f,
                "directory {} changed since its last sync_dir",
                dir.display()
            )?;
        }
        for (id, path) in &self.failed_syncs {
            writeln!(f, "file {id} ({}) had a failed sync", path.display())?;
        }
        Ok(())
    }
}

/// A recorded sequence of storage operations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trace {
    ops: Vec<Op>,
}

/// The parent directory of `path`, as `sync_dir` would be called with it.
fn parent_of(path: &Path) -> PathBuf {
    path.parent().map(Path::to_path_buf).unwrap_or_default()
}

impl Trace {
    /// Wraps recorded operations.
    pub fn new(ops: Vec<Op>) -> Self {
        Self { ops }
    }

    /// The operations, oldest first.
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    /// Number of recorded operations (a position to pass to [`Trace::unsynced_at`] later).
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Appends one operation (the simulator's recording hook).
    pub fn push(&mut self, op: Op) {
        self.ops.push(op);
    }

    /// What is not durable after the first `pos` operations (`pos` is clamped to the length).
    pub fn unsynced_at(&self, pos: usize) -> Unsynced {
        let mut dirty: BTreeMap<FileId, PathBuf> = BTreeMap::new();
        let mut dirs: BTreeSet<PathBuf> = BTreeSet::new();
        let mut failed: BTreeMap<FileId, PathBuf> = BTreeMap::new();
        for op in &self.ops[..pos.min(self.ops.len())] {
            match op {
                Op::Open { .. } | Op::Fault { .. } => {}
                Op::Create { path, .. } | Op::CreateDir { path } => {
                    dirs.insert(parent_of(path));
                }
                Op::Write { file, path, .. } | Op::SetLen { file, path, .. } => {
                    dirty.insert(*file, path.clone());
                }
                Op::SyncData { file, .. } | Op::SyncAll { file, .. } => {
                    dirty.remove(file);
                }
                Op::SyncFailed { file, path } => {
                    dirty.remove(file);
                    failed.insert(*file, path.clone());
                }
                Op::SyncDir { path } => {
                    dirs.remove(path);
                }
                Op::Rename {
                    from, to, replaced, ..
                } => {
                    dirs.insert(parent_of(from));
                    dirs.insert(parent_of(to));
                    // The replaced file's data no longer matters once the rename is durable.
                    if let Some(old) = replaced {
                        dirty.remove(old);
                    }
                }
                Op::Remove { file, path } => {
                    dirs.insert(parent_of(path));
                    dirty.remove(file);
                }
                Op::Crash { .. } => {
                    dirty.clear();
                    dirs.clear();
                    failed.clear();
                }
            }
        }
        Unsynced {
            files: dirty.into_iter().collect(),
            dirs: dirs.into_iter().collect(),
            failed_syncs: failed.into_iter().collect(),
        }
    }

    /// What is not durable after the whole trace.
    pub fn unsynced_at_end(&self) -> Unsynced {
        self.unsynced_at(self.ops.len())
    }

    /// Panics, listing the culprits, unless everything in the trace is durable: call it right
    /// after an acknowledged `flush()` in a quiescent test.
    #[track_caller]
    pub fn assert_all_durable(&self) {
        let unsynced = self.unsynced_at_end();
        assert!(
            unsynced.is_empty(),
            "sync discipline violated after {} ops:\n{unsynced}",
            self.ops.len()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    fn write(file: FileId, path: &str) -> Op {
        Op::Write {
            file,
            path: p(path),
            offset: 0,
            len: 1,
        }
    }

    #[test]
    fn write_needs_file_sync_and_create_needs_dir_sync() {
        let mut t = Trace::default();
        t.push(Op::Create {
            file: 1,
            path: p("/db/log"),
        });
        t.push(write(1, "/db/log"));
        let u = t.unsynced_at_end();
        assert_eq!(u.files, vec![(1, p("/db/log"))]);
        assert_eq!(u.dirs, vec![p("/db")]);
        t.push(Op::SyncData {
            file: 1,
            path: p("/db/log"),
        });
        assert_eq!(t.unsynced_at_end().files, vec![]);
        assert_eq!(t.unsynced_at_end().dirs, vec![p("/db")]);
        t.push(Op::SyncDir { path: p("/db") });
        t.assert_all_durable();
        // Earlier positions still show the earlier state.
        assert_eq!(t.unsynced_at(2).files.len(), 1);
    }

    #[test]
    fn rename_dirties_both_parents() {
        let mut t = Trace::default();
        t.push(Op::Rename {
            from: p("/a/x"),
            to: p("/b/x"),
            file: 3,
            replaced: None,
        });
        assert_eq!(t.unsynced_at_end().dirs, vec![p("/a"), p("/b")]);
        t.push(Op::SyncDir { path: p("/b") });
        assert_eq!(t.unsynced_at_end().dirs, vec![p("/a")]);
    }

    #[test]
    fn failed_sync_is_reported_even_after_a_later_good_sync() {
        let mut t = Trace::default();
        t.push(write(1, "f"));
        t.push(Op::SyncFailed {
            file: 1,
            path: p("f"),
        });
        t.push(Op::SyncAll {
            file: 1,
            path: p("f"),
        });
        let u = t.unsynced_at_end();
        assert!(u.files.is_empty());
        assert_eq!(u.failed_syncs, vec![(1, p("f"))]);
        t.push(Op::Crash { seed: 0 });
        t.assert_all_durable();
    }

    #[test]
    #[should_panic(expected = "sync discipline violated")]
    fn assert_all_durable_panics_on_unsynced_write() {
        let mut t = Trace::default();
        t.push(write(1, "f"));
        t.assert_all_durable();
    }

    #[test]
    fn removed_file_needs_no_data_sync() {
        let mut t = Trace::default();
        t.push(write(1, "/d/f"));
        t.push(Op::Remove {
            file: 1,
            path: p("/d/f"),
        });
        t.push(Op::SyncDir { path: p("/d") });
        t.assert_all_durable();
    }
}
