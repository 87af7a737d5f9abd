//! What the connections of one server share: the export and its I/O
//! engine, the export's name and limits, whether the server is stopping,
//! and its counters. Everything here lives on the loop's home thread.

use std::cell::Cell;
use std::rc::Rc;

use crate::export::Export;
use crate::io::{Io, OpsIo};
use crate::proto::transmission_flags as tf;

/// The smallest request a client may make: any byte range is served
/// (`pread` / `pwrite` need no alignment).
pub const MIN_BLOCK: u32 = 1;
/// The request size clients should prefer (a page; what `qemu-nbd`
/// advertises for a file).
pub const PREFERRED_BLOCK: u32 = 4096;
/// The longest read or write: 32 MiB, as `qemu-nbd` (longer ones get
/// `EOVERFLOW`).
pub const MAX_BLOCK: u32 = 32 << 20;
/// The id of the `base:allocation` metadata context once selected.
pub(crate) const BASE_ALLOCATION_ID: u32 = 1;

/// The state every connection of a server holds a reference to.
pub(crate) struct Shared {
    pub(crate) export: Rc<Export>,
    pub(crate) io: Box<dyn Io>,
    pub(crate) name: String,
    pub(crate) stopping: Cell<bool>,
    pub(crate) requests: Cell<u64>,
}

impl Shared {
    pub(crate) fn new(export: Export, name: String) -> Shared {
        let export = Rc::new(export);
        Shared {
            io: Box::new(OpsIo::new(export.clone())),
            export,
            name,
            stopping: Cell::new(false),
            requests: Cell::new(0),
        }
    }

    /// The transmission flags, advertised honestly: flush and FUA always
    /// (`fdatasync`), trim and write-zeroes unless read-only, multi-conn
    /// because every connection uses the same file descriptor (no cache
    /// of ours, so a flush on one is a flush for all).
    pub(crate) fn transmission_flags(&self) -> u16 {
        let mut flags = tf::HAS_FLAGS | tf::SEND_FLUSH | tf::SEND_FUA | tf::CAN_MULTI_CONN;
        if self.export.is_read_only() {
            flags |= tf::READ_ONLY;
        } else {
            flags |= tf::SEND_TRIM | tf::SEND_WRITE_ZEROES;
        }
        flags
    }

    /// Whether a client's export name picks this export (the empty name
    /// is the default export).
    pub(crate) fn names_export(&self, name: &str) -> bool {
        name.is_empty() || name == self.name
    }
}
