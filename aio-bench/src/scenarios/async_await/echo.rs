//! The TCP echo form: an echo server on a partner thread, 4 connections
//! from the home thread.

use super::*;

/// Requests in flight: one per connection.
const CONNECTIONS: usize = 4;
/// The size of one request (and its echo).
const REQUEST: usize = 64;

/// An echo server on a partner thread: serves `CONNECTIONS` connections
/// until each hangs up, then the thread ends.
enum Server {
    AioAsync(PollParams),
    Tokio,
}

fn spawn_echo_server(
    env: &Env<'_>,
    i: usize,
    server: Server,
) -> io::Result<(SocketAddr, std::thread::JoinHandle<io::Result<()>>)> {
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = env.cpus.spawn_partner(i, "async-echo-server", move || {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        tx.send(listener.local_addr()?)
            .map_err(|_| io::Error::other("the bench went away"))?;
        match server {
            Server::AioAsync(params) => aio_echo_server(listener, params),
            Server::Tokio => tokio_echo_server(listener),
        }
    })?;
    let addr = rx
        .recv()
        .map_err(|_| io::Error::other("the echo server did not start"))?;
    Ok((addr, thread))
}

fn aio_echo_server(listener: std::net::TcpListener, params: PollParams) -> io::Result<()> {
    let rt = Runtime::new(Monitor::Auto.context(params)?);
    rt.block_on(async {
        let listener = Async::new(listener)?;
        let mut conns = Vec::new();
        for _ in 0..CONNECTIONS {
            let (stream, _) = listener.read_with(|l| l.accept()).await?;
            stream.set_nodelay(true)?;
            let stream = Async::new(stream)?;
            conns.push(spawn_local(async move {
                let mut buf = [0u8; 4096];
                loop {
                    let n = stream.read_with(|mut s| s.read(&mut buf)).await?;
                    if n == 0 {
                        return Ok::<_, io::Error>(());
                    }
                    let mut done = 0;
                    while done < n {
                        done += stream.write_with(|mut s| s.write(&buf[done..n])).await?;
                    }
                }
            }));
        }
        for conn in conns {
            conn.await??;
        }
        Ok(())
    })?
}

fn tokio_echo_server(listener: std::net::TcpListener) -> io::Result<()> {
    let rt = tokio_runtime()?;
    rt.block_on(async {
        listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let mut conns = Vec::new();
        for _ in 0..CONNECTIONS {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            conns.push(tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                loop {
                    stream.readable().await?;
                    let n = match stream.try_read(&mut buf) {
                        Ok(0) => return Ok::<_, io::Error>(()),
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                        Err(e) => return Err(e),
                    };
                    let mut done = 0;
                    while done < n {
                        match stream.try_write(&buf[done..n]) {
                            Ok(m) => done += m,
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                                stream.writable().await?;
                            }
                            Err(e) => return Err(e),
                        }
                    }
                }
            }));
        }
        for conn in conns {
            conn.await.map_err(io::Error::other)??;
        }
        Ok(())
    })
}

/// The client side, on the home thread: `CONNECTIONS` blocking sockets.
struct EchoClient {
    conns: Vec<std::net::TcpStream>,
}

impl EchoClient {
    fn connect(addr: SocketAddr) -> io::Result<EchoClient> {
        let conns = (0..CONNECTIONS)
            .map(|_| {
                let s = std::net::TcpStream::connect(addr)?;
                s.set_nodelay(true)?;
                Ok(s)
            })
            .collect::<io::Result<Vec<_>>>()?;
        Ok(EchoClient { conns })
    }

    /// `n` requests, one in flight per connection: each round writes a
    /// request on every connection, then reads every echo.
    fn requests(&mut self, n: u64) -> io::Result<()> {
        let mut request = [0u8; REQUEST];
        let mut reply = [0u8; REQUEST];
        let mut left = n;
        let mut seq = 0u8;
        while left > 0 {
            let k = (left as usize).min(CONNECTIONS);
            for conn in &mut self.conns[..k] {
                seq = seq.wrapping_add(1);
                request[0] = seq;
                conn.write_all(&request)?;
            }
            for conn in &mut self.conns[..k] {
                conn.read_exact(&mut reply)?;
            }
            left -= k as u64;
        }
        Ok(())
    }
}

pub(super) fn echo_group(env: &Env<'_>) -> io::Result<Group> {
    let id = ECHO;
    let title = "async: TCP echo over loopback, 4 connections, server on a partner thread";
    let mut servers = Vec::new();
    let mut clients = Vec::new();
    for (i, (name, server)) in [
        (POLLING, Server::AioAsync(PollParams::IOTHREAD)),
        (BLOCKING, Server::AioAsync(PollParams::OFF)),
        (REFERENCE, Server::Tokio),
    ]
    .into_iter()
    .enumerate()
    {
        if !env.wants(name) {
            continue;
        }
        let (addr, thread) = spawn_echo_server(env, i, server)?;
        servers.push(thread);
        clients.push((name, std::cell::RefCell::new(EchoClient::connect(addr)?)));
    }
    let mut variants: Vec<Variant<'_>> = clients
        .iter()
        .map(|(name, client)| Variant::new(*name, move |n| client.borrow_mut().requests(n)))
        .collect();
    let rows = env.measure(title, &mut variants)?;
    drop(variants);
    // Hanging up ends the servers.
    drop(clients);
    for server in servers {
        server
            .join()
            .map_err(|_| io::Error::other("an echo server panicked"))??;
    }
    let notes = vec![
        format!(
            "a blocking client on the home thread keeps one {REQUEST}-byte request in flight on \
             each of {CONNECTIONS} connections; requests per second = 1e9 / ns per request"
        ),
        format!(
            "{POLLING}: PollParams::IOTHREAD; {BLOCKING}: polling off; {REFERENCE}: \
             current_thread, readable + try_read"
        ),
    ];
    Ok(Group::new(
        id,
        title,
        "ns per request",
        REFERENCE,
        rows,
        notes,
    ))
}
