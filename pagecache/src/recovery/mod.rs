//! Opening: load the newest valid checkpoint, open the log from its LSN, replay the fragment
//! records after it, rebuild the mapping table and the page-id allocator, and tell the log
//! which records are still live.
//!
//! Startup reads the checkpoint plus the log written since it, never the whole history.
//! Single-fragment pages start evicted (one slot word, no read); pages with deltas are read
//! back at open (their chain cannot live in one word).

use std::collections::HashMap;
use std::sync::Arc;

use logstore::io::Storage;
use logstore::{DirLock, DiskPtr, Log, Lsn, RecoveredRecord};
use radix::{Pid, PidAllocator, RadixTable, SlotWord};

use crate::checkpoint;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::fragment::Kind;
use crate::group::{record, GroupState};
use crate::inner::{read_fragment, read_nth_fragment, unresolved};
use crate::location::Location;
use crate::model::PageModel;
use crate::node::Node;
use crate::stats::{add, Counters};

/// What recovery hands to the cache.
pub(crate) struct Recovered {
    pub(crate) log: Log,
    pub(crate) table: RadixTable,
    pub(crate) pids: PidAllocator,
    pub(crate) counters: Arc<Counters>,
    /// Checkpoint files found corrupt (the cache removes them once a new one is written).
    pub(crate) corrupt_checkpoints: Vec<std::path::PathBuf>,
}

/// Page id -> fragment locations, oldest first.
type PageTable = HashMap<u64, Vec<Location>>;

pub(crate) fn recover<M: PageModel>(cfg: &Config, storage: &Arc<dyn Storage>) -> Result<Recovered> {
    // The lock comes before the first read: another open store may be rewriting the
    // checkpoints. The log holds it from here on.
    let lock = DirLock::acquire(storage.as_ref(), &cfg.path)?;
    let loaded = checkpoint::load(storage.as_ref(), &cfg.path)?;
    let fell_back = loaded.as_ref().is_some_and(|l| l.fell_back);
    let (from, mut next_fresh, mut pages, corrupt) = match loaded {
        Some(l) => {
            let pages: PageTable = l
                .checkpoint
                .pages
                .into_iter()
                .map(|(pid, locs)| (pid.get(), locs))
                .collect();
            (l.checkpoint.lsn, l.checkpoint.next_fresh, pages, l.corrupt)
        }
        None => (Lsn(0), 0, PageTable::new(), Vec::new()),
    };
    let mut log_cfg = cfg.log.clone();
    log_cfg.path = cfg.path.clone();
    let (log, records) = Log::open_locked(log_cfg, storage.clone(), from, lock)?;
    replay(cfg, &records, &mut pages, &mut next_fresh)?;
    drop(records);
    let counters = Arc::new(Counters::default());
    add(&counters.checkpoint_fallbacks, u64::from(fell_back));
    let table = RadixTable::new();
    let mut live = Vec::new();
    // Group records named by the pages: one shared state each, counted once in `live`.
    let mut groups = HashMap::new();
    let mut read_back = ReadBack::<M>(Vec::new());
    for (&raw, locs) in &pages {
        let pid = Pid::new(raw).expect("replayed and checkpointed pids are validated");
        let word = if let [loc] = locs.as_slice() {
            let ptr = log
                .pointer_at(loc.file_offset(), loc.record_len())
                .map_err(|e| unresolved(e, &cfg.path, pid, *loc))?;
            live.push(ptr);
            SlotWord::on_disk(loc.to_word())
        } else {
            let head = materialize::<M>(cfg, &log, pid, locs, &mut live, &mut groups)?;
            add(&counters.resident_bytes, head.chain_bytes as u64);
            let head = Box::into_raw(head);
            read_back.0.push(head);
            SlotWord::in_memory(head)
        };
        table
            .slot(pid)
            .try_replace(SlotWord::FREE, word)
            .expect("each page is installed once");
    }
    // Recovery can no longer fail: the table owns the chains from here on.
    read_back.0.clear();
    log.reset_live(live);
    // The free ids below `next_fresh` become ranges between the live pids: the cost is in the
    // pages on disk, not in `next_fresh` (which a shrunken database, or a crafted file, may put
    // near `Pid::MAX`).
    let live = pages
        .keys()
        .map(|&raw| Pid::new(raw).expect("replayed and checkpointed pids are validated"));
    let pids = PidAllocator::from_live(next_fresh, live);
    Ok(Recovered {
        log,
        table,
        pids,
        counters,
        corrupt_checkpoints: corrupt,
    })
}

