//! Live streams over TCP (`tcp://HOST:PORT`, see `dynapviz_events::net`): the bytes that
//! iniVation's dv-processing `NetworkWriter` sent a client for 1 500 events of a real DVXplorer
//! recording, in three packets, uncompressed and LZ4- and Zstd-compressed
//! (`tests/data/dv-network-*.bin`, made by `tools/dv_network_capture.py`), served here from a
//! socket and decoded to the events dv-processing itself read (`tests/data/dv-network.csv`).

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use dynapviz_events::{CHUNK, Error, Event, Format, Geometry, net, open};
use dynapviz_testkit::{dv_capture, dv_stream_parts};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

/// The events dv-processing read from the recording.
fn expected() -> Vec<Event> {
    let text = std::fs::read_to_string(data("dv-network.csv")).expect("dv-network.csv");
    text.lines()
        .skip(1)
        .map(|l| {
            let v: Vec<i64> = l.split(',').map(|f| f.parse().expect("a number")).collect();
            Event::new(v[0], v[1] as u16, v[2] as u16, v[3] == 1)
        })
        .collect()
}

/// A server on a free port that, once a client connects, hands it to `serve`; returns the
/// stream's address as a path.
fn server(serve: impl FnOnce(TcpStream) + Send + 'static) -> PathBuf {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    std::thread::spawn(move || {
        if let Ok((client, _)) = listener.accept() {
            serve(client);
        }
    });
    PathBuf::from(format!("tcp://{addr}"))
}

/// Serves `bytes` whole, then closes.
fn serve_all(bytes: Vec<u8>) -> PathBuf {
    server(move |mut client| {
        client.write_all(&bytes).expect("send");
    })
}

#[test]
fn dv_processing_streams_decode_to_the_events_it_sent_whatever_the_compression() {
    let want = expected();
    assert_eq!(want.len(), 1500);
    for name in ["none", "lz4", "zstd"] {
        let bytes = dv_capture(name);
        let mut reader = open(&serve_all(bytes)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(reader.format(), Format::Aedat4);
        assert_eq!(reader.geometry(), Some(Geometry::new(320, 240)), "{name}");
        let (mut got, mut reads) = (Vec::new(), Vec::new());
        loop {
            let n = reader.read_chunk(&mut got, CHUNK).unwrap_or_else(|e| panic!("{name}: {e}"));
            if n == 0 {
                break;
            }
            reads.push(n);
        }
        assert_eq!(got, want, "{name}");
        // One read per packet, not one for everything up to the end of the stream.
        assert_eq!(reads, [500, 500, 500], "{name}");
    }
}

/// A live camera sends a packet, then nothing for a while: the packet is handed out when it
/// comes, not held until more arrive or the connection ends.
#[test]
fn a_packet_is_handed_out_as_it_arrives() {
    let bytes = dv_capture("lz4");
    let (go_on, wait) = mpsc::channel::<()>();
    let path = server(move |mut client| {
        let parts = dv_stream_parts(&bytes);
        client.write_all(parts[0]).expect("header");
        client.write_all(parts[1]).expect("first packet");
        // The rest only once the client has the first packet's events.
        wait.recv().expect("signal");
        for p in &parts[2..] {
            client.write_all(p).expect("packet");
        }
    });
    let mut reader = open(&path).expect("connect");
    let mut got = Vec::new();
    let started = Instant::now();
    assert_eq!(reader.read_chunk(&mut got, CHUNK).expect("first packet"), 500);
    assert!(started.elapsed() < Duration::from_secs(2), "the first packet came at once");
    go_on.send(()).expect("signal");
    while reader.read_chunk(&mut got, CHUNK).expect("read") > 0 {}
    assert_eq!(got, expected());
}

#[test]
fn no_server_is_an_error_that_says_what_was_expected_there() {
    // A port that was free a moment ago: nothing listens there.
    let addr = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port");
    let path = PathBuf::from(format!("tcp://{addr}"));
    let Err(e @ Error::Io { .. }) = open(&path) else { panic!("connected to nothing") };
    let message = e.to_string();
    assert!(message.starts_with(&format!("tcp://{addr}: ")), "{message}");
    assert!(message.contains("expected a DV network output"), "{message}");
    // Nobody there (yet): what `run` waits through.
    assert!(net::nobody_there(&e));
    let Err(e) = open(Path::new("tcp://no-such-host.invalid:7777")) else { panic!("resolved an invalid host") };
    assert!(e.to_string().starts_with("tcp://no-such-host.invalid:7777: "), "{e}");
    assert!(!net::nobody_there(&e), "a name that does not resolve is a mistake, not a camera to wait for");
    let Err(e) = open(Path::new("tcp://127.0.0.1")) else { panic!("an address without a port") };
    assert!(e.to_string().contains("expected tcp://HOST:PORT"), "{e}");
    assert!(!net::nobody_there(&e));
    #[cfg(unix)]
    {
        let Err(e) = open(Path::new("unix:///no/such/dir/camera.sock")) else { panic!("a socket that is not there") };
        assert!(net::nobody_there(&e), "{e}");
    }
}

#[test]
fn a_server_that_is_not_dv_is_refused_at_its_first_bytes() {
    let path = serve_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec());
    let Err(e) = open(&path) else { panic!("took HTTP for a DV stream") };
    assert!(e.to_string().contains("at byte 0: header length"), "{e}");
    assert!(!net::nobody_there(&e), "somebody answered");
}

