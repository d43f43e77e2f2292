//! [`Db`]: an open database — the default tree plus the catalog of named trees, all on one
//! page cache and log.

use std::collections::HashMap;
use std::fmt;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crossbeam_epoch as epoch;
use pagecache::PageCache;
use radix::Pid;

use crate::config::Config;
use crate::core::{pid_of, Core};
use crate::error::{Error, Result};
use crate::node::{Catalog, Delta, Node, Page, CATALOG_PID};
use crate::search::View;
use crate::stats::{Counters, Stats};
use crate::tree::Tree;
use crate::value::Value;

/// The name of the default tree in the catalog.
const DEFAULT_TREE: &[u8] = b"__bwtree_default";

/// An open database. Dereferences to its default [`Tree`]. Cheap to clone, `Send + Sync`;
/// when the last handle (including trees and iterators) is dropped, it flushes and closes.
#[derive(Clone)]
pub struct Db {
    default: Tree,
    shared: Arc<DbShared>,
}

struct DbShared {
    core: Arc<Core>,
    trees: Mutex<HashMap<Value, Tree>>,
}

/// Opens (creating if needed) the database in `path` with the default configuration.
pub fn open<P: AsRef<Path>>(path: P) -> Result<Db> {
    Config::new().path(path.as_ref()).open()
}

impl Db {
    pub(crate) fn open_with(cfg: Config, storage: Arc<dyn logstore::io::Storage>) -> Result<Db> {
        let knobs = cfg.knobs()?;
        let (path, temp) = resolve_path(&cfg)?;
        let cache = PageCache::open_with_storage(cfg.cache_config(path.clone()), storage)?;
        let core = Arc::new(Core {
            cache,
            knobs,
            counters: Counters::default(),
            orphans: Default::default(),
            _temp_dir: temp.then(|| crate::core::TempDir(path)),
        });
        let shared = Arc::new(DbShared {
            core: core.clone(),
            trees: Mutex::new(HashMap::new()),
        });
        ensure_catalog(&core)?;
        let default = open_named(&core, Value::copy_from(DEFAULT_TREE))?;
        Ok(Db { default, shared })
    }

    /// Opens (creating if needed) the tree called `name`: a separate keyspace in the same
    /// database, with the same API.
    pub fn open_tree<N: AsRef<[u8]>>(&self, name: N) -> Result<Tree> {
        let name = Value::copy_from(name.as_ref());
        if *name == *DEFAULT_TREE {
            return Ok(self.default.clone());
        }
        let mut trees = self.shared.trees.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = trees.get(&name) {
            return Ok(t.clone());
        }
        let tree = open_named(&self.shared.core, name.clone())?;
        trees.insert(name, tree.clone());
        Ok(tree)
    }

    /// The names of every tree, the default one included.
    pub fn tree_names(&self) -> Result<Vec<Value>> {
        Ok(read_catalog(&self.shared.core)?
            .trees
            .into_iter()
            .map(|(n, _)| n)
            .collect())
    }

    /// Makes every completed write durable before returning.
    ///
    /// On a full disk it fails with an [`Error::Io`] for which [`Error::is_storage_full`]
    /// holds, and the writes completed since the last successful flush are not durable yet
    /// (they stay visible, and a later `flush` makes them durable once space is freed). Call
    /// it before dropping the last handle to learn whether they made it: the drop flushes too,
    /// but cannot report, and loses them on a full disk as a crash would.
    pub fn flush(&self) -> Result<()> {
        self.shared.core.cache.flush()?;
        self.shared.core.after_write();
        Ok(())
    }

    /// Writes a checkpoint now (the background thread does this every
    /// `checkpoint_every_ms`). Testbed: deterministic tests call it themselves.
    #[doc(hidden)]
    pub fn checkpoint(&self) -> Result<()> {
        Ok(self.shared.core.cache.checkpoint()?)
    }

    /// Runs one segment-cleaning pass now (the background thread does this every
    /// `clean_every_ms`) and returns how many pages it rewrote. Testbed: deterministic tests
    /// call it themselves.
    #[doc(hidden)]
    pub fn clean(&self) -> Result<u64> {
        Ok(self.shared.core.cache.clean()?.pages_relocated)
    }

    /// Bytes the database's files take on disk.
    pub fn size_on_disk(&self) -> Result<u64> {
        dir_size(self.shared.core.cache_path())
    }

    /// Counters since open (the concurrency testbed's view).
    pub fn stats(&self) -> Stats {
        self.default.stats()
    }

