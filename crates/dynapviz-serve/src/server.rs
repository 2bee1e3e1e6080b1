//! The server: an accept loop, a thread per viewer's connection, and the routes of the page.

use std::io::{BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::http::{CONTROL_HEADER, Paced, ReadError, Request, Response, TOKEN_COOKIE, read_request};
use crate::latest::{Latest, Picture};

/// The page a browser gets at `/`.
const PAGE: &str = include_str!("page.html");

/// How long after a viewer's last request for a picture the server still counts it as
/// watching (see [`LiveServer::watched`]): the page asks again as soon as a picture arrives.
const WATCH_WINDOW: Duration = Duration::from_secs(3);

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address does not resolve or cannot be listened on.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: String,
        /// What the system said.
        source: std::io::Error,
    },
}

/// Limits and timeouts of a [`LiveServer`].
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// Connections served at once; one more is answered 503 and closed. A browser tab holds
    /// two (pictures and status).
    pub max_connections: usize,
    /// How long a connection may sit between requests before it is closed.
    pub idle_timeout: Duration,
    /// How long a request's head may take from its first byte; a slower one is answered 408.
    pub head_timeout: Duration,
    /// How long writing a response may take before the viewer is dropped.
    pub write_timeout: Duration,
    /// How long a request for a newer picture waits before it is answered "none yet" (204).
    pub picture_wait: Duration,
    /// The page's title.
    pub title: String,
    /// A secret every request must carry, for a server other machines reach: in the address's
    /// query (`/?token=...`, which the page then keeps as a cookie), in that cookie, or as
    /// `Authorization: Bearer`. Without one, anyone who can reach the port watches the session
    /// and steers its playback. `None`: no check (a loopback address, whose requests come from
    /// this machine).
    pub token: Option<String>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            max_connections: 32,
            idle_timeout: Duration::from_secs(30),
            head_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            picture_wait: Duration::from_secs(10),
            title: "dynapviz".into(),
            token: None,
        }
    }
}

/// A viewer's request to the playback, as the window's keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// Pause, or play on (space).
    TogglePause,
    /// Twice as fast (+).
    Faster,
    /// Half as fast (-).
    Slower,
    /// Show or hide the chip panel (c).
    ChipPanel,
    /// A heat map's channels side by side, or their sum (h).
    HeatChannels,
}

/// Carries out a [`Command`]; returns false when it cannot (a playback command when the
/// session has no playback to control).
pub type OnCommand = Box<dyn Fn(Command) -> bool + Send + Sync>;

/// Counts since the server started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Connections accepted and served.
    pub connections: u64,
    /// Connections answered 503 because [`ServeConfig::max_connections`] were open.
    pub refused: u64,
    /// Requests answered with a 4xx or 5xx status.
    pub bad_requests: u64,
    /// Pictures sent.
    pub pictures_sent: u64,
    /// Connections open now.
    pub open: usize,
}

struct Shared {
    latest: Latest,
    /// The newest picture as a vector document (see [`LiveServer::publish_vector`]).
    vector: Latest,
    /// Viewers waiting for one now.
    vector_waiting: AtomicUsize,
    config: ServeConfig,
    on_command: Option<OnCommand>,
    stop: AtomicBool,
    open: AtomicUsize,
    connections: AtomicU64,
    refused: AtomicU64,
    bad_requests: AtomicU64,
    pictures_sent: AtomicU64,
    /// Viewers waiting for a picture now.
    waiting: AtomicUsize,
    /// When a viewer last asked for a picture, ms after `started` (0: never).
    last_asked_ms: AtomicU64,
    started: Instant,
    /// Listening on a loopback address: only requests naming the loopback are answered, so that
    /// a page of another site whose name it made point here (DNS rebinding) is refused.
    loopback_only: bool,
}

/// Serves the newest published picture to browsers. Dropping it stops accepting and wakes
/// every waiting viewer; their connections close after the response in hand.
pub struct LiveServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    accept: Option<JoinHandle<()>>,
}

