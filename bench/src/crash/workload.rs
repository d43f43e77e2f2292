//! The torture's workload: a seeded sequence of writes over three trees and the flushes between
//! them. Generation reads the model (a compare-and-swap names the value it expects), so the
//! sequence is a pure function of the seed and the state it starts from: a child runs it
//! against the database, the parent recomputes it to check what the child left behind.
//!
//! Every write is one step, a batch included, so "the database equals the model after some
//! prefix of the steps" already says that a batch is all or nothing.

use std::collections::BTreeMap;

use logstore::io::SimRng;

/// The trees written: the default one (index 0) and two named ones.
pub const TREE_NAMES: [&str; 3] = ["", "red", "blue"];
/// Keys per tree: small enough that writes collide, large enough for a few levels of
/// 6-entry nodes.
const KEYS_PER_TREE: u64 = 400;
/// The largest value written (long values fill segments and push the cache past its budget).
const LONG_VALUE_BYTES: u64 = 300;
/// An updated value grows by one byte per update and is removed once it reaches this length.
const UPDATE_REMOVES_AT: usize = 24;

pub type Map = BTreeMap<Vec<u8>, Vec<u8>>;

/// The contents of every tree, in [`TREE_NAMES`] order.
pub type State = [Map; TREE_NAMES.len()];

/// A writer thread's share of the keys: key numbers `index`, `index + count`, ... Each lane
/// has its own sequence and model, so lanes run concurrently and are still checked exactly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lane {
    pub index: u64,
    pub count: u64,
}

impl Lane {
    pub const ALL: Lane = Lane { index: 0, count: 1 };

    /// The lanes of a child with `count` writer threads.
    pub fn all(count: u64) -> impl Iterator<Item = Lane> {
        (0..count).map(move |index| Lane { index, count })
    }

    /// The seed of this lane's sequence in a child seeded with `seed`.
    pub fn seed(self, seed: u64) -> u64 {
        seed ^ self.index.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    /// Whether this lane writes `key`. A key no lane writes (which no write made) belongs to
    /// lane 0, so that its check reports it.
    fn owns(self, key: &[u8]) -> bool {
        key_number(key).map_or(self.index == 0, |i| i % self.count == self.index)
    }

    /// The part of `state` whose keys this lane writes.
    pub fn part(self, state: &State) -> State {
        let mut part = State::default();
        for (p, map) in part.iter_mut().zip(state) {
            p.extend(
                map.iter()
                    .filter(|(k, _)| self.owns(k))
                    .map(|(k, v)| (k.clone(), v.clone())),
            );
        }
        part
    }
}

/// One write, exactly as the child issues it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Insert(usize, Vec<u8>, Vec<u8>),
    Remove(usize, Vec<u8>),
    /// `apply_batch` on one tree (`None`: remove). Keys are distinct.
    Batch(usize, Vec<(Vec<u8>, Option<Vec<u8>>)>),
    /// `compare_and_swap(key, old, new)`.
    Cas(usize, Vec<u8>, Option<Vec<u8>>, Option<Vec<u8>>),
    /// `update_and_fetch(key, bump)`.
    Update(usize, Vec<u8>),
}

/// What a write returns, as the model predicts it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `insert` and `remove`: the previous value.
    Previous(Option<Vec<u8>>),
    /// `compare_and_swap`: whether it swapped.
    Swapped(bool),
    /// `update_and_fetch`: the new value.
    Updated(Option<Vec<u8>>),
    /// `apply_batch`.
    Applied,
}

/// One step of the sequence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    Write(Op),
    /// `Db::flush`, then the child acknowledges every write issued so far.
    Flush,
}

impl Op {
    /// The tree and keys this write may change.
    pub fn touched(&self) -> (usize, Vec<&[u8]>) {
        match self {
            Op::Insert(t, k, _) | Op::Remove(t, k) | Op::Cas(t, k, _, _) | Op::Update(t, k) => {
                (*t, vec![k.as_slice()])
            }
            Op::Batch(t, writes) => (*t, writes.iter().map(|(k, _)| k.as_slice()).collect()),
        }
    }
}

/// The update function of [`Op::Update`]: append a byte, remove the key once it is long.
pub fn bump(current: Option<&[u8]>) -> Option<Vec<u8>> {
    match current {
        None => Some(vec![b'a']),
        Some(v) if v.len() >= UPDATE_REMOVES_AT => None,
        Some(v) => {
            let mut next = v.to_vec();
            next.push(b'a' + (v.len() % 26) as u8);
            Some(next)
        }
    }
}

/// The generator and the model it runs on.
#[derive(Debug)]
pub struct Workload {
    rng: SimRng,
    /// Writes generated so far (the acknowledgement counts these).
    pub writes: u64,
    /// The write count at which the next flush comes.
    next_flush_at: u64,
    /// Most writes between two flushes (drawn once per seed: some children flush after every
    /// write, some rarely).
    max_flush_gap: u64,
    /// The model: the state of the lane's keys after every write generated so far.
    pub state: State,
    lane: Lane,
}