    /// What the background thread's latest checkpoint or cleaning pass failed with, if one
    /// did. A full disk is reported until a later pass of the same task succeeds (once space
    /// is freed); any other error (the log refuses writes, a file is damaged) stays until the
    /// database is reopened.
    pub fn background_error(&self) -> Option<String> {
        self.shared.core.cache.background_error()
    }
}

impl Deref for Db {
    type Target = Tree;
    fn deref(&self) -> &Tree {
        &self.default
    }
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Db")
            .field("path", &self.shared.core.cache_path())
            .finish_non_exhaustive()
    }
}

fn resolve_path(cfg: &Config) -> Result<(PathBuf, bool)> {
    match (&cfg.path, cfg.temporary) {
        (Some(p), t) => Ok((p.clone(), t)),
        (None, true) => Ok((crate::core::fresh_temp_path(), true)),
        (None, false) => Err(Error::Unsupported(
            "configuration: no path; set Config::path or Config::temporary(true)".into(),
        )),
    }
}

/// Creates the catalog page in a new database (it must be the first page).
fn ensure_catalog(core: &Core) -> Result<()> {
    let guard = epoch::pin();
    let catalog_pid = pid_of(CATALOG_PID)?;
    if core.read(catalog_pid, &guard)?.is_some() {
        return Ok(());
    }
    let pid = core.allocate(Page::Catalog(Catalog::default()), &guard)?;
    if pid != catalog_pid {
        return Err(Error::Corruption {
            what: format!("the catalog page is missing (a new page got id {pid})"),
            at: core.cache_path().display().to_string(),
        });
    }
    Ok(())
}

fn catalog_view<'g>(core: &Core, guard: &'g epoch::Guard) -> Result<View<'g>> {
    core.read(pid_of(CATALOG_PID)?, guard)?
        .ok_or_else(|| Error::Corruption {
            what: "the catalog page is missing".into(),
            at: core.cache_path().display().to_string(),
        })
}

fn read_catalog(core: &Core) -> Result<Catalog> {
    let guard = epoch::pin();
    match catalog_view(core, &guard)?.consolidate().into_page() {
        Page::Catalog(c) => Ok(c),
        Page::Node(_) => Err(Error::Corruption {
            what: "page 0 is a tree node, not the catalog".into(),
            at: core.cache_path().display().to_string(),
        }),
    }
}

/// The tree `name`, created (an empty leaf root, then its catalog entry) if missing.
fn open_named(core: &Arc<Core>, name: Value) -> Result<Tree> {
    let tree = |root: Pid| Tree {
        core: core.clone(),
        root,
        name: name.clone(),
    };
    let guard = epoch::pin();
    let mut fresh_root: Option<Pid> = None;
    for _ in 0..crate::core::MAX_RESTARTS {
        let view = catalog_view(core, &guard)?;
        let Page::Catalog(cat) = view.consolidate().into_page() else {
            return Err(Error::Corruption {
                what: "page 0 is not the catalog".into(),
                at: core.cache_path().display().to_string(),
            });
        };
        if let Some((_, root)) = cat.trees.iter().find(|(n, _)| *n == name) {
            if let Some(unused) = fresh_root {
                core.free_unreachable(unused.get(), &guard)?;
            }
            return Ok(tree(pid_of(*root)?));
        }
        let root = match fresh_root {
            Some(r) => r,
            None => core.allocate(Page::Node(Node::default()), &guard)?,
        };
        fresh_root = Some(root);
        let add = Delta::AddTree {
            name: name.clone(),
            root: root.get(),
        };
        match core.try_prepend(add, &view, &guard) {
            Ok(Some(_)) => return Ok(tree(root)),
            Ok(None) => {}
            Err(e) => {
                // On a full disk the catalog entry was not installed: free the root nobody
                // names (through the orphan list, as for an unpublished split half).
                if e.is_storage_full() {
                    let _ = core.free_unreachable(root.get(), &guard);
                }
                return Err(e);
            }
        }
    }
    Err(Error::Contention("creating a tree"))
}

fn dir_size(path: &Path) -> Result<u64> {
    let io = |op: &str, e: std::io::Error| Error::Io {
        op: op.to_string(),
        path: path.to_path_buf(),
        source: e,
    };
    let mut total = 0;
    for entry in std::fs::read_dir(path).map_err(|e| io("read directory", e))? {
        let entry = entry.map_err(|e| io("read directory", e))?;
        let meta = entry.metadata().map_err(|e| io("stat", e))?;
        total += if meta.is_dir() {
            dir_size(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}
