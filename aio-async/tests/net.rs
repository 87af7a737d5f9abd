//! Async fds and sockets: level semantics, TCP echo over loopback, and the
//! futures-io traits through `futures::io::copy`.

use std::time::Duration;

use aio::prelude::*;
use aio_async::net::{TcpListener, TcpStream, UnixStream};
use aio_async::{Async, Runtime, spawn_local};
use aio_core::testing::Watchdog;
use futures::io::{AsyncReadExt, AsyncWriteExt};

fn runtime() -> Runtime {
    Runtime::new(AioContext::new().unwrap())
}

#[test]
fn tcp_echo_over_loopback() {
    let rt = runtime();
    let _dog = Watchdog::arm("a TCP echo over loopback", Duration::from_secs(60));
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let server = spawn_local(async move {
            let mut served = 0;
            while served < 3 {
                let (stream, _) = listener.accept().await?;
                served += 1;
                spawn_local(async move {
                    let (mut reader, mut writer) = (&stream, &stream);
                    futures::io::copy(&mut reader, &mut writer).await
                })
                .detach();
            }
            Ok::<_, std::io::Error>(())
        });
        let mut clients = Vec::new();
        for c in 0..3u8 {
            clients.push(spawn_local(async move {
                let mut stream = TcpStream::connect(addr).await?;
                stream.set_nodelay(true)?;
                for i in 0..100u8 {
                    let msg = [c, i, c ^ i, 0xAA];
                    stream.write_all(&msg).await?;
                    let mut back = [0; 4];
                    stream.read_exact(&mut back).await?;
                    assert_eq!(back, msg);
                }
                Ok::<_, std::io::Error>(())
            }));
        }
        for client in clients {
            client.await.unwrap()?;
        }
        server.await.unwrap()
    })
    .unwrap()
    .unwrap();
}

#[test]
fn futures_io_copy_moves_a_megabyte_between_two_sockets() {
    let rt = runtime();
    let _dog = Watchdog::arm("futures::io::copy of 1 MiB", Duration::from_secs(60));
    let data: Vec<u8> = (0..1 << 20).map(|i: u32| (i * 7 % 251) as u8).collect();
    let expected = data.clone();
    let got = rt
        .block_on(async move {
            let (mut src_w, mut src_r) = UnixStream::pair()?;
            let (mut dst_w, mut dst_r) = UnixStream::pair()?;
            let writer = spawn_local(async move {
                src_w.write_all(&data).await?;
                src_w.close().await
            });
            let copier = spawn_local(async move {
                let n = futures::io::copy(&mut src_r, &mut dst_w).await?;
                dst_w.close().await?;
                Ok::<_, std::io::Error>(n)
            });
            let mut got = Vec::new();
            dst_r.read_to_end(&mut got).await?;
            writer.await.unwrap()?;
            assert_eq!(copier.await.unwrap()?, 1 << 20);
            Ok::<_, std::io::Error>(got)
        })
        .unwrap()
        .unwrap();
    assert!(got == expected, "the copy differs");
}

#[test]
fn a_partial_read_loses_no_readiness() {
    let rt = runtime();
    let _dog = Watchdog::arm("reads of 1 byte at a time", Duration::from_secs(30));
    rt.block_on(async {
        let (a, b) = std::os::unix::net::UnixStream::pair()?;
        let (a, mut b) = (Async::new(a)?, Async::new(b)?);
        (&a).write_all(b"abcdef").await?;
        // One byte per read: the rest stays readable and no wake-up is lost,
        // although the data arrived before the first wait.
        for expected in b"abcdef" {
            let mut byte = [0];
            b.read_exact(&mut byte).await?;
            assert_eq!(byte[0], *expected);
            aio_async::yield_now().await;
        }
        Ok::<_, std::io::Error>(())
    })
    .unwrap()
    .unwrap();
}

#[test]
fn readiness_nobody_waits_for_does_not_make_the_loop_spin() {
    let rt = runtime();
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    let b = Async::new(b).unwrap();
    rt.block_on(async {
        // Registers b for reading, then stops waiting.
        let _ = aio_async::time::timeout(Duration::from_millis(1), b.readable()).await;
    })
    .unwrap();
    std::io::Write::write_all(&mut &a, b"x").unwrap();
    // b is readable and nobody waits: after the event that turns the
    // interest off, a blocking iteration must block (here, for the timer).
    rt.context().poll(false).unwrap();
    rt.context().poll(false).unwrap();
    let before = rt.context().stats();
    rt.block_on(aio_async::time::sleep(Duration::from_millis(2)))
        .unwrap();
    let after = rt.context().stats();
    assert!(
        after.iterations - before.iterations <= 3,
        "the loop spun: {} iterations for one sleep",
        after.iterations - before.iterations
    );
}

#[test]
fn dropping_an_async_fd_removes_its_handler() {
    let rt = runtime();
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    let a = Async::new(a).unwrap();
    rt.block_on(async {
        let _ = aio_async::time::timeout(Duration::from_millis(1), a.readable()).await;
    })
    .unwrap();
    assert_eq!(rt.context().handler_count(), 1);
    drop(a);
    assert_eq!(rt.context().handler_count(), 0);
}

#[test]
fn connecting_to_a_closed_port_fails_with_the_error() {
    let rt = runtime();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let err = rt.block_on(TcpStream::connect(port)).unwrap().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
}

#[test]
fn a_unix_stream_connects_without_blocking_the_loop() {
    let rt = runtime();
    let dir = std::env::temp_dir().join(format!("aio-async-unix-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("sock");
    let _ = std::fs::remove_file(&path);
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let _dog = Watchdog::arm("a Unix connect and one echo", Duration::from_secs(30));
    let mut stream = rt.block_on(UnixStream::connect(&path)).unwrap().unwrap();
    // The connection is in the listener's backlog: accept does not block.
    let (accepted, _) = listener.accept().unwrap();
    std::io::Write::write_all(&mut &accepted, b"hello").unwrap();
    let got = rt
        .block_on(async {
            let mut buf = [0; 5];
            stream.read_exact(&mut buf).await.map(|()| buf)
        })
        .unwrap()
        .unwrap();
    assert_eq!(&got, b"hello");
    drop(listener);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn connecting_a_unix_stream_to_no_listener_fails_with_the_error() {
    let rt = runtime();
    let path = std::env::temp_dir().join(format!("aio-async-nobody-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let err = rt
        .block_on(UnixStream::connect(&path))
        .unwrap()
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
}
