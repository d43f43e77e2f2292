//! Test builds make rare interleavings common: a random yield before each CAS on a buffer word
//! (unit tests, or any build with the `debug-delay` feature).

use std::cell::RefCell;

use crate::io::SimRng;

pub(crate) fn maybe_yield() {
    thread_local! {
        static RNG: RefCell<SimRng> = RefCell::new(SimRng::new(0x2545_F491_4F6C_DD1D));
    }
    if RNG.with(|rng| rng.borrow_mut().below(8)) == 0 {
        std::thread::yield_now();
    }
}
