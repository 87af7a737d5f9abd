//! `ops-mixed`: fd readiness and operations on one context. A partner
//! thread echoes single bytes on a Unix socket pair; the context's fd
//! handler on its end takes each echo and sends the next byte (a
//! ping-pong), while 32 random 4 KiB reads of the page-cached file stay
//! in flight on the same context (each completion issues the next). The
//! figure is ns per round trip; the counters show the loop iterations and
//! monitor waits per round trip, and the reads that completed meanwhile:
//! on io_uring readiness and completions arrive through one ring, one wait
//! per iteration; on epoll the pool's completions ring the context's
//! doorbell, in the same wait.

use std::cell::Cell;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;

use aio::prelude::*;

use super::{BLOCK, Reader, issue};
use crate::env::{Env, Monitor};
use crate::measure::Variant;
use crate::report::{Group, ScenarioReport, Target};

/// Reads kept in flight during the ping-pong.
const DEPTH: usize = 32;

/// The counters, per round trip.
const ITERATIONS: &str = "iterations";
const WAITS: &str = "waits";
const READS: &str = "reads";

/// One context, its socket and echo partner, and its reads.
struct Mixed {
    ctx: AioContext,
    ours: Rc<UnixStream>,
    pongs: Rc<Cell<u64>>,
    wanted: Rc<Cell<u64>>,
    reader: Option<Rc<Reader>>,
    partner: Option<JoinHandle<()>>,
}

impl Mixed {
    fn new(env: &Env<'_>, ctx: AioContext, file: Option<(&Arc<File>, u64)>) -> io::Result<Mixed> {
        let (ours, mut theirs) = UnixStream::pair()?;
        ours.set_nonblocking(true)?;
        let partner = env.cpus.spawn_partner(0, "echo", move || {
            let mut byte = [0u8; 1];
            // Until the context's end is closed (0 bytes) or fails.
            while let Ok(1) = theirs.read(&mut byte) {
                if theirs.write_all(&byte).is_err() {
                    break;
                }
            }
        })?;
        let ours = Rc::new(ours);
        let (pongs, wanted) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
        let (o, p, w) = (Rc::clone(&ours), Rc::clone(&pongs), Rc::clone(&wanted));
        ctx.set_fd_handler(
            &*ours,
            Some(FdHandler::new().on_read(move |_| {
                let mut bytes = [0u8; 16];
                while let Ok(n @ 1..) = (&*o).read(&mut bytes) {
                    for _ in 0..n {
                        p.set(p.get() + 1);
                        if p.get() < w.get() {
                            let _ = (&*o).write(&[1]);
                        }
                    }
                }
            })),
        )?;
        let reader = file.map(|(file, size)| Reader::new(file, size, || Vec::with_capacity(BLOCK)));
        Ok(Mixed {
            ctx,
            ours,
            pongs,
            wanted,
            reader,
            partner: Some(partner),
        })
    }

    /// `n` round trips, with the reads in flight throughout (if any);
    /// the reads are then let finish, so each batch starts from none.
    fn batch(&self, n: u64) -> io::Result<()> {
        self.pongs.set(0);
        self.wanted.set(n);
        if let Some(reader) = &self.reader {
            reader.done.set(0);
            reader.issued.set(0);
            reader.wanted.set(u64::MAX);
            for _ in 0..DEPTH {
                issue(&self.ctx, reader);
            }
        }
        (&*self.ours).write_all(&[1])?;
        self.ctx.run_until(|| self.pongs.get() >= n)?;
        if let Some(reader) = &self.reader {
            reader.wanted.set(reader.issued.get());
            self.ctx
                .run_until(|| reader.done.get() == reader.issued.get())?;
        }
        Ok(())
    }

    fn counters(&self) -> [u64; 4] {
        let stats = self.ctx.stats();
        let reads = self.reader.as_ref().map_or(0, |r| r.total.get());
        [stats.iterations, stats.waits, reads, 0]
    }
}

impl Drop for Mixed {
    fn drop(&mut self) {
        let _ = self.ctx.set_fd_handler(&*self.ours, None);
        // The partner sees the end of its socket once ours is closed.
        let _ = self.ours.shutdown(std::net::Shutdown::Both);
        if let Some(partner) = self.partner.take() {
            let _ = partner.join();
        }
    }
}

