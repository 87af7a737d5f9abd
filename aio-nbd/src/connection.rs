//! One client's connection: a state machine on the loop, fed by the
//! socket's read handler and drained by its write handler.
//!
//! The read handler reads what the socket has and parses every complete
//! frame (client flags, options, requests, write payloads); each valid
//! request goes to the I/O engine, and its reply joins the reply queue as
//! it completes, so requests are pipelined and replied to in completion
//! order. The queue is written at once and, when the socket is full, by
//! the write handler. A read's reply is the very buffer the data was read
//! into (the header sits in room left before the data), and a write's
//! payload is read from the socket straight into the buffer that is
//! written to the export, apart from the bytes that arrived with its
//! header.
//!
//! A framing error (bad magic, unknown client flags, an option too long to
//! buffer) closes this connection only; a bad request gets an error reply
//! and the connection goes on.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, IoSlice, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::rc::{Rc, Weak};

use aio::{AioContext, FdHandler};

use crate::io::{Deliver, IoCompletion, IoRequest};
use crate::net::Stream;
use crate::options::{self, Negotiated, Next};
use crate::proto::{self, Command, OptionHeader, Request};
use crate::requests;
use crate::shared::Shared;

/// The input buffer: room for the longest option the server accepts and
/// for many pipelined request headers.
const INPUT_BUFFER: usize = 128 << 10;
/// The longest option data accepted; a longer option closes the
/// connection (real options are a few hundred bytes at most).
const MAX_OPTION_DATA: u32 = 64 << 10;
/// Replies queued beyond this stop the parsing and reading of new requests
/// until the client reads its replies (so a client that never reads cannot
/// make the server buffer without bound).
const MAX_QUEUED_REPLIES: usize = 64 << 20;
/// How many queued replies one `writev` takes.
const MAX_IOVECS: usize = 64;

/// A connection as the loop's callbacks hold it.
pub(crate) type ConnectionRef = Rc<RefCell<Connection>>;

/// What the parser expects next.
#[derive(Debug)]
enum Phase {
    ClientFlags,
    OptionHeader,
    OptionData(OptionHeader),
    Request,
    /// A valid write's payload, read into the buffer that will be written.
    Payload {
        request: Request,
        buf: Vec<u8>,
        filled: usize,
    },
    /// A refused write's payload, skipped to keep the stream in step.
    Discard {
        handle: u64,
        remaining: u64,
        refusal: requests::Refusal,
    },
    /// Nothing more is read: the client disconnected or aborted, or the
    /// server is stopping. The connection closes once its replies are out.
    Draining,
}

/// Which callbacks the socket's handler has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Interest {
    read: bool,
    write: bool,
}

/// One client's state.
pub(crate) struct Connection {
    fd: RawFd,
    stream: Option<Stream>,
    shared: Rc<Shared>,
    negotiated: Negotiated,
    phase: Phase,
    input: Box<[u8]>,
    start: usize,
    end: usize,
    replies: VecDeque<Vec<u8>>,
    /// How much of the front reply is written.
    written: usize,
    queued_bytes: usize,
    in_flight: usize,
    registered: Option<Interest>,
    /// The socket failed or the stream is lost: close without flushing.
    broken: bool,
    closed: bool,
    deliver: Deliver,
}

impl Connection {
    /// Sets up a connection on `ctx`: queues the greeting and registers
    /// the socket's handler.
    pub(crate) fn start(
        ctx: &AioContext,
        stream: Stream,
        shared: Rc<Shared>,
    ) -> io::Result<ConnectionRef> {
        let conn = Rc::new_cyclic(|weak: &Weak<RefCell<Connection>>| {
            let weak = weak.clone();
            let deliver: Deliver = Rc::new(move |ctx: &AioContext, done: IoCompletion| {
                if let Some(conn) = weak.upgrade() {
                    conn.borrow_mut().complete(done);
                    Connection::after_event(&conn, ctx);
                }
            });
            RefCell::new(Connection {
                fd: stream.as_raw_fd(),
                stream: Some(stream),
                shared,
                negotiated: Negotiated::default(),
                phase: Phase::ClientFlags,
                input: vec![0; INPUT_BUFFER].into_boxed_slice(),
                start: 0,
                end: 0,
                replies: VecDeque::new(),
                written: 0,
                queued_bytes: 0,
                in_flight: 0,
                registered: None,
                broken: false,
                closed: false,
                deliver,
            })
        });
        conn.borrow_mut().queue(proto::greeting().to_vec());
        conn.borrow_mut().write_replies();
        Connection::update_registration(&conn, ctx)?;
        Ok(conn)
    }

