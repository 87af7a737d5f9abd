//! The transmission phase: requests, and simple and structured replies.

use super::{
    CHUNK_HEADER_LEN, MAX_STRING, ProtoError, READ_CHUNK_PREFIX, REQUEST_LEN, REQUEST_MAGIC,
    Reader, SIMPLE_REPLY_LEN, SIMPLE_REPLY_MAGIC, STRUCTURED_REPLY_MAGIC, chunk, cmd_flags,
};

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
    use crate::proto::{errno, export_name_reply};

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
