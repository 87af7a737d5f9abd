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

/// The server's greeting: `NBDMAGIC`, `IHAVEOPT`, and the handshake flags
/// (fixed newstyle, no zeroes).
pub fn greeting() -> [u8; GREETING_LEN] {
    let mut out = [0; GREETING_LEN];
    out[..8].copy_from_slice(&NBD_MAGIC.to_be_bytes());
    out[8..16].copy_from_slice(&IHAVEOPT.to_be_bytes());
    let flags = handshake_flags::FIXED_NEWSTYLE | handshake_flags::NO_ZEROES;
    out[16..].copy_from_slice(&flags.to_be_bytes());
    out
}

/// Parses the client's flags; unknown ones are an error (the server must
/// then close the connection).
pub fn parse_client_flags(data: &[u8]) -> Result<u32, ProtoError> {
    let flags = Reader::new("client flags", data).u32()?;
    let known = client_flags::FIXED_NEWSTYLE | client_flags::NO_ZEROES;
    if flags & !known != 0 {
        return Err(ProtoError::UnknownClientFlags(flags));
    }
    Ok(flags)
}

/// The header that precedes every option's data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OptionHeader {
    /// The option number.
    pub option: u32,
    /// How many bytes of data follow.
    pub length: u32,
}

impl OptionHeader {
    /// Parses an option header.
    pub fn parse(data: &[u8]) -> Result<OptionHeader, ProtoError> {
        let mut r = Reader::new("option header", data);
        let magic = r.u64()?;
        if magic != IHAVEOPT {
            return Err(ProtoError::BadMagic {
                what: "option header",
                found: magic,
            });
        }
        Ok(OptionHeader {
            option: r.u32()?,
            length: r.u32()?,
        })
    }

    /// Encodes an option header (what a client sends; for tests and tools).
    pub fn encode(&self) -> [u8; OPTION_HEADER_LEN] {
        let mut out = [0; OPTION_HEADER_LEN];
        out[..8].copy_from_slice(&IHAVEOPT.to_be_bytes());
        out[8..12].copy_from_slice(&self.option.to_be_bytes());
        out[12..].copy_from_slice(&self.length.to_be_bytes());
        out
    }
}

/// An option the server understands, parsed from its data.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientOption {
    /// `NBD_OPT_EXPORT_NAME`: the export's name.
    ExportName(String),
    /// `NBD_OPT_ABORT`.
    Abort,
    /// `NBD_OPT_LIST`.
    List,
    /// `NBD_OPT_INFO` or (`go`) `NBD_OPT_GO`.
    Info {
        /// Whether transmission starts after the reply.
        go: bool,
        /// The export's name.
        name: String,
        /// The information types asked for.
        requests: Vec<u16>,
    },
    /// `NBD_OPT_STRUCTURED_REPLY`.
    StructuredReply,
    /// `NBD_OPT_LIST_META_CONTEXT` or (`set`) `NBD_OPT_SET_META_CONTEXT`.
    MetaContext {
        /// Whether this selects (set) or only lists.
        set: bool,
        /// The export's name.
        export: String,
        /// The queries.
        queries: Vec<String>,
    },
    /// An option this server does not serve.
    Unsupported(u32),
}

