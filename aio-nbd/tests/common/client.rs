//! A minimal blocking NBD client: the fixed newstyle handshake with
//! structured replies, `base:allocation` and `NBD_OPT_GO`, then requests
//! and their replies (simple or structured), for protocol-level tests.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use aio_nbd::ListenAddr;
use aio_nbd::proto::{self, Command, OptionHeader, Request, chunk, opt, rep};

/// A socket of either family, with a read timeout so a missing reply
/// fails the test instead of hanging it.
pub enum Sock {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Read for Sock {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Sock::Tcp(s) => s.read(buf),
            Sock::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Sock {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sock::Tcp(s) => s.write(buf),
            Sock::Unix(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Connects, with reads bounded by `limit`.
pub fn connect(addr: &ListenAddr) -> Sock {
    let limit = Some(Duration::from_secs(30));
    match addr {
        ListenAddr::Tcp(a) => {
            let s = TcpStream::connect(a).expect("connect");
            s.set_read_timeout(limit).unwrap();
            Sock::Tcp(s)
        }
        ListenAddr::Unix(p) => {
            let s = UnixStream::connect(p).expect("connect");
            s.set_read_timeout(limit).unwrap();
            Sock::Unix(s)
        }
    }
}

/// One reply: its handle, error (0 for success) and data (a read's bytes,
/// or the raw payload of a block status chunk).
#[derive(Debug)]
pub struct Reply {
    pub handle: u64,
    pub error: u32,
    pub data: Vec<u8>,
}

/// A client in the transmission phase.
pub struct Client {
    pub sock: Sock,
    pub size: u64,
    pub flags: u16,
    pub structured: bool,
}

fn read_exact(sock: &mut Sock, n: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0; n];
    sock.read_exact(&mut buf)?;
    Ok(buf)
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes(b[..4].try_into().unwrap())
}

fn be64(b: &[u8]) -> u64 {
    u64::from_be_bytes(b[..8].try_into().unwrap())
}

/// Sends an option and reads its replies up to the final one: (type, data)
/// of each.
pub fn option(sock: &mut Sock, option: u32, data: &[u8]) -> io::Result<Vec<(u32, Vec<u8>)>> {
    let header = OptionHeader {
        option,
        length: data.len() as u32,
    };
    sock.write_all(&header.encode())?;
    sock.write_all(data)?;
    let mut replies = Vec::new();
    loop {
        let h = read_exact(sock, 20)?;
        assert_eq!(be64(&h), proto::OPTION_REPLY_MAGIC);
        assert_eq!(be32(&h[8..]), option);
        let kind = be32(&h[12..]);
        let data = read_exact(sock, be32(&h[16..]) as usize)?;
        replies.push((kind, data));
        if kind != rep::SERVER && kind != rep::INFO && kind != rep::META_CONTEXT {
            return Ok(replies);
        }
    }
}

/// Reads the greeting and sends the client flags.
pub fn greet(sock: &mut Sock) -> io::Result<()> {
    let g = read_exact(sock, proto::GREETING_LEN)?;
    assert_eq!(&g[..8], b"NBDMAGIC");
    sock.write_all(&3u32.to_be_bytes())
}

impl Client {
    /// Handshake: structured replies (if asked), `base:allocation`, GO.
    pub fn connect(addr: &ListenAddr, structured: bool) -> io::Result<Client> {
        let mut sock = connect(addr);
        greet(&mut sock)?;
        if structured {
            let r = option(&mut sock, opt::STRUCTURED_REPLY, &[])?;
            assert_eq!(r[0].0, rep::ACK);
            let mut q = Vec::new();
            q.extend_from_slice(&0u32.to_be_bytes());
            q.extend_from_slice(&1u32.to_be_bytes());
            q.extend_from_slice(&15u32.to_be_bytes());
            q.extend_from_slice(b"base:allocation");
            let r = option(&mut sock, opt::SET_META_CONTEXT, &q)?;
            assert_eq!(r[0].0, rep::META_CONTEXT);
        }
        let mut go = Vec::new();
        go.extend_from_slice(&0u32.to_be_bytes());
        go.extend_from_slice(&0u16.to_be_bytes());
        let replies = option(&mut sock, opt::GO, &go)?;
        let (kind, _) = replies.last().unwrap();
        assert_eq!(*kind, rep::ACK, "GO refused: {replies:?}");
        let export = &replies
            .iter()
            .find(|(k, d)| *k == rep::INFO && d[..2] == [0, 0])
            .unwrap()
            .1;
        Ok(Client {
            sock,
            size: be64(&export[2..]),
            flags: u16::from_be_bytes([export[10], export[11]]),
            structured,
        })
    }

    /// Sends a request (and its payload).
    pub fn send(
        &mut self,
        command: Command,
        flags: u16,
        handle: u64,
        offset: u64,
        length: u32,
        payload: &[u8],
    ) -> io::Result<()> {
        let r = Request {
            flags,
            command,
            handle,
            offset,
            length,
        };
        self.sock.write_all(&r.encode())?;
        self.sock.write_all(payload)
    }

    /// Reads one whole reply (every chunk of a structured one). A read's
    /// data is assumed to be `read_len` bytes for simple replies.
    pub fn reply(&mut self, read_len: usize) -> io::Result<Reply> {
        let magic = be32(&read_exact(&mut self.sock, 4)?);
        if magic == proto::SIMPLE_REPLY_MAGIC {
            let h = read_exact(&mut self.sock, 12)?;
            let error = be32(&h);
            let data = if error == 0 {
                read_exact(&mut self.sock, read_len)?
            } else {
                Vec::new()
            };
            return Ok(Reply {
                handle: be64(&h[4..]),
                error,
                data,
            });
        }
        assert_eq!(magic, proto::STRUCTURED_REPLY_MAGIC);
        let mut reply = Reply {
            handle: 0,
            error: 0,
            data: Vec::new(),
        };
        let mut first = true;
        loop {
            if !first {
                let magic = be32(&read_exact(&mut self.sock, 4)?);
                assert_eq!(magic, proto::STRUCTURED_REPLY_MAGIC);
            }
            first = false;
            let h = read_exact(&mut self.sock, 16)?;
            let flags = u16::from_be_bytes([h[0], h[1]]);
            let kind = u16::from_be_bytes([h[2], h[3]]);
            reply.handle = be64(&h[4..]);
            let payload = read_exact(&mut self.sock, be32(&h[12..]) as usize)?;
            match kind {
                chunk::OFFSET_DATA => reply.data.extend_from_slice(&payload[8..]),
                chunk::ERROR => reply.error = be32(&payload),
                _ => reply.data.extend_from_slice(&payload),
            }
            if flags & chunk::FLAG_DONE != 0 {
                return Ok(reply);
            }
        }
    }

    /// Writes, then checks the reply.
    pub fn write(&mut self, handle: u64, offset: u64, data: &[u8]) -> io::Result<u32> {
        self.send(Command::Write, 0, handle, offset, data.len() as u32, data)?;
        let r = self.reply(0)?;
        assert_eq!(r.handle, handle);
        Ok(r.error)
    }

    /// Reads `len` bytes at `offset`.
    pub fn read(&mut self, handle: u64, offset: u64, len: u32) -> io::Result<Reply> {
        self.send(Command::Read, 0, handle, offset, len, &[])?;
        let r = self.reply(len as usize)?;
        assert_eq!(r.handle, handle);
        Ok(r)
    }
}
