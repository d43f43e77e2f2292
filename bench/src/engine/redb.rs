//! redb 4: one write transaction per write group, with `Durability::Immediate` or `None`; reads
//! from one read transaction per phase and thread.

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use super::{Durability, Engine, Op, OpenOptions, Reader, Result};

const TABLE: TableDefinition<'static, &[u8], &[u8]> = TableDefinition::new("kv");

pub struct Redb {
    db: redb::Database,
}

impl Redb {
    pub fn open(options: &OpenOptions) -> Result<Self> {
        std::fs::create_dir_all(&options.dir)?;
        let cache = usize::try_from(options.cache_capacity_bytes)?;
        let db = redb::Database::builder()
            .set_cache_size(cache)
            .create(options.dir.join("redb"))?;
        // Create the table so that readers of an empty store find it.
        let tx = db.begin_write()?;
        tx.open_table(TABLE)?;
        tx.commit()?;
        Ok(Self { db })
    }
}

impl Engine for Redb {
    fn write(&self, ops: &[Op<'_>], durability: Durability) -> Result<()> {
        let mut tx = self.db.begin_write()?;
        tx.set_durability(match durability {
            Durability::Durable => redb::Durability::Immediate,
            Durability::None => redb::Durability::None,
        })?;
        {
            let mut table = tx.open_table(TABLE)?;
            for op in ops {
                match *op {
                    Op::Insert(k, v) => drop(table.insert(k, v)?),
                    Op::Remove(k) => drop(table.remove(k)?),
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        // An empty durable commit makes the earlier non-durable ones durable.
        self.write(&[], Durability::Durable)
    }

    fn reader(&self) -> Result<Box<dyn Reader + '_>> {
        let table = self.db.begin_read()?.open_table(TABLE)?;
        Ok(Box::new(table))
    }

    fn len(&self) -> Result<u64> {
        Ok(self.db.begin_read()?.open_table(TABLE)?.len()?)
    }
}

impl Reader for redb::ReadOnlyTable<&'static [u8], &'static [u8]> {
    fn get(&mut self, key: &[u8]) -> Result<Option<usize>> {
        Ok(ReadableTable::get(self, key)?.map(|v| v.value().len()))
    }

    fn scan(&mut self, start: &[u8], n: usize) -> Result<usize> {
        let mut found = 0;
        for pair in self.range::<&[u8]>(start..)?.take(n) {
            let (_, v) = pair?;
            std::hint::black_box(v.value().len());
            found += 1;
        }
        Ok(found)
    }
}