/// Parses an option's data. Errors mean the data is malformed for its
/// option (`NBD_REP_ERR_INVALID`).
pub fn parse_option(option: u32, data: &[u8]) -> Result<ClientOption, ProtoError> {
    let mut r = Reader::new("option data", data);
    let parsed = match option {
        opt::EXPORT_NAME => ClientOption::ExportName(to_string(r.rest(), "export name")?),
        opt::ABORT => ClientOption::Abort,
        opt::LIST if r.is_empty() => ClientOption::List,
        opt::LIST => return Err(ProtoError::BadOptionData("NBD_OPT_LIST takes no data")),
        opt::STRUCTURED_REPLY if r.is_empty() => ClientOption::StructuredReply,
        opt::STRUCTURED_REPLY => {
            return Err(ProtoError::BadOptionData(
                "NBD_OPT_STRUCTURED_REPLY takes no data",
            ));
        }
        opt::INFO | opt::GO => {
            let name = r.string32("export name")?;
            let count = r.u16()?;
            let requests = (0..count).map(|_| r.u16()).collect::<Result<_, _>>()?;
            ClientOption::Info {
                go: option == opt::GO,
                name,
                requests,
            }
        }
        opt::LIST_META_CONTEXT | opt::SET_META_CONTEXT => {
            let export = r.string32("export name")?;
            let count = r.u32()?;
            // Each query takes at least its 4-byte length: a count that
            // the data cannot hold is malformed, not a reason to allocate.
            if count as usize > data.len() / 4 {
                return Err(ProtoError::BadOptionData("more queries than data"));
            }
            let queries = (0..count)
                .map(|_| r.string32("query"))
                .collect::<Result<_, _>>()?;
            ClientOption::MetaContext {
                set: option == opt::SET_META_CONTEXT,
                export,
                queries,
            }
        }
        other => return Ok(ClientOption::Unsupported(other)),
    };
    if !r.is_empty() {
        return Err(ProtoError::BadOptionData("trailing bytes"));
    }
    Ok(parsed)
}

/// Appends an option reply (header and data) to `out`.
pub fn option_reply(out: &mut Vec<u8>, option: u32, reply_type: u32, data: &[u8]) {
    out.extend_from_slice(&OPTION_REPLY_MAGIC.to_be_bytes());
    out.extend_from_slice(&option.to_be_bytes());
    out.extend_from_slice(&reply_type.to_be_bytes());
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(data);
}

/// The data of an `NBD_REP_SERVER` reply: one export's name.
pub fn rep_server(name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + name.len());
    out.extend_from_slice(&(name.len() as u32).to_be_bytes());
    out.extend_from_slice(name.as_bytes());
    out
}

/// The data of an `NBD_REP_INFO` reply of type `NBD_INFO_EXPORT`.
pub fn info_export(size: u64, flags: u16) -> [u8; 12] {
    let mut out = [0; 12];
    out[..2].copy_from_slice(&info::EXPORT.to_be_bytes());
    out[2..10].copy_from_slice(&size.to_be_bytes());
    out[10..].copy_from_slice(&flags.to_be_bytes());
    out
}

/// The data of an `NBD_REP_INFO` reply of type `NBD_INFO_NAME`.
pub fn info_name(name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + name.len());
    out.extend_from_slice(&info::NAME.to_be_bytes());
    out.extend_from_slice(name.as_bytes());
    out
}

/// The data of an `NBD_REP_INFO` reply of type `NBD_INFO_BLOCK_SIZE`.
pub fn info_block_size(min: u32, preferred: u32, max: u32) -> [u8; 14] {
    let mut out = [0; 14];
    out[..2].copy_from_slice(&info::BLOCK_SIZE.to_be_bytes());
    out[2..6].copy_from_slice(&min.to_be_bytes());
    out[6..10].copy_from_slice(&preferred.to_be_bytes());
    out[10..].copy_from_slice(&max.to_be_bytes());
    out
}

/// The data of an `NBD_REP_META_CONTEXT` reply.
pub fn rep_meta_context(id: u32, name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + name.len());
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(name.as_bytes());
    out
}

/// The reply to `NBD_OPT_EXPORT_NAME`: size, transmission flags, and 124
/// zero bytes unless the client asked for none.
pub fn export_name_reply(size: u64, flags: u16, no_zeroes: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(10 + 124);
    out.extend_from_slice(&size.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    if !no_zeroes {
        out.resize(10 + 124, 0);
    }
    out
}

/// A command of the transmission phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// `NBD_CMD_READ`.
    Read,
    /// `NBD_CMD_WRITE`: `length` bytes of data follow the header.
    Write,
    /// `NBD_CMD_DISC`.
    Disconnect,
    /// `NBD_CMD_FLUSH`.
    Flush,
    /// `NBD_CMD_TRIM`.
    Trim,
    /// `NBD_CMD_WRITE_ZEROES`.
    WriteZeroes,
    /// `NBD_CMD_BLOCK_STATUS`.
    BlockStatus,
    /// A command this server does not know (`NBD_CMD_CACHE`, ...).
    Unknown(u16),
}

