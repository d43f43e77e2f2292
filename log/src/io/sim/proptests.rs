//! Property tests of the simulator against byte- and namespace-level models: random writes,
//! syncs and crashes never invent data and never lose synced data; random creates, renames and
//! removals in one directory crash to a namespace that existed since the last `sync_dir`.

use std::path::Path;

use proptest::prelude::*;

use super::tests::{contents, durable_file, reopen, sim_with_db};
use super::{CrashMode, SimStorage};
use crate::io::Storage;

#[derive(Debug, Clone)]
enum Action {
    Write {
        file: usize,
        offset: u64,
        len: usize,
    },
    Sync {
        file: usize,
    },
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        3 => (0..2usize, 0..3000u64, 1..1200usize)
            .prop_map(|(file, offset, len)| Action::Write { file, offset, len }),
        1 => (0..2usize).prop_map(|file| Action::Sync { file }),
    ]
}

fn mode() -> impl Strategy<Value = CrashMode> {
    prop_oneof![
        Just(CrashMode::DROP_UNSYNCED),
        Just(CrashMode::RANDOM_WRITES),
        Just(CrashMode::TORN),
        Just(CrashMode::CHAOS),
    ]
}

/// Per file and byte: the value at the last sync, and the values written since.
#[derive(Default, Clone)]
struct Model {
    synced: Vec<u8>,
    since_sync: Vec<Vec<u8>>,
}

impl Model {
    fn write(&mut self, offset: usize, len: usize, value: u8) {
        if self.since_sync.len() < offset + len {
            self.since_sync.resize(offset + len, Vec::new());
        }
        for byte in &mut self.since_sync[offset..offset + len] {
            byte.push(value);
        }
    }

    fn sync(&mut self) {
        for (i, values) in self.since_sync.iter_mut().enumerate() {
            if let Some(&last) = values.last() {
                if self.synced.len() <= i {
                    self.synced.resize(i + 1, 0);
                }
                self.synced[i] = last;
            }
            values.clear();
        }
    }

    /// Every byte after the crash is its synced value or a value written since; a byte
    /// nobody wrote since the sync is exactly its synced value (0 in holes).
    fn check(&self, after: &[u8], exact: bool) -> Result<(), TestCaseError> {
        prop_assert!(after.len() >= self.synced.len(), "synced length lost");
        prop_assert!(after.len() <= self.since_sync.len().max(self.synced.len()));
        for (i, &got) in after.iter().enumerate() {
            let synced = self.synced.get(i).copied().unwrap_or(0);
            let since = self.since_sync.get(i).map_or(&[][..], Vec::as_slice);
            let allowed = got == synced || (!exact && since.contains(&got));
            prop_assert!(allowed, "byte {i}: {got} never written (synced {synced})");
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn crash_keeps_synced_data_and_invents_nothing(
        actions in proptest::collection::vec(action(), 1..40),
        mode in mode(),
        seed in any::<u64>(),
    ) {
        let (sim, db) = sim_with_db();
        let names = ["a", "b"];
        let files: Vec<_> = names.iter().map(|n| durable_file(&sim, &db, n)).collect();
        let mut models = vec![Model::default(); 2];
        for (i, action) in actions.iter().enumerate() {
            match *action {
                Action::Write { file, offset, len } => {
                    let value = (i % 250) as u8 + 1;
                    files[file].write_all_at(&vec![value; len], offset).unwrap();
                    models[file].write(offset as usize, len, value);
                }
                Action::Sync { file } => {
                    files[file].sync_data().unwrap();
                    models[file].sync();
                }
            }
        }
        sim.crash(seed, mode);
        for (name, model) in names.iter().zip(&models) {
            let after = contents(&*reopen(&sim, &db.join(name)));
            model.check(&after, mode == CrashMode::DROP_UNSYNCED)?;
        }
    }
}

#[derive(Debug, Clone)]
enum NsAction {
    Create(usize),
    Rename(usize, usize),
    Remove(usize),
    SyncDir,
}

fn ns_action() -> impl Strategy<Value = NsAction> {
    prop_oneof![
        (0..4usize).prop_map(NsAction::Create),
        (0..4usize, 0..4usize).prop_map(|(a, b)| NsAction::Rename(a, b)),
        (0..4usize).prop_map(NsAction::Remove),
        Just(NsAction::SyncDir),
    ]
}

type Names = std::collections::BTreeMap<usize, u8>;

/// Applies one action to the disk and the model (name -> the id written in the file).
fn apply_ns(sim: &SimStorage, db: &Path, names: &mut Names, action: &NsAction, id: u8) {
    let path = |n: usize| db.join(format!("f{n}"));
    match *action {
        NsAction::Create(n) if !names.contains_key(&n) => {
            let f = sim.open_file(&path(n), true).unwrap();
            f.write_all_at(&[id], 0).unwrap();
            f.sync_data().unwrap();
            names.insert(n, id);
        }
        NsAction::Rename(a, b) if a != b && names.contains_key(&a) => {
            sim.rename(&path(a), &path(b)).unwrap();
            let moved = names.remove(&a).unwrap();
            names.insert(b, moved);
        }
        NsAction::Remove(n) if names.contains_key(&n) => {
            sim.remove_file(&path(n)).unwrap();
            names.remove(&n);
        }
        NsAction::SyncDir => sim.sync_dir(db).unwrap(),
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    /// All edits are in one directory, so the namespace after a crash is exactly the one at
    /// the last `sync_dir` (dropping mode) or at some point after it (keeping a prefix).
    #[test]
    fn crash_leaves_a_namespace_that_existed_since_the_last_sync_dir(
        actions in proptest::collection::vec(ns_action(), 1..30),
        keep_namespace in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let (sim, db) = sim_with_db();
        let mut names = Names::new();
        let mut since_sync = vec![names.clone()];
        for (i, action) in actions.iter().enumerate() {
            apply_ns(&sim, &db, &mut names, action, i as u8);
            if matches!(action, NsAction::SyncDir) {
                since_sync.clear();
            }
            since_sync.push(names.clone());
        }
        let mode = if keep_namespace { CrashMode::CHAOS } else { CrashMode::DROP_UNSYNCED };
        sim.crash(seed, mode);
        let mut got = Names::new();
        for path in sim.read_dir(&db).unwrap() {
            let name = path.file_name().unwrap().to_str().unwrap();
            let n: usize = name[1..].parse().unwrap();
            got.insert(n, contents(&*reopen(&sim, &path))[0]);
        }
        if keep_namespace {
            prop_assert!(since_sync.contains(&got), "{got:?} never existed");
        } else {
            prop_assert_eq!(&got, &since_sync[0]);
        }
    }
}
