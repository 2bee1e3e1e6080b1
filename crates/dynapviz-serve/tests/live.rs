//! The server over real sockets, as a browser (and a bad peer) talks to it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dynapviz_serve::{Command, LiveServer, ServeConfig};

fn quick() -> ServeConfig {
    ServeConfig {
        idle_timeout: Duration::from_millis(500),
        write_timeout: Duration::from_secs(2),
        picture_wait: Duration::from_millis(200),
        title: "lab <3>".into(),
        ..ServeConfig::default()
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("the server listens");
    s.set_read_timeout(Some(Duration::from_secs(20))).expect("a timeout");
    s
}

/// A response: status, headers (names in lower case), body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Reads one response, by its Content-Length.
fn answer(reader: &mut BufReader<TcpStream>) -> Answer {
    let mut line = String::new();
    reader.read_line(&mut line).expect("a status line");
    let status = line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("status line {line:?}"));
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line).expect("a header");
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (n, v) = l.split_once(':').expect("NAME: VALUE");
        headers.push((n.to_ascii_lowercase(), v.trim().to_string()));
    }
    let len: usize = headers.iter().find(|(n, _)| n == "content-length").expect("a length").1.parse().expect("a number");
    let mut body = vec![0; len];
    reader.read_exact(&mut body).expect("the body");
    Answer { status, headers, body }
}

/// Sends `raw` on a new connection and reads one response.
fn ask(addr: SocketAddr, raw: &[u8]) -> Answer {
    let mut s = connect(addr);
    s.write_all(raw).expect("sent");
    answer(&mut BufReader::new(s))
}

fn get(addr: SocketAddr, path: &str) -> Answer {
    ask(addr, format!("GET {path} HTTP/1.1\r\nHost: localhost:{}\r\nConnection: close\r\n\r\n", addr.port()).as_bytes())
}

/// A control, as the page sends it.
fn post(addr: SocketAddr, path: &str) -> Answer {
    ask(addr, format!("POST {path} HTTP/1.1\r\nHost: {addr}\r\nX-Dynapviz-Control: 1\r\nContent-Length: 0\r\n\r\n").as_bytes())
}

