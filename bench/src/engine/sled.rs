//! sled 0.34: the store bwtree's API follows. A write group of one is a plain `insert`/`remove`,
//! larger ones an atomic `Batch`; durability is `flush()`. Its periodic background flush is left
//! at the default (500 ms), as a user would run it.
//!
//! Caveat for the durable phases: on Linux sled 0.34's `flush` ends in `sync_file_range`, not
//! `fsync`/`fdatasync` (strace of a run: 1165 `sync_file_range`, 5 `fsync`), which neither
//! flushes the drive's write cache nor the file's metadata. Its durable-write figures are
//! therefore not comparable with the other stores', which all `fdatasync` per commit.

use super::{Durability, Engine, Op, OpenOptions, Reader, Result};

pub struct Sled {
    db: sled::Db,
}

impl Sled {
    pub fn open(options: &OpenOptions) -> Result<Self> {
        let db = sled::Config::new()
            .path(&options.dir)
            .cache_capacity(options.cache_capacity_bytes)
            .open()?;
        Ok(Self { db })
    }
}

impl Engine for Sled {
    fn write(&self, ops: &[Op<'_>], durability: Durability) -> Result<()> {
        match ops {
            [Op::Insert(k, v)] => drop(self.db.insert(k, *v)?),
            [Op::Remove(k)] => drop(self.db.remove(k)?),
            _ => {
                let mut batch = sled::Batch::default();
                for op in ops {
                    match *op {
                        Op::Insert(k, v) => batch.insert(k, v),
                        Op::Remove(k) => batch.remove(k),
                    }
                }
                self.db.apply_batch(batch)?;
            }
        }
        if durability == Durability::Durable {
            self.db.flush()?;
        }
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }

    fn reader(&self) -> Result<Box<dyn Reader + '_>> {
        Ok(Box::new(&self.db))
    }

    fn len(&self) -> Result<u64> {
        Ok(self.db.len() as u64)
    }
}

impl Reader for &sled::Db {
    fn get(&mut self, key: &[u8]) -> Result<Option<usize>> {
        Ok(sled::Tree::get(self, key)?.map(|v| v.len()))
    }

    fn scan(&mut self, start: &[u8], n: usize) -> Result<usize> {
        let mut found = 0;
        for pair in self.range(start..).take(n) {
            let (_, v) = pair?;
            std::hint::black_box(v.len());
            found += 1;
        }
        Ok(found)
    }
}