    /// Whether the connection has closed.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }

    /// Stops reading new requests: the connection closes once the replies
    /// of those it has taken are out.
    pub(crate) fn drain(conn: &ConnectionRef, ctx: &AioContext) {
        conn.borrow_mut().phase = Phase::Draining;
        Connection::after_event(conn, ctx);
    }

    /// Closes the connection now, whatever is queued.
    pub(crate) fn abort(conn: &ConnectionRef, ctx: &AioContext) {
        conn.borrow_mut().broken = true;
        Connection::after_event(conn, ctx);
    }

    fn on_readable(conn: &ConnectionRef, ctx: &AioContext) {
        {
            let mut c = conn.borrow_mut();
            c.read_input(ctx);
            c.pump(ctx);
        }
        Connection::after_event(conn, ctx);
    }

    fn on_writable(conn: &ConnectionRef, ctx: &AioContext) {
        conn.borrow_mut().pump(ctx);
        Connection::after_event(conn, ctx);
    }

    /// Writes the replies and parses the input, in turns, for as long as
    /// parsing goes on: parsing stops at the queue limit, and once writing
    /// has brought the queue below it, the requests still in the input must
    /// be parsed now (no readiness event will come for bytes already read).
    /// Each turn that parsed something writes again; one that parsed
    /// nothing waits for input, or, at the limit, for the socket to take
    /// the replies (write interest is on whenever replies wait).
    fn pump(&mut self, ctx: &AioContext) {
        loop {
            self.write_replies();
            let before = (self.start, self.replies.len());
            self.parse_input(ctx);
            // A payload read straight into its buffer completes a request
            // without consuming input: a new reply counts as progress too.
            if (self.start, self.replies.len()) == before || self.broken {
                return;
            }
        }
    }

    /// Closes, or brings the handler's callbacks in line with what the
    /// connection waits for.
    fn after_event(conn: &ConnectionRef, ctx: &AioContext) {
        if let Err(e) = Connection::update_registration(conn, ctx) {
            log::warn!("nbd: connection dropped: cannot update its handler: {e}");
            conn.borrow_mut().broken = true;
            let _ = Connection::update_registration(conn, ctx);
        }
    }

    fn update_registration(conn: &ConnectionRef, ctx: &AioContext) -> io::Result<()> {
        let mut c = conn.borrow_mut();
        if c.closed {
            return Ok(());
        }
        let finished =
            matches!(c.phase, Phase::Draining) && c.in_flight == 0 && c.replies.is_empty();
        if c.broken || finished {
            c.closed = true;
            let removed = match c.registered.take() {
                Some(_) => ctx.set_fd_handler(c.fd, None),
                None => Ok(()),
            };
            // The handler is removed before its fd is closed (and the fd
            // is closed even if the removal failed: the handler's token
            // keeps a late event from reaching whoever reuses the number).
            c.stream = None;
            return removed;
        }
        let wanted = Interest {
            read: !matches!(c.phase, Phase::Draining) && c.queued_bytes < MAX_QUEUED_REPLIES,
            write: !c.replies.is_empty(),
        };
        if c.registered == Some(wanted) {
            return Ok(());
        }
        let fd = c.fd;
        let first = c.registered.is_none();
        c.registered = Some(wanted);
        drop(c);
        if first {
            // Both callbacks, once: turning a direction on or off later is
            // one monitor update, with no new handler to build.
            let (r, w) = (conn.clone(), conn.clone());
            let handler = FdHandler::new()
                .on_read(move |ctx| Connection::on_readable(&r, ctx))
                .on_write(move |ctx| Connection::on_writable(&w, ctx));
            if let Err(e) = ctx.set_fd_handler(fd, Some(handler)) {
                conn.borrow_mut().registered = None;
                return Err(e);
            }
        }
        let interest = match (wanted.read, wanted.write) {
            (true, true) => aio::Interest::BOTH,
            (true, false) => aio::Interest::READABLE,
            (false, true) => aio::Interest::WRITABLE,
            (false, false) => aio::Interest::NONE,
        };
        ctx.set_fd_interest(fd, interest)
    }