#[test]
fn the_page_pictures_and_status_reach_a_viewer() {
    let server = LiveServer::bind("127.0.0.1:0", quick(), None).expect("bound");
    let addr = server.local_addr();
    let page = get(addr, "/");
    assert_eq!(page.status, 200);
    assert!(page.header("content-type").is_some_and(|t| t.starts_with("text/html")));
    assert!(page.text().contains("<title>lab &lt;3&gt;</title>"), "the title, escaped");
    // Nothing published yet: the wait ends with "none".
    let none = get(addr, "/frame?after=0");
    assert_eq!((none.status, none.header("x-frame")), (204, Some("0")));
    server.publish(vec![1, 2, 3], "image/png", r#"{"t_s":1.5}"#.into());
    let first = get(addr, "/frame?after=0");
    assert_eq!((first.status, first.header("x-frame"), first.header("content-type")), (200, Some("1"), Some("image/png")));
    assert_eq!(first.body, [1, 2, 3]);
    assert_eq!(get(addr, "/frame").body, [1, 2, 3], "no `after`: any picture");
    let status = get(addr, "/status.json");
    assert_eq!(status.status, 200);
    assert!(
        status.text().starts_with(r#"{"picture":1,"connections":"#) && status.text().ends_with(r#""session":{"t_s":1.5}}"#),
        "{}",
        status.text()
    );
    server.set_status(r#"{"t_s":2}"#.into());
    assert!(get(addr, "/status.json").text().ends_with(r#""session":{"t_s":2}}"#));
    assert_eq!(server.stats().pictures_sent, 2);
}

/// A viewer asking for the picture as a vector document waits for one made after it asked,
/// which the session makes only while someone asks; none made in time is a 503 with a reason.
#[test]
fn the_picture_as_a_vector_document_is_made_when_asked_for() {
    let server =
        Arc::new(LiveServer::bind("127.0.0.1:0", ServeConfig { picture_wait: Duration::from_secs(20), ..quick() }, None).expect("bound"));
    assert!(!server.vector_wanted());
    server.publish_vector(b"<svg>old</svg>".to_vec(), "image/svg+xml");
    let addr = server.local_addr();
    let asking = std::thread::spawn(move || get(addr, "/vector"));
    while !server.vector_wanted() {
        std::thread::sleep(Duration::from_millis(5));
    }
    server.publish_vector(b"<svg>now</svg>".to_vec(), "image/svg+xml");
    let a = asking.join().expect("answered");
    assert_eq!((a.status, a.header("content-type"), a.body.as_slice()), (200, Some("image/svg+xml"), &b"<svg>now</svg>"[..]));
    assert_eq!(a.header("content-disposition"), Some(r#"attachment; filename="lab__3_-2.svg""#));
    assert!(!server.vector_wanted(), "no one waits any more");
    // A session that makes none: the wait ends, saying so.
    let quick_server = LiveServer::bind("127.0.0.1:0", quick(), None).expect("bound");
    let none = get(quick_server.local_addr(), "/vector");
    assert_eq!(none.status, 503);
    assert!(none.text().contains("no vector picture was made within"), "{}", none.text());
}

#[test]
fn a_viewer_waits_for_the_next_picture_on_one_connection() {
    let server =
        Arc::new(LiveServer::bind("127.0.0.1:0", ServeConfig { picture_wait: Duration::from_secs(20), ..quick() }, None).expect("bound"));
    server.publish(b"one".to_vec(), "image/png", "null".into());
    let mut s = connect(server.local_addr());
    let mut reader = BufReader::new(s.try_clone().expect("a clone"));
    s.write_all(b"GET /frame?after=0 HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("sent");
    let a = answer(&mut reader);
    assert_eq!((a.header("x-frame"), a.body.as_slice(), a.header("connection")), (Some("1"), &b"one"[..], Some("keep-alive")));
    // The next request waits until a newer picture is published.
    s.write_all(b"GET /frame?after=1 HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("sent");
    let publisher = Arc::clone(&server);
    let later = std::thread::spawn(move || {
        while !publisher.watched() {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(50));
        publisher.publish(b"two".to_vec(), "image/png", "null".into());
    });
    let b = answer(&mut reader);
    assert_eq!((b.header("x-frame"), b.body.as_slice()), (Some("2"), &b"two"[..]));
    later.join().expect("published");
}

#[test]
fn the_controls_reach_the_session_or_say_there_is_none() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let on_command = Box::new(move |c: Command| {
        log.lock().expect("not poisoned").push(c);
        true
    });
    let server = LiveServer::bind("127.0.0.1:0", quick(), Some(on_command)).expect("bound");
    let addr = server.local_addr();
    for path in ["/control/pause", "/control/faster", "/control/slower", "/control/chip", "/control/heat"] {
        assert_eq!(post(addr, path).status, 204, "{path}");
    }
    assert_eq!(
        *seen.lock().expect("not poisoned"),
        [Command::TogglePause, Command::Faster, Command::Slower, Command::ChipPanel, Command::HeatChannels]
    );
    let unknown = post(addr, "/control/rewind");
    assert_eq!(unknown.status, 404);
    assert!(unknown.text().contains("pause, faster, slower, chip or heat"));
    let without = LiveServer::bind("127.0.0.1:0", quick(), None).expect("bound");
    let refused = post(without.local_addr(), "/control/pause");
    assert_eq!(refused.status, 409);
    assert!(refused.text().contains("no playback"), "{}", refused.text());
    let declined = LiveServer::bind("127.0.0.1:0", quick(), Some(Box::new(|_| false))).expect("bound");
    assert_eq!(post(declined.local_addr(), "/control/faster").status, 409);
}

#[test]
fn other_sites_pages_can_neither_steer_nor_read_a_local_session() {
    let server = LiveServer::bind("127.0.0.1:0", quick(), Some(Box::new(|_| true))).expect("bound");
    let addr = server.local_addr();
    // A cross-site form or no-cors fetch cannot add the page's header.
    let forged = ask(addr, format!("POST /control/pause HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\n\r\n").as_bytes());
    assert_eq!(forged.status, 403);
    assert!(forged.text().contains("x-dynapviz-control"), "{}", forged.text());
    // A name made to point here (DNS rebinding) is not this machine's loopback.
    let rebound = ask(addr, format!("GET /frame HTTP/1.1\r\nHost: evil.example:{}\r\n\r\n", addr.port()).as_bytes());
    assert_eq!(rebound.status, 403);
    assert!(rebound.text().contains("evil.example"), "{}", rebound.text());
    assert_eq!(ask(addr, b"GET / HTTP/1.0\r\n\r\n").status, 403, "no Host at all");
    for host in ["localhost", "LOCALHOST:80", "127.0.0.1", "127.1.2.3:8080", "[::1]:8080"] {
        assert_eq!(ask(addr, format!("GET /status.json HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes()).status, 200, "{host}");
    }
}

#[test]
fn bad_requests_get_a_status_and_a_reason() {
    let server = LiveServer::bind("127.0.0.1:0", quick(), None).expect("bound");
    let addr = server.local_addr();
    let cases: [(&[u8], u16, &str); 6] = [
        (b"HELLO\r\n\r\n", 400, "request line"),
        (b"GET / SPDY/3\r\n\r\n", 400, "version"),
        (b"DELETE / HTTP/1.1\r\nHost: localhost\r\n\r\n", 405, "only GET and POST"),
        (b"GET /frame?after=-1 HTTP/1.1\r\nHost: localhost\r\n\r\n", 400, "after"),
        (b"GET /secrets HTTP/1.1\r\nHost: localhost\r\n\r\n", 404, "the live view is at /"),
        (b"POST /control/pause HTTP/1.1\r\nContent-Length: 99999\r\n\r\n", 413, "at most"),
    ];
    for (raw, status, says) in cases {
        let a = ask(addr, raw);
        assert_eq!(a.status, status, "{}", String::from_utf8_lossy(raw));
        assert!(a.text().contains(says), "{:?} should say {says:?}", a.text());
    }
    let huge = [b"GET / HTTP/1.1\r\nX: ".as_slice(), &[b'a'; 20_000], b"\r\n\r\n"].concat();
    assert_eq!(ask(addr, &huge).status, 431);
    assert_eq!(server.stats().bad_requests, 7);
    // Still serving.
    assert_eq!(get(addr, "/").status, 200);
}

#[test]
fn connections_over_the_limit_are_refused_and_idle_ones_closed() {
    let server = LiveServer::bind("127.0.0.1:0", ServeConfig { max_connections: 2, ..quick() }, None).expect("bound");
    let addr = server.local_addr();
    let idle: Vec<_> = (0..2).map(|_| connect(addr)).collect();
    // The accept loop counts a connection when it takes it: wait until it has both.
    while server.stats().open < 2 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let third = get(addr, "/");
    assert_eq!(third.status, 503);
    assert_eq!(third.header("retry-after"), Some("5"));
    assert_eq!(server.stats().refused, 1);
    // An idle connection is closed after the idle timeout (0.5 s): the read ends.
    for mut s in idle {
        let mut buf = [0; 1];
        assert_eq!(s.read(&mut buf).expect("closed, not timed out"), 0);
    }
    while server.stats().open > 0 {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(get(addr, "/").status, 200, "room again");
}

#[test]
fn a_head_trickled_a_byte_at_a_time_is_cut_off() {
    let config = ServeConfig { idle_timeout: Duration::from_secs(5), head_timeout: Duration::from_millis(300), ..quick() };
    let server = LiveServer::bind("127.0.0.1:0", config, None).expect("bound");
    let mut s = connect(server.local_addr());
    let started = std::time::Instant::now();
    // A byte every 50 ms: the idle timeout (5 s) never runs out, the head's time (0.3 s) does.
    let mut reader = BufReader::new(s.try_clone().expect("a clone"));
    let trickle = std::thread::spawn(move || {
        for b in b"GET / HTTP/1.1\r\nX-Slow: yes".iter().cycle().take(100) {
            if s.write_all(&[*b]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let a = answer(&mut reader);
    assert_eq!(a.status, 408);
    assert!(a.text().contains("took over"), "{}", a.text());
    assert!(started.elapsed() < Duration::from_secs(4), "cut off by the head's time, not the idle one");
    trickle.join().expect("the writer ends");
    assert_eq!(get(server.local_addr(), "/").status, 200, "still serving");
}

#[test]
fn a_stalled_viewer_never_holds_up_publishing() {
    let server = Arc::new(LiveServer::bind("127.0.0.1:0", quick(), None).expect("bound"));
    // A picture far larger than the socket buffers, asked for and never read.
    server.publish(vec![7; 32 << 20], "image/png", "null".into());
    let mut stalled = connect(server.local_addr());
    stalled.write_all(b"GET /frame?after=0 HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("sent");
    while server.stats().open == 0 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let (done, finished) = mpsc::channel();
    let publisher = Arc::clone(&server);
    std::thread::spawn(move || {
        for i in 0..200u8 {
            publisher.publish(vec![i; 1 << 20], "image/png", "null".into());
        }
        let _ = done.send(());
    });
    finished.recv_timeout(Duration::from_secs(20)).expect("200 publishes while a viewer stalls, without waiting for it");
    drop(stalled);
}

#[test]
fn stopping_answers_the_waiting_viewers() {
    let server = LiveServer::bind("127.0.0.1:0", ServeConfig { picture_wait: Duration::from_secs(60), ..quick() }, None).expect("bound");
    let addr = server.local_addr();
    let mut s = connect(addr);
    s.write_all(b"GET /frame?after=0 HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("sent");
    while !server.watched() {
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(server);
    let a = answer(&mut BufReader::new(s));
    assert_eq!((a.status, a.header("connection")), (204, Some("close")));
    assert!(TcpStream::connect(addr).is_err(), "no longer listening");
}

#[test]
fn an_address_that_cannot_be_listened_on_is_named() {
    let taken = LiveServer::bind("127.0.0.1:0", quick(), None).expect("bound");
    let addr = taken.local_addr().to_string();
    let err = LiveServer::bind(&addr, quick(), None).err().expect("the port is taken");
    assert!(err.to_string().contains(&addr), "{err}");
    let err = LiveServer::bind("no-such-host.invalid:80", quick(), None).err().expect("no such host");
    assert!(err.to_string().contains("no-such-host.invalid:80"), "{err}");
}

/// With a token, nothing is answered without it: the page opened with it in its address sets
/// it as a cookie, which the page's own requests then carry; scripts may put it in the query
/// or send it as `Authorization: Bearer`.
#[test]
fn a_server_with_a_token_answers_only_requests_that_carry_it() {
    let token = "0123456789abcdef0123456789abcdef";
    let server = LiveServer::bind("127.0.0.1:0", ServeConfig { token: Some(token.into()), ..quick() }, None).expect("bound");
    let addr = server.local_addr();
    server.publish(vec![7], "image/png", "null".into());
    for path in ["/", "/frame?after=0", "/status.json", "/?token=0123456789abcdef0123456789abcdee", "/?token="] {
        let refused = get(addr, path);
        assert_eq!(refused.status, 401, "{path}");
        assert!(refused.text().contains("needs the token"), "{path}: {}", refused.text());
        assert!(!refused.text().contains(token), "the answer must not give the token away");
    }
    let page = get(addr, &format!("/?token={token}"));
    assert_eq!(page.status, 200);
    let cookie = page.header("set-cookie").expect("the token kept as a cookie");
    assert!(cookie.starts_with(&format!("dynapviz_token={token};")) && cookie.contains("HttpOnly"), "{cookie}");
    let with_cookie = |request: &str| {
        ask(addr, format!("{request} HTTP/1.1\r\nHost: localhost\r\nCookie: theme=dark; dynapviz_token={token}\r\nX-Dynapviz-Control: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes())
    };
    let picture = with_cookie("GET /frame?after=0");
    assert_eq!((picture.status, picture.body.as_slice()), (200, &[7u8][..]));
    assert_eq!(picture.header("set-cookie"), None, "set once, by the page");
    // Past the token, a control meets the session (which has none to steer here).
    assert_eq!(with_cookie("POST /control/pause").status, 409);
    assert_eq!(get(addr, &format!("/status.json?token={token}")).status, 200);
    let bearer = format!("GET /status.json HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n");
    assert_eq!(ask(addr, bearer.as_bytes()).status, 200);
    assert_eq!(get(addr, "/").header("www-authenticate"), Some("Bearer realm=\"dynapviz\""));
    assert_eq!(server.stats().bad_requests, 7, "six without the token, and the 409");
}
