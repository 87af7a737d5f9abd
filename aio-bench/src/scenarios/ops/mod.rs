//! `ops`: 4 KiB random reads from a file in the page cache, one thread
//! issuing, at queue depth 1 and 32: aio's operations on the context's
//! ring (`aio-io_uring`) and on its thread pool (`aio-pool`, an epoll
//! context), against a hand-written io_uring loop (`raw-io_uring`, the
//! reference), `tokio-fs` (`read_at` in `spawn_blocking`, as `tokio::fs`
//! does it) and, at depth 1, `std-read_at` (a `pread` loop); the same
//! from an `O_DIRECT` file where the file system allows it
//! (`ops-direct`); and a socket ping-pong on an fd handler
//! while reads are in flight on the same context (`ops-mixed`),
//! which shows one monitor wait per loop iteration.

use std::cell::{Cell, RefCell};
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::rc::Rc;
use std::sync::Arc;

use aio::IoBufMut;
use aio::prelude::*;
use fdmon_uring::io_uring::{IoUring, opcode, types};

use crate::env::{Env, Monitor, io_uring_available};

mod aligned;
mod direct;
mod mixed;

use crate::measure::Variant;
use crate::peers::tokio_blocking_runtime;
use crate::report::{Group, ScenarioReport, Target};
use aligned::AlignedBuf;

/// The reference.
pub const REFERENCE: &str = "raw-io_uring";

/// The scenario's one-line description.
pub const ABOUT: &str =
    "4 KiB random reads from a page-cached file, queue depth 1 and 32; figure: ns per read";

/// The pool's row with the context busy-polling for completions.
const POOL_POLLED: &str = "aio-pool-polled";

/// The size of one read.
const BLOCK: usize = 4096;

/// The file: 256 MiB, or 16 MiB in a quick run.
fn file_size(env: &Env<'_>) -> u64 {
    if env.plan.is_quick() {
        16 << 20
    } else {
        256 << 20
    }
}

/// A temporary file of `size` bytes, unlinked at once, read once so that
/// it is in the page cache.
fn page_cached_file(size: u64) -> io::Result<Arc<File>> {
    let path = std::env::temp_dir().join(format!("aio-bench-ops-{}", std::process::id()));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)?;
    std::fs::remove_file(&path)?;
    let chunk: Vec<u8> = (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    for at in (0..size).step_by(chunk.len()) {
        file.write_all_at(&chunk, at)?;
    }
    let mut buf = vec![0u8; 1 << 20];
    for at in (0..size).step_by(buf.len()) {
        file.read_exact_at(&mut buf, at)?;
    }
    Ok(Arc::new(file))
}

/// Random block-aligned offsets in a file of `size` bytes, the same
/// sequence for every variant.
struct Offsets {
    state: u64,
    blocks: u64,
}

impl Offsets {
    fn new(size: u64) -> Offsets {
        Offsets {
            state: 0x9e37_79b9_7f4a_7c15,
            blocks: size / BLOCK as u64,
        }
    }

    fn next(&mut self) -> u64 {
        self.state = self
            .state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.state >> 33) % self.blocks) * BLOCK as u64
    }
}

/// What aio's reads share: each completion issues the next read until a
/// batch's count is issued. `B` is the buffer type (a `Vec<u8>`, or an
/// aligned buffer for `O_DIRECT`).
struct Reader<B = Vec<u8>> {
    file: Arc<File>,
    offsets: RefCell<Offsets>,
    spare: RefCell<Vec<B>>,
    make: fn() -> B,
    done: Cell<u64>,
    issued: Cell<u64>,
    wanted: Cell<u64>,
    /// Reads completed, over every batch.
    total: Cell<u64>,
}

impl<B: IoBufMut> Reader<B> {
    fn new(file: &Arc<File>, size: u64, make: fn() -> B) -> Rc<Reader<B>> {
        Rc::new(Reader {
            file: Arc::clone(file),
            offsets: RefCell::new(Offsets::new(size)),
            spare: RefCell::new(Vec::new()),
            make,
            done: Cell::new(0),
            issued: Cell::new(0),
            wanted: Cell::new(0),
            total: Cell::new(0),
        })
    }
}

fn issue<B: IoBufMut>(ctx: &AioContext, reader: &Rc<Reader<B>>) {
    reader.issued.set(reader.issued.get() + 1);
    let buf = reader.spare.borrow_mut().pop().unwrap_or_else(reader.make);
    let offset = reader.offsets.borrow_mut().next();
    let r = Rc::clone(reader);
    ctx.read_at(&*reader.file, buf, offset, move |ctx, got, buf| {
        assert_eq!(got.ok(), Some(BLOCK), "a whole block read");
        r.spare.borrow_mut().push(buf);
        r.done.set(r.done.get() + 1);
        r.total.set(r.total.get() + 1);
        if r.issued.get() < r.wanted.get() {
            issue(ctx, &r);
        }
    });
}

