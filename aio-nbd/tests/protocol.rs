//! The protocol's answers to good and bad input, from a minimal client of
//! our own: error replies that keep the connection, framing errors that
//! close only that connection, pipelining, options, and a property test
//! that throws random and truncated frames at a live server.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use aio::Backend;
use aio_core::testing::Watchdog;
use aio_nbd::MAX_BLOCK;
use aio_nbd::proto::{Command, cmd_flags, errno, opt, rep, transmission_flags as tf};
use common::client::{self, Client};
use common::{On, serve, sparse_image};
use proptest::prelude::*;

const SIZE: u64 = 1 << 20;

fn watchdog(what: &str) -> Watchdog {
    Watchdog::arm(what, Duration::from_secs(120))
}

#[test]
fn flags_are_advertised_honestly() {
    let _dog = watchdog("transmission flags");
    let (dir, image) = sparse_image(SIZE);
    let rw = serve(Backend::Auto, On::Tcp, dir.path(), &image, false);
    let c = Client::connect(rw.addr(), true).unwrap();
    assert_eq!(c.size, SIZE);
    let expected = tf::HAS_FLAGS
        | tf::SEND_FLUSH
        | tf::SEND_FUA
        | tf::SEND_TRIM
        | tf::SEND_WRITE_ZEROES
        | tf::CAN_MULTI_CONN;
    assert_eq!(c.flags, expected);
    drop(c);
    rw.stop().unwrap();

    let (dir, image) = sparse_image(SIZE);
    let ro = serve(Backend::Auto, On::Unix, dir.path(), &image, true);
    let c = Client::connect(ro.addr(), false).unwrap();
    assert_eq!(
        c.flags,
        tf::HAS_FLAGS | tf::SEND_FLUSH | tf::SEND_FUA | tf::CAN_MULTI_CONN | tf::READ_ONLY
    );
    drop(c);
    ro.stop().unwrap();
}

fn bad_requests_get_error_replies_and_the_connection_goes_on(backend: Backend) {
    let _dog = watchdog("error replies");
    for structured in [false, true] {
        let (dir, image) = sparse_image(SIZE);
        let server = serve(backend, On::Tcp, dir.path(), &image, false);
        let mut c = Client::connect(server.addr(), structured).unwrap();
        // Read past the end.
        assert_eq!(c.read(1, SIZE - 10, 20).unwrap().error, errno::EINVAL);
        // Write past the end (the payload is skipped, the stream stays in step).
        assert_eq!(c.write(2, SIZE - 1, &[1, 2]).unwrap(), errno::ENOSPC);
        // Longer than the maximum block size.
        c.send(Command::Read, 0, 3, 0, MAX_BLOCK + 1, &[]).unwrap();
        assert_eq!(c.reply(0).unwrap().error, errno::EOVERFLOW);
        // An unknown command, an unknown flag, a flag on the wrong command.
        c.send(Command::Unknown(42), 0, 4, 0, 0, &[]).unwrap();
        assert_eq!(c.reply(0).unwrap().error, errno::EINVAL);
        c.send(Command::Read, 1 << 9, 5, 0, 512, &[]).unwrap();
        assert_eq!(c.reply(0).unwrap().error, errno::EINVAL);
        c.send(Command::Write, cmd_flags::NO_HOLE, 6, 0, 4, &[9; 4])
            .unwrap();
        assert_eq!(c.reply(0).unwrap().error, errno::EINVAL);
        // Flush with an offset.
        c.send(Command::Flush, 0, 7, 1, 0, &[]).unwrap();
        assert_eq!(c.reply(0).unwrap().error, errno::EINVAL);
        // Block status beyond the end, or without a context.
        c.send(Command::BlockStatus, 0, 8, SIZE, 512, &[]).unwrap();
        assert_eq!(c.reply(0).unwrap().error, errno::EINVAL);
        // Still serving.
        assert_eq!(c.write(9, 4096, &[7; 4096]).unwrap(), 0);
        let r = c.read(10, 4096, 4096).unwrap();
        assert_eq!((r.error, r.data), (0, vec![7; 4096]));
        drop(c);
        let bytes = std::fs::read(&image).unwrap();
        assert_eq!(bytes.len() as u64, SIZE, "nothing written past the end");
        server.stop().unwrap();
    }
}

