//! Serving events as a DV camera (`dynapviz_events::serve`), read back by the reader of DV's
//! network stream (`dynapviz_events::net`). That the reader reads what DV's own tools send is
//! shown in `tests/network.rs`; that dv-processing reads what the server sends, by
//! `tools/dv_network_check.py`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dynapviz_events::formats::aedat4::Compression;
use dynapviz_events::net::{self, Address};
use dynapviz_events::serve::{DvServer, Served};
use dynapviz_events::{CHUNK, Event, Geometry};

const SENSOR: Geometry = Geometry { width: 320, height: 240 };

/// `n` events from `t0`, one a microsecond, all over the sensor.
fn events(t0: i64, n: usize) -> Vec<Event> {
    (0..n).map(|i| Event::new(t0 + i as i64, (i * 7 % 320) as u16, (i * 13 % 240) as u16, i % 3 == 0)).collect()
}

/// Waits until the server knows `n` clients.
fn until_clients(server: &DvServer, n: usize) {
    let started = Instant::now();
    while server.clients() < n {
        assert!(started.elapsed() < Duration::from_secs(10), "{} clients of {n}", server.clients());
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Connects to `address` on a thread of its own, which reads the stream to its end.
fn client(address: &str) -> std::thread::JoinHandle<(Option<Geometry>, Vec<Event>)> {
    let mut reader = net::connect(net::address(Path::new(address)).expect("an address")).expect("connect");
    std::thread::spawn(move || {
        let mut all = Vec::new();
        while reader.read_chunk(&mut all, CHUNK).expect("read") > 0 {}
        (reader.geometry(), all)
    })
}

#[test]
fn a_client_reads_what_the_server_sends_in_each_compression() {
    for compression in [Compression::Lz4, Compression::Zstd, Compression::None] {
        let mut server = DvServer::bind(Address::Tcp("127.0.0.1:0"), SENSOR, compression).expect("bind");
        let reading = client(server.address());
        until_clients(&server, 1);
        // Small packets as a camera sends them, and one past the largest packet.
        let sent: Vec<Event> = events(1_000, 100_000);
        for part in [&sent[..10], &sent[10..3_000], &sent[3_000..]] {
            server.send(part, true).expect("send");
        }
        assert_eq!(server.finish(), Served { clients: 1, dropped_packets: 0 });
        let (geometry, got) = reading.join().expect("client");
        assert_eq!(geometry, Some(SENSOR), "{compression:?}");
        assert_eq!(got.len(), sent.len(), "{compression:?}");
        assert!(got == sent, "{compression:?}: the same events");
    }
}

#[test]
fn a_client_that_comes_later_gets_what_is_sent_after_it_came() {
    let mut server = DvServer::bind(Address::Tcp("127.0.0.1:0"), SENSOR, Compression::Lz4).expect("bind");
    let first = client(server.address());
    until_clients(&server, 1);
    let (before, after) = (events(0, 500), events(10_000, 700));
    server.send(&before, true).expect("send");
    let second = client(server.address());
    until_clients(&server, 2);
    server.send(&after, true).expect("send");
    assert_eq!(server.finish().clients, 2);
    assert_eq!(first.join().expect("first").1, [before, after.clone()].concat());
    assert_eq!(second.join().expect("second").1, after);
}

#[cfg(unix)]
#[test]
fn a_local_socket_serves_the_same_and_is_removed_at_the_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path: PathBuf = dir.path().join("camera.sock");
    let mut server = DvServer::bind(Address::Unix(&path), SENSOR, Compression::Lz4).expect("bind");
    assert_eq!(server.address(), format!("unix://{}", path.display()));
    let reading = client(server.address());
    until_clients(&server, 1);
    let sent = events(5, 2_000);
    server.send(&sent, true).expect("send");
    server.finish();
    assert_eq!(reading.join().expect("client").1, sent);
    assert!(!path.exists(), "the socket file is gone");
}

/// A client that stops reading loses packets, counted, and does not hold up the sender.
#[test]
fn a_client_that_does_not_read_loses_packets_and_holds_nothing_up() {
    let mut server = DvServer::bind(Address::Tcp("127.0.0.1:0"), SENSOR, Compression::None).expect("bind");
    // Connects and never reads.
    let stuck = std::net::TcpStream::connect(server.address().trim_start_matches("tcp://")).expect("connect");
    until_clients(&server, 1);
    let packet = events(0, 4_096);
    let started = Instant::now();
    for _ in 0..2_000 {
        server.send(&packet, false).expect("send");
    }
    assert!(started.elapsed() < Duration::from_secs(5), "the sender waited: {:?}", started.elapsed());
    // It goes: the server notices at a packet, and still counts what it lost.
    drop(stuck);
    let started = Instant::now();
    while server.clients() > 0 {
        assert!(started.elapsed() < Duration::from_secs(10), "the client that went is still served");
        server.send(&packet, false).expect("send");
        std::thread::sleep(Duration::from_millis(10));
    }
    let served = server.finish();
    assert!(served.dropped_packets > 1_000, "{served:?}");
}

#[test]
fn an_address_in_use_is_an_error_that_names_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("address").to_string();
    let error = DvServer::bind(Address::Tcp(&addr), SENSOR, Compression::Lz4).err().expect("an error");
    assert!(error.to_string().starts_with(&format!("tcp://{addr}: ")), "{error}");
}

/// A socket file left by a server that was killed is taken over; one a server still listens
/// at is an error that says so.
#[cfg(unix)]
#[test]
fn a_stale_socket_file_is_replaced_and_a_live_one_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("camera.sock");
    // A listener dropped without removing its file, as a killed server leaves it.
    drop(std::os::unix::net::UnixListener::bind(&path).expect("bind"));
    assert!(path.exists());
    let server = DvServer::bind(Address::Unix(&path), SENSOR, Compression::Lz4).expect("the stale file is replaced");
    let error = DvServer::bind(Address::Unix(&path), SENSOR, Compression::Lz4).err().expect("a server listens there");
    assert!(error.to_string().contains("another server listens there"), "{error}");
    server.finish();
}
