//! `nbd`: the NBD server (`aio-nbd`) against `qemu-nbd`, exporting the same
//! raw file on loopback TCP, with `qemu-img bench` as the client: 4 KiB
//! requests, reads and writes, at queue depth 1 and 32.
//!
//! Each server runs on the partner CPU and the client on the home CPU (on
//! one CPU, a busy-polling server would take the client's CPU away from
//! it). Each comparison (one workload) starts its servers afresh: `qemu-nbd`
//! (the reference) and `aio-nbd` on the automatic monitor with three
//! polling settings (its default 256 us windows, QEMU's 32 us
//! `PollParams::IOTHREAD`, and polling off), each on a thread of this
//! process so its loop's counters can be read. The variants then run in
//! interleaved rounds (A B C D, D C B A, ...), one `qemu-img bench` run
//! each; a round's figure is the run's own time (`Run completed in`, which
//! leaves out the client's start-up) divided by its request count. The
//! counters are the server loop's, per request, over every round:
//! blocking waits (the loop may have slept: a wake-up each) and busy-poll
//! windows that found work.

use std::io;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use aio::prelude::*;
use aio_nbd::thread::Running;
use aio_nbd::{Export, Listener, Server};

use crate::env::{Env, Monitor};
use crate::measure::{Counter, Figure, Measurement, median};
use crate::report::{Group, ScenarioReport, Summary, Target};

/// The scenario's one-line description.
pub const ABOUT: &str = "aio-nbd against qemu-nbd on the same raw file over loopback TCP, \
    qemu-img bench 4 KiB requests at depth 1 and 32; ns per request, interleaved runs";

/// The reference variant.
const QEMU_NBD: &str = "qemu-nbd";

/// The image both servers export (small in a quick run).
const IMAGE_SIZE: u64 = 256 << 20;
const QUICK_IMAGE_SIZE: u64 = 16 << 20;

/// One workload: reads or writes at a queue depth.
#[derive(Clone, Copy, Debug)]
struct Workload {
    id: &'static str,
    title: &'static str,
    write: bool,
    depth: u32,
    count: u64,
}

const WORKLOADS: [Workload; 4] = [
    Workload {
        id: "nbd/read-d1",
        title: "4 KiB reads, queue depth 1",
        write: false,
        depth: 1,
        count: 10_000,
    },
    Workload {
        id: "nbd/read-d32",
        title: "4 KiB reads, queue depth 32",
        write: false,
        depth: 32,
        count: 30_000,
    },
    Workload {
        id: "nbd/write-d1",
        title: "4 KiB writes, queue depth 1",
        write: true,
        depth: 1,
        count: 10_000,
    },
    Workload {
        id: "nbd/write-d32",
        title: "4 KiB writes, queue depth 32",
        write: true,
        depth: 32,
        count: 30_000,
    },
];

