//! The NBD wire format: constants, and the parsing and encoding of the
//! fixed newstyle handshake, options and their replies, requests, and
//! simple and structured replies.
//!
//! Pure functions over byte slices, with no I/O and no state, so that every
//! frame can be unit-tested and fuzzed alone. A parse never panics: a short
//! or malformed frame is a [`ProtoError`]. Numbers follow the current
//! protocol document (`doc/proto.md` of the NetworkBlockDevice/nbd project)
//! and QEMU's `include/block/nbd.h`, which agree (`NBD_OPT_LIST_META_CONTEXT`
//! is 9 and `NBD_OPT_SET_META_CONTEXT` 10 since the experimental
//! `NBD_OPT_BLOCK_SIZE` was withdrawn).

use std::fmt;

/// `NBDMAGIC`: the first 8 bytes the server sends.
pub const NBD_MAGIC: u64 = 0x4e42_444d_4147_4943;
/// `IHAVEOPT`: the newstyle magic, sent by the server in its greeting and
/// by the client before every option.
pub const IHAVEOPT: u64 = 0x4948_4156_454f_5054;
/// The magic of every option reply.
pub const OPTION_REPLY_MAGIC: u64 = 0x0003_e889_0455_65a9;
/// The magic of a request.
pub const REQUEST_MAGIC: u32 = 0x2560_9513;
/// The magic of a simple reply.
pub const SIMPLE_REPLY_MAGIC: u32 = 0x6744_6698;
/// The magic of a structured reply chunk.
pub const STRUCTURED_REPLY_MAGIC: u32 = 0x668e_33ef;

/// Handshake flags (server to client, 16 bits).
pub mod handshake_flags {
    /// The server speaks fixed newstyle.
    pub const FIXED_NEWSTYLE: u16 = 1 << 0;
    /// The server can leave out the 124 zero bytes after `NBD_OPT_EXPORT_NAME`.
    pub const NO_ZEROES: u16 = 1 << 1;
}

/// Client flags (client to server, 32 bits).
pub mod client_flags {
    /// The client speaks fixed newstyle.
    pub const FIXED_NEWSTYLE: u32 = 1 << 0;
    /// The client wants no 124 zero bytes after `NBD_OPT_EXPORT_NAME`.
    pub const NO_ZEROES: u32 = 1 << 1;
}

/// Transmission flags (16 bits, sent with the export's size).
pub mod transmission_flags {
    /// Always set.
    pub const HAS_FLAGS: u16 = 1 << 0;
    /// The export refuses writes.
    pub const READ_ONLY: u16 = 1 << 1;
    /// `NBD_CMD_FLUSH` is served.
    pub const SEND_FLUSH: u16 = 1 << 2;
    /// `NBD_CMD_FLAG_FUA` is honoured.
    pub const SEND_FUA: u16 = 1 << 3;
    /// `NBD_CMD_TRIM` is served.
    pub const SEND_TRIM: u16 = 1 << 5;
    /// `NBD_CMD_WRITE_ZEROES` is served.
    pub const SEND_WRITE_ZEROES: u16 = 1 << 6;
    /// Flushes and FUA writes are visible to every connection.
    pub const CAN_MULTI_CONN: u16 = 1 << 8;
}

/// Option numbers.
pub mod opt {
    /// Choose the export and enter transmission (no reply on error).
    pub const EXPORT_NAME: u32 = 1;
    /// End the negotiation.
    pub const ABORT: u32 = 2;
    /// List the exports.
    pub const LIST: u32 = 3;
    /// Upgrade to TLS (not served).
    pub const STARTTLS: u32 = 5;
    /// Describe an export.
    pub const INFO: u32 = 6;
    /// Describe an export and enter transmission.
    pub const GO: u32 = 7;
    /// Use structured replies.
    pub const STRUCTURED_REPLY: u32 = 8;
    /// List metadata contexts.
    pub const LIST_META_CONTEXT: u32 = 9;
    /// Select metadata contexts for `NBD_CMD_BLOCK_STATUS`.
    pub const SET_META_CONTEXT: u32 = 10;
}

/// Option reply types.
pub mod rep {
    /// The option is done.
    pub const ACK: u32 = 1;
    /// One export of a list.
    pub const SERVER: u32 = 2;
    /// One item of information about an export.
    pub const INFO: u32 = 3;
    /// One metadata context.
    pub const META_CONTEXT: u32 = 4;
    /// The option is not known.
    pub const ERR_UNSUP: u32 = (1 << 31) + 1;
    /// The option is known and valid, but refused.
    pub const ERR_POLICY: u32 = (1 << 31) + 2;
    /// The option is malformed.
    pub const ERR_INVALID: u32 = (1 << 31) + 3;
    /// The export is unknown.
    pub const ERR_UNKNOWN: u32 = (1 << 31) + 6;
    /// The server is shutting down.
    pub const ERR_SHUTDOWN: u32 = (1 << 31) + 7;
}

/// Information types of `NBD_OPT_INFO` and `NBD_OPT_GO`.
pub mod info {
    /// Size and transmission flags.
    pub const EXPORT: u16 = 0;
    /// The export's name.
    pub const NAME: u16 = 1;
    /// A human-readable description.
    pub const DESCRIPTION: u16 = 2;
    /// Minimum, preferred and maximum block sizes.
    pub const BLOCK_SIZE: u16 = 3;
}