impl Workload {
    /// The sequence of `lane` in a child seeded with `seed`, from `state` (the lane's part).
    pub fn new(seed: u64, lane: Lane, state: State) -> Workload {
        let mut rng = SimRng::new(lane.seed(seed));
        let max_flush_gap = [1, 4, 16, 64][rng.below(4) as usize];
        let mut w = Workload {
            rng,
            writes: 0,
            next_flush_at: 0,
            max_flush_gap,
            state,
            lane,
        };
        w.next_flush_at = w.flush_gap();
        w
    }

    fn flush_gap(&mut self) -> u64 {
        1 + self.rng.below(self.max_flush_gap)
    }

    /// The next step; a write is applied to the model, its outcome returned beside it.
    pub fn step(&mut self) -> (Step, Outcome) {
        if self.writes == self.next_flush_at {
            self.next_flush_at += self.flush_gap();
            return (Step::Flush, Outcome::Applied);
        }
        let op = self.pick();
        let outcome = apply(&mut self.state, &op);
        self.writes += 1;
        (Step::Write(op), outcome)
    }

    /// The lane's `i`-th key.
    fn key_at(&self, i: u64) -> Vec<u8> {
        key_at(i * self.lane.count + self.lane.index)
    }

    fn keys(&self) -> u64 {
        KEYS_PER_TREE / self.lane.count
    }

    fn key(&mut self) -> Vec<u8> {
        let i = self.rng.below(self.keys());
        self.key_at(i)
    }

    /// A value carrying this write's number, then filler (cut short when the drawn length is
    /// shorter; empty values are written too), usually short.
    fn value(&mut self) -> Vec<u8> {
        let len = if self.rng.below(5) == 0 {
            100 + self.rng.below(LONG_VALUE_BYTES - 100)
        } else {
            self.rng.below(24)
        };
        let mut v = format!("{}:", self.writes).into_bytes();
        v.resize(len as usize, b'a' + (self.writes % 26) as u8);
        v
    }

    fn pick(&mut self) -> Op {
        let tree = self.rng.below(TREE_NAMES.len() as u64) as usize;
        match self.rng.below(100) {
            0..35 => Op::Insert(tree, self.key(), self.value()),
            35..55 => Op::Remove(tree, self.key()),
            55..70 => Op::Batch(tree, self.batch()),
            70..85 => self.cas(tree),
            _ => Op::Update(tree, self.key()),
        }
    }

    /// A run of consecutive keys filled or cleared (splits and merges), or a scattered mix.
    fn batch(&mut self) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        let len = 2 + self.rng.below(14);
        let first = self.rng.below(self.keys() - len);
        let mut writes = BTreeMap::new();
        match self.rng.below(4) {
            0 | 1 => (first..first + len).for_each(|i| {
                writes.insert(self.key_at(i), Some(self.value()));
            }),
            2 => (first..first + len).for_each(|i| {
                writes.insert(self.key_at(i), None);
            }),
            _ => (0..len).for_each(|_| {
                let write = self.rng.below(2) == 0;
                let k = self.key();
                writes.insert(k, write.then(|| self.value()));
            }),
        }
        writes.into_iter().collect()
    }

    /// Usually expects the current value (and swaps), sometimes a wrong one (and fails).
    fn cas(&mut self, tree: usize) -> Op {
        let key = self.key();
        let current = self.state[tree].get(&key).cloned();
        let old = if self.rng.below(4) == 0 {
            match current {
                Some(mut v) => {
                    v.push(b'!');
                    Some(v)
                }
                None => Some(b"absent".to_vec()),
            }
        } else {
            current
        };
        let new = (self.rng.below(10) < 7).then(|| self.value());
        Op::Cas(tree, key, old, new)
    }
}

fn key_at(i: u64) -> Vec<u8> {
    format!("key{i:04}").into_bytes()
}

fn key_number(key: &[u8]) -> Option<u64> {
    std::str::from_utf8(key.strip_prefix(b"key")?)
        .ok()?
        .parse()
        .ok()
}

/// Applies `op` to `state` as the database must, returning what the call returns.
pub fn apply(state: &mut State, op: &Op) -> Outcome {
    match op {
        Op::Insert(t, k, v) => Outcome::Previous(state[*t].insert(k.clone(), v.clone())),
        Op::Remove(t, k) => Outcome::Previous(state[*t].remove(k)),
        Op::Batch(t, writes) => {
            for (k, v) in writes {
                set(&mut state[*t], k, v.clone());
            }
            Outcome::Applied
        }
        Op::Cas(t, k, old, new) => {
            let swapped = state[*t].get(k) == old.as_ref();
            if swapped {
                set(&mut state[*t], k, new.clone());
            }
            Outcome::Swapped(swapped)
        }
        Op::Update(t, k) => {
            let new = bump(state[*t].get(k).map(Vec::as_slice));
            set(&mut state[*t], k, new.clone());
            Outcome::Updated(new)
        }
    }
}

fn set(map: &mut Map, key: &[u8], value: Option<Vec<u8>>) {
    match value {
        Some(v) => map.insert(key.to_vec(), v),
        None => map.remove(key),
    };
}
