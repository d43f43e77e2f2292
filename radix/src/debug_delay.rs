//! Test builds make rare interleavings common: a random yield before each CAS (the level
//! install, the slot CAS, the free stack's push and pop). On in this crate's own tests and in
//! any build with the `debug-delay` feature (the stress test enables it); compiled out otherwise,
//! and under loom, whose scheduler already explores the interleavings.

/// Maybe yields the thread (1 call in 8), from a per-thread xorshift generator.
#[inline]
pub(crate) fn before_cas() {
    #[cfg(all(any(test, feature = "debug-delay"), not(loom)))]
    {
        use std::cell::Cell;
        thread_local! {
            static STATE: Cell<u64> = const { Cell::new(0x9E37_79B9_7F4A_7C15) };
        }
        let r = STATE.with(|s| {
            let mut x = s.get();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            s.set(x);
            x
        });
        if r % 8 == 0 {
            std::thread::yield_now();
        }
    }
}
