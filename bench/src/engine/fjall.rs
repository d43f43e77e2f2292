//! fjall 3 (an LSM tree): single operations go straight to the keyspace, groups through an atomic
//! `WriteBatch`; durability is `Database::persist(SyncData)` (fdatasync of the journal, which
//! fjall documents as its ACID mode). Compaction and flush workers are capped at
//! `background_threads`. Reads see the live keyspace.

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

use super::{Durability, Engine, Op, OpenOptions, Reader, Result};

pub struct Fjall {
    db: Database,
    keyspace: Keyspace,
}

impl Fjall {
    pub fn open(options: &OpenOptions) -> Result<Self> {
        let db = Database::builder(&options.dir)
            .cache_size(options.cache_capacity_bytes)
            .worker_threads(options.background_threads.max(1))
            .open()?;
        let keyspace = db.keyspace("kv", KeyspaceCreateOptions::default)?;
        Ok(Self { db, keyspace })
    }
}

impl Engine for Fjall {
    fn write(&self, ops: &[Op<'_>], durability: Durability) -> Result<()> {
        match ops {
            [Op::Insert(k, v)] => self.keyspace.insert(*k, *v)?,
            [Op::Remove(k)] => self.keyspace.remove(*k)?,
            _ => {
                let mut batch = self.db.batch();
                for op in ops {
                    match *op {
                        Op::Insert(k, v) => batch.insert(&self.keyspace, k, v),
                        Op::Remove(k) => batch.remove(&self.keyspace, k),
                    }
                }
                batch.commit()?;
            }
        }
        if durability == Durability::Durable {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        self.db.persist(PersistMode::SyncData)?;
        Ok(())
    }

    fn reader(&self) -> Result<Box<dyn Reader + '_>> {
        Ok(Box::new(&self.keyspace))
    }

    fn len(&self) -> Result<u64> {
        Ok(self.keyspace.len()? as u64)
    }
}

impl Reader for &Keyspace {
    fn get(&mut self, key: &[u8]) -> Result<Option<usize>> {
        Ok(Keyspace::get(self, key)?.map(|v| v.len()))
    }

    fn scan(&mut self, start: &[u8], n: usize) -> Result<usize> {
        let mut found = 0;
        for guard in self.range(start..).take(n) {
            let (_, v) = guard.into_inner()?;
            std::hint::black_box(v.len());
            found += 1;
        }
        Ok(found)
    }
}
