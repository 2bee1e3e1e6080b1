//! Just enough HTTP/1.1 for a browser: a request's head read with a size limit, and responses
//! with a length. Everything a peer sends is checked; what does not fit gets a reason.

use std::io::{self, BufRead, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// The most bytes a request's head (request line and headers) may take.
pub(crate) const MAX_HEAD: u64 = 8 * 1024;

/// The most bytes of a request body read (the page's requests have none).
pub(crate) const MAX_BODY: u64 = 1024;

/// A request's head: what routing needs.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Request {
    pub(crate) method: String,
    /// The target's path, without the query.
    pub(crate) path: String,
    /// The target's query, without the `?` (empty when there is none).
    pub(crate) query: String,
    /// Whether the peer keeps the connection for another request.
    pub(crate) keep_alive: bool,
    /// The body's length.
    pub(crate) body: u64,
    /// The `Host` header, if sent.
    pub(crate) host: Option<String>,
    /// Whether the [`CONTROL_HEADER`] was sent.
    pub(crate) control_header: bool,
    /// A token presented as the [`TOKEN_COOKIE`] cookie or as `Authorization: Bearer`, if any.
    pub(crate) token: Option<String>,
}

/// The cookie that carries a server's token (see `ServeConfig::token`) once the page was
/// opened with it in the address.
pub(crate) const TOKEN_COOKIE: &str = "dynapviz_token";

/// A header the page sends with its controls. A page of another site cannot send it without
/// asking the server first (a CORS preflight this server never grants), so it cannot steer
/// the session from a viewer's browser.
pub(crate) const CONTROL_HEADER: &str = "x-dynapviz-control";

/// Why no request was read.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The peer closed the connection, or sent nothing within the timeout, between requests.
    Idle,
    /// The head is longer than [`MAX_HEAD`].
    TooLarge,
    /// The head did not arrive within its time (see [`Paced`]).
    TooSlow,
    /// The head is not HTTP/1.x: the reason.
    Malformed(String),
    /// A request body this server does not read: the status and the reason.
    Unsupported(u16, String),
    /// The connection failed.
    Io(io::Error),
}

impl Request {
    /// The value of `name` in the query (`a=1&b=2`), if present.
    pub(crate) fn query_value(&self, name: &str) -> Option<&str> {
        self.query.split('&').find_map(|kv| kv.strip_prefix(name).and_then(|r| r.strip_prefix('=')))
    }
}

/// A connection's reading side with two clocks: between requests it may sit idle for `idle`;
/// once a request's first byte arrives, its whole head must follow within `head`. So a peer
/// that trickles a byte at a time cannot hold a connection for long.
pub(crate) struct Paced {
    stream: TcpStream,
    idle: Duration,
    head: Duration,
    /// When the head being read must be complete (`None`: between requests).
    deadline: Option<Instant>,
}

impl Paced {
    pub(crate) fn new(stream: TcpStream, idle: Duration, head: Duration) -> Self {
        Self { stream, idle, head, deadline: None }
    }

    /// The head is read: the idle clock runs again.
    pub(crate) fn head_done(&mut self) {
        self.deadline = None;
    }
}

impl Read for Paced {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let timeout = match self.deadline {
            None => self.idle,
            Some(d) => d.checked_duration_since(Instant::now()).filter(|t| !t.is_zero()).ok_or(io::ErrorKind::TimedOut)?,
        };
        self.stream.set_read_timeout(Some(timeout))?;
        let n = self.stream.read(buf)?;
        if n > 0 && self.deadline.is_none() {
            self.deadline = Some(Instant::now() + self.head);
        }
        Ok(n)
    }
}

