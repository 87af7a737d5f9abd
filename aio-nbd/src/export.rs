//! The export: the file or block device a server serves, its size and
//! whether it is read-only, and the blocking operations on it (positioned
//! reads and writes, flush, trim, write-zeroes, block status).
//!
//! The protocol code never calls these directly: it goes through
//! the crate's `io` module, the one seam where data I/O happens, so that the
//! blocking calls here can later be replaced by requests on the loop's
//! io_uring ring or a thread pool. Every operation checks its range
//! against the export's size itself, so that no caller can write outside
//! the export.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::path::{Path, PathBuf};

use rustix::fs::{FallocateFlags, SeekFrom};

use crate::proto::{Extent, base_allocation};

/// A file or block device to serve.
#[derive(Debug)]
pub struct Export {
    file: File,
    path: PathBuf,
    size: u64,
    read_only: bool,
    block_device: bool,
}

/// How much zeroes are written at a time when the kernel cannot zero a
/// range itself.
const ZERO_CHUNK: usize = 1 << 20;

impl Export {
    /// Opens `path` for reading and, unless `read_only`, writing. Its size
    /// is read once: the export does not grow or shrink while served.
    ///
    /// # Errors
    ///
    /// If the file cannot be opened or its size cannot be read.
    pub fn open(path: impl AsRef<Path>, read_only: bool) -> io::Result<Export> {
        let path = path.as_ref();
        let file = OpenOptions::new().read(true).write(!read_only).open(path)?;
        let block_device = file.metadata()?.file_type().is_block_device();
        // lseek to the end gives the size of regular files and block
        // devices alike (metadata says 0 for a block device).
        let size = rustix::fs::seek(&file, SeekFrom::End(0))?;
        Ok(Export {
            file,
            path: path.to_owned(),
            size,
            read_only,
            block_device,
        })
    }

    /// The export's size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Whether writes are refused.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Whether the export is a block device (rather than a regular file).
    pub fn is_block_device(&self) -> bool {
        self.block_device
    }

    /// The path it was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether `[offset, offset + len)` lies inside the export.
    pub fn contains(&self, offset: u64, len: u64) -> bool {
        offset.checked_add(len).is_some_and(|end| end <= self.size)
    }

    pub(crate) fn check(&self, offset: u64, len: usize, write: bool) -> io::Result<()> {
        if write && self.read_only {
            return Err(io::Error::from_raw_os_error(libc_errno::EPERM));
        }
        if !self.contains(offset, len as u64) {
            return Err(io::Error::from_raw_os_error(libc_errno::EINVAL));
        }
        Ok(())
    }