/// Command flags.
pub mod cmd_flags {
    /// Force unit access: persist before replying.
    pub const FUA: u16 = 1 << 0;
    /// `NBD_CMD_WRITE_ZEROES` must not punch a hole.
    pub const NO_HOLE: u16 = 1 << 1;
    /// `NBD_CMD_READ`: do not fragment the reply.
    pub const DF: u16 = 1 << 2;
    /// `NBD_CMD_BLOCK_STATUS`: one extent is enough.
    pub const REQ_ONE: u16 = 1 << 3;
}

/// Structured reply chunk types and flags.
pub mod chunk {
    /// This is the last chunk of the reply.
    pub const FLAG_DONE: u16 = 1 << 0;
    /// No payload: the reply is done.
    pub const NONE: u16 = 0;
    /// Data at an offset.
    pub const OFFSET_DATA: u16 = 1;
    /// Extents of a metadata context.
    pub const BLOCK_STATUS: u16 = 5;
    /// An error, with a message.
    pub const ERROR: u16 = (1 << 15) + 1;
}

/// The `base:allocation` metadata context's name and its status flags.
pub mod base_allocation {
    /// The context's name.
    pub const NAME: &str = "base:allocation";
    /// The extent is not allocated.
    pub const STATE_HOLE: u32 = 1 << 0;
    /// The extent reads as zeroes.
    pub const STATE_ZERO: u32 = 1 << 1;
}

/// Error values of replies (the protocol's, which match Linux errno).
pub mod errno {
    /// Operation not permitted (a write to a read-only export).
    pub const EPERM: u32 = 1;
    /// Input/output error.
    pub const EIO: u32 = 5;
    /// Invalid argument (bad flags, out of range, unknown command).
    pub const EINVAL: u32 = 22;
    /// No space (a write past the end of the export).
    pub const ENOSPC: u32 = 28;
    /// Value too large (longer than the maximum block size).
    pub const EOVERFLOW: u32 = 75;
    /// The server is shutting down.
    pub const ESHUTDOWN: u32 = 108;
}

/// The size of the server's greeting.
pub const GREETING_LEN: usize = 18;
/// The size of the client's flags.
pub const CLIENT_FLAGS_LEN: usize = 4;
/// The size of an option header.
pub const OPTION_HEADER_LEN: usize = 16;
/// The size of a request header.
pub const REQUEST_LEN: usize = 28;
/// The size of a simple reply header.
pub const SIMPLE_REPLY_LEN: usize = 16;
/// The size of a structured reply chunk header.
pub const CHUNK_HEADER_LEN: usize = 20;
/// What precedes a read's data in a structured reply: the chunk header and
/// the data's offset.
pub const READ_CHUNK_PREFIX: usize = CHUNK_HEADER_LEN + 8;
/// The longest string (export name, query) the protocol allows.
pub const MAX_STRING: usize = 4096;

/// Why a frame could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtoError {
    /// Fewer bytes than the frame needs.
    Truncated {
        /// What was being parsed.
        what: &'static str,
        /// How many bytes it needs.
        need: usize,
        /// How many there were.
        have: usize,
    },
    /// A magic number is wrong: the stream is not (or no longer) NBD.
    BadMagic {
        /// What was being parsed.
        what: &'static str,
        /// The value found.
        found: u64,
    },
    /// The client set flags the server did not offer.
    UnknownClientFlags(u32),
    /// A string is not UTF-8, contains NUL, or is too long.
    BadString(&'static str),
    /// An option's data does not match its layout.
    BadOptionData(&'static str),
}

impl fmt::Display for ProtoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtoError::Truncated { what, need, have } => {
                write!(f, "truncated {what}: {have} of {need} bytes")
            }
            ProtoError::BadMagic { what, found } => write!(f, "bad magic in {what}: {found:#x}"),
            ProtoError::UnknownClientFlags(flags) => write!(f, "unknown client flags {flags:#x}"),
            ProtoError::BadString(what) => write!(f, "bad string: {what}"),
            ProtoError::BadOptionData(what) => write!(f, "bad option data: {what}"),
        }
    }
}

impl std::error::Error for ProtoError {}

/// A cursor over a frame that fails with [`ProtoError::Truncated`] instead
/// of panicking.
struct Reader<'a> {
    what: &'static str,
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(what: &'static str, data: &'a [u8]) -> Reader<'a> {
        Reader { what, data }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtoError> {
        if self.data.len() < n {
            return Err(ProtoError::Truncated {
                what: self.what,
                need: n,
                have: self.data.len(),
            });
        }
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], ProtoError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u16(&mut self) -> Result<u16, ProtoError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, ProtoError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, ProtoError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// A string preceded by its 32-bit length.
    fn string32(&mut self, what: &'static str) -> Result<String, ProtoError> {
        let len = self.u32()? as usize;
        if len > MAX_STRING {
            return Err(ProtoError::BadString(what));
        }
        let bytes = self.take(len)?;
        to_string(bytes, what)
    }

    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }

    fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

fn to_string(bytes: &[u8], what: &'static str) -> Result<String, ProtoError> {
    if bytes.len() > MAX_STRING || bytes.contains(&0) {
        return Err(ProtoError::BadString(what));
    }
    String::from_utf8(bytes.to_vec()).map_err(|_| ProtoError::BadString(what))
}

mod handshake;
mod transmission;

pub use handshake::*;
pub use transmission::*;