#[test]
fn writes_to_a_read_only_export_get_eperm() {
    let _dog = watchdog("EPERM");
    let (dir, image) = sparse_image(SIZE);
    let server = serve(Backend::Auto, On::Tcp, dir.path(), &image, true);
    let mut c = Client::connect(server.addr(), true).unwrap();
    assert_eq!(c.write(1, 0, &[1; 512]).unwrap(), errno::EPERM);
    c.send(Command::Trim, 0, 2, 0, 512, &[]).unwrap();
    assert_eq!(c.reply(0).unwrap().error, errno::EPERM);
    c.send(Command::WriteZeroes, 0, 3, 0, 512, &[]).unwrap();
    assert_eq!(c.reply(0).unwrap().error, errno::EPERM);
    assert_eq!(c.read(4, 0, 512).unwrap().data, vec![0; 512]);
    drop(c);
    server.stop().unwrap();
}

fn pipelined_requests_are_all_answered(backend: Backend) {
    let _dog = watchdog("pipelining");
    let (dir, image) = sparse_image(SIZE);
    let server = serve(backend, On::Unix, dir.path(), &image, false);
    let mut c = Client::connect(server.addr(), true).unwrap();
    let mut batch = Vec::new();
    for i in 0..64u64 {
        let r = aio_nbd::proto::Request {
            flags: 0,
            command: Command::Write,
            handle: i,
            offset: i * 4096,
            length: 4096,
        };
        batch.extend_from_slice(&r.encode());
        batch.extend_from_slice(&[i as u8; 4096]);
    }
    c.sock.write_all(&batch).unwrap();
    let mut handles: Vec<u64> = (0..64)
        .map(|_| c.reply(0).unwrap())
        .map(|r| {
            assert_eq!(r.error, 0);
            r.handle
        })
        .collect();
    handles.sort_unstable();
    assert_eq!(handles, (0..64).collect::<Vec<_>>());
    for i in 0..64u64 {
        assert_eq!(
            c.read(100 + i, i * 4096, 4096).unwrap().data,
            vec![i as u8; 4096]
        );
    }
    c.send(Command::Disconnect, 0, 0, 0, 0, &[]).unwrap();
    let mut rest = Vec::new();
    c.sock.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "no reply to NBD_CMD_DISC");
    server.stop().unwrap();
}

#[test]
fn options_list_info_abort_and_unknown() {
    let _dog = watchdog("options");
    let (dir, image) = sparse_image(SIZE);
    let server = serve(Backend::Auto, On::Tcp, dir.path(), &image, false);
    let mut s = client::connect(server.addr());
    client::greet(&mut s).unwrap();
    let list = client::option(&mut s, opt::LIST, &[]).unwrap();
    assert_eq!(list[0].0, rep::SERVER);
    assert_eq!(&list[0].1[4..], b"disk");
    assert_eq!(
        client::option(&mut s, 99, b"junk").unwrap()[0].0,
        rep::ERR_UNSUP
    );
    assert_eq!(
        client::option(&mut s, opt::STARTTLS, &[]).unwrap()[0].0,
        rep::ERR_UNSUP
    );
    assert_eq!(
        client::option(&mut s, opt::LIST, b"x").unwrap()[0].0,
        rep::ERR_INVALID
    );
    // Metadata contexts need structured replies first.
    assert_eq!(
        client::option(&mut s, opt::LIST_META_CONTEXT, &[0; 8]).unwrap()[0].0,
        rep::ERR_INVALID
    );
    let mut info = Vec::new();
    info.extend_from_slice(&4u32.to_be_bytes());
    info.extend_from_slice(b"none");
    info.extend_from_slice(&0u16.to_be_bytes());
    assert_eq!(
        client::option(&mut s, opt::INFO, &info).unwrap()[0].0,
        rep::ERR_UNKNOWN
    );
    let mut info = Vec::new();
    info.extend_from_slice(&4u32.to_be_bytes());
    info.extend_from_slice(b"disk");
    info.extend_from_slice(&1u16.to_be_bytes());
    info.extend_from_slice(&3u16.to_be_bytes());
    let replies = client::option(&mut s, opt::INFO, &info).unwrap();
    assert!(
        replies
            .iter()
            .any(|(k, d)| *k == rep::INFO && d[..2] == [0, 3]),
        "{replies:?}"
    );
    assert_eq!(
        client::option(&mut s, opt::ABORT, &[]).unwrap()[0].0,
        rep::ACK
    );
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    server.stop().unwrap();
}

