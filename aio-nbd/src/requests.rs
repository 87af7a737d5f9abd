//! The transmission phase's rules: which requests are served, which get
//! which error (the protocol's `EINVAL`, `EPERM`, `ENOSPC`, `EOVERFLOW`),
//! the I/O operation a valid one becomes, and the reply to each outcome.

use std::io;

use crate::io::{IoOp, IoOutput};
use crate::options::Negotiated;
use crate::proto::{self, Command, Request, cmd_flags, errno};
use crate::shared::{BASE_ALLOCATION_ID, MAX_BLOCK, Shared};

/// The most extents one block status reply carries (one `SEEK_DATA` /
/// `SEEK_HOLE` pair each); a client asks again for the rest.
const MAX_EXTENTS: usize = 256;

/// Why a request is refused: the protocol's error value, and a message for
/// the human at the client (sent in structured replies).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) errno: u32,
    pub(crate) message: &'static str,
}

const fn refuse(errno: u32, message: &'static str) -> Result<(), Refusal> {
    Err(Refusal { errno, message })
}

/// Checks a request against the export and what was negotiated.
pub(crate) fn validate(
    request: &Request,
    shared: &Shared,
    negotiated: &Negotiated,
) -> Result<(), Refusal> {
    let export = &shared.export;
    if request.flags & !request.command.allowed_flags() != 0 {
        return refuse(errno::EINVAL, "flag not valid for this command");
    }
    let (offset, len) = (request.offset, u64::from(request.length));
    let writes = matches!(
        request.command,
        Command::Write | Command::Trim | Command::WriteZeroes
    );
    if writes && export.is_read_only() {
        return refuse(errno::EPERM, "the export is read-only");
    }
    match request.command {
        Command::Unknown(_) => refuse(errno::EINVAL, "unknown command"),
        Command::Read | Command::Write if request.length > MAX_BLOCK => {
            refuse(errno::EOVERFLOW, "longer than the maximum block size")
        }
        Command::Read if !export.contains(offset, len) => {
            refuse(errno::EINVAL, "beyond the end of the export")
        }
        Command::Write | Command::Trim | Command::WriteZeroes if !export.contains(offset, len) => {
            refuse(errno::ENOSPC, "beyond the end of the export")
        }
        Command::Flush if offset != 0 || len != 0 => {
            refuse(errno::EINVAL, "flush takes no offset or length")
        }
        Command::BlockStatus if !negotiated.base_allocation => {
            refuse(errno::EINVAL, "no metadata context selected")
        }
        Command::BlockStatus if len == 0 || !export.contains(offset, len) => {
            refuse(errno::EINVAL, "empty or beyond the end of the export")
        }
        _ => Ok(()),
    }
}

/// How many bytes precede a read's data in its reply buffer.
pub(crate) fn read_prefix(negotiated: &Negotiated) -> usize {
    if negotiated.structured {
        proto::READ_CHUNK_PREFIX
    } else {
        proto::SIMPLE_REPLY_LEN
    }
}

/// The operation a valid request without a payload becomes (a write's is
/// built once its payload is in: [`write_op`]).
pub(crate) fn op_for(request: &Request, negotiated: &Negotiated) -> IoOp {
    let fua = request.flags & cmd_flags::FUA != 0;
    let (offset, len) = (request.offset, request.length);
    match request.command {
        Command::Read => {
            // The reply's header goes in front of the data now (a failed
            // read is answered by another reply, and this buffer dropped).
            let at = read_prefix(negotiated);
            let mut buf = vec![0; at + len as usize];
            if negotiated.structured {
                proto::write_read_chunk_prefix(&mut buf, request.handle, offset, len);
            } else {
                proto::write_simple_reply(&mut buf, request.handle, 0);
            }
            IoOp::Read {
                offset,
                buf,
                at,
                len: len as usize,
            }
        }
        Command::Trim => IoOp::Trim {
            offset,
            len: len.into(),
            fua,
        },
        Command::WriteZeroes => IoOp::WriteZeroes {
            offset,
            len: len.into(),
            no_hole: request.flags & cmd_flags::NO_HOLE != 0,
            fua,
        },
        Command::BlockStatus => IoOp::BlockStatus {
            offset,
            len,
            max_extents: if request.flags & cmd_flags::REQ_ONE != 0 {
                1
            } else {
                MAX_EXTENTS
            },
        },
        Command::Flush | Command::Write | Command::Disconnect | Command::Unknown(_) => IoOp::Flush,
    }
}

/// A write's operation, with its payload.
pub(crate) fn write_op(request: &Request, payload: Vec<u8>) -> IoOp {
    IoOp::Write {
        offset: request.offset,
        buf: payload,
        fua: request.flags & cmd_flags::FUA != 0,
    }
}

/// The reply to a refused request.
pub(crate) fn refusal_reply(negotiated: &Negotiated, handle: u64, refusal: Refusal) -> Vec<u8> {
    error_reply(negotiated, handle, refusal.errno, refusal.message)
}

fn error_reply(negotiated: &Negotiated, handle: u64, errno: u32, message: &str) -> Vec<u8> {
    if negotiated.structured {
        proto::chunk_error(handle, errno, message)
    } else {
        proto::simple_reply(handle, errno).to_vec()
    }
}

/// The reply to a finished operation. A read's reply is its own buffer,
/// whose header [`op_for`] wrote in the room left before the data.
pub(crate) fn completion_reply(
    negotiated: &Negotiated,
    handle: u64,
    result: io::Result<IoOutput>,
) -> Vec<u8> {
    match result {
        Ok(IoOutput::Read(buf)) => buf,
        Ok(IoOutput::Done) => proto::simple_reply(handle, 0).to_vec(),
        Ok(IoOutput::Extents(extents)) => {
            proto::chunk_block_status(handle, BASE_ALLOCATION_ID, &extents)
        }
        Err(e) => error_reply(negotiated, handle, errno_of(&e), &e.to_string()),
    }
}

/// The protocol's error value for a system error.
fn errno_of(e: &io::Error) -> u32 {
    const EDQUOT: i32 = 122;
    const EFBIG: i32 = 27;
    match e.raw_os_error() {
        Some(1) => errno::EPERM,
        Some(22) => errno::EINVAL,
        Some(28 | EDQUOT | EFBIG) => errno::ENOSPC,
        _ => errno::EIO,
    }
}
