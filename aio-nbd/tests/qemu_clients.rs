//! Clients no one here wrote: qemu-img and qemu-io against the server, on
//! every monitor, over TCP and a Unix socket. Every invocation is bounded
//! (`timeout`), and a watchdog names the test that hangs.

mod common;

use std::time::Duration;

use aio::Backend;
use aio_core::testing::Watchdog;
use common::{On, pseudo_random, qemu_io, run_ok, serve, sparse_image, uri};

const MIB: u64 = 1 << 20;

fn watchdog(what: &str, backend: Backend) -> Watchdog {
    Watchdog::arm(format!("{what} on {backend}"), Duration::from_secs(240))
}

fn info_and_map_see_size_and_holes(backend: Backend) {
    let _dog = watchdog("qemu-img info and map", backend);
    let (dir, image) = sparse_image(16 * MIB);
    let data = pseudo_random(MIB as usize, 1);
    std::os::unix::fs::FileExt::write_all_at(
        &std::fs::File::options().write(true).open(&image).unwrap(),
        &data,
        4 * MIB,
    )
    .unwrap();
    let server = serve(backend, On::Tcp, dir.path(), &image, false);
    let uri = uri(server.addr());

    let info = run_ok("qemu-img", &["info", "--output=json", &uri]);
    let info = String::from_utf8_lossy(&info.stdout);
    assert!(
        info.contains(&format!("\"virtual-size\": {}", 16 * MIB)),
        "{info}"
    );

    let map = run_ok("qemu-img", &["map", "--output=json", "-f", "raw", &uri]);
    let map = String::from_utf8_lossy(&map.stdout);
    let expected = [
        format!(
            "\"start\": 0, \"length\": {}, \"depth\": 0, \"present\": true, \"zero\": true, \"data\": false",
            4 * MIB
        ),
        format!(
            "\"start\": {}, \"length\": {}, \"depth\": 0, \"present\": true, \"zero\": false, \"data\": true",
            4 * MIB,
            MIB
        ),
        format!(
            "\"start\": {}, \"length\": {}, \"depth\": 0, \"present\": true, \"zero\": true, \"data\": false",
            5 * MIB,
            11 * MIB
        ),
    ];
    for extent in &expected {
        assert!(map.contains(extent.as_str()), "missing {extent} in\n{map}");
    }
    server.stop().unwrap();
}

fn write_then_read_back_a_pattern(backend: Backend) {
    let _dog = watchdog("qemu-io write and read", backend);
    let (dir, image) = sparse_image(64 * MIB);
    let server = serve(backend, On::Unix, dir.path(), &image, false);
    let uri = uri(server.addr());
    qemu_io(
        &uri,
        &["write -P 0xab 0 1M".into(), "read -P 0xab 0 1M".into()],
    );
    // And the bytes really are in the file.
    let bytes = std::fs::read(&image).unwrap();
    assert!(bytes[..MIB as usize].iter().all(|&b| b == 0xab));
    let (summary, _) = server.stop().unwrap();
    assert!(summary.requests >= 2);
}

fn aio_writes_and_reads_at_depth_32(backend: Backend) {
    let _dog = watchdog("qemu-io aio at depth 32", backend);
    let (dir, image) = sparse_image(64 * MIB);
    let server = serve(backend, On::Tcp, dir.path(), &image, false);
    let uri = uri(server.addr());
    let mut commands = Vec::new();
    for i in 0..32u64 {
        commands.push(format!("aio_write -P {} {} 64k", 0x10 + i, i * 65536 * 3));
    }
    commands.push("aio_flush".into());
    for i in 0..32u64 {
        commands.push(format!("aio_read -P {} {} 64k", 0x10 + i, i * 65536 * 3));
    }
    commands.push("aio_flush".into());
    let out = qemu_io(&uri, &commands);
    assert_eq!(out.matches("read 65536/65536").count(), 32, "{out}");
    server.stop().unwrap();
}