#[test]
fn export_name_with_and_without_zeroes() {
    let _dog = watchdog("NBD_OPT_EXPORT_NAME");
    let (dir, image) = sparse_image(SIZE);
    let server = serve(Backend::Auto, On::Tcp, dir.path(), &image, false);
    for (flags, len) in [(1u32, 134), (3, 10)] {
        let mut s = client::connect(server.addr());
        let mut greeting = [0; 18];
        s.read_exact(&mut greeting).unwrap();
        s.write_all(&flags.to_be_bytes()).unwrap();
        let h = aio_nbd::proto::OptionHeader {
            option: opt::EXPORT_NAME,
            length: 4,
        };
        s.write_all(&h.encode()).unwrap();
        s.write_all(b"disk").unwrap();
        let mut reply = vec![0; len];
        s.read_exact(&mut reply).unwrap();
        assert_eq!(u64::from_be_bytes(reply[..8].try_into().unwrap()), SIZE);
        let r = aio_nbd::proto::Request {
            flags: 0,
            command: Command::Read,
            handle: 5,
            offset: 0,
            length: 8,
        };
        s.write_all(&r.encode()).unwrap();
        let mut simple = [0; 24];
        s.read_exact(&mut simple).unwrap();
        assert_eq!(&simple[4..8], &[0; 4]);
    }
    // An unknown name closes the connection (there is no error reply).
    let mut s = client::connect(server.addr());
    client::greet(&mut s).unwrap();
    let h = aio_nbd::proto::OptionHeader {
        option: opt::EXPORT_NAME,
        length: 3,
    };
    s.write_all(&h.encode()).unwrap();
    s.write_all(b"nah").unwrap();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    server.stop().unwrap();
}

fn bad_magic_closes_that_connection_only(backend: Backend) {
    let _dog = watchdog("bad magic");
    let (dir, image) = sparse_image(SIZE);
    let server = serve(backend, On::Tcp, dir.path(), &image, false);
    let mut good = Client::connect(server.addr(), true).unwrap();
    let mut bad = Client::connect(server.addr(), true).unwrap();
    bad.sock.write_all(&[0xde; 28]).unwrap();
    let mut rest = Vec::new();
    bad.sock.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    assert_eq!(good.write(1, 0, &[3; 512]).unwrap(), 0);
    assert_eq!(good.read(2, 0, 512).unwrap().data, vec![3; 512]);
    drop(good);
    server.stop().unwrap();
}

#[test]
fn block_status_reports_holes_and_data() {
    let _dog = watchdog("block status");
    let (dir, image) = sparse_image(SIZE);
    let server = serve(Backend::Auto, On::Tcp, dir.path(), &image, false);
    let mut c = Client::connect(server.addr(), true).unwrap();
    assert_eq!(c.write(1, 65536, &[1; 65536]).unwrap(), 0);
    c.send(Command::BlockStatus, 0, 2, 0, SIZE as u32, &[])
        .unwrap();
    let r = c.reply(0).unwrap();
    assert_eq!(r.error, 0);
    let extents: Vec<(u32, u32)> = r.data[4..]
        .chunks(8)
        .map(|e| {
            (
                u32::from_be_bytes(e[..4].try_into().unwrap()),
                u32::from_be_bytes(e[4..].try_into().unwrap()),
            )
        })
        .collect();
    assert_eq!(
        extents,
        vec![(65536, 3), (65536, 0), (SIZE as u32 - 131072, 3)]
    );
    c.send(
        Command::BlockStatus,
        cmd_flags::REQ_ONE,
        3,
        0,
        SIZE as u32,
        &[],
    )
    .unwrap();
    assert_eq!(c.reply(0).unwrap().data.len(), 4 + 8);
    drop(c);
    server.stop().unwrap();
}

#[test]
fn shutdown_finishes_in_flight_requests() {
    let _dog = watchdog("clean shutdown");
    let (dir, image) = sparse_image(SIZE);
    let server = serve(Backend::Auto, On::Tcp, dir.path(), &image, false);
    let mut c = Client::connect(server.addr(), true).unwrap();
    let mut batch = Vec::new();
    for i in 0..16u64 {
        let r = aio_nbd::proto::Request {
            flags: 0,
            command: Command::Read,
            handle: i,
            offset: 0,
            length: 65536,
        };
        batch.extend_from_slice(&r.encode());
    }
    c.sock.write_all(&batch).unwrap();
    // The first reply proves the server took the batch; then stop it.
    assert_eq!(c.reply(65536).unwrap().error, 0);
    let stopper = std::thread::spawn(move || server.stop());
    let mut answered = 1;
    while let Ok(r) = c.reply(65536) {
        assert_eq!(r.error, 0);
        answered += 1;
    }
    assert_eq!(
        answered, 16,
        "every request the server had read was answered"
    );
    stopper.join().unwrap().unwrap();
}

/// One frame a hostile or broken client might send.
#[derive(Clone, Debug)]
enum Frame {
    Garbage(Vec<u8>),
    Request {
        command: u16,
        flags: u16,
        offset: u64,
        length: u32,
        payload: Vec<u8>,
    },
    Truncated(Vec<u8>),
}

