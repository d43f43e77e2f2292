//! bwtree through its public `bwtree::Db` API (issue 5), opened the way the README tells users
//! to: `Config::new().path(..).cache_capacity_bytes(..)` with the default periodic flush. A write
//! group of one is a plain `insert`/`remove`, larger ones an atomic `Batch` (`apply_batch`: one
//! log record); durability is `flush()`. Reads see the live tree.

use super::{Durability, Engine, Op, OpenOptions, Reader, Result};

pub struct BwTree {
    db: bwtree::Db,
}

impl BwTree {
    pub fn open(options: &OpenOptions) -> Result<Self> {
        let db = bwtree::Config::new()
            .path(&options.dir)
            .cache_capacity_bytes(options.cache_capacity_bytes)
            .open()?;
        Ok(Self { db })
    }
}

impl BwTree {
    fn write_group(&self, ops: &[Op<'_>]) -> Result<()> {
        let mut batch = bwtree::Batch::default();
        for op in ops {
            match *op {
                Op::Insert(k, v) => batch.insert(k, v),
                Op::Remove(k) => batch.remove(k),
            }
        }
        self.db.apply_batch(batch)?;
        Ok(())
    }
}

impl Engine for BwTree {
    fn write(&self, ops: &[Op<'_>], durability: Durability) -> Result<()> {
        match ops {
            [Op::Insert(k, v)] => drop(self.db.insert(k, v)?),
            [Op::Remove(k)] => drop(self.db.remove(k)?),
            _ => self.write_group(ops)?,
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
        Ok(self.db.len()? as u64)
    }
}

impl Reader for &bwtree::Db {
    fn get(&mut self, key: &[u8]) -> Result<Option<usize>> {
        Ok(bwtree::Tree::get(self, key)?.map(|v| v.len()))
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
