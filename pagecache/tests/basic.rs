//! Round trips through the public API: allocate, prepend, replace, free, evict and page in,
//! checkpoint, clean, restart.

mod common;

use common::*;
use logstore::io::SimStorage;

#[test]
fn pages_survive_eviction_checkpoint_and_restart() {
    let sim = SimStorage::new();
    // Miri (`sanitizers.sh`) runs this as its page-cache subset: fewer pages and a smaller
    // budget so that it still evicts and pages in, in about a minute.
    let (pages, cfg) = if cfg!(miri) {
        let cfg = pagecache::Config {
            cache_capacity_bytes: 4 << 10,
            ..small_config()
        };
        (40, cfg)
    } else {
        (200, small_config())
    };
    let mut expect = Vec::new();
    {
        let cache = open_sim(&sim, &cfg);
        let guard = crossbeam_epoch::pin();
        for i in 0..pages {
            let base: Map = (0..4).map(|k| (k, i)).collect();
            let pid = cache.allocate(base.clone(), &guard).unwrap();
            expect.push((pid, base));
        }
        drop(guard);
        for (n, (pid, m)) in expect.iter_mut().enumerate() {
            for k in 0..6u64 {
                let op = if k % 3 == 2 {
                    Op::Del(k)
                } else {
                    Op::Set(k, n as u64 * 100 + k)
                };
                update(&cache, *pid, op.clone());
                MapModel::apply(m, &op);
            }
        }
        let stats = cache.stats();
        assert!(stats.evictions > 0, "a small budget must evict: {stats:?}");
        assert!(stats.page_ins > 0, "{stats:?}");
        assert!(
            stats.resident_bytes <= cfg.cache_capacity_bytes as u64 * 2,
            "{stats:?}"
        );
        for (pid, m) in &expect {
            assert_eq!(contents(&cache, *pid).as_ref(), Some(m));
        }
        cache.checkpoint().unwrap();
        cache.close().unwrap();
    }
    let cache = open_sim(&sim, &cfg);
    for (pid, m) in &expect {
        assert_eq!(contents(&cache, *pid).as_ref(), Some(m), "{pid:?}");
    }
}

trait Apply {
    fn apply(m: &mut Map, op: &Op);
}

impl Apply for MapModel {
    fn apply(m: &mut Map, op: &Op) {
        *m = <MapModel as pagecache::PageModel>::consolidate(m, &[op]);
    }
}
