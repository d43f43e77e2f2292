//! The simulator's two-level directory namespace.
//!
//! `volatile` is what lookups see; `durable` is what survives power loss. Every change is one
//! atomic group of entry edits (a create or remove is one edit; a rename is two: unlink the old
//! name, link the new one) applied to `volatile` at once and appended to `log`.
//! `sync_dir(d)` moves the edits of entries *inside* `d` from the log into `durable`, in order,
//! leaving the others pending; so a rename across directories becomes durable half by half, as
//! POSIX allows. On a crash the caller keeps no edits or a prefix of whole groups (journaling
//! file systems commit metadata in order, and a rename is never half-done within one directory),
//! then entries whose parent directory did not survive are pruned.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use crate::io::rng::SimRng;
use crate::io::trace::FileId;

/// A directory entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Entry {
    /// A directory.
    Dir,
    /// A regular file, by inode number.
    File(FileId),
}

/// One unsynced edit: `path` now names `entry` (or nothing, for `None`).
#[derive(Debug, Clone)]
struct Edit {
    path: PathBuf,
    entry: Option<Entry>,
    /// Edits with the same group id were made by one call and survive a crash together.
    group: u64,
}

/// Lexical normalization: drops `.`, resolves `..`, so equal paths compare equal.
pub(crate) fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// The directory whose `sync_dir` makes `path`'s entry durable.
pub(crate) fn parent(path: &Path) -> PathBuf {
    path.parent().map(Path::to_path_buf).unwrap_or_default()
}

/// The root directories (`/` and the empty relative root) always exist.
fn is_root(path: &Path) -> bool {
    path.as_os_str().is_empty() || path == Path::new("/")
}

fn is_dir(map: &BTreeMap<PathBuf, Entry>, path: &Path) -> bool {
    is_root(path) || map.get(path) == Some(&Entry::Dir)
}

/// The durable and volatile directory trees, and the edits between them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Namespace {
    durable: BTreeMap<PathBuf, Entry>,
    volatile: BTreeMap<PathBuf, Entry>,
    log: Vec<Edit>,
    next_group: u64,
}

impl Namespace {
    /// What `path` names now (roots are directories).
    pub(crate) fn lookup(&self, path: &Path) -> Option<Entry> {
        if is_root(path) {
            return Some(Entry::Dir);
        }
        self.volatile.get(path).copied()
    }

    /// Whether `path` is a directory now.
    pub(crate) fn is_dir(&self, path: &Path) -> bool {
        is_dir(&self.volatile, path)
    }

    /// What `path` names in the durable tree.
    #[cfg(test)]
    pub(crate) fn lookup_durable(&self, path: &Path) -> Option<Entry> {
        self.durable.get(path).copied()
    }

    /// The entries directly inside `dir`, sorted.
    pub(crate) fn children(&self, dir: &Path) -> Vec<PathBuf> {
        self.volatile
            .keys()
            .filter(|p| parent(p) == dir)
            .cloned()
            .collect()
    }

    /// Paths of the regular files in the volatile (`durable == false`) or durable tree.
    pub(crate) fn files(&self, durable: bool) -> Vec<(PathBuf, FileId)> {
        let map = if durable {
            &self.durable
        } else {
            &self.volatile
        };
        map.iter()
            .filter_map(|(p, e)| match e {
                Entry::File(id) => Some((p.clone(), *id)),
                Entry::Dir => None,
            })
            .collect()
    }

    /// Applies one call's edits to the volatile tree and logs them as one atomic group.
    pub(crate) fn change(&mut self, edits: &[(&Path, Option<Entry>)]) {
        let group = self.next_group;
        self.next_group += 1;
        for (path, entry) in edits {
            assert!(!is_root(path), "the root directory has no entry to change");
            match entry {
                Some(e) => self.volatile.insert(path.to_path_buf(), *e),
                None => self.volatile.remove(*path),
            };
            self.log.push(Edit {
                path: path.to_path_buf(),
                entry: *entry,
                group,
            });
        }
    }

    /// Makes the pending edits of entries inside `dir` durable.
    pub(crate) fn sync_dir(&mut self, dir: &Path) {
        let (now, later): (Vec<Edit>, Vec<Edit>) = std::mem::take(&mut self.log)
            .into_iter()
            .partition(|e| parent(&e.path) == dir);
        self.log = later;
        for edit in now {
            apply(&mut self.durable, edit);
        }
    }

    /// Power loss: keeps no pending edits, or (with `keep_some`) a random prefix of whole
    /// groups; prunes orphans; the volatile tree restarts as the durable one.
    pub(crate) fn crash(&mut self, keep_some: bool, rng: &mut SimRng) {
        let log = std::mem::take(&mut self.log);
        if keep_some && !log.is_empty() {
            // A group's edits are adjacent in the log (pushed together, `sync_dir` keeps order).
            let groups = 1 + log.windows(2).filter(|w| w[0].group != w[1].group).count() as u64;
            let keep_groups = rng.below(groups + 1);
            let mut seen = 0;
            let mut last = None;
            for edit in log {
                if last != Some(edit.group) {
                    seen += 1;
                    last = Some(edit.group);
                }
                if seen > keep_groups {
                    break;
                }
                apply(&mut self.durable, edit);
            }
        }
        self.prune_orphans();
        self.volatile = self.durable.clone();
    }

    /// Drops durable entries whose parent directory is not durable. `Path` orders by
    /// components, so a parent is visited before its children.
    fn prune_orphans(&mut self) {
        let mut kept = BTreeMap::new();
        for (path, entry) in std::mem::take(&mut self.durable) {
            if is_dir(&kept, &parent(&path)) {
                kept.insert(path, entry);
            }
        }
        self.durable = kept;
    }
}

fn apply(map: &mut BTreeMap<PathBuf, Entry>, edit: Edit) {
    match edit.entry {
        Some(e) => map.insert(edit.path, e),
        None => map.remove(&edit.path),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_and_parent() {
        assert_eq!(normalize(Path::new("/a/./b/../c")), PathBuf::from("/a/c"));
        assert_eq!(parent(Path::new("/a")), PathBuf::from("/"));
        assert_eq!(parent(Path::new("a")), PathBuf::new());
    }

    #[test]
    fn sync_dir_only_persists_its_own_entries() {
        let mut ns = Namespace::default();
        let (a, b) = (Path::new("/a"), Path::new("/a/f"));
        ns.change(&[(a, Some(Entry::Dir))]);
        ns.change(&[(b, Some(Entry::File(1)))]);
        ns.sync_dir(Path::new("/a"));
        assert_eq!(ns.lookup_durable(b), Some(Entry::File(1)));
        assert_eq!(ns.lookup_durable(a), None);
        // A crash prunes /a/f: its parent never became durable.
        ns.crash(false, &mut SimRng::new(0));
        assert_eq!(ns.lookup(b), None);
    }

    #[test]
    fn crash_keeps_whole_rename_groups() {
        for seed in 0..64 {
            let mut ns = Namespace::default();
            let (x, y) = (Path::new("/x"), Path::new("/y"));
            ns.change(&[(x, Some(Entry::File(1)))]);
            ns.sync_dir(Path::new("/"));
            ns.change(&[(x, None), (y, Some(Entry::File(1)))]);
            ns.crash(true, &mut SimRng::new(seed));
            let state = (ns.lookup(x), ns.lookup(y));
            assert!(
                state == (Some(Entry::File(1)), None) || state == (None, Some(Entry::File(1))),
                "seed {seed}: rename not atomic: {state:?}"
            );
        }
    }
}
