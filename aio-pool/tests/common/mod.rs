//! What the pool's tests share: a context on the pool, temp files, and
//! bounded waits that say what they waited for.

#![allow(dead_code, unreachable_pub)]

use std::cell::RefCell;
use std::fs::File;
use std::io::Write;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aio_core::testing::SleepMonitor;
use aio_core::{AioContext, ContextBuilder};
use aio_pool::{Pool, PoolHandle, PoolOptions};

/// The longest any one wait of a test may take.
pub const LIMIT: Duration = Duration::from_secs(30);

/// A context on a sleeping monitor whose operations go to a pool made with
/// `options`, and a handle to the pool.
pub fn context(options: PoolOptions) -> (AioContext, PoolHandle) {
    let slot = Rc::new(RefCell::new(None));
    let s = slot.clone();
    let ctx = ContextBuilder::new(Box::new(SleepMonitor::new()))
        .ops_fallback(move |remote| {
            let pool = Pool::with_options(remote, options);
            *s.borrow_mut() = Some(pool.handle());
            Box::new(pool)
        })
        .build()
        .expect("a context on the sleeping monitor");
    let handle = slot.borrow_mut().take().expect("the builder made the pool");
    (ctx, handle)
}

/// A read-write file in the temp dir, already unlinked, holding `contents`.
pub fn temp_file(contents: &[u8]) -> File {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let path = std::env::temp_dir().join(format!(
        "aio-pool-test-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let mut file = File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .expect("a temp file");
    std::fs::remove_file(&path).expect("unlink the temp file");
    file.write_all(contents).expect("fill the temp file");
    file
}

/// Runs the loop until `done`, for at most [`LIMIT`]; panics naming `what`
/// if it is not done by then. (Each iteration on the sleeping monitor waits
/// a millisecond at most, so the deadline is checked often.)
pub fn run_until(ctx: &AioContext, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + LIMIT;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "still waiting for {what} after {LIMIT:?}"
        );
        ctx.poll(true).expect("an iteration");
    }
}

/// Waits, off the loop, for `done`, for at most [`LIMIT`]: for what only
/// time brings about (an idle timeout); panics naming `what`.
pub fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + LIMIT;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "still waiting for {what} after {LIMIT:?}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// `len` bytes that differ from block to block: byte `i` is a hash of `i`.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| {
            let x = (i ^ seed).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            (x >> 56) as u8
        })
        .collect()
}

/// The names of this process's threads.
pub fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(|task| {
            let path = task.ok()?.path().join("comm");
            // A thread that exits meanwhile has no `comm` any more.
            std::fs::read_to_string(path)
                .ok()
                .map(|name| name.trim_end().to_owned())
        })
        .collect()
}

/// How many of the pool's workers are threads of this process.
pub fn pool_threads() -> usize {
    thread_names().iter().filter(|n| *n == "aio-pool").count()
}