impl Command {
    /// The command of a request's type field.
    pub fn from_wire(value: u16) -> Command {
        match value {
            0 => Command::Read,
            1 => Command::Write,
            2 => Command::Disconnect,
            3 => Command::Flush,
            4 => Command::Trim,
            6 => Command::WriteZeroes,
            7 => Command::BlockStatus,
            other => Command::Unknown(other),
        }
    }

    /// The request's type field for this command.
    pub fn to_wire(self) -> u16 {
        match self {
            Command::Read => 0,
            Command::Write => 1,
            Command::Disconnect => 2,
            Command::Flush => 3,
            Command::Trim => 4,
            Command::WriteZeroes => 6,
            Command::BlockStatus => 7,
            Command::Unknown(other) => other,
        }
    }

    /// The command flags valid on this command (with FUA, which the
    /// protocol allows on every command once `NBD_FLAG_SEND_FUA` is
    /// advertised).
    pub fn allowed_flags(self) -> u16 {
        match self {
            Command::Read => cmd_flags::FUA,
            Command::WriteZeroes => cmd_flags::FUA | cmd_flags::NO_HOLE,
            Command::BlockStatus => cmd_flags::FUA | cmd_flags::REQ_ONE,
            _ => cmd_flags::FUA,
        }
    }
}

/// A request header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    /// Command flags.
    pub flags: u16,
    /// The command.
    pub command: Command,
    /// The client's handle, echoed in the reply.
    pub handle: u64,
    /// Where in the export.
    pub offset: u64,
    /// How many bytes.
    pub length: u32,
}

impl Request {
    /// Parses a request header; a bad magic means the stream is lost.
    pub fn parse(data: &[u8]) -> Result<Request, ProtoError> {
        let mut r = Reader::new("request", data);
        let magic = r.u32()?;
        if magic != REQUEST_MAGIC {
            return Err(ProtoError::BadMagic {
                what: "request",
                found: magic.into(),
            });
        }
        Ok(Request {
            flags: r.u16()?,
            command: Command::from_wire(r.u16()?),
            handle: r.u64()?,
            offset: r.u64()?,
            length: r.u32()?,
        })
    }

    /// Encodes a request header (what a client sends; for tests and tools).
    pub fn encode(&self) -> [u8; REQUEST_LEN] {
        let mut out = [0; REQUEST_LEN];
        out[..4].copy_from_slice(&REQUEST_MAGIC.to_be_bytes());
        out[4..6].copy_from_slice(&self.flags.to_be_bytes());
        out[6..8].copy_from_slice(&self.command.to_wire().to_be_bytes());
        out[8..16].copy_from_slice(&self.handle.to_be_bytes());
        out[16..24].copy_from_slice(&self.offset.to_be_bytes());
        out[24..].copy_from_slice(&self.length.to_be_bytes());
        out
    }

    /// Whether a payload of `length` bytes follows this header.
    pub fn has_payload(&self) -> bool {
        self.command == Command::Write
    }
}

/// A simple reply header (no data, or a read's data after it).
pub fn simple_reply(handle: u64, error: u32) -> [u8; SIMPLE_REPLY_LEN] {
    let mut out = [0; SIMPLE_REPLY_LEN];
    write_simple_reply(&mut out, handle, error);
    out
}

/// Writes a simple reply header into the first 16 bytes of `out`.
pub fn write_simple_reply(out: &mut [u8], handle: u64, error: u32) {
    out[..4].copy_from_slice(&SIMPLE_REPLY_MAGIC.to_be_bytes());
    out[4..8].copy_from_slice(&error.to_be_bytes());
    out[8..16].copy_from_slice(&handle.to_be_bytes());
}

/// Writes a structured reply chunk header into the first 20 bytes of `out`.
pub fn write_chunk_header(out: &mut [u8], flags: u16, kind: u16, handle: u64, length: u32) {
    out[..4].copy_from_slice(&STRUCTURED_REPLY_MAGIC.to_be_bytes());
    out[4..6].copy_from_slice(&flags.to_be_bytes());
    out[6..8].copy_from_slice(&kind.to_be_bytes());
    out[8..16].copy_from_slice(&handle.to_be_bytes());
    out[16..20].copy_from_slice(&length.to_be_bytes());
}