#[test]
fn a_server_that_says_nothing_is_an_error_not_a_hang() {
    let (_keep, hold) = mpsc::channel::<()>();
    let path = server(move |_client| {
        // Keeps the connection open, silent, until the test ends.
        let _ = hold.recv();
    });
    let started = Instant::now();
    let Err(e) = open(&path) else { panic!("a silent server gave a stream") };
    assert!(e.to_string().contains("no stream header within 5 s"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_stream_cut_inside_a_packet_names_the_place() {
    let bytes = dv_capture("none");
    let cut = dv_stream_parts(&bytes)[..2].iter().map(|p| p.len()).sum::<usize>() + 100;
    let mut reader = open(&serve_all(bytes[..cut].to_vec())).expect("connect");
    let mut got = Vec::new();
    assert_eq!(reader.read_chunk(&mut got, CHUNK).expect("first packet"), 500);
    let e = reader.read_chunk(&mut got, CHUNK).expect_err("a cut packet");
    assert!(e.to_string().contains("stream ends after") && e.to_string().contains("bytes of a packet"), "{e}");
}

/// The same stream on a local socket (`unix://PATH`): DV's local-socket output, or
/// dv-processing's `NetworkWriter` given a socket path.
#[cfg(unix)]
#[test]
fn a_local_socket_serves_the_same_stream() {
    use std::os::unix::net::UnixListener;
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("camera.sock");
    let listener = UnixListener::bind(&socket).expect("bind");
    let bytes = dv_capture("zstd");
    std::thread::spawn(move || {
        if let Ok((mut client, _)) = listener.accept() {
            client.write_all(&bytes).expect("send");
        }
    });
    let path = PathBuf::from(format!("unix://{}", socket.display()));
    let mut reader = open(&path).expect("connect");
    assert_eq!(reader.geometry(), Some(Geometry::new(320, 240)));
    let mut got = Vec::new();
    while reader.read_chunk(&mut got, CHUNK).expect("read") > 0 {}
    assert_eq!(got, expected());
    let gone = PathBuf::from(format!("unix://{}", dir.path().join("nothing.sock").display()));
    let Err(e) = open(&gone) else { panic!("connected to no socket") };
    assert!(e.to_string().starts_with(&format!("{}: ", gone.display())) && e.to_string().contains("expected a DV network output"), "{e}");
}