fn convert_in_and_out_round_trips_64_mib(backend: Backend) {
    let _dog = watchdog("qemu-img convert in and out", backend);
    let (dir, image) = sparse_image(64 * MIB);
    let source = dir.path().join("source.img");
    let mut content = pseudo_random(64 * MIB as usize, 7);
    // Some zeroed stretches, which convert may send as write-zeroes.
    content[8 << 20..12 << 20].fill(0);
    content[40 << 20..41 << 20].fill(0);
    std::fs::write(&source, &content).unwrap();
    let back = dir.path().join("back.img");
    let server = serve(backend, On::Unix, dir.path(), &image, false);
    let uri = uri(server.addr());
    let source_s = source.to_str().unwrap();
    run_ok(
        "qemu-img",
        &["convert", "-n", "-f", "raw", "-O", "raw", source_s, &uri],
    );
    run_ok(
        "qemu-img",
        &[
            "convert",
            "-f",
            "raw",
            "-O",
            "raw",
            &uri,
            back.to_str().unwrap(),
        ],
    );
    run_ok("cmp", &[source_s, back.to_str().unwrap()]);
    run_ok("cmp", &[source_s, image.to_str().unwrap()]);
    server.stop().unwrap();
}

fn fua_writes_and_flush(backend: Backend) {
    let _dog = watchdog("qemu-io FUA and flush", backend);
    let (dir, image) = sparse_image(8 * MIB);
    let server = serve(backend, On::Tcp, dir.path(), &image, false);
    let uri = uri(server.addr());
    qemu_io(
        &uri,
        &[
            "write -f -P 0x5a 0 64k".into(),
            "write -P 0x5b 64k 64k".into(),
            "flush".into(),
            "read -P 0x5a 0 64k".into(),
            "read -P 0x5b 64k 64k".into(),
        ],
    );
    server.stop().unwrap();
}

fn trim_and_write_zeroes_then_read_zeroes(backend: Backend) {
    let _dog = watchdog("qemu-io trim and write-zeroes", backend);
    let (dir, image) = sparse_image(8 * MIB);
    let server = serve(backend, On::Unix, dir.path(), &image, false);
    let uri = uri(server.addr());
    qemu_io(
        &uri,
        &[
            "write -P 0x77 0 4M".into(),
            "discard 0 1M".into(),
            "write -z 1M 1M".into(),
            "write -z -u 2M 1M".into(),
            "read -P 0 0 3M".into(),
            "read -P 0x77 3M 1M".into(),
        ],
    );
    // The unmapped ranges are holes again; the NO_HOLE range is not.
    let map = run_ok("qemu-img", &["map", "--output=json", "-f", "raw", &uri]);
    let map = String::from_utf8_lossy(&map.stdout);
    assert!(map.contains("\"start\": 0, \"length\": 1048576,"), "{map}");
    server.stop().unwrap();
}

fn several_clients_at_once(backend: Backend) {
    let _dog = watchdog("four qemu-io clients at once", backend);
    let (dir, image) = sparse_image(16 * MIB);
    let server = serve(backend, On::Tcp, dir.path(), &image, false);
    let uri = uri(server.addr());
    std::thread::scope(|s| {
        for i in 0..4u64 {
            let uri = &uri;
            s.spawn(move || {
                let at = i * 4 * MIB;
                qemu_io(
                    uri,
                    &[
                        format!("aio_write -P {} {at} 1M", 0x30 + i),
                        format!("aio_write -P {} {} 1M", 0x40 + i, at + MIB),
                        "aio_flush".into(),
                        format!("read -P {} {at} 1M", 0x30 + i),
                        format!("read -P {} {} 1M", 0x40 + i, at + MIB),
                    ],
                );
            });
        }
    });
    let (summary, _) = server.stop().unwrap();
    assert_eq!(summary.connections, 4);
}

fn a_read_only_export_refuses_qemu_io_writes(backend: Backend) {
    let _dog = watchdog("qemu-io on a read-only export", backend);
    let (dir, image) = sparse_image(MIB);
    let server = serve(backend, On::Tcp, dir.path(), &image, true);
    let uri = uri(server.addr());
    let out = common::run("qemu-io", &["-f", "raw", "-c", "write 0 4k", &uri]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains("wrote 4096"), "{text}");
    // qemu sees READ_ONLY and refuses to open the export read-write.
    assert!(
        text.contains("Permission denied") || text.contains("read-only"),
        "{text}"
    );
    let out = run_ok(
        "qemu-io",
        &["-r", "-f", "raw", "-c", "read -P 0 0 4k", &uri],
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("read 4096/4096"));
    server.stop().unwrap();
}

on_every_backend!(
    info_and_map_see_size_and_holes,
    write_then_read_back_a_pattern,
    aio_writes_and_reads_at_depth_32,
    convert_in_and_out_round_trips_64_mib,
    fua_writes_and_flush,
    trim_and_write_zeroes_then_read_zeroes,
    several_clients_at_once,
    a_read_only_export_refuses_qemu_io_writes,
);