    /// The open file, for the loop's operations.
    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    /// Fills `buf` from `offset`.
    pub(crate) fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.check(offset, buf.len(), false)?;
        self.file.read_exact_at(buf, offset)
    }

    /// Writes `buf` at `offset`; with `fua`, persists it before returning.
    pub(crate) fn write_at(&self, buf: &[u8], offset: u64, fua: bool) -> io::Result<()> {
        self.check(offset, buf.len(), true)?;
        self.file.write_all_at(buf, offset)?;
        self.persist_if(fua)
    }

    /// Persists every completed write (`fdatasync`).
    pub(crate) fn flush(&self) -> io::Result<()> {
        rustix::fs::fdatasync(&self.file)?;
        Ok(())
    }

    fn persist_if(&self, fua: bool) -> io::Result<()> {
        if fua { self.flush() } else { Ok(()) }
    }

    /// Discards a range (a hint: where the file system cannot punch holes,
    /// nothing happens and the trim still succeeds).
    pub(crate) fn trim(&self, offset: u64, len: u64, fua: bool) -> io::Result<()> {
        self.check(offset, 0, true)?;
        if !self.contains(offset, len) {
            return Err(io::Error::from_raw_os_error(libc_errno::EINVAL));
        }
        match self.punch_hole(offset, len) {
            Ok(()) => self.persist_if(fua),
            Err(e) if is_unsupported(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Makes a range read as zeroes: by punching a hole, unless `no_hole`
    /// asks for the range to stay allocated, then by `ZERO_RANGE`, then by
    /// writing zeroes, whichever the file system accepts first.
    pub(crate) fn write_zeroes(
        &self,
        offset: u64,
        len: u64,
        no_hole: bool,
        fua: bool,
    ) -> io::Result<()> {
        self.check(offset, 0, true)?;
        if !self.contains(offset, len) {
            return Err(io::Error::from_raw_os_error(libc_errno::EINVAL));
        }
        if len == 0 {
            return Ok(());
        }
        let punched = if no_hole {
            Err(io::Error::from(io::ErrorKind::Unsupported))
        } else {
            self.punch_hole(offset, len)
        };
        let zeroed = match punched {
            Err(e) if is_unsupported(&e) => self.zero_range(offset, len),
            other => other,
        };
        match zeroed {
            Err(e) if is_unsupported(&e) => self.write_zero_bytes(offset, len)?,
            other => other?,
        }
        self.persist_if(fua)
    }

    fn punch_hole(&self, offset: u64, len: u64) -> io::Result<()> {
        let mode = FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE;
        Ok(rustix::fs::fallocate(&self.file, mode, offset, len)?)
    }

    fn zero_range(&self, offset: u64, len: u64) -> io::Result<()> {
        let mode = FallocateFlags::ZERO_RANGE | FallocateFlags::KEEP_SIZE;
        Ok(rustix::fs::fallocate(&self.file, mode, offset, len)?)
    }

    fn write_zero_bytes(&self, mut offset: u64, len: u64) -> io::Result<()> {
        let zeroes = vec![0u8; ZERO_CHUNK.min(len as usize)];
        let end = offset + len;
        while offset < end {
            let n = zeroes.len().min((end - offset) as usize);
            self.file.write_all_at(&zeroes[..n], offset)?;
            offset += n as u64;
        }
        Ok(())
    }

    /// The allocation of `[offset, offset + len)` as `base:allocation`
    /// extents, at most `max_extents` of them (covering a prefix of the
    /// range if there are more), from `SEEK_DATA` / `SEEK_HOLE`. Where the
    /// file system cannot tell, the whole range is one allocated extent.
    pub(crate) fn block_status(
        &self,
        offset: u64,
        len: u32,
        max_extents: usize,
    ) -> io::Result<Vec<Extent>> {
        self.check(offset, len as usize, false)?;
        let end = offset + u64::from(len);
        let mut extents: Vec<Extent> = Vec::new();
        let mut at = offset;
        while at < end && extents.len() < max_extents {
            let (hole, next) = match self.next_boundary(at) {
                Ok(found) => found,
                // The file system cannot tell: the rest is reported
                // allocated, which the protocol allows for any block.
                Err(_) => (false, end),
            };
            let next = next.clamp(at + 1, end);
            let flags = if hole {
                base_allocation::STATE_HOLE | base_allocation::STATE_ZERO
            } else {
                0
            };
            push_extent(&mut extents, (next - at) as u32, flags);
            at = next;
        }
        Ok(extents)
    }

    /// Whether `at` is in a hole, and where its run (hole or data) ends.
    fn next_boundary(&self, at: u64) -> io::Result<(bool, u64)> {
        match rustix::fs::seek(&self.file, SeekFrom::Data(at)) {
            // No data from here to the end of the file.
            Err(rustix::io::Errno::NXIO) => Ok((true, self.size)),
            Err(e) => Err(e.into()),
            Ok(data) if data > at => Ok((true, data)),
            Ok(_) => match rustix::fs::seek(&self.file, SeekFrom::Hole(at)) {
                Ok(hole) => Ok((false, hole)),
                Err(rustix::io::Errno::NXIO) => Ok((false, self.size)),
                Err(e) => Err(e.into()),
            },
        }
    }
}

/// Appends an extent, merging it into the last one when their flags match.
fn push_extent(extents: &mut Vec<Extent>, length: u32, flags: u32) {
    match extents.last_mut() {
        Some(last) if last.flags == flags => last.length += length,
        _ => extents.push(Extent { length, flags }),
    }
}

fn is_unsupported(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Unsupported
        || matches!(
            e.raw_os_error(),
            Some(libc_errno::EOPNOTSUPP | libc_errno::ENOSYS | libc_errno::EINVAL)
        )
}

/// The errno values this module produces or recognises (Linux's).
mod libc_errno {
    pub(super) const EPERM: i32 = 1;
    pub(super) const EINVAL: i32 = 22;
    pub(super) const ENOSYS: i32 = 38;
    pub(super) const EOPNOTSUPP: i32 = 95;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sparse(size: u64) -> (tempfile::NamedTempFile, Export) {
        let file = tempfile::NamedTempFile::new().unwrap();
        file.as_file().set_len(size).unwrap();
        let export = Export::open(file.path(), false).unwrap();
        (file, export)
    }

    #[test]
    fn reads_back_what_it_wrote_and_refuses_out_of_range() {
        let (_f, e) = sparse(1 << 20);
        e.write_at(&[7; 4096], 8192, true).unwrap();
        let mut buf = [0; 4096];
        e.read_at(&mut buf, 8192).unwrap();
        assert_eq!(buf, [7; 4096]);
        assert!(e.write_at(&[1; 2], (1 << 20) - 1, false).is_err());
        assert!(e.read_at(&mut buf, u64::MAX - 10).is_err());
    }

    #[test]
    fn block_status_sees_holes_and_data() {
        let (_f, e) = sparse(1 << 20);
        e.write_at(&[1; 65536], 65536, false).unwrap();
        let extents = e.block_status(0, 1 << 20, 64).unwrap();
        let total: u64 = extents.iter().map(|x| u64::from(x.length)).sum();
        assert_eq!(total, 1 << 20);
        assert!(extents.iter().any(|x| x.flags == 0));
        assert!(
            extents
                .iter()
                .any(|x| x.flags & base_allocation::STATE_HOLE != 0)
        );
    }

    #[test]
    fn write_zeroes_and_trim_read_back_zeroes() {
        let (_f, e) = sparse(1 << 20);
        e.write_at(&[9; 1 << 20], 0, false).unwrap();
        e.write_zeroes(0, 65536, false, false).unwrap();
        e.write_zeroes(65536, 65536, true, true).unwrap();
        e.trim(131072, 65536, false).unwrap();
        let mut buf = vec![1; 196608];
        e.read_at(&mut buf, 0).unwrap();
        assert!(buf.iter().all(|&b| b == 0));
    }

    #[test]
    fn a_read_only_export_refuses_writes() {
        let (f, _) = sparse(4096);
        let e = Export::open(f.path(), true).unwrap();
        assert!(e.is_read_only());
        let err = e.write_at(&[1], 0, false).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc_errno::EPERM));
        assert!(e.trim(0, 1, false).is_err());
    }
}