impl LiveServer {
    /// Listens on `addr` (port 0: any free port, see [`Self::local_addr`]). `on_command`
    /// carries out the page's buttons (see [`Command`]); `None` answers them 409.
    pub fn bind(addr: &str, config: ServeConfig, on_command: Option<OnCommand>) -> Result<Self, ServeError> {
        let bind_error = |source| ServeError::Bind { addr: addr.to_string(), source };
        let resolved: Vec<SocketAddr> = addr.to_socket_addrs().map_err(bind_error)?.collect();
        let listener = TcpListener::bind(&resolved[..]).map_err(bind_error)?;
        let local = listener.local_addr().map_err(bind_error)?;
        let shared = Arc::new(Shared {
            latest: Latest::new(),
            vector: Latest::new(),
            vector_waiting: AtomicUsize::new(0),
            config,
            on_command,
            stop: AtomicBool::new(false),
            open: AtomicUsize::new(0),
            connections: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            bad_requests: AtomicU64::new(0),
            pictures_sent: AtomicU64::new(0),
            waiting: AtomicUsize::new(0),
            last_asked_ms: AtomicU64::new(0),
            started: Instant::now(),
            loopback_only: local.ip().is_loopback(),
        });
        let accepting = Arc::clone(&shared);
        let accept = std::thread::Builder::new()
            .name("dynapviz-serve".into())
            .spawn(move || accept_loop(&listener, &accepting))
            .map_err(bind_error)?;
        Ok(Self { shared, addr: local, accept: Some(accept) })
    }

    /// The address listened on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Replaces the picture viewers get (`content_type` such as `image/png`) and the status
    /// (a JSON value), and wakes the viewers waiting for one. Never waits for a viewer.
    pub fn publish(&self, bytes: Vec<u8>, content_type: &'static str, status_json: String) {
        self.shared.latest.publish(Picture { bytes, content_type }, status_json);
    }

    /// Whether a viewer waits for the picture as a vector document (the page's "save SVG"):
    /// then make one, and [`Self::publish_vector`] it. Most viewers never save one, so it is
    /// made only when asked for.
    pub fn vector_wanted(&self) -> bool {
        self.shared.vector_waiting.load(Ordering::Acquire) > 0
    }

    /// Hands the picture as a vector document (`content_type` such as `image/svg+xml`) to the
    /// viewers waiting for one (see [`Self::vector_wanted`]). Never waits for a viewer.
    pub fn publish_vector(&self, bytes: Vec<u8>, content_type: &'static str) {
        self.shared.vector.publish(Picture { bytes, content_type }, "null".into());
    }

    /// Replaces the status only (a JSON value): for when no one watches the pictures.
    pub fn set_status(&self, status_json: String) {
        self.shared.latest.set_status(status_json);
    }

    /// Whether a viewer is waiting for a picture or asked for one lately: pictures need only be
    /// made while someone watches.
    pub fn watched(&self) -> bool {
        if self.shared.waiting.load(Ordering::Acquire) > 0 {
            return true;
        }
        let last = self.shared.last_asked_ms.load(Ordering::Acquire);
        last > 0 && self.shared.started.elapsed().saturating_sub(Duration::from_millis(last)) < WATCH_WINDOW
    }

    /// Counts since the start.
    pub fn stats(&self) -> ServerStats {
        let s = &self.shared;
        ServerStats {
            connections: s.connections.load(Ordering::Relaxed),
            refused: s.refused.load(Ordering::Relaxed),
            bad_requests: s.bad_requests.load(Ordering::Relaxed),
            pictures_sent: s.pictures_sent.load(Ordering::Relaxed),
            open: s.open.load(Ordering::Relaxed),
        }
    }
}

impl Drop for LiveServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.latest.wake_all();
        self.shared.vector.wake_all();
        // Wakes the accept loop, which then sees the stop.
        let wake = match self.addr {
            SocketAddr::V4(a) if a.ip().is_unspecified() => SocketAddr::from(([127, 0, 0, 1], a.port())),
            SocketAddr::V6(a) if a.ip().is_unspecified() => SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, a.port())),
            a => a,
        };
        let _ = TcpStream::connect_timeout(&wake, Duration::from_secs(1));
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stop.load(Ordering::Acquire) {
            return;
        }
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                tracing::warn!("live view: accepting a connection failed: {e}");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        if shared.open.fetch_add(1, Ordering::AcqRel) >= shared.config.max_connections {
            shared.open.fetch_sub(1, Ordering::AcqRel);
            shared.refused.fetch_add(1, Ordering::Relaxed);
            refuse(stream, shared.config.max_connections);
            continue;
        }
        shared.connections.fetch_add(1, Ordering::Relaxed);
        let serving = Arc::clone(shared);
        let spawned = std::thread::Builder::new().name("dynapviz-viewer-conn".into()).spawn(move || {
            serve_connection(stream, &serving);
            serving.open.fetch_sub(1, Ordering::AcqRel);
        });
        if let Err(e) = spawned {
            shared.open.fetch_sub(1, Ordering::AcqRel);
            tracing::warn!("live view: no thread for a viewer: {e}");
        }
    }
}

