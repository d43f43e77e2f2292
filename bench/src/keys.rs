//! Seeded key and value streams: every engine's child process regenerates exactly the same
//! streams from `--seed`, so all engines see identical keys in identical order.
//!
//! Keys are uniformly random bytes. Values are 150-byte windows into a 4 MiB pool of random
//! bytes at a key-derived offset: incompressible (so engines that compress gain nothing on
//! size), and produced by a slice copy instead of a random-number generator call per byte, so the
//! harness costs the same for every engine.

use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// Key length of the `kv` suite (the redb benchmark's).
pub const KEY_LEN: usize = 24;
/// Value length of the `kv` suite.
pub const VALUE_LEN: usize = 150;
const POOL_LEN: usize = 4 << 20;

/// One key of the `kv` suite.
pub type Key = [u8; KEY_LEN];

/// The keys and values of one run.
#[derive(Debug)]
pub struct Dataset {
    keys: Vec<Key>,
    pool: Vec<u8>,
}

impl Dataset {
    /// `count` random keys (distinct with overwhelming probability at 192 random bits) and the
    /// value pool, all from `seed`.
    pub fn generate(seed: u64, count: usize) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        let pool = value_pool(&mut rng);
        let mut keys = vec![[0u8; KEY_LEN]; count];
        for key in &mut keys {
            rng.fill(&mut key[..]);
        }
        Self { keys, pool }
    }

    pub fn keys(&self) -> &[Key] {
        &self.keys
    }

    /// The value stored under `key`: a fixed function of the key, so readers can check it.
    pub fn value(&self, key: &Key) -> &[u8] {
        let mut word = [0u8; 8];
        word.copy_from_slice(&key[..8]);
        pool_window(&self.pool, u64::from_le_bytes(word), VALUE_LEN)
    }
}

/// A pool of random bytes that values are cut from (see [`pool_window`]).
pub fn value_pool(rng: &mut impl Rng) -> Vec<u8> {
    let mut pool = vec![0u8; POOL_LEN];
    rng.fill(&mut pool[..]);
    pool
}

/// The `len`-byte value for `word` (a key-derived number): a window of `pool`.
pub fn pool_window(pool: &[u8], word: u64, len: usize) -> &[u8] {
    let offset = (word % (pool.len() - len) as u64) as usize;
    &pool[offset..offset + len]
}

/// Indexes `0..count` in a seeded random order (`stream` tells independent orders apart).
pub fn shuffled(count: usize, seed: u64, stream: u64) -> Vec<u32> {
    let count_u32 = u32::try_from(count).expect("the kv suite holds under 4G keys");
    let mut order: Vec<u32> = (0..count_u32).collect();
    let mut rng = SmallRng::seed_from_u64(seed ^ stream.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    order.shuffle(&mut rng);
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream() {
        let a = Dataset::generate(7, 100);
        let b = Dataset::generate(7, 100);
        assert_eq!(a.keys(), b.keys());
        assert_eq!(a.value(&a.keys()[3]), b.value(&b.keys()[3]));
        assert_eq!(shuffled(50, 7, 1), shuffled(50, 7, 1));
        assert_ne!(shuffled(50, 7, 1), shuffled(50, 7, 2));
    }

    #[test]
    fn different_seed_different_keys() {
        let a = Dataset::generate(1, 10);
        let b = Dataset::generate(2, 10);
        assert_ne!(a.keys(), b.keys());
        assert_eq!(a.value(&a.keys()[0]).len(), VALUE_LEN);
    }
}