/// The chains recovery has read back and installed in its new table, freed if recovery fails
/// before the table is handed to the cache (the table never frees what its slots point to).
struct ReadBack<M: PageModel>(Vec<*mut Node<M>>);

impl<M: PageModel> Drop for ReadBack<M> {
    fn drop(&mut self) {
        for &head in &self.0 {
            // SAFETY: `head` came from `Box::into_raw` in `recover` and was only stored in the
            // table being abandoned with this error, which no other thread has seen and which
            // never dereferences its slots; each pointer is listed once.
            drop(unsafe { Box::from_raw(head) });
        }
    }
}

/// Applies fragment records (LSN order) to the page table.
fn replay(
    cfg: &Config,
    records: &[RecoveredRecord],
    pages: &mut PageTable,
    next_fresh: &mut u64,
) -> Result<()> {
    let data = cfg.path.join(logstore::DATA_FILE);
    for rec in records {
        // A group record is all its sub-fragments, each applied as a Delta, in order.
        let (frags, _) = record::decode_any(&rec.body)
            .map_err(|e| Error::corruption(format!("log record at {:?}: {e}", rec.lsn), &data))?;
        let loc = Location::of(&rec.ptr)?;
        for frag in frags {
            let pid = frag.pid.get();
            match frag.kind {
                Kind::Base => {
                    pages.insert(pid, vec![loc]);
                }
                Kind::Delta => {
                    let mut locs = frag.prev;
                    locs.push(loc);
                    pages.insert(pid, locs);
                }
                Kind::Free => {
                    pages.remove(&pid);
                }
                Kind::Group => unreachable!("decode_any returns a group's sub-fragments"),
            }
            *next_fresh = (*next_fresh).max(pid + 1);
        }
    }
    Ok(())
}

/// Reads a page's fragments (oldest first) back into a chain. A fragment in a group record is
/// the page's k-th sub-fragment there when the chain names that record for the k-th time;
/// its node shares the record's state in `groups` (created, and the record counted live, on
/// first use).
fn materialize<M: PageModel>(
    cfg: &Config,
    log: &Log,
    pid: Pid,
    locs: &[Location],
    live: &mut Vec<DiskPtr>,
    groups: &mut HashMap<Location, Arc<GroupState>>,
) -> Result<Box<Node<M>>> {
    let (base_loc, delta_locs) = locs
        .split_first()
        .expect("a page has at least one fragment");
    let (ptr, base) = read_fragment(log, &cfg.path, pid, *base_loc, Kind::Base)?;
    live.push(ptr);
    let mut head = Node::<M>::base(base, ptr, 0);
    head.mark_completed();
    for (i, &loc) in delta_locs.iter().enumerate() {
        let nth = delta_locs[..i].iter().filter(|&&l| l == loc).count();
        let (ptr, delta, in_group) = read_nth_fragment(log, &cfg.path, pid, loc, Kind::Delta, nth)?;
        let older = Box::into_raw(head);
        // SAFETY: `older` comes from `Box::into_raw`, was never published and is ours; the new
        // node links to it and owns it from here on (its drop frees the older nodes too).
        head = if in_group {
            let state = groups.entry(loc).or_insert_with(|| {
                live.push(ptr);
                Arc::new(GroupState::recovered(ptr))
            });
            state.add_live();
            // SAFETY: see above.
            unsafe { Node::group_delta(delta, Arc::clone(state), older) }
        } else {
            live.push(ptr);
            // SAFETY: see above.
            unsafe { Node::delta(delta, ptr, older) }
        };
        head.mark_completed();
    }
    Ok(head)
}

#[cfg(all(test, not(loom)))]
mod tests;