fn frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64).prop_map(Frame::Garbage),
        (
            0u16..10,
            any::<u16>(),
            prop_oneof![SIZE / 2..SIZE + 4096, any::<u64>()],
            prop_oneof![0u32..8192, any::<u32>()],
            prop::collection::vec(any::<u8>(), 0..8192)
        )
            .prop_map(|(command, flags, offset, length, payload)| Frame::Request {
                command,
                flags,
                offset,
                length,
                payload
            }),
        prop::collection::vec(any::<u8>(), 0..28).prop_map(Frame::Truncated),
    ]
}

fn encode(frame: &Frame) -> Vec<u8> {
    match frame {
        Frame::Garbage(bytes) | Frame::Truncated(bytes) => bytes.clone(),
        Frame::Request {
            command,
            flags,
            offset,
            length,
            payload,
        } => {
            let r = aio_nbd::proto::Request {
                flags: *flags,
                command: Command::from_wire(*command),
                handle: 1,
                offset: *offset,
                length: *length,
            };
            let mut out = r.encode().to_vec();
            out.extend_from_slice(payload);
            out
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Whatever one client sends, in the handshake or after it, another
    /// client reads back what it wrote, and the file keeps its size. (The
    /// hostile client's in-range requests touch the upper half only, so a
    /// valid write of its own cannot overwrite the other's data.)
    #[test]
    fn random_and_truncated_frames_do_not_disturb_other_clients(
        frames in prop::collection::vec(frame(), 1..6),
        after_handshake in any::<bool>(),
        structured in any::<bool>(),
        seed in any::<u8>(),
    ) {
        let _dog = watchdog("random frames");
        let (dir, image) = sparse_image(SIZE);
        let server = serve(Backend::Auto, On::Tcp, dir.path(), &image, false);
        let mut good = Client::connect(server.addr(), true).unwrap();
        prop_assert_eq!(good.write(1, 8192, &[seed; 4096]).unwrap(), 0);

        let mut hostile = if after_handshake {
            Client::connect(server.addr(), structured).unwrap().sock
        } else {
            let mut s = client::connect(server.addr());
            client::greet(&mut s).unwrap();
            s
        };
        for f in &frames {
            // The server may close on us at any point: that is allowed.
            if hostile.write_all(&encode(f)).is_err() {
                break;
            }
        }
        // Half-close so the server sees the end of what was sent, and
        // drain whatever it answers until it closes or goes quiet.
        if let client::Sock::Tcp(s) = &hostile {
            let _ = s.shutdown(std::net::Shutdown::Write);
            let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        }
        let mut sink = Vec::new();
        let _ = hostile.read_to_end(&mut sink);

        let r = good.read(2, 8192, 4096).unwrap();
        prop_assert_eq!(r.error, 0);
        prop_assert_eq!(r.data, vec![seed; 4096]);
        drop(good);
        drop(hostile);
        server.stop().unwrap();
        prop_assert_eq!(std::fs::metadata(&image).unwrap().len(), SIZE);
    }
}

fn a_client_that_reads_its_replies_late_gets_them_all(backend: Backend) {
    let _dog = watchdog("backpressure");
    let (dir, image) = sparse_image(SIZE);
    std::fs::write(&image, common::pseudo_random(SIZE as usize, 3)).unwrap();
    let server = serve(backend, On::Tcp, dir.path(), &image, false);
    let mut c = Client::connect(server.addr(), true).unwrap();
    // 96 MiB of replies asked for at once (the requests fit in one
    // segment): beyond what the server queues before it stops taking
    // requests (64 MiB), so it must stop, and go on as the replies are read.
    const READS: u64 = 96;
    let mut batch = Vec::new();
    for i in 0..READS {
        let r = aio_nbd::proto::Request {
            flags: 0,
            command: Command::Read,
            handle: i,
            offset: 0,
            length: SIZE as u32,
        };
        batch.extend_from_slice(&r.encode());
    }
    c.sock.write_all(&batch).unwrap();
    let expected = std::fs::read(&image).unwrap();
    // Replies come in completion order (a thread pool finishes reads in
    // any order): each handle once.
    let mut seen = vec![false; READS as usize];
    for _ in 0..READS {
        let r = c.reply(SIZE as usize).unwrap();
        assert_eq!(r.error, 0, "reply {}", r.handle);
        assert!(
            !std::mem::replace(&mut seen[r.handle as usize], true),
            "reply {} twice",
            r.handle
        );
        assert!(r.data == expected, "reply {} differs", r.handle);
    }
    drop(c);
    server.stop().unwrap();
}

// The tests whose paths differ by monitor (write interest toggled as the
// socket fills, closes, pipelined input) run on each.
on_every_backend!(
    pipelined_requests_are_all_answered,
    bad_magic_closes_that_connection_only,
    a_client_that_reads_its_replies_late_gets_them_all,
    bad_requests_get_error_replies_and_the_connection_goes_on,
);