/// Reads one request's head, then its body (discarded, at most [`MAX_BODY`] bytes).
pub(crate) fn read_request(reader: &mut impl BufRead) -> Result<Request, ReadError> {
    let mut limited = (&mut *reader).take(MAX_HEAD);
    let mut line = Vec::new();
    let first = read_line(&mut limited, &mut line, true)?;
    let mut parts = first.split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(ReadError::Malformed(format!("request line {first:?}: expected METHOD TARGET HTTP/1.x")));
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(ReadError::Malformed(format!("method {method:?}: expected an upper-case token such as GET")));
    }
    let minor = match version {
        "HTTP/1.1" => 1,
        "HTTP/1.0" => 0,
        _ => return Err(ReadError::Malformed(format!("version {version:?}: expected HTTP/1.0 or HTTP/1.1"))),
    };
    if !target.starts_with('/') {
        return Err(ReadError::Malformed(format!("target {target:?}: expected a path starting with /")));
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut request = Request {
        method: method.to_string(),
        path: path.to_string(),
        query: query.to_string(),
        keep_alive: minor == 1,
        body: 0,
        host: None,
        control_header: false,
        token: None,
    };
    loop {
        let header = read_line(&mut limited, &mut line, false)?;
        if header.is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else {
            return Err(ReadError::Malformed(format!("header {header:?}: expected NAME: VALUE")));
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "connection" if value.eq_ignore_ascii_case("close") => request.keep_alive = false,
            "connection" if value.eq_ignore_ascii_case("keep-alive") => request.keep_alive = true,
            "content-length" => {
                request.body =
                    value.parse().map_err(|_| ReadError::Malformed(format!("Content-Length {value:?}: expected a number of bytes")))?;
            }
            "host" => request.host = Some(value.to_string()),
            "cookie" => {
                let ours = value.split(';').find_map(|c| c.trim().strip_prefix(TOKEN_COOKIE).and_then(|v| v.strip_prefix('=')));
                if let Some(token) = ours {
                    request.token = Some(token.to_string());
                }
            }
            "authorization" => {
                if let Some(token) = value.strip_prefix("Bearer ") {
                    request.token = Some(token.trim().to_string());
                }
            }
            n if n == CONTROL_HEADER => request.control_header = true,
            "transfer-encoding" => {
                return Err(ReadError::Unsupported(501, format!("Transfer-Encoding {value:?}: request bodies must have a Content-Length")));
            }
            _ => {}
        }
    }
    if request.body > MAX_BODY {
        return Err(ReadError::Unsupported(413, format!("a body of {} bytes: at most {MAX_BODY} are read", request.body)));
    }
    io::copy(&mut reader.take(request.body), &mut io::sink()).map_err(ReadError::Io)?;
    Ok(request)
}

/// Reads one line (CRLF or LF) of the head into a string. `first`: the request line, where a
/// closed or idle connection is not an error but the end of the peer's requests.
fn read_line<R: BufRead>(reader: &mut io::Take<R>, buf: &mut Vec<u8>, first: bool) -> Result<String, ReadError> {
    buf.clear();
    match reader.read_until(b'\n', buf) {
        Ok(0) if first => return Err(ReadError::Idle),
        Ok(_) => {}
        Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
            return Err(if first && buf.is_empty() { ReadError::Idle } else { ReadError::TooSlow });
        }
        Err(e) => return Err(ReadError::Io(e)),
    }
    if buf.last() != Some(&b'\n') {
        // The limit cut the line, or the peer closed the connection inside the head.
        return Err(if reader.limit() == 0 { ReadError::TooLarge } else { ReadError::Malformed("the head ends early".into()) });
    }
    buf.pop();
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    String::from_utf8(std::mem::take(buf)).map_err(|_| ReadError::Malformed("the head is not UTF-8".into()))
}

/// A response: status, type, extra headers and body.
pub(crate) struct Response<'a> {
    pub(crate) status: u16,
    pub(crate) content_type: &'a str,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) body: &'a [u8],
}

impl<'a> Response<'a> {
    pub(crate) fn new(status: u16, content_type: &'a str, body: &'a [u8]) -> Self {
        Self { status, content_type, headers: Vec::new(), body }
    }

    /// A plain-text answer, such as an error's reason.
    pub(crate) fn text(status: u16, body: &'a str) -> Self {
        Self::new(status, "text/plain; charset=utf-8", body.as_bytes())
    }

    pub(crate) fn header(mut self, name: &'static str, value: impl ToString) -> Self {
        self.headers.push((name, value.to_string()));
        self
    }

    /// Writes the response; `keep_alive` says whether another request may follow.
    pub(crate) fn write(&self, out: &mut (impl Write + ?Sized), keep_alive: bool) -> io::Result<()> {
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: {}\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len(),
            if keep_alive { "keep-alive" } else { "close" }
        );
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        out.write_all(head.as_bytes())?;
        out.write_all(self.body)?;
        out.flush()
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Whatever a peer sends, reading ends with a request or a reason, and a request read
        /// is one the bytes hold.
        #[test]
        fn any_bytes_give_a_request_or_a_reason(raw in prop::collection::vec(any::<u8>(), 0..2000)) {
            if let Ok(r) = parse(&raw) {
                prop_assert!(raw.starts_with(r.method.as_bytes()));
                prop_assert!(r.path.starts_with('/'));
            }
        }

