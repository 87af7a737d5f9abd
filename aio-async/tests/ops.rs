//! Operation futures: results with their buffers, and cancellation on drop.

use std::io::Write;
use std::time::Duration;

use aio::prelude::*;
use aio_async::{Runtime, ops};
use aio_core::testing::Watchdog;

fn temp_file(contents: &[u8]) -> std::fs::File {
    let path = std::env::temp_dir().join(format!(
        "aio-async-ops-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    file.write_all(contents).unwrap();
    file
}

#[test]
fn read_write_and_sync_give_results_and_buffers_back() {
    let rt = Runtime::new(AioContext::new().unwrap());
    let file = temp_file(b"hello, world");
    let _dog = Watchdog::arm("file operations", Duration::from_secs(30));
    rt.block_on(async {
        let (n, buf) = ops::read_at(&file, Vec::with_capacity(5), 7).await;
        assert_eq!(n.unwrap(), 5);
        assert_eq!(buf, b"world");
        let (n, buf) = ops::write_at(&file, b"HELLO".to_vec(), 0).await;
        assert_eq!((n.unwrap(), buf.as_slice()), (5, &b"HELLO"[..]));
        ops::fdatasync(&file).await.unwrap();
        ops::fsync(&file).await.unwrap();
        let (n, bufs) =
            ops::readv_at(&file, vec![Vec::with_capacity(5), Vec::with_capacity(7)], 0).await;
        assert_eq!(n.unwrap(), 12);
        assert_eq!(bufs.concat(), b"HELLO, world");
        let (n, _) = ops::writev_at(&file, vec![b"ab".to_vec(), b"cd".to_vec()], 12).await;
        assert_eq!(n.unwrap(), 4);
    })
    .unwrap();
}

#[test]
fn dropping_a_pending_read_cancels_it_and_the_loop_settles() {
    let rt = Runtime::new(AioContext::new().unwrap());
    // A pipe with nothing in it: the read waits until cancelled.
    let (reader, writer) = std::io::pipe().unwrap();
    let _dog = Watchdog::arm("a cancelled read", Duration::from_secs(30));
    rt.block_on(async {
        let mut read = std::pin::pin!(ops::read_at(&reader, Vec::with_capacity(8), 0));
        assert!(futures::poll!(read.as_mut()).is_pending());
        assert_eq!(rt.context().ops_in_flight(), 1, "started at the first poll");
    })
    .unwrap();
    // The future is gone, and its operation cancelled; the operation
    // completes (cancelled on the ring; on the pool, a worker already in
    // read(2) returns at the end of the pipe) and the context drops the
    // buffer once the kernel or the worker is done with it.
    drop(writer);
    rt.context()
        .run_until(|| rt.context().ops_in_flight() == 0)
        .unwrap();
}