/// Writes the prefix of a read's one `NBD_REPLY_TYPE_OFFSET_DATA` chunk,
/// marked done, into the first [`READ_CHUNK_PREFIX`] bytes of `out`; the
/// `length` bytes of data follow it in the same buffer.
pub fn write_read_chunk_prefix(out: &mut [u8], handle: u64, offset: u64, length: u32) {
    write_chunk_header(
        out,
        chunk::FLAG_DONE,
        chunk::OFFSET_DATA,
        handle,
        length + 8,
    );
    out[CHUNK_HEADER_LEN..READ_CHUNK_PREFIX].copy_from_slice(&offset.to_be_bytes());
}

/// A structured `NBD_REPLY_TYPE_NONE` chunk, marked done.
pub fn chunk_none(handle: u64) -> [u8; CHUNK_HEADER_LEN] {
    let mut out = [0; CHUNK_HEADER_LEN];
    write_chunk_header(&mut out, chunk::FLAG_DONE, chunk::NONE, handle, 0);
    out
}

/// A structured `NBD_REPLY_TYPE_ERROR` chunk, marked done, with a message
/// for the human at the client.
pub fn chunk_error(handle: u64, error: u32, message: &str) -> Vec<u8> {
    let message = &message.as_bytes()[..message.len().min(MAX_STRING)];
    let mut out = vec![0; CHUNK_HEADER_LEN];
    write_chunk_header(
        &mut out,
        chunk::FLAG_DONE,
        chunk::ERROR,
        handle,
        6 + message.len() as u32,
    );
    out.extend_from_slice(&error.to_be_bytes());
    out.extend_from_slice(&(message.len() as u16).to_be_bytes());
    out.extend_from_slice(message);
    out
}

/// One extent of a block status reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extent {
    /// Its length in bytes (non-zero).
    pub length: u32,
    /// Its status flags (for `base:allocation`: hole, zero).
    pub flags: u32,
}

