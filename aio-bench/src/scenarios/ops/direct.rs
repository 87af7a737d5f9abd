//! `ops-direct`: the same 4 KiB random reads from a file opened with
//! `O_DIRECT` (no page cache: each read goes to the device), where the
//! file system allows it, with page-aligned buffers. `tokio-fs` is left
//! out: `tokio::fs` has no way to read into an aligned buffer.

use std::cell::RefCell;
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aio::prelude::*;

use super::{AlignedBuf, BLOCK, RawRing, Reader, aio_batch};
use super::{Offsets, REFERENCE};
use crate::env::{Env, Monitor, io_uring_available};
use crate::measure::Variant;
use crate::report::{Group, ScenarioReport};

/// Where to look for a file system that takes `O_DIRECT`, first to last:
/// `AIO_BENCH_DIRECT_DIR` if set, the temporary directory, the current one.
fn candidates() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(dir) = std::env::var_os("AIO_BENCH_DIRECT_DIR") {
        dirs.push(PathBuf::from(dir));
    }
    dirs.push(std::env::temp_dir());
    if let Ok(dir) = std::env::current_dir() {
        dirs.push(dir);
    }
    dirs
}

/// A file of `size` bytes in `dir`, written, synced and opened again with
/// `O_DIRECT`, then unlinked; `Err` if the file system refuses `O_DIRECT`
/// (`EINVAL`: tmpfs, some overlays) or an aligned read of it.
fn direct_file_in(dir: &Path, size: u64) -> io::Result<File> {
    let path = dir.join(format!("aio-bench-ops-direct-{}", std::process::id()));
    let result = (|| {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)?;
        let chunk: Vec<u8> = (0..1u32 << 20)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        for at in (0..size).step_by(chunk.len()) {
            file.write_all_at(&chunk, at)?;
        }
        file.sync_all()?;
        let direct = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECT)
            .open(&path)?;
        let mut probe = AlignedBuf::new(BLOCK);
        if direct.read_at(probe.as_mut_slice(), 0)? != BLOCK {
            return Err(io::Error::other("a short O_DIRECT read"));
        }
        Ok(direct)
    })();
    let _ = std::fs::remove_file(&path);
    result
}

/// The first candidate directory that takes `O_DIRECT`, and its file; or
/// why none did.
fn direct_file(size: u64) -> Result<(Arc<File>, PathBuf), String> {
    let mut refused = Vec::new();
    for dir in candidates() {
        match direct_file_in(&dir, size) {
            Ok(file) => return Ok((Arc::new(file), dir)),
            Err(e) => refused.push(format!("{}: {e}", dir.display())),
        }
    }
    Err(refused.join("; "))
}

fn aligned_block() -> AlignedBuf {
    AlignedBuf::new(BLOCK)
}

/// Measures both depths from an `O_DIRECT` file, or reports why it could
/// not (in a note of an empty group).
pub(super) fn run(env: &Env<'_>, report: &mut ScenarioReport) -> io::Result<()> {
    let size = super::file_size(env);
    let (file, dir) = match direct_file(size) {
        Ok(found) => found,
        Err(why) => {
            report.groups.push(Group::new(
                "ops-direct",
                "ops: 4 KiB random reads, O_DIRECT",
                "ns per read",
                REFERENCE,
                Vec::new(),
                vec![format!(
                    "not measured: no file system here takes O_DIRECT ({why})"
                )],
            ));
            return Ok(());
        }
    };
    let uring = io_uring_available();
    for depth in [1usize, 32] {
        let id = format!("ops-direct/qd{depth}");
        let title = format!("ops: 4 KiB random reads, O_DIRECT, queue depth {depth}");
        let raw = if uring {
            Some(RefCell::new(RawRing::new(&file, size, depth)?))
        } else {
            None
        };
        let mut aio = Vec::new();
        if uring && env.wants(Monitor::IoUring.variant()) {
            aio.push((
                Monitor::IoUring.variant(),
                Monitor::IoUring.context(PollParams::OFF)?,
            ));
        }
        if env.wants("aio-pool") {
            aio.push((
                "aio-pool",
                Monitor::Epoll.pooled_context(PollParams::OFF, &env.cpus)?,
            ));
        }
        let readers: Vec<_> = aio
            .iter()
            .map(|_| Reader::new(&file, size, aligned_block))
            .collect();
        let std_offsets = RefCell::new(Offsets::new(size));
        let std_buf = RefCell::new(AlignedBuf::new(BLOCK));
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
        if depth == 1 && env.wants("std-read_at") {
            let (file, offsets, buf) = (&file, &std_offsets, &std_buf);
            variants.push(Variant::new("std-read_at", move |n| {
                let mut buf = buf.borrow_mut();
                for _ in 0..n {
                    let at = offsets.borrow_mut().next();
                    if file.read_at(buf.as_mut_slice(), at)? != BLOCK {
                        return Err(io::Error::other("a short O_DIRECT pread"));
                    }
                }
                Ok(())
            }));
        }
        let reference = if raw.is_some() {
            REFERENCE
        } else {
            "std-read_at"
        };
        let rows = env.measure(&title, &mut variants)?;
        drop(variants);
        let notes = vec![
            format!(
                "a {} MiB file opened with O_DIRECT in {} (no page cache: each read goes to the device); page-aligned buffers",
                size >> 20,
                dir.display()
            ),
            "tokio-fs left out: tokio::fs cannot read into an aligned buffer".to_owned(),
        ];
        let group = Group::new(&id, &title, "ns per read", reference, rows, notes);
        report.targets.extend(super::ring_target(&id, &group));
        report.groups.push(group);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A quick run: where a file system here takes O_DIRECT, both depths
    /// are measured with every variant; where none does, one group says
    /// why.
    #[test]
    fn direct_reads_are_measured_where_the_file_system_allows_them() {
        let mut report = ScenarioReport::default();
        let _dog = aio_core::testing::Watchdog::arm(
            "a quick run of ops-direct",
            std::time::Duration::from_secs(120),
        );
        Env::quick(|env| run(env, &mut report)).unwrap();
        if let Some(group) = report.group("ops-direct") {
            assert!(group.rows.is_empty());
            assert!(group.notes[0].starts_with("not measured"), "{group:?}");
            return;
        }
        let qd1 = report.group("ops-direct/qd1").unwrap();
        let qd32 = report.group("ops-direct/qd32").unwrap();
        assert!(qd1.row("aio-pool").is_some() && qd1.row("std-read_at").is_some());
        assert!(qd32.row("aio-pool").is_some() && qd32.row("std-read_at").is_none());
        if io_uring_available() {
            assert!(qd32.row(REFERENCE).is_some() && qd32.row("aio-io_uring").is_some());
        }
    }
}
