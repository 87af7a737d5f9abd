//! A TCP echo server and its clients, as tasks on one loop: 4 clients send
//! 1000 requests each over loopback, then everything exits.
//!
//! `cargo run -p aio-async --example echo_async`

use std::io;
use std::time::Instant;

use aio::prelude::*;
use aio_async::net::{TcpListener, TcpStream};
use aio_async::{Runtime, spawn_local};
use futures_lite::{AsyncReadExt, AsyncWriteExt};

const CLIENTS: usize = 4;
const REQUESTS: usize = 1000;

fn main() -> io::Result<()> {
    let ctx = AioContext::builder()
        .poll_params(PollParams {
            max_ns: 32_768,
            grow: 0,
            shrink: 0,
        })
        .build()?;
    println!("backend: {}", ctx.backend());
    let rt = Runtime::new(ctx);
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        // The server: one task per connection, each echoing what it reads.
        let server = spawn_local(async move {
            for _ in 0..CLIENTS {
                let (stream, _) = listener.accept().await?;
                spawn_local(async move {
                    let (mut reader, mut writer) = (&stream, &stream);
                    futures_lite::io::copy(&mut reader, &mut writer).await
                })
                .detach();
            }
            Ok::<_, io::Error>(())
        });

        let start = Instant::now();
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                spawn_local(async move {
                    let mut stream = TcpStream::connect(addr).await?;
                    stream.set_nodelay(true)?;
                    let mut reply = [0u8; 64];
                    for i in 0..REQUESTS {
                        let request = [(c * 31 + i) as u8; 64];
                        stream.write_all(&request).await?;
                        stream.read_exact(&mut reply).await?;
                        assert_eq!(reply, request, "the echo differs");
                    }
                    Ok::<_, io::Error>(())
                })
            })
            .collect();
        for client in clients {
            client.await??;
        }
        server.await??;
        let elapsed = start.elapsed();
        let total = CLIENTS * REQUESTS;
        println!(
            "{total} echoes of 64 bytes over {CLIENTS} connections in {elapsed:.2?}: \
             {:.0} requests/s",
            total as f64 / elapsed.as_secs_f64()
        );
        Ok(())
    })?
}