        /// Heads made of valid parts in any combination, cut anywhere: never a panic, and a
        /// whole one parses.
        #[test]
        fn heads_cut_anywhere_give_a_request_or_a_reason(
            method in prop::sample::select(vec!["GET", "POST", "PUT", "get", ""]),
            path in "/[a-z?=&0-9]{0,20}",
            headers in prop::collection::vec(("[A-Za-z-]{1,12}", "[ -~]{0,30}"), 0..6),
            cut in 0usize..400,
        ) {
            let mut raw = format!("{method} {path} HTTP/1.1\r\n");
            for (n, v) in &headers {
                raw.push_str(&format!("{n}: {v}\r\n"));
            }
            raw.push_str("\r\n");
            let whole = parse(raw.as_bytes());
            let cut = cut.min(raw.len());
            let _ = parse(&raw.as_bytes()[..cut]);
            let plain = headers.iter().all(|(n, v)| {
                let n = n.to_ascii_lowercase();
                n != "transfer-encoding" && (n != "content-length" || v.trim().parse::<u64>().is_ok_and(|l| l == 0))
            });
            if method == "GET" && plain {
                prop_assert!(whole.is_ok(), "{raw:?}: {whole:?}");
            }
        }
    }

    fn parse(raw: &[u8]) -> Result<Request, ReadError> {
        read_request(&mut io::BufReader::new(raw))
    }

    #[test]
    fn a_browser_request_parses() {
        let r = parse(b"GET /frame?after=12&x=1 HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n").expect("valid");
        let want = Request {
            method: "GET".into(),
            path: "/frame".into(),
            query: "after=12&x=1".into(),
            keep_alive: true,
            body: 0,
            host: Some("a".into()),
            control_header: false,
            token: None,
        };
        assert_eq!(r, want);
        assert!(parse(b"POST /control/pause HTTP/1.1\r\nX-Dynapviz-Control: 1\r\n\r\n").expect("valid").control_header);
        let cookies = parse(b"GET / HTTP/1.1\r\nCookie: a=1; dynapviz_token=s3cret; b=2\r\n\r\n").expect("valid");
        assert_eq!(cookies.token.as_deref(), Some("s3cret"));
        assert_eq!(parse(b"GET / HTTP/1.1\r\nCookie: dynapviz_tokens=x\r\n\r\n").expect("valid").token, None);
        let bearer = parse(b"GET /status.json HTTP/1.1\r\nAuthorization: Bearer s3cret\r\n\r\n").expect("valid");
        assert_eq!(bearer.token.as_deref(), Some("s3cret"));
        assert_eq!(r.query_value("after"), Some("12"));
        assert_eq!(r.query_value("x"), Some("1"));
        assert_eq!(r.query_value("aft"), None);
    }

    #[test]
    fn http_1_0_and_connection_close_end_the_connection() {
        assert!(!parse(b"GET / HTTP/1.0\r\n\r\n").expect("valid").keep_alive);
        assert!(!parse(b"GET / HTTP/1.1\nConnection: Close\n\n").expect("valid").keep_alive);
        assert!(parse(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").expect("valid").keep_alive);
    }

    #[test]
    fn a_body_is_read_past() {
        let mut reader = io::BufReader::new(&b"POST /control/pause HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\n\r\n"[..]);
        assert_eq!(read_request(&mut reader).expect("valid").body, 3);
        assert_eq!(read_request(&mut reader).expect("the next").path, "/");
        assert!(matches!(read_request(&mut reader), Err(ReadError::Idle)));
    }

    #[test]
    fn bad_heads_are_refused_with_a_reason() {
        let malformed = |raw: &[u8], says: &str| match parse(raw) {
            Err(ReadError::Malformed(m)) => assert!(m.contains(says), "{m:?} should say {says:?}"),
            other => panic!("{raw:?}: expected Malformed, got {other:?}"),
        };
        malformed(b"GET /\r\n\r\n", "request line");
        malformed(b"get / HTTP/1.1\r\n\r\n", "method");
        malformed(b"GET / HTTP/2.0\r\n\r\n", "version");
        malformed(b"GET frame HTTP/1.1\r\n\r\n", "target");
        malformed(b"GET / HTTP/1.1\r\nno colon\r\n\r\n", "header");
        malformed(b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", "Content-Length");
        malformed(b"GET / HTTP/1.1\r\n\xff: x\r\n\r\n", "UTF-8");
        malformed(b"GET / HTTP/1.1\r\nHost: a", "ends early");
        assert!(matches!(parse(b"POST / HTTP/1.1\r\nContent-Length: 5000\r\n\r\n"), Err(ReadError::Unsupported(413, _))));
        assert!(matches!(parse(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"), Err(ReadError::Unsupported(501, _))));
        let long = [b"GET /".as_slice(), &[b'a'; 9000], b" HTTP/1.1\r\n\r\n"].concat();
        assert!(matches!(parse(&long), Err(ReadError::TooLarge)));
        let many = [b"GET / HTTP/1.1\r\n".as_slice(), &b"X: y\r\n".repeat(2000), b"\r\n"].concat();
        assert!(matches!(parse(&many), Err(ReadError::TooLarge)));
        assert!(matches!(parse(b""), Err(ReadError::Idle)));
    }

    #[test]
    fn a_response_has_its_length_and_connection() {
        let mut out = Vec::new();
        Response::text(404, "no such page").header("X-Frame", 3).write(&mut out, false).expect("to memory");
        let text = String::from_utf8(out).expect("ASCII");
        assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"), "{text}");
        assert!(text.contains("Content-Length: 12\r\n") && text.contains("Connection: close\r\n") && text.contains("X-Frame: 3\r\n"));
        assert!(text.ends_with("\r\n\r\nno such page"));
    }
}