/// Measures the mixed loop on io_uring and on epoll + pool, against the
/// same ping-pong with no reads.
pub(super) fn run(
    env: &Env<'_>,
    report: &mut ScenarioReport,
    file: &Arc<File>,
    size: u64,
) -> io::Result<()> {
    let id = "ops-mixed";
    let title = "ops: socket ping-pong on an fd handler, 32 reads in flight on the same context";
    let ring = Monitor::IoUring.variant();
    let mut setups: Vec<(String, Mixed)> = Vec::new();
    let reference = if env.wants(ring) {
        format!("{ring}-no-reads")
    } else {
        "aio-epoll-no-reads".to_owned()
    };
    if env.wants(ring) {
        let ctx = Monitor::IoUring.context(PollParams::OFF)?;
        setups.push((reference.clone(), Mixed::new(env, ctx, None)?));
        let ctx = Monitor::IoUring.context(PollParams::OFF)?;
        setups.push((ring.to_owned(), Mixed::new(env, ctx, Some((file, size)))?));
    } else {
        let ctx = Monitor::Epoll.context(PollParams::OFF)?;
        setups.push((reference.clone(), Mixed::new(env, ctx, None)?));
    }
    if env.wants("aio-pool") {
        let ctx = Monitor::Epoll.context(PollParams::OFF)?;
        setups.push((
            "aio-pool".to_owned(),
            Mixed::new(env, ctx, Some((file, size)))?,
        ));
    }
    let mut variants: Vec<Variant<'_>> = setups
        .iter()
        .map(|(name, mixed)| {
            Variant::new(name.clone(), move |n| mixed.batch(n))
                .counters(&[ITERATIONS, WAITS, READS], move || mixed.counters())
                .expect_no_allocs()
        })
        .collect();
    let rows = env.measure(title, &mut variants)?;
    drop(variants);
    drop(setups);
    let notes = vec![
        "figure: ns per round trip (a byte to a partner thread and back, through the context's fd handler)".to_owned(),
        format!("{DEPTH} random 4 KiB reads of the page-cached file in flight throughout (each completion issues the next); the no-reads row is the same ping-pong alone"),
        "counters per round trip: loop iterations, monitor waits (at most one per iteration: readiness and completions come back from the same wait), reads completed".to_owned(),
        "aio-pool: an epoll context; the reads run on its thread pool, whose completions ring the context's doorbell; its workers inherit the home thread's CPU, whose time the 32 reads then share with the loop, so its round trip says what the reads cost in CPU, not what the loop costs (with the workers on the partner's CPU instead, the partner starves: milliseconds per round trip)".to_owned(),
    ];
    let group = Group::new(id, title, "ns per round trip", &reference, rows, notes);
    for name in [ring, "aio-pool"] {
        let Some(row) = group.row(name) else { continue };
        let per_iteration = match (row.counter(WAITS), row.counter(ITERATIONS)) {
            (Some(w), Some(i)) if i > 0.0 => Some(w / i),
            _ => None,
        };
        report.targets.push(Target::at_most(
            id,
            name,
            "one monitor wait per loop iteration, readiness and completions together",
            per_iteration,
            1.0,
            "waits/iteration",
        ));
    }
    report.groups.push(group);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A quick run of the mixed scenario: its rows are measured, the reads
    /// did complete during the ping-pong, and no iteration waited twice.
    #[test]
    fn the_mixed_loop_waits_once_per_iteration() {
        let file = super::super::page_cached_file(1 << 20).unwrap();
        let mut report = ScenarioReport::default();
        let _dog = aio_core::testing::Watchdog::arm(
            "a quick run of ops-mixed (its round trips and reads)",
            std::time::Duration::from_secs(120),
        );
        Env::quick(|env| run(env, &mut report, &file, 1 << 20)).unwrap();
        let group = report.group("ops-mixed").unwrap();
        let row = group.row("aio-pool").unwrap();
        assert!(row.counter(READS).unwrap() > 0.0, "{row:?}");
        for target in &report.targets {
            assert_eq!(target.verdict, crate::report::Verdict::Met, "{target:?}");
        }
    }
}
