//! RocksDB (cargo feature `rocksdb`: needs `libclang-dev` and about 25 minutes to compile on 2
//! cores). One `WriteBatch` per write group; a durable group is written with `sync = true`, a
//! non-durable one without, and `flush` syncs the WAL. Block cache = the cache budget; background
//! jobs capped at `background_threads`. Reads see the live tree. Built without compression
//! libraries (default features off), so sizes compare uncompressed.

use rocksdb::{BlockBasedOptions, Cache, Options, WriteBatch, WriteOptions, DB};

use super::{Durability, Engine, Op, OpenOptions, Reader, Result};

pub struct Rocks {
    db: DB,
}

impl Rocks {
    pub fn open(options: &OpenOptions) -> Result<Self> {
        let threads = i32::try_from(options.background_threads.max(1))?;
        let mut db_options = Options::default();
        db_options.create_if_missing(true);
        db_options.increase_parallelism(threads);
        db_options.set_max_background_jobs(threads);
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&Cache::new_lru_cache(usize::try_from(
            options.cache_capacity_bytes,
        )?));
        db_options.set_block_based_table_factory(&table);
        let db = DB::open(&db_options, &options.dir)?;
        Ok(Self { db })
    }
}

impl Engine for Rocks {
    fn write(&self, ops: &[Op<'_>], durability: Durability) -> Result<()> {
        let mut batch = WriteBatch::default();
        for op in ops {
            match *op {
                Op::Insert(k, v) => batch.put(k, v),
                Op::Remove(k) => batch.delete(k),
            }
        }
        let mut write_options = WriteOptions::default();
        write_options.set_sync(durability == Durability::Durable);
        self.db.write_opt(batch, &write_options)?;
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        self.db.flush_wal(true)?;
        Ok(())
    }

    fn reader(&self) -> Result<Box<dyn Reader + '_>> {
        Ok(Box::new(&self.db))
    }

    fn len(&self) -> Result<u64> {
        let mut iter = self.db.raw_iterator();
        iter.seek_to_first();
        let mut count = 0;
        while iter.valid() {
            count += 1;
            iter.next();
        }
        iter.status()?;
        Ok(count)
    }
}

impl Reader for &DB {
    fn get(&mut self, key: &[u8]) -> Result<Option<usize>> {
        Ok(self.get_pinned(key)?.map(|v| v.len()))
    }

    fn scan(&mut self, start: &[u8], n: usize) -> Result<usize> {
        let mut iter = self.raw_iterator();
        iter.seek(start);
        let mut found = 0;
        while found < n && iter.valid() {
            std::hint::black_box(iter.value().map(<[u8]>::len));
            found += 1;
            iter.next();
        }
        iter.status()?;
        Ok(found)
    }
}