/// Answers a connection over the limit without reading its request.
fn refuse(mut stream: TcpStream, max: usize) {
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    let body = format!("{max} connections are open already, the most this session serves: try again later");
    let _ = Response::text(503, &body).header("Retry-After", 5).write(&mut stream, false);
    let _ = stream.shutdown(Shutdown::Both);
}

fn serve_connection(stream: TcpStream, shared: &Shared) {
    let peer = stream.peer_addr().map_or_else(|_| "?".to_string(), |a| a.to_string());
    let setup = stream
        .set_write_timeout(Some(shared.config.write_timeout))
        .and_then(|()| stream.set_nodelay(true))
        .and_then(|()| stream.try_clone());
    let read_half = match setup {
        Ok(s) => s,
        Err(e) => return tracing::debug!("live view: {peer}: {e}"),
    };
    let paced = Paced::new(read_half, shared.config.idle_timeout, shared.config.head_timeout);
    let (mut reader, mut out) = (BufReader::new(paced), stream);
    loop {
        let read = read_request(&mut reader);
        reader.get_mut().head_done();
        // A head that cannot be answered ends the connection, with a status and a reason.
        let mut refuse_head = |status: u16, reason: String| {
            tracing::debug!("live view: {peer}: {status} {reason}");
            shared.bad_requests.fetch_add(1, Ordering::Relaxed);
            let _ = Response::text(status, &reason).write(&mut out, false);
        };
        let request = match read {
            Ok(r) => r,
            Err(ReadError::Idle) => return,
            Err(ReadError::Io(e)) => return tracing::debug!("live view: {peer}: {e}"),
            Err(ReadError::TooLarge) => return refuse_head(431, format!("the request's head is over {} bytes", crate::http::MAX_HEAD)),
            Err(ReadError::TooSlow) => return refuse_head(408, format!("the request's head took over {:?}", shared.config.head_timeout)),
            Err(ReadError::Malformed(why)) => return refuse_head(400, why),
            Err(ReadError::Unsupported(status, why)) => return refuse_head(status, why),
        };
        let keep_alive = match route(&request, shared, &mut out) {
            Ok(keep_alive) => keep_alive,
            Err(e) => return tracing::debug!("live view: {peer}: {e}"),
        };
        if !keep_alive {
            let _ = out.shutdown(Shutdown::Both);
            return;
        }
    }
}