/// The aio-nbd variants: name and polling parameters.
fn aio_variants() -> [(&'static str, PollParams); 3] {
    [
        ("aio-nbd", aio_nbd::DEFAULT_POLL_PARAMS),
        ("aio-nbd-max32us", PollParams::IOTHREAD),
        ("aio-nbd-off", PollParams::OFF),
    ]
}

/// What a variant's server is.
enum Served {
    Qemu(QemuNbd),
    Aio(Running),
}

struct Variant {
    name: &'static str,
    port: u16,
    served: Served,
    rounds_ns: Vec<f64>,
}

/// Runs every workload.
///
/// # Errors
///
/// `qemu-nbd` or `qemu-img` is missing or fails, a server cannot start, or
/// a run's output cannot be read.
pub fn run(env: &Env<'_>) -> io::Result<ScenarioReport> {
    env.progress.scenario("nbd", WORKLOADS.len());
    let quick = env.plan.is_quick();
    let dir = std::env::temp_dir().join(format!("aio-bench-nbd-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let image = dir.join("disk.img");
    let result = make_image(&image, if quick { QUICK_IMAGE_SIZE } else { IMAGE_SIZE })
        .and_then(|()| run_workloads(env, &dir, &image, quick));
    let _ = std::fs::remove_dir_all(&dir);
    let groups = result?;
    let summaries = vec![summary(&groups)];
    let targets = targets(&groups);
    Ok(ScenarioReport {
        name: "nbd".to_owned(),
        about: ABOUT.to_owned(),
        groups,
        summaries,
        targets,
        seconds: 0.0,
    })
}

fn run_workloads(env: &Env<'_>, dir: &Path, image: &Path, quick: bool) -> io::Result<Vec<Group>> {
    let rounds = if quick { 2 } else { 4 };
    let mut groups = Vec::new();
    for workload in WORKLOADS {
        let count = if quick { 200 } else { workload.count };
        let mut variants = start_servers(env, dir, image)?;
        for round in 0..rounds {
            // A B C D, D C B A, ...: drift touches every variant alike.
            let order: Vec<usize> = if round % 2 == 0 {
                (0..variants.len()).collect()
            } else {
                (0..variants.len()).rev().collect()
            };
            env.progress.message(
                format!("{}: round {}/{rounds}", workload.title, round + 1),
                false,
            );
            for i in order {
                let seconds = qemu_img_bench(variants[i].port, &workload, count)?;
                variants[i].rounds_ns.push(seconds * 1e9 / count as f64);
            }
        }
        let total = count * rounds as u64;
        let rows = variants
            .into_iter()
            .map(|v| finish(v, total))
            .collect::<io::Result<Vec<_>>>()?;
        let notes = vec![format!(
            "client: qemu-img bench -c {count} -d {} -s 4096 -S 4096{} --image-opts \
             driver=nbd,host=127.0.0.1,port=PORT,export=disk; {rounds} rounds; \
             aio-nbd on {} (the automatic monitor), polling as named: aio-nbd = max_ns {} ns \
             (its default), -max32us = PollParams::IOTHREAD, -off = no polling",
            workload.depth,
            if workload.write { " -w" } else { "" },
            aio::Backend::Auto,
            aio_nbd::DEFAULT_POLL_PARAMS.max_ns,
        )];
        groups.push(Group::new(
            workload.id,
            format!("nbd: {}", workload.title),
            "ns per request",
            QEMU_NBD,
            rows,
            notes,
        ));
        env.progress.message(workload.title, true);
    }
    Ok(groups)
}

/// Starts `qemu-nbd` and the aio-nbd variants, each on its own port.
fn start_servers(env: &Env<'_>, dir: &Path, image: &Path) -> io::Result<Vec<Variant>> {
    let mut variants = Vec::new();
    // Children inherit the CPUs of the thread that starts them: qemu-nbd
    // is started from a thread on the partner CPU, as aio-nbd's loop runs
    // there, while qemu-img runs from the home thread, on the home CPU.
    let (d, i) = (dir.to_owned(), image.to_owned());
    let qemu = env
        .cpus
        .spawn_partner(0, "qemu-nbd", move || QemuNbd::start(&d, &i))?
        .join()
        .map_err(|_| io::Error::other("qemu-nbd's starter panicked"))??;
    variants.push(Variant {
        name: QEMU_NBD,
        port: qemu.port,
        served: Served::Qemu(qemu),
        rounds_ns: Vec::new(),
    });
    for (name, params) in aio_variants() {
        if !env.wants(name) {
            continue;
        }
        let listener = Listener::tcp("127.0.0.1:0")?;
        let port = match listener.local_addr()? {
            aio_nbd::ListenAddr::Tcp(addr) => addr.port(),
            aio_nbd::ListenAddr::Unix(_) => unreachable!("bound on TCP"),
        };
        let server = Server::new(listener, Export::open(image, false)?).export_name("disk");
        let cpus = env.cpus.clone();
        let running = aio_nbd::thread::spawn(server, move || {
            // Unpinned is still correct, only noisier.
            let _ = cpus.pin_partner(0);
            Monitor::Auto.context(params)
        })?;
        variants.push(Variant {
            name,
            port,
            served: Served::Aio(running),
            rounds_ns: Vec::new(),
        });
    }
    Ok(variants)
}

/// Stops a variant's server and makes its row.
fn finish(variant: Variant, requests: u64) -> io::Result<Measurement> {
    let counters = match variant.served {
        Served::Qemu(qemu) => {
            qemu.stop();
            Vec::new()
        }
        Served::Aio(running) => {
            let (_, stats) = running.stop()?;
            let per = |x: u64| x as f64 / requests as f64;
            vec![
                Counter {
                    name: "blocking waits".to_owned(),
                    per_iter: per(stats.blocking_waits),
                },
                Counter {
                    name: "poll hits".to_owned(),
                    per_iter: per(stats.poll_hits),
                },
            ]
        }
    };
    let name = variant.name.to_owned();
    let mut sorted = variant.rounds_ns.clone();
    let median_ns = median(&mut sorted);
    let p99_ns = sorted.last().copied().unwrap_or(f64::NAN);
    Ok(Measurement {
        name,
        figure: Figure::BatchMean,
        median_ns,
        p99_ns,
        rounds: variant.rounds_ns.len() as u32,
        rounds_ns: variant.rounds_ns,
        ratio: None,
        allocs_per_iter: None,
        expects_no_allocs: false,
        batch: requests,
        counters,
    })
}

/// IOPS, ratio and polling of every row, workload by workload.
fn summary(groups: &[Group]) -> Summary {
    let mut rows = Vec::new();
    for group in groups {
        for row in &group.rows {
            let polling = match aio_variants().iter().find(|(n, _)| *n == row.name) {
                Some((_, p)) if p.max_ns == 0 => "off".to_owned(),
                Some((_, p)) => format!("max_ns {} ns", p.max_ns),
                None => "qemu-nbd's own (aio=threads)".to_owned(),
            };
            let counter = |name: &str| {
                row.counter(name)
                    .map_or_else(|| "-".to_owned(), |x| format!("{x:.2}"))
            };
            rows.push(vec![
                group.id.clone(),
                row.name.clone(),
                polling,
                format!("{:.0}", 1e9 / row.median_ns),
                row.ratio
                    .map_or_else(|| "-".to_owned(), |r| format!("{:.2}x", 1.0 / r)),
                counter("blocking waits"),
                counter("poll hits"),
            ]);
        }
    }
    Summary {
        title: "nbd: IOPS (median over rounds) and IOPS ratio to qemu-nbd".to_owned(),
        headers: [
            "workload",
            "server",
            "polling",
            "IOPS",
            "IOPS / qemu-nbd",
            "blocking waits/req",
            "poll hits/req",
        ]
        .map(str::to_owned)
        .to_vec(),
        rows,
        notes: vec![
            "IOPS / qemu-nbd is the inverse of the paired ratio of ns per request (above 1: \
             faster than qemu-nbd)"
                .to_owned(),
        ],
    }
}

/// The targets, as ratios of ns per request (the inverse of the
/// IOPS ratio): with its default polling, aio-nbd at >= 1.5x qemu-nbd's
/// IOPS at depth 1 and >= 1.3x at depth 32; with polling off, >= 1.0x.
fn targets(groups: &[Group]) -> Vec<Target> {
    let mut targets = Vec::new();
    for g in groups {
        let iops = if g.id.ends_with("-d1") { 1.5 } else { 1.3 };
        targets.push(Target::at_most(
            &g.id,
            "aio-nbd",
            format!(
                "IOPS >= {iops:.1}x qemu-nbd (ns per request <= {:.3}x)",
                1.0 / iops
            ),
            g.ratio("aio-nbd", QEMU_NBD),
            1.0 / iops,
            "x",
        ));
        targets.push(Target::at_most(
            &g.id,
            "aio-nbd-off",
            "IOPS >= 1.0x qemu-nbd with polling off (ns per request <= 1.000x)",
            g.ratio("aio-nbd-off", QEMU_NBD),
            1.0,
            "x",
        ));
    }
    targets
}

/// Writes a fully allocated image of non-zero bytes, so that reads go
/// through the page cache rather than holes.
fn make_image(path: &Path, size: u64) -> io::Result<()> {
    let chunk: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8 + 1).collect();
    let mut file = std::fs::File::create(path)?;
    for _ in 0..size / chunk.len() as u64 {
        io::Write::write_all(&mut file, &chunk)?;
    }
    file.sync_all()
}

/// One `qemu-img bench` run; the seconds it reports.
fn qemu_img_bench(port: u16, workload: &Workload, count: u64) -> io::Result<f64> {
    let opts = format!("driver=nbd,host=127.0.0.1,port={port},export=disk");
    let mut cmd = Command::new("timeout");
    cmd.args(["120", "qemu-img", "bench", "-c"])
        .arg(count.to_string())
        .args([
            "-d",
            &workload.depth.to_string(),
            "-s",
            "4096",
            "-S",
            "4096",
        ]);
    if workload.write {
        cmd.arg("-w");
    }
    let out = cmd.args(["--image-opts", &opts]).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "qemu-img bench on port {port} failed ({}): {text}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    // "Run completed in 1.234 seconds."
    text.lines()
        .find_map(|l| l.strip_prefix("Run completed in "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|s| s.parse::<f64>().ok())
        .ok_or_else(|| io::Error::other(format!("qemu-img bench said: {text}")))
}

/// `qemu-nbd` exporting the image, started with `--fork` so that it is
/// serving when the command returns (no sleep, no retry).
struct QemuNbd {
    port: u16,
    pid: i32,
    pid_file: PathBuf,
}

impl QemuNbd {
    fn start(dir: &Path, image: &Path) -> io::Result<QemuNbd> {
        // A port the kernel just handed out and took back: free unless
        // another process grabs it in between (then qemu-nbd fails loudly).
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let pid_file = dir.join(format!("qemu-nbd-{port}.pid"));
        let status = Command::new("timeout")
            .args(["30", "qemu-nbd", "--fork", "--persistent", "--shared=8"])
            .args(["-f", "raw", "-x", "disk", "-b", "127.0.0.1", "-p"])
            .arg(port.to_string())
            .arg("--pid-file")
            .arg(&pid_file)
            .arg(image)
            .stdin(Stdio::null())
            .status()
            .map_err(|e| io::Error::new(e.kind(), format!("qemu-nbd: {e} (install qemu-utils)")))?;
        if !status.success() {
            return Err(io::Error::other(format!(
                "qemu-nbd failed to start: {status}"
            )));
        }
        let pid = std::fs::read_to_string(&pid_file)?
            .trim()
            .parse()
            .map_err(|e| io::Error::other(format!("qemu-nbd pid file: {e}")))?;
        Ok(QemuNbd {
            port,
            pid,
            pid_file,
        })
    }

    fn stop(self) {
        // SIGTERM to the one process started here, by its pid.
        let _ = Command::new("kill").arg(self.pid.to_string()).status();
        let _ = std::fs::remove_file(&self.pid_file);
    }
}