    /// Reads what the socket has: into a write's payload buffer directly
    /// when the input buffer is empty, else into the input buffer.
    fn read_input(&mut self, ctx: &AioContext) {
        loop {
            let Some(stream) = self.stream.as_mut() else {
                return;
            };
            let (read, room) = match &mut self.phase {
                Phase::Payload { buf, filled, .. } if self.start == self.end => {
                    let room = buf.len() - *filled;
                    let read = stream.read(&mut buf[*filled..]);
                    if let Ok(n) = read {
                        *filled += n;
                    }
                    (read, room)
                }
                _ => {
                    if self.start == self.end {
                        (self.start, self.end) = (0, 0);
                    } else if self.end == self.input.len() {
                        self.input.copy_within(self.start..self.end, 0);
                        (self.start, self.end) = (0, self.end - self.start);
                    }
                    let room = self.input.len() - self.end;
                    let read = stream.read(&mut self.input[self.end..]);
                    if let Ok(n) = read {
                        self.end += n;
                    }
                    (read, room)
                }
            };
            match read {
                // The peer closed: nothing it sent later can be answered.
                Ok(0) if room > 0 => {
                    self.broken = true;
                    return;
                }
                // A full read: more is likely waiting.
                Ok(n) if n == room && room > 0 => {
                    if !self.parse_input(ctx) {
                        return;
                    }
                }
                Ok(_) => return,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.broken = true;
                    return;
                }
            }
        }
    }

    /// Parses every complete frame in the input. Returns whether more
    /// input is wanted.
    fn parse_input(&mut self, ctx: &AioContext) -> bool {
        while !self.broken {
            let available = self.end - self.start;
            match &mut self.phase {
                Phase::Draining => return false,
                Phase::ClientFlags => {
                    if available < proto::CLIENT_FLAGS_LEN {
                        break;
                    }
                    let flags = proto::parse_client_flags(self.take(proto::CLIENT_FLAGS_LEN));
                    match flags {
                        Ok(flags) => {
                            self.negotiated.no_zeroes = flags & proto::client_flags::NO_ZEROES != 0;
                            self.phase = Phase::OptionHeader;
                        }
                        Err(_) => self.broken = true,
                    }
                }
                Phase::OptionHeader => {
                    if available < proto::OPTION_HEADER_LEN {
                        break;
                    }
                    match OptionHeader::parse(self.take(proto::OPTION_HEADER_LEN)) {
                        Ok(h) if h.length <= MAX_OPTION_DATA => self.phase = Phase::OptionData(h),
                        _ => self.broken = true,
                    }
                }
                Phase::OptionData(header) => {
                    let header = *header;
                    if available < header.length as usize {
                        break;
                    }
                    self.answer_option(header);
                }
                Phase::Request => {
                    // Enough replies are waiting for the client: the rest
                    // of the input waits too (parsed again as the queue
                    // drains), which bounds what one client can make the
                    // server hold to this limit plus one request.
                    if available < proto::REQUEST_LEN || self.queued_bytes >= MAX_QUEUED_REPLIES {
                        break;
                    }
                    match Request::parse(self.take(proto::REQUEST_LEN)) {
                        Ok(request) => self.start_request(ctx, request),
                        Err(_) => self.broken = true,
                    }
                }
                Phase::Payload {
                    request,
                    buf,
                    filled,
                } => {
                    let n = available.min(buf.len() - *filled);
                    buf[*filled..*filled + n]
                        .copy_from_slice(&self.input[self.start..self.start + n]);
                    *filled += n;
                    self.start += n;
                    if *filled < buf.len() {
                        break;
                    }
                    let request = *request;
                    let buf = std::mem::take(buf);
                    self.phase = Phase::Request;
                    self.submit(ctx, request.handle, requests::write_op(&request, buf));
                }
                Phase::Discard {
                    handle,
                    remaining,
                    refusal,
                } => {
                    let n = (available as u64).min(*remaining);
                    *remaining -= n;
                    self.start += n as usize;
                    if *remaining > 0 {
                        break;
                    }
                    let reply = requests::refusal_reply(&self.negotiated, *handle, *refusal);
                    self.phase = Phase::Request;
                    self.queue(reply);
                }
            }
        }
        !self.broken && !matches!(self.phase, Phase::Draining)
    }

    /// The next `n` bytes of input, consumed.
    fn take(&mut self, n: usize) -> &[u8] {
        let at = self.start;
        self.start += n;
        &self.input[at..at + n]
    }

    fn answer_option(&mut self, header: OptionHeader) {
        let len = header.length as usize;
        let mut reply = Vec::new();
        let data = &self.input[self.start..self.start + len];
        let next = options::answer(&self.shared, &mut self.negotiated, header, data, &mut reply);
        self.start += len;
        if !reply.is_empty() {
            self.queue(reply);
        }
        self.phase = match next {
            Next::Options => Phase::OptionHeader,
            Next::Transmission => Phase::Request,
            Next::Close => Phase::Draining,
        };
    }

    fn start_request(&mut self, ctx: &AioContext, request: Request) {
        let shared = self.shared.clone();
        shared.requests.set(shared.requests.get() + 1);
        if let Err(refusal) = requests::validate(&request, &shared, &self.negotiated) {
            if request.has_payload() && request.length > 0 {
                self.phase = Phase::Discard {
                    handle: request.handle,
                    remaining: request.length.into(),
                    refusal,
                };
            } else {
                let reply = requests::refusal_reply(&self.negotiated, request.handle, refusal);
                self.queue(reply);
            }
            return;
        }
        match request.command {
            Command::Disconnect => self.phase = Phase::Draining,
            Command::Write if request.length > 0 => {
                self.phase = Phase::Payload {
                    request,
                    buf: vec![0; request.length as usize],
                    filled: 0,
                };
            }
            Command::Write | Command::Read if request.length == 0 => {
                let reply = if self.negotiated.structured {
                    proto::chunk_none(request.handle).to_vec()
                } else {
                    proto::simple_reply(request.handle, 0).to_vec()
                };
                self.queue(reply);
            }
            _ => {
                let op = requests::op_for(&request, &self.negotiated);
                self.submit(ctx, request.handle, op);
            }
        }
    }

    fn submit(&mut self, ctx: &AioContext, handle: u64, op: crate::io::IoOp) {
        self.in_flight += 1;
        let request = IoRequest { handle, op };
        if let Some(done) = self.shared.io.submit(ctx, request, &self.deliver) {
            self.complete(done);
        }
    }

    fn complete(&mut self, done: IoCompletion) {
        self.in_flight -= 1;
        let reply = requests::completion_reply(&self.negotiated, done.handle, done.result);
        self.queue(reply);
    }

    fn queue(&mut self, reply: Vec<u8>) {
        self.queued_bytes += reply.len();
        self.replies.push_back(reply);
    }

    /// Writes queued replies until the queue is empty or the socket full.
    fn write_replies(&mut self) {
        while !self.replies.is_empty() && !self.broken {
            let Some(stream) = self.stream.as_mut() else {
                return;
            };
            let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
            let mut count = 0;
            for (i, reply) in self.replies.iter().take(MAX_IOVECS).enumerate() {
                let from = if i == 0 { self.written } else { 0 };
                slices[i] = IoSlice::new(&reply[from..]);
                count += 1;
            }
            match stream.write_vectored(&slices[..count]) {
                Ok(n) => self.consume_written(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => self.broken = true,
            }
        }
    }

    fn consume_written(&mut self, mut n: usize) {
        self.queued_bytes -= n;
        while n > 0 {
            let front = self.replies[0].len() - self.written;
            if n < front {
                self.written += n;
                return;
            }
            n -= front;
            self.written = 0;
            self.replies.pop_front();
        }
    }
}