/// Answers one request; returns whether the connection stays open for the next.
fn route(request: &Request, shared: &Shared, out: &mut dyn Write) -> std::io::Result<bool> {
    let keep_alive = request.keep_alive && !shared.stop.load(Ordering::Acquire);
    let bad = |status, reason: &str, out: &mut dyn Write| {
        shared.bad_requests.fetch_add(1, Ordering::Relaxed);
        Response::text(status, reason).write(out, keep_alive)
    };
    if shared.loopback_only && !request.host.as_deref().is_some_and(is_loopback_host) {
        let why = format!(
            "Host {:?}: this server listens on this machine only and answers requests for localhost or a loopback address (a page of another site can rename itself to this machine)",
            request.host.as_deref().unwrap_or("")
        );
        return bad(403, &why, out).map(|()| keep_alive);
    }
    // The token in the address (a viewer opening the page) is kept as a cookie for the page's
    // own requests; one in a cookie or an Authorization header is checked as sent.
    let mut set_cookie = None;
    if let Some(token) = &shared.config.token {
        let in_query = request.query_value("token");
        if !in_query.or(request.token.as_deref()).is_some_and(|given| same_secret(given, token)) {
            let why = "this live view needs the token that dynapviz printed with its address: open that address, ?token=... included";
            shared.bad_requests.fetch_add(1, Ordering::Relaxed);
            return Response::text(401, why)
                .header("WWW-Authenticate", "Bearer realm=\"dynapviz\"")
                .write(out, keep_alive)
                .map(|()| keep_alive);
        }
        if in_query.is_some() {
            set_cookie = Some(format!("{TOKEN_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"));
        }
    }
    let answered = match (request.method.as_str(), request.path.as_str()) {
        ("GET", "/" | "/index.html") => {
            let page = PAGE.replace("{{title}}", &escape_html(&shared.config.title));
            let response = Response::new(200, "text/html; charset=utf-8", page.as_bytes());
            match set_cookie {
                Some(cookie) => response.header("Set-Cookie", cookie),
                None => response,
            }
            .write(out, keep_alive)
        }
        ("GET", "/frame") => {
            let after = match request.query_value("after").map(str::parse::<u64>) {
                None => 0,
                Some(Ok(n)) => n,
                Some(Err(_)) => {
                    return bad(400, "after: expected the number of the picture shown (X-Frame), 0 for any", out).map(|()| keep_alive);
                }
            };
            shared.last_asked_ms.store(shared.started.elapsed().as_millis().max(1) as u64, Ordering::Release);
            let newer = wait_newer(shared, &shared.latest, &shared.waiting, after);
            // A stop during the wait closes the connection after this answer.
            let keep_alive = keep_alive && !shared.stop.load(Ordering::Acquire);
            match newer {
                Some((number, picture)) => {
                    shared.pictures_sent.fetch_add(1, Ordering::Relaxed);
                    Response::new(200, picture.content_type, &picture.bytes).header("X-Frame", number).write(out, keep_alive)
                }
                None => Response::new(204, "text/plain", b"").header("X-Frame", after).write(out, keep_alive),
            }
        }
        ("GET", "/vector") => {
            // The first vector document made after this request: the picture as it is now.
            let after = shared.vector.snapshot().number;
            let newer = wait_newer(shared, &shared.vector, &shared.vector_waiting, after);
            let keep_alive = keep_alive && !shared.stop.load(Ordering::Acquire);
            match newer {
                Some((number, doc)) => {
                    let extension = if doc.content_type == "image/svg+xml" { "svg" } else { "bin" };
                    let name = format!(
                        "attachment; filename=\"{}-{number}.{extension}\"",
                        shared.config.title.replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_")
                    );
                    Response::new(200, doc.content_type, &doc.bytes).header("Content-Disposition", name).write(out, keep_alive)
                }
                None => {
                    let why = format!(
                        "no vector picture was made within {:?} (this session makes none, or it is stopping)",
                        shared.config.picture_wait
                    );
                    bad(503, &why, out)
                }
            }
        }
        ("GET", "/status.json") => {
            let p = shared.latest.snapshot();
            let body =
                format!("{{\"picture\":{},\"connections\":{},\"session\":{}}}", p.number, shared.open.load(Ordering::Relaxed), p.status);
            Response::new(200, "application/json", body.as_bytes()).write(out, keep_alive)
        }
        ("POST", path) if path.starts_with("/control/") && !request.control_header => {
            let why = format!("controls need the {CONTROL_HEADER} header, which the page sends and other sites' pages cannot");
            bad(403, &why, out)
        }
        ("POST", path) if path.starts_with("/control/") => {
            let command = match &path["/control/".len()..] {
                "pause" => Command::TogglePause,
                "faster" => Command::Faster,
                "slower" => Command::Slower,
                "chip" => Command::ChipPanel,
                "heat" => Command::HeatChannels,
                other => return bad(404, &format!("no control {other:?}: pause, faster, slower, chip or heat"), out).map(|()| keep_alive),
            };
            match &shared.on_command {
                Some(run) if run(command) => Response::new(204, "text/plain", b"").write(out, keep_alive),
                _ => bad(409, "this session cannot do that now (no playback to control: a live source, or the recording ended)", out),
            }
        }
        ("GET" | "POST", path) => bad(404, &format!("no page {path:?}: the live view is at /"), out),
        (method, _) => {
            shared.bad_requests.fetch_add(1, Ordering::Relaxed);
            Response::text(405, &format!("method {method}: only GET and POST")).header("Allow", "GET, POST").write(out, keep_alive)
        }
    };
    answered.map(|()| keep_alive && !shared.stop.load(Ordering::Acquire))
}

/// Waits up to the configured time for a picture in `slot` newer than number `after`, counted
/// in `waiting` meanwhile (so that the session knows someone waits), or until the server stops.
fn wait_newer(shared: &Shared, slot: &Latest, waiting: &AtomicUsize, after: u64) -> Option<(u64, Arc<Picture>)> {
    waiting.fetch_add(1, Ordering::AcqRel);
    let newer = slot.newer(after, shared.config.picture_wait, || shared.stop.load(Ordering::Acquire));
    waiting.fetch_sub(1, Ordering::AcqRel);
    newer
}

/// Whether `given` is `secret`, in a time that does not depend on where they first differ
/// (which would let a peer find the token byte by byte).
fn same_secret(given: &str, secret: &str) -> bool {
    let (a, b) = (given.as_bytes(), secret.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// Whether `host` (a `Host` header: a name or address, and maybe a port) names this machine's
/// loopback: `localhost`, `127.x.x.x` or `[::1]`.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
