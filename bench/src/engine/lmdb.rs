//! LMDB through heed: one write transaction per write group. The environment is opened with
//! `NO_SYNC` so that each group can choose: a durable group is followed by `mdb_env_sync(force)`
//! (what a synchronous commit does), a non-durable one is not. Reads from one read transaction
//! per phase and thread. LMDB has no cache of its own (it maps the file), so the cache budget
//! does not apply; its resident file pages count toward its peak RSS.

use heed::types::Bytes;
use heed::{Database, Env, EnvFlags, EnvOpenOptions, RoTxn, WithTls};

use super::{Durability, Engine, Op, OpenOptions, Reader, Result};

pub struct Lmdb {
    env: Env,
    db: Database<Bytes, Bytes>,
}

impl Lmdb {
    pub fn open(options: &OpenOptions) -> Result<Self> {
        std::fs::create_dir_all(&options.dir)?;
        // The map is sparse address space: reserve generously, rounded to whole MiB (pages).
        let map_size = usize::try_from((options.max_data_bytes * 4).max(1 << 30) >> 20)? << 20;
        let mut env_options = EnvOpenOptions::new();
        env_options.map_size(map_size).max_dbs(1);
        // SAFETY: `NO_SYNC` only drops the sync at commit; `flush` and durable writes sync
        // explicitly with `force_sync`, so no write the suite reports as durable depends on it.
        unsafe { env_options.flags(EnvFlags::NO_SYNC) };
        // SAFETY: the directory is fresh and this process opens it exactly once, so no other
        // environment maps the same file (heed's requirement for `open`).
        let env = unsafe { env_options.open(&options.dir) }?;
        let mut tx = env.write_txn()?;
        let db = env.create_database(&mut tx, None)?;
        tx.commit()?;
        env.force_sync()?;
        Ok(Self { env, db })
    }
}

impl Engine for Lmdb {
    fn write(&self, ops: &[Op<'_>], durability: Durability) -> Result<()> {
        let mut tx = self.env.write_txn()?;
        for op in ops {
            match *op {
                Op::Insert(k, v) => self.db.put(&mut tx, k, v)?,
                Op::Remove(k) => drop(self.db.delete(&mut tx, k)?),
            }
        }
        tx.commit()?;
        if durability == Durability::Durable {
            self.env.force_sync()?;
        }
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        self.env.force_sync()?;
        Ok(())
    }

    fn reader(&self) -> Result<Box<dyn Reader + '_>> {
        Ok(Box::new(LmdbReader {
            tx: self.env.read_txn()?,
            db: self.db,
        }))
    }

    fn len(&self) -> Result<u64> {
        let tx = self.env.read_txn()?;
        Ok(self.db.len(&tx)?)
    }
}

struct LmdbReader<'env> {
    tx: RoTxn<'env, WithTls>,
    db: Database<Bytes, Bytes>,
}

impl Reader for LmdbReader<'_> {
    fn get(&mut self, key: &[u8]) -> Result<Option<usize>> {
        Ok(self.db.get(&self.tx, key)?.map(<[u8]>::len))
    }

    fn scan(&mut self, start: &[u8], n: usize) -> Result<usize> {
        let range = (std::ops::Bound::Included(start), std::ops::Bound::Unbounded);
        let mut found = 0;
        for pair in self.db.range(&self.tx, &range)?.take(n) {
            let (_, v) = pair?;
            std::hint::black_box(v.len());
            found += 1;
        }
        Ok(found)
    }
}
