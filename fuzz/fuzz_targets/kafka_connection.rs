#![no_main]

use std::cell::RefCell;

use ferry_broker::fuzzing::Connections;
use tokio::runtime::Runtime;

// As in the broker binary: see `SafeAllocator`'s docs.
#[global_allocator]
static ALLOCATOR: ferry_broker::SafeAllocator = ferry_broker::SafeAllocator;

thread_local! {
    /// A current-thread runtime with paused time, and the two brokers running on it.
    static BROKERS: RefCell<(Runtime, Connections)> = RefCell::new({
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("runtime");
        let brokers = rt.block_on(Connections::start()).expect("brokers start");
        (rt, brokers)
    });
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    BROKERS.with_borrow_mut(|(rt, brokers)| {
        rt.block_on(brokers.serve(data))
            .expect("fresh brokers start");
    });
});