/// aio's operations on a context: `n` reads, `depth` in flight.
fn aio_batch<B: IoBufMut>(
    ctx: &AioContext,
    reader: &Rc<Reader<B>>,
    n: u64,
    depth: usize,
) -> io::Result<()> {
    reader.done.set(0);
    reader.issued.set(0);
    reader.wanted.set(n);
    for _ in 0..depth.min(n as usize) {
        issue(ctx, reader);
    }
    ctx.run_until(|| reader.done.get() == n)
}

/// io_uring by hand: reads on a ring, `depth` in flight, one
/// `submit_and_wait` per completion awaited.
struct RawRing {
    ring: IoUring,
    file: Arc<File>,
    offsets: Offsets,
    bufs: Vec<AlignedBuf>,
}

impl RawRing {
    fn new(file: &Arc<File>, size: u64, depth: usize) -> io::Result<RawRing> {
        Ok(RawRing {
            ring: IoUring::new(64)?,
            file: Arc::clone(file),
            offsets: Offsets::new(size),
            bufs: (0..depth).map(|_| AlignedBuf::new(BLOCK)).collect(),
        })
    }

    fn push(&mut self, slot: usize) -> io::Result<()> {
        let offset = self.offsets.next();
        let buf = self.bufs[slot].as_mut_ptr();
        let entry = opcode::Read::new(types::Fd(self.file.as_raw_fd()), buf, BLOCK as u32)
            .offset(offset)
            .build()
            .user_data(slot as u64);
        // SAFETY: the buffer lives in `self.bufs`, which is not touched
        // until this read's completion is reaped in `batch`.
        unsafe { self.ring.submission().push(&entry) }.map_err(|_| io::Error::other("SQ full"))
    }

    fn batch(&mut self, n: u64, depth: usize) -> io::Result<()> {
        let (mut issued, mut done) = (0u64, 0u64);
        for slot in 0..depth.min(n as usize) {
            self.push(slot)?;
            issued += 1;
        }
        while done < n {
            self.ring.submit_and_wait(1)?;
            let finished: Vec<(usize, i32)> = self
                .ring
                .completion()
                .map(|cqe| (cqe.user_data() as usize, cqe.result()))
                .collect();
            for (slot, result) in finished {
                if result != BLOCK as i32 {
                    return Err(io::Error::other(format!("raw read: {result}")));
                }
                done += 1;
                if issued < n {
                    self.push(slot)?;
                    issued += 1;
                }
            }
        }
        Ok(())
    }
}

/// `tokio::fs`'s way: each read a `spawn_blocking` job on a current-thread
/// runtime, `depth` in flight.
fn tokio_batch(
    rt: &tokio::runtime::Runtime,
    file: &Arc<File>,
    offsets: &mut Offsets,
    n: u64,
    depth: usize,
) -> io::Result<()> {
    rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        let mut issued = 0;
        let spawn = |set: &mut tokio::task::JoinSet<io::Result<usize>>, at: u64| {
            let file = Arc::clone(file);
            set.spawn_blocking(move || {
                let mut buf = vec![0u8; BLOCK];
                file.read_at(&mut buf, at)
            });
        };
        while issued < depth.min(n as usize) as u64 {
            spawn(&mut set, offsets.next());
            issued += 1;
        }
        while let Some(result) = set.join_next().await {
            let got = result.map_err(io::Error::other)??;
            if got != BLOCK {
                return Err(io::Error::other("a short tokio read"));
            }
            if issued < n {
                spawn(&mut set, offsets.next());
                issued += 1;
            }
        }
        Ok(())
    })
}

