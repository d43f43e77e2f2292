//! Test builds make rare interleavings common: a random yield before each CAS on a buffer word
//! (unit tests, or any build with the `debug-delay` feature).

pub(crate) fn maybe_yield() {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = const { Cell::new(0x2545_F491_4F6C_DD1D) };
    }
    let r = STATE.with(|s| {
        // xorshift64: cheap, per thread, no synchronization.
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