/// A structured `NBD_REPLY_TYPE_BLOCK_STATUS` chunk, marked done.
pub fn chunk_block_status(handle: u64, context_id: u32, extents: &[Extent]) -> Vec<u8> {
    let length = 4 + 8 * extents.len();
    let mut out = vec![0; CHUNK_HEADER_LEN];
    write_chunk_header(
        &mut out,
        chunk::FLAG_DONE,
        chunk::BLOCK_STATUS,
        handle,
        length as u32,
    );
    out.extend_from_slice(&context_id.to_be_bytes());
    for extent in extents {
        out.extend_from_slice(&extent.length.to_be_bytes());
        out.extend_from_slice(&extent.flags.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta_context_data(export: &str, queries: &[&str]) -> Vec<u8> {
        let mut data = rep_server(export);
        data.extend_from_slice(&(queries.len() as u32).to_be_bytes());
        for q in queries {
            data.extend_from_slice(&rep_server(q));
        }
        data
    }

    #[test]
    fn greeting_is_magic_then_fixed_newstyle_and_no_zeroes() {
        let g = greeting();
        assert_eq!(&g[..8], b"NBDMAGIC");
        assert_eq!(&g[8..16], b"IHAVEOPT");
        assert_eq!(u16::from_be_bytes([g[16], g[17]]), 0b11);
    }

    #[test]
    fn client_flags_refuse_unknown_bits_and_short_input() {
        assert_eq!(parse_client_flags(&[0, 0, 0, 3]), Ok(3));
        assert_eq!(
            parse_client_flags(&[0, 0, 0, 4]),
            Err(ProtoError::UnknownClientFlags(4))
        );
        assert!(matches!(
            parse_client_flags(&[0, 0]),
            Err(ProtoError::Truncated {
                need: 4,
                have: 2,
                ..
            })
        ));
    }

    #[test]
    fn option_header_round_trips_and_checks_magic() {
        let h = OptionHeader {
            option: opt::GO,
            length: 7,
        };
        assert_eq!(OptionHeader::parse(&h.encode()), Ok(h));
        let mut bad = h.encode();
        bad[0] ^= 1;
        assert!(matches!(
            OptionHeader::parse(&bad),
            Err(ProtoError::BadMagic { .. })
        ));
        assert!(matches!(
            OptionHeader::parse(&bad[..5]),
            Err(ProtoError::Truncated { .. })
        ));
    }

    #[test]
    fn go_and_info_parse_name_and_requests() {
        let mut data = rep_server("disk");
        data.extend_from_slice(&2u16.to_be_bytes());
        data.extend_from_slice(&info::BLOCK_SIZE.to_be_bytes());
        data.extend_from_slice(&info::NAME.to_be_bytes());
        assert_eq!(
            parse_option(opt::GO, &data),
            Ok(ClientOption::Info {
                go: true,
                name: "disk".into(),
                requests: vec![info::BLOCK_SIZE, info::NAME],
            })
        );
        // A count of requests the data does not hold.
        data.truncate(data.len() - 1);
        assert!(matches!(
            parse_option(opt::INFO, &data),
            Err(ProtoError::Truncated { .. })
        ));
    }

    #[test]
    fn meta_context_parses_queries_and_refuses_absurd_counts() {
        let data = meta_context_data("", &["base:allocation"]);
        assert_eq!(
            parse_option(opt::SET_META_CONTEXT, &data),
            Ok(ClientOption::MetaContext {
                set: true,
                export: String::new(),
                queries: vec!["base:allocation".into()],
            })
        );
        let mut huge = rep_server("");
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(parse_option(opt::LIST_META_CONTEXT, &huge).is_err());
    }

    #[test]
    fn options_with_data_they_should_not_have_are_invalid() {
        assert!(parse_option(opt::LIST, b"x").is_err());
        assert!(parse_option(opt::STRUCTURED_REPLY, b"x").is_err());
        assert_eq!(
            parse_option(opt::STARTTLS, b""),
            Ok(ClientOption::Unsupported(opt::STARTTLS))
        );
        assert!(parse_option(opt::EXPORT_NAME, b"a\0b").is_err());
        assert!(parse_option(opt::EXPORT_NAME, &[0xff]).is_err());
    }

    #[test]
    fn request_round_trips_and_checks_magic() {
        let r = Request {
            flags: cmd_flags::FUA,
            command: Command::Write,
            handle: 0x1122_3344_5566_7788,
            offset: 4096,
            length: 512,
        };
        assert_eq!(Request::parse(&r.encode()), Ok(r));
        assert!(r.has_payload());
        let mut bad = r.encode();
        bad[3] = 0;
        assert!(matches!(
            Request::parse(&bad),
            Err(ProtoError::BadMagic { .. })
        ));
        for n in 0..REQUEST_LEN {
            assert!(Request::parse(&r.encode()[..n]).is_err());
        }
        assert_eq!(Command::from_wire(5), Command::Unknown(5));
    }

    #[test]
    fn replies_have_their_documented_layout() {
        let s = simple_reply(9, errno::EINVAL);
        assert_eq!(&s[..4], &SIMPLE_REPLY_MAGIC.to_be_bytes());
        assert_eq!(&s[4..8], &22u32.to_be_bytes());
        assert_eq!(&s[8..], &9u64.to_be_bytes());

        let e = chunk_error(9, errno::EPERM, "read-only");
        assert_eq!(e.len(), CHUNK_HEADER_LEN + 6 + 9);
        assert_eq!(&e[6..8], &chunk::ERROR.to_be_bytes());
        assert_eq!(&e[16..20], &15u32.to_be_bytes());

        let b = chunk_block_status(
            1,
            7,
            &[Extent {
                length: 512,
                flags: 3,
            }],
        );
        assert_eq!(&b[16..20], &12u32.to_be_bytes());
        assert_eq!(&b[20..24], &7u32.to_be_bytes());

        let mut read = vec![0; READ_CHUNK_PREFIX + 4];
        write_read_chunk_prefix(&mut read, 1, 4096, 4);
        assert_eq!(&read[16..20], &12u32.to_be_bytes());
        assert_eq!(&read[20..28], &4096u64.to_be_bytes());

        assert_eq!(export_name_reply(1, 1, false).len(), 134);
        assert_eq!(export_name_reply(1, 1, true).len(), 10);
    }
}