/// Measures both depths.
///
/// # Errors
///
/// Setting up the file, a ring or a context failed, or a read did not read
/// a whole block.
pub fn run(env: &Env<'_>) -> io::Result<ScenarioReport> {
    env.progress.scenario("ops", 5);
    let mut report = ScenarioReport {
        name: "ops".to_owned(),
        about: ABOUT.to_owned(),
        ..ScenarioReport::default()
    };
    let size = file_size(env);
    let file = page_cached_file(size)?;
    let uring = io_uring_available();
    let wants = |name: &str| env.wants(name);
    for depth in [1usize, 32] {
        let id = format!("ops/qd{depth}");
        let title = format!("ops: 4 KiB random reads, queue depth {depth}");
        let raw = if uring {
            Some(RefCell::new(RawRing::new(&file, size, depth)?))
        } else {
            None
        };
        let mut aio = Vec::new();
        if uring && wants(Monitor::IoUring.variant()) {
            aio.push((
                Monitor::IoUring.variant(),
                Monitor::IoUring.context(PollParams::OFF)?,
            ));
        }
        if wants("aio-pool") {
            aio.push((
                "aio-pool",
                Monitor::Epoll.pooled_context(PollParams::OFF, &env.cpus)?,
            ));
        }
        if wants(POOL_POLLED) {
            aio.push((
                POOL_POLLED,
                Monitor::Epoll.pooled_context(PollParams::IOTHREAD, &env.cpus)?,
            ));
        }
        let readers: Vec<_> = aio
            .iter()
            .map(|_| Reader::new(&file, size, || Vec::with_capacity(BLOCK)))
            .collect();
        let rt = tokio_blocking_runtime(&env.cpus)?;
        let tokio_offsets = RefCell::new(Offsets::new(size));
        let std_offsets = RefCell::new(Offsets::new(size));
        let mut variants: Vec<Variant<'_>> = Vec::new();
        if let Some(raw) = &raw {
            variants.push(Variant::new(REFERENCE, move |n| {
                raw.borrow_mut().batch(n, depth)
            }));
        }
        for ((name, ctx), reader) in aio.iter().zip(&readers) {
            variants.push(
                Variant::new(*name, move |n| aio_batch(ctx, reader, n, depth)).expect_no_allocs(),
            );
        }
        if wants("tokio-fs") {
            let (rt, file, offsets) = (&rt, &file, &tokio_offsets);
            variants.push(Variant::new("tokio-fs", move |n| {
                tokio_batch(rt, file, &mut offsets.borrow_mut(), n, depth)
            }));
        }
        if depth == 1 && wants("std-read_at") {
            let (file, offsets) = (&file, &std_offsets);
            variants.push(Variant::new("std-read_at", move |n| {
                let mut buf = [0u8; BLOCK];
                for _ in 0..n {
                    let at = offsets.borrow_mut().next();
                    if file.read_at(&mut buf, at)? != BLOCK {
                        return Err(io::Error::other("a short pread"));
                    }
                }
                Ok(())
            }));
        }
        let reference = if raw.is_some() { REFERENCE } else { "tokio-fs" };
        let rows = env.measure(&title, &mut variants)?;
        drop(variants);
        let notes = vec![
            format!("a {} MiB file in the page cache; one thread issues; IOPS = 1e9 / ns per read", size >> 20),
            "aio-pool: an epoll context, whose reads go to its thread pool (one wake-up per burst of completions); its workers, as tokio's blocking threads, run on the CPUs other than the issuing thread's, and all it may have (64) are started before measuring".to_owned(),
            format!("{POOL_POLLED}: the same with PollParams::IOTHREAD (max_ns 32 us): the loop busy-polls for the workers' completions before it blocks"),
        ];
        let group = Group::new(&id, &title, "ns per read", reference, rows, notes);
        report.targets.extend(ring_target(&id, &group));
        let ring = Monitor::IoUring.variant();
        if depth == 32 {
            let polled = group
                .ratio(POOL_POLLED, "tokio-fs")
                .map_or_else(String::new, |r| {
                    format!("; busy-polling for them, {POOL_POLLED}: {r:.2}x")
                });
            report.targets.push(
                Target::at_most(
                    &id,
                    "aio-pool",
                    "IOPS >= 1.5x tokio-fs (ns <= 0.667x)",
                    group.ratio("aio-pool", "tokio-fs"),
                    1.0 / 1.5,
                    "x",
                )
                .note_if_not_met(format!(
                    "with polling off the loop blocks between bursts of completions, and each burst costs a \
                     wake-up{polled}"
                )),
            );
            report.targets.push(Target::at_most(
                &id,
                POOL_POLLED,
                "IOPS >= 1.5x tokio-fs (ns <= 0.667x)",
                group.ratio(POOL_POLLED, "tokio-fs"),
                1.0 / 1.5,
                "x",
            ));
            report.targets.push(
                Target::at_most(
                    &id,
                    ring,
                    "IOPS >= 2x aio-pool (ns <= 0.5x)",
                    group.ratio(ring, "aio-pool"),
                    0.5,
                    "x",
                )
                .note_if_not_met(
                    "a page-cached read is a memory copy, which the ring makes on the issuing thread's \
                 CPU and the pool's workers on the other: two CPUs against one",
                ),
            );
        }
        report.groups.push(group);
    }
    direct::run(env, &mut report)?;
    mixed::run(env, &mut report, &file, size)?;
    Ok(report)
}

/// The ring's target against the raw loop in `group` (`id`), if both were
/// measured.
fn ring_target(id: &str, group: &Group) -> Option<Target> {
    let ring = Monitor::IoUring.variant();
    group.row(ring)?;
    group.row(REFERENCE)?;
    Some(
        Target::at_most(
            id,
            ring,
            format!("IOPS >= 0.95x {REFERENCE} (ns <= 1.053x)"),
            group.ratio(ring, REFERENCE),
            1.0 / 0.95,
            "x",
        )
        .note_if_not_met(
            "the same system calls as the raw loop (one io_uring_enter per wait) and, in a profile, \
             the same kernel time; the gap is the loop's own work per completion in user space \
             (the iteration, the slab, the dispatch of the callback)",
        ),
    )
}
