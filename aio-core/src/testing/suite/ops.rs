//! The operations suite: what every path of the operations API (the ring,
//! a thread pool) must do, run with
//! [`ops_conformance_tests!`](crate::ops_conformance_tests).

use std::cell::{Cell, RefCell};
use std::fs::File;
use std::io::Write as _;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::Duration;

use crate::testing::{Count, OpsHarness, Watchdog};
use crate::{AioContext, IoBufMut};

/// An unlinked temporary file opened for reading and writing.
fn temp_file(name: &str) -> File {
    let path = std::env::temp_dir().join(format!(
        "aio-ops-{name}-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .expect("a temporary file");
    std::fs::remove_file(&path).expect("unlink the temporary file");
    file
}

/// A small deterministic generator: the suite's "random" offsets, sizes
/// and bytes, the same on every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Runs `ctx` until `done`, under a watchdog that says what it waited for.
fn run_until(ctx: &AioContext, what: &str, done: impl FnMut() -> bool) {
    let _dog = Watchdog::arm(what, Duration::from_secs(60));
    ctx.run_until(done).unwrap();
}

/// Data written at random offsets and sizes reads back equal, through
/// `write_at` and `read_at`, with the buffers given back; `fsync` and
/// `fdatasync` after the writes succeed.
pub fn written_data_reads_back_equal(h: &OpsHarness) {
    let ctx = h.context();
    let file = Rc::new(temp_file("rw"));
    let mut rng = Lcg(7);
    let mut expected = vec![0u8; 1 << 20];
    for round in 0..64 {
        let len = 1 + rng.below(64 * 1024) as usize;
        let offset = rng.below((expected.len() - len) as u64) as usize;
        let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        expected[offset..offset + len].copy_from_slice(&data);
        let written = Rc::new(Cell::new(None));
        let w = Rc::clone(&written);
        ctx.write_at(&*file, data, offset as u64, move |_, n, buf| {
            w.set(Some((n.unwrap(), buf.len())));
        });
        run_until(&ctx, "a write's completion", || written.get().is_some());
        assert_eq!(
            written.get(),
            Some((len, len)),
            "{}: write {round}",
            h.name()
        );
    }
    let synced = Rc::new(Cell::new(0));
    let (s1, s2) = (Rc::clone(&synced), Rc::clone(&synced));
    ctx.fsync(&*file, move |_, r| {
        r.unwrap();
        s1.set(s1.get() + 1);
    });
    ctx.fdatasync(&*file, move |_, r| {
        r.unwrap();
        s2.set(s2.get() + 1);
    });
    run_until(&ctx, "fsync and fdatasync", || synced.get() == 2);
    let mut rng = Lcg(11);
    for _ in 0..64 {
        let len = 1 + rng.below(128 * 1024) as usize;
        let offset = rng.below((expected.len() - len) as u64) as usize;
        let got = Rc::new(RefCell::new(None));
        let g = Rc::clone(&got);
        ctx.read_at(
            &*file,
            Vec::with_capacity(len),
            offset as u64,
            move |_, n, buf| {
                *g.borrow_mut() = Some((n.unwrap(), buf));
            },
        );
        run_until(&ctx, "a read's completion", || got.borrow().is_some());
        let (n, buf) = got.borrow_mut().take().unwrap();
        let end = (offset + len).min(expected.len());
        assert_eq!(n, end - offset, "{}", h.name());
        assert!(
            buf == expected[offset..end],
            "{}: read at {offset}+{len} differs",
            h.name()
        );
    }
}

/// `writev_at` writes its buffers in order and `readv_at` fills its in
/// order (each up to its capacity), across short transfers that stop
/// inside a buffer.
pub fn vectored_reads_and_writes_round_trip(h: &OpsHarness) {
    let ctx = h.context();
    let file = temp_file("vectored");
    let mut rng = Lcg(3);
    let parts: Vec<Vec<u8>> = [1000, 5000, 100]
        .iter()
        .map(|&n| (0..n).map(|_| rng.next() as u8).collect())
        .collect();
    let whole: Vec<u8> = parts.concat();
    let wrote = Rc::new(Cell::new(None));
    let w = Rc::clone(&wrote);
    ctx.writev_at(&file, parts, 123, move |_, n, bufs| {
        w.set(Some((n.unwrap(), bufs.len())));
    });
    run_until(&ctx, "the vectored write", || wrote.get().is_some());
    assert_eq!(wrote.get(), Some((6100, 3)), "{}", h.name());
    let got = Rc::new(RefCell::new(None));
    let g = Rc::clone(&got);
    let bufs = vec![
        Vec::with_capacity(2000),
        Vec::with_capacity(3000),
        Vec::with_capacity(1100),
    ];
    ctx.readv_at(&file, bufs, 123, move |_, n, bufs| {
        *g.borrow_mut() = Some((n.unwrap(), bufs));
    });
    run_until(&ctx, "the vectored read", || got.borrow().is_some());
    let (n, bufs) = got.borrow_mut().take().unwrap();
    assert_eq!(n, 6100, "{}", h.name());
    let lens: Vec<usize> = bufs.iter().map(Vec::len).collect();
    assert_eq!(
        lens,
        [2000, 3000, 1100],
        "{}: each filled in turn",
        h.name()
    );
    assert!(
        bufs.concat() == whole,
        "{}: read back what was written",
        h.name()
    );
}

/// A read past the end of the file is short (0 at the end), not an error
/// and not a loop; a read of a bad fd completes with `EBADF`.
pub fn reads_stop_at_the_end_and_bad_fds_fail(h: &OpsHarness) {
    let ctx = h.context();
    let mut file = temp_file("eof");
    file.write_all(b"0123456789").unwrap();
    let got = Rc::new(RefCell::new(Vec::new()));
    for (fd, offset) in [(file.as_raw_fd(), 4), (file.as_raw_fd(), 100), (-1, 0)] {
        let g = Rc::clone(&got);
        ctx.read_at(
            fd,
            vec![0u8; 0].into_iter().chain([0; 64]).collect::<Vec<u8>>(),
            offset,
            move |_, n, buf| {
                g.borrow_mut()
                    .push((n.map_err(|e| e.raw_os_error()), buf.len()));
            },
        );
    }
    run_until(&ctx, "three reads", || got.borrow().len() == 3);
    let mut got = got.borrow().clone();
    got.sort();
    let mut expected = vec![(Ok(6), 6), (Ok(0), 0), (Err(Some(libc::EBADF)), 0)];
    expected.sort();
    assert_eq!(got, expected, "{}", h.name());
}

/// Two thousand reads in flight at once all complete, each exactly once,
/// each with its own data.
pub fn thousands_in_flight_complete_once_each(h: &OpsHarness) {
    let ctx = h.context();
    let mut file = temp_file("many");
    let block = 512usize;
    let blocks = 2000usize;
    let data: Vec<u8> = (0..block * blocks)
        .map(|i| (i / block) as u8 ^ (i as u8))
        .collect();
    file.write_all(&data).unwrap();
    let seen = Rc::new(RefCell::new(vec![0u32; blocks]));
    for i in 0..blocks {
        let (s, expected) = (Rc::clone(&seen), data[i * block..(i + 1) * block].to_vec());
        ctx.read_at(
            &file,
            Vec::with_capacity(block),
            (i * block) as u64,
            move |_, n, buf| {
                assert_eq!(n.unwrap(), block);
                assert!(buf == expected, "block {i} read back wrong");
                s.borrow_mut()[i] += 1;
            },
        );
    }
    assert_eq!(ctx.ops_in_flight(), blocks);
    run_until(&ctx, "2000 reads", || ctx.ops_in_flight() == 0);
    assert!(
        seen.borrow().iter().all(|&n| n == 1),
        "{}: each exactly once",
        h.name()
    );
}

/// A buffer that counts its drops, for the buffer-kept-alive rule.
struct TracedBuf {
    bytes: Vec<u8>,
    drops: Count,
}

impl Drop for TracedBuf {
    fn drop(&mut self) {
        self.drops.hit();
    }
}

// SAFETY: delegates to the Vec, whose heap block does not move while the
// buffer is held.
unsafe impl IoBufMut for TracedBuf {
    fn as_mut_ptr(&mut self) -> *mut u8 {
        self.bytes.as_mut_ptr()
    }
    fn capacity(&self) -> usize {
        self.bytes.capacity()
    }
    unsafe fn set_filled(&mut self, n: usize) {
        // SAFETY: the caller says the first `n` bytes were written.
        unsafe { self.bytes.set_len(n) }
    }
}

/// A read blocked on an empty pipe, cancelled: its callback runs once
/// (with `ECANCELED` where the engine stops running operations, or with
/// the 8 bytes the test then writes where it cannot), and its buffer comes
/// back through it, never dropped before.
pub fn a_cancelled_read_completes_once_with_its_buffer(h: &OpsHarness) {
    let ctx = h.context();
    let (rd, wr) = rustix::pipe::pipe().unwrap();
    let drops = Count::new();
    let results = Rc::new(RefCell::new(Vec::new()));
    let r = Rc::clone(&results);
    let buf = TracedBuf {
        bytes: Vec::with_capacity(8),
        drops: drops.clone(),
    };
    let handle = ctx.read_at(&rd, buf, 0, move |_, n, buf| {
        r.borrow_mut()
            .push((n.map_err(|e| e.raw_os_error()), buf.drops.get()));
    });
    ctx.submit_now().unwrap();
    ctx.poll(false).unwrap();
    handle.cancel();
    if h.stops_running {
        run_until(&ctx, "the cancelled read", || !results.borrow().is_empty());
        assert_eq!(
            results.borrow()[0].0,
            Err(Some(libc::ECANCELED)),
            "{}",
            h.name()
        );
    } else {
        // A worker may be blocked in the read: give it its bytes, all 8
        // (a read is short only at the end of the file: after 1 of 8 it
        // would read again for the other 7, and wait).
        for _ in 0..3 {
            ctx.poll(false).unwrap();
        }
        if results.borrow().is_empty() {
            assert_eq!(rustix::io::write(&wr, b"12345678"), Ok(8));
        }
        run_until(&ctx, "the cancelled read", || !results.borrow().is_empty());
        let result = results.borrow()[0].0;
        assert!(
            result == Err(Some(libc::ECANCELED)) || result == Ok(8),
            "{}: {result:?}",
            h.name()
        );
    }
    for _ in 0..3 {
        ctx.poll(false).unwrap();
    }
    assert_eq!(results.borrow().len(), 1, "{}: exactly once", h.name());
    assert_eq!(
        results.borrow()[0].1,
        0,
        "{}: not dropped before the callback",
        h.name()
    );
    assert_eq!(
        drops.get(),
        1,
        "{}: dropped once, after the callback",
        h.name()
    );
    drop(wr);
}

/// Operations complete in the order they finish, not the order they were
/// submitted: a read of a file completes while a read of an empty pipe,
/// submitted first, waits; an operation submitted from another's callback,
/// and from a nested `poll`, works.
pub fn completions_come_in_finishing_order(h: &OpsHarness) {
    let ctx = h.context();
    let (rd, wr) = rustix::pipe::pipe().unwrap();
    let mut file = temp_file("order");
    file.write_all(b"abc").unwrap();
    let file = Rc::new(file);
    let order = Rc::new(RefCell::new(Vec::new()));
    let o = Rc::clone(&order);
    ctx.read_at(&rd, Vec::with_capacity(1), 0, move |_, n, _| {
        assert_eq!(n.unwrap(), 1);
        o.borrow_mut().push("pipe");
    });
    let (o, f) = (Rc::clone(&order), Rc::clone(&file));
    ctx.read_at(&*file, Vec::with_capacity(3), 0, move |ctx, n, _| {
        assert_eq!(n.unwrap(), 3);
        o.borrow_mut().push("file");
        // From a callback: another read, waited for in a nested poll.
        let nested = Rc::new(Cell::new(false));
        let (nd, o) = (Rc::clone(&nested), Rc::clone(&o));
        ctx.read_at(&*f, Vec::with_capacity(1), 1, move |_, n, buf| {
            assert_eq!((n.unwrap(), buf), (1, b"b".to_vec()));
            o.borrow_mut().push("nested");
            nd.set(true);
        });
        while !nested.get() {
            ctx.poll(true).unwrap();
        }
    });
    run_until(&ctx, "the file reads", || order.borrow().len() == 2);
    assert_eq!(*order.borrow(), ["file", "nested"], "{}", h.name());
    assert_eq!(rustix::io::write(&wr, b"x"), Ok(1));
    run_until(&ctx, "the pipe read", || order.borrow().len() == 3);
    assert_eq!(order.borrow()[2], "pipe");
}

/// A context dropped with a read in flight on an empty pipe runs no
/// callback, and frees the buffer once, only after the kernel (or the
/// worker) is done with it.
pub fn a_context_dropped_with_ops_in_flight_frees_each_buffer_once(h: &OpsHarness) {
    let ctx = h.context();
    let (rd, wr) = rustix::pipe::pipe().unwrap();
    let (drops, runs) = (Count::new(), Count::new());
    let r = runs.clone();
    let buf = TracedBuf {
        bytes: Vec::with_capacity(8),
        drops: drops.clone(),
    };
    ctx.read_at(&rd, buf, 0, move |_, _, _| r.hit());
    ctx.submit_now().unwrap();
    if !h.stops_running {
        // A worker blocked in the read would hold the drop: let it finish.
        assert_eq!(rustix::io::write(&wr, b"x"), Ok(1));
    }
    let _dog = Watchdog::arm(
        "the context's drop to finish its operations",
        Duration::from_secs(60),
    );
    drop(ctx);
    assert_eq!(runs.get(), 0, "{}: no callback after the drop", h.name());
    assert_eq!(drops.get(), 1, "{}: the buffer freed once", h.name());
    drop((rd, wr));
}
