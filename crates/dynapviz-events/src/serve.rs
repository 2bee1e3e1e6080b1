//! The other end of [`crate::net`]: events served as the AEDAT 4.0 network stream that DV's
//! "Output to network" module sends for a camera, so that whatever reads a DV camera (dynapviz,
//! DV itself, dv-processing's `NetworkReader`) can read a recording as if it were one. Each
//! client gets the stream's header, then the packets sent after it connected, as from a camera.
//! A client that cannot keep up loses whole packets (counted), never a part of one, and never
//! holds up the others, unless the sender asks to wait for it (a stream that is not live).

use std::io::Write;
use std::net::TcpListener;
#[cfg(unix)]
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::formats::aedat4::{self, Compression};
use crate::net::Address;
use crate::{Error, Event, Geometry, Result};

/// Packets waiting for one client, at most: with a packet per few milliseconds, about a
/// second of a camera.
const PACKETS_WAITING: usize = 256;

/// Events per packet, at most, as DV's own packets hold.
const PACKET_EVENTS: usize = 65_536;

/// How often the listener looks for a new client, and the server for the end.
const POLL: Duration = Duration::from_millis(20);

/// How long a write to a client may block before the client counts as gone: one that stopped
/// reading without closing must not keep its thread for ever.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// A DV network output serving the events it is given.
pub struct DvServer {
    name: String,
    compression: Compression,
    clients: Arc<Mutex<Vec<Client>>>,
    /// Clients connected so far, gone or not.
    served: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    listening: Option<JoinHandle<()>>,
    /// A Unix socket's file, removed at the end.
    socket_file: Option<PathBuf>,
    raw: Vec<u8>,
    /// Packets lost by clients that are gone.
    gone_dropped: u64,
}

/// One connected client, as the server sees it.
struct Client {
    packets: SyncSender<Arc<[u8]>>,
    /// Packets it could not take in time.
    dropped: u64,
    writing: JoinHandle<()>,
    /// Shuts its connection: a writer blocked on a client that stopped reading returns.
    shut: Closer,
}

/// Shuts a connection down.
type Closer = Box<dyn Fn() + Send>;

/// How long [`DvServer::finish`] lets clients take what was sent to them before it closes
/// their connections.
const FINISH_GRACE: Duration = Duration::from_secs(2);

/// What [`DvServer::finish`] reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Served {
    /// Clients that connected.
    pub clients: u64,
    /// Packets clients lost because they did not take them in time, summed over clients.
    pub dropped_packets: u64,
}

/// Where clients connect: a TCP or a local socket.
enum Listener {
    Tcp(TcpListener),
    #[cfg(unix)]
    Unix(UnixListener),
}

/// A client's connection as the server keeps it: the stream to write to (blocking, for at
/// most [`WRITE_TIMEOUT`] a write) and how to shut it. A macro: TCP and local sockets have the
/// same methods and no trait in common.
macro_rules! client {
    ($stream:expr) => {{
        let stream = $stream;
        // An accepted socket may inherit the listener's non-blocking mode (BSD, macOS).
        stream.set_nonblocking(false)?;
        stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
        let other = stream.try_clone()?;
        let shut: Closer = Box::new(move || drop(other.shutdown(std::net::Shutdown::Both)));
        Ok((Box::new(stream) as Box<dyn Write + Send>, shut))
    }};
}

impl Listener {
    /// The next client waiting, if one is: where to write to it, and how to shut it.
    fn accept(&self) -> std::io::Result<(Box<dyn Write + Send>, Closer)> {
        match self {
            Listener::Tcp(l) => {
                let (stream, _) = l.accept()?;
                stream.set_nodelay(true)?;
                client!(stream)
            }
            #[cfg(unix)]
            Listener::Unix(l) => client!(l.accept()?.0),
        }
    }
}

/// Listens at `path`; a socket file left by a server that is gone (killed before it could
/// remove it) is replaced, one that a server still answers at is an error.
#[cfg(unix)]
fn bind_unix(path: &std::path::Path) -> std::io::Result<UnixListener> {
    match UnixListener::bind(path) {
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => match UnixStream::connect(path) {
            Err(gone) if gone.kind() == std::io::ErrorKind::ConnectionRefused => {
                std::fs::remove_file(path)?;
                UnixListener::bind(path)
            }
            _ => Err(std::io::Error::new(e.kind(), format!("{e}: another server listens there"))),
        },
        bound => bound,
    }
}

impl DvServer {
    /// Listens at `address` (port 0: any free port, see [`Self::address`]) for clients of an
    /// event stream of `geometry`, its packets compressed with `compression`.
    pub fn bind(address: Address<'_>, geometry: Geometry, compression: Compression) -> Result<Self> {
        let (listener, name, socket_file) = match address {
            Address::Tcp(addr) => {
                let named = PathBuf::from(format!("tcp://{addr}"));
                let listener = TcpListener::bind(addr).map_err(|error| Error::Io { path: named.clone(), error })?;
                let local = listener.local_addr().map_err(|error| Error::Io { path: named, error })?;
                (Listener::Tcp(listener), format!("tcp://{local}"), None)
            }
            #[cfg(unix)]
            Address::Unix(path) => {
                let named = PathBuf::from(format!("unix://{}", path.display()));
                let listener = bind_unix(path).map_err(|error| Error::Io { path: named.clone(), error })?;
                (Listener::Unix(listener), format!("unix://{}", path.display()), Some(path.to_path_buf()))
            }
            #[cfg(not(unix))]
            Address::Unix(path) => {
                let error = std::io::Error::new(std::io::ErrorKind::Unsupported, "local sockets need a Unix system: use tcp://HOST:PORT");
                return Err(Error::Io { path: PathBuf::from(format!("unix://{}", path.display())), error });
            }
        };
        let fail = |error| Error::Io { path: PathBuf::from(&name), error };
        match &listener {
            Listener::Tcp(l) => l.set_nonblocking(true).map_err(fail)?,
            #[cfg(unix)]
            Listener::Unix(l) => l.set_nonblocking(true).map_err(fail)?,
        }
        let header: Arc<[u8]> = aedat4::stream_header(geometry, compression, "/outInfo/").into();
        let (clients, served, stop) = (Arc::new(Mutex::new(Vec::new())), Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)));
        let listening = {
            let (clients, served, stop) = (Arc::clone(&clients), Arc::clone(&served), Arc::clone(&stop));
            std::thread::Builder::new()
                .name("dynapviz-dv-listen".into())
                .spawn(move || listen(&listener, &header, &clients, &served, &stop))
                .map_err(fail)?
        };
        Ok(Self { name, compression, clients, served, stop, listening: Some(listening), socket_file, raw: Vec::new(), gone_dropped: 0 })
    }

    /// Where clients connect, as `tcp://IP:PORT` (the port chosen when 0 was asked) or
    /// `unix://PATH`.
    pub fn address(&self) -> &str {
        &self.name
    }

    /// Clients connected so far (some may be gone).
    pub fn clients_served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }

    /// Clients connected now, as far as the server knows (one that left is noticed at the
    /// next packet sent).
    pub fn clients(&self) -> usize {
        lock(&self.clients).len()
    }

    /// Sends `events` to every client connected now, as packets of at most 65 536 events. A
    /// client with 256 packets not yet taken (about a second of a camera) loses the packet (a
    /// camera does not wait), unless `wait`: then the call waits until it takes it or goes.
    pub fn send(&mut self, events: &[Event], wait: bool) -> Result<()> {
        if lock(&self.clients).is_empty() {
            // Nobody to encode them for: a camera's events before anyone looks are gone.
            return Ok(());
        }
        for part in events.chunks(PACKET_EVENTS) {
            self.raw.clear();
            let fail = |error| Error::Io { path: PathBuf::from(&self.name), error };
            aedat4::packet_events(part, &mut self.raw).map_err(fail)?;
            let packet: Arc<[u8]> = aedat4::packet(&self.raw, self.compression).map_err(fail)?.into();
            let (mut clients, gone_dropped) = (lock(&self.clients), &mut self.gone_dropped);
            clients.retain_mut(|c| {
                let sent = if wait {
                    c.packets.send(Arc::clone(&packet)).map_err(|_| TrySendError::Disconnected(()))
                } else {
                    c.packets.try_send(Arc::clone(&packet)).map_err(|e| match e {
                        TrySendError::Full(_) => TrySendError::Full(()),
                        TrySendError::Disconnected(_) => TrySendError::Disconnected(()),
                    })
                };
                match sent {
                    Ok(()) => true,
                    Err(TrySendError::Full(())) => {
                        c.dropped += 1;
                        true
                    }
                    Err(TrySendError::Disconnected(())) => {
                        *gone_dropped += c.dropped;
                        false
                    }
                }
            });
        }
        Ok(())
    }

    /// Stops listening, hands every client what was sent to it and closes its connection
    /// (the end of the stream, to the client); returns what was served.
    pub fn finish(mut self) -> Served {
        self.close()
    }

    fn close(&mut self) -> Served {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(listening) = self.listening.take() {
            let _ = listening.join();
        }
        let clients = std::mem::take(&mut *lock(&self.clients));
        let dropped_packets = self.gone_dropped + clients.iter().map(|c| c.dropped).sum::<u64>();
        // Each writer sends what is queued, then sees its channel closed and ends; one whose
        // client stopped reading is cut off after the grace.
        let writers: Vec<_> = clients.into_iter().map(|c| (c.writing, c.shut)).collect();
        let deadline = std::time::Instant::now() + FINISH_GRACE;
        while writers.iter().any(|(w, _)| !w.is_finished()) && std::time::Instant::now() < deadline {
            std::thread::sleep(POLL);
        }
        for (writing, shut) in writers {
            if !writing.is_finished() {
                shut();
            }
            let _ = writing.join();
        }
        if let Some(file) = self.socket_file.take() {
            let _ = std::fs::remove_file(file);
        }
        Served { clients: self.served.load(Ordering::Relaxed), dropped_packets }
    }
}

impl Drop for DvServer {
    fn drop(&mut self) {
        if self.listening.is_some() {
            self.close();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Takes clients until `stop`: each gets the header and a thread that writes its packets.
fn listen(listener: &Listener, header: &Arc<[u8]>, clients: &Mutex<Vec<Client>>, served: &AtomicU64, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        let (out, shut) = match listener.accept() {
            Ok(out) => out,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(POLL);
                continue;
            }
            Err(e) => {
                // Out of file descriptors, say: try again later, not at once.
                tracing::warn!("a client could not connect: {e}");
                std::thread::sleep(POLL);
                continue;
            }
        };
        let (packets, queued) = sync_channel(PACKETS_WAITING);
        let header = Arc::clone(header);
        let spawned = std::thread::Builder::new().name("dynapviz-dv-client".into()).spawn(move || write_client(out, &header, &queued));
        match spawned {
            Ok(writing) => {
                served.fetch_add(1, Ordering::Relaxed);
                lock(clients).push(Client { packets, dropped: 0, writing, shut });
            }
            Err(e) => tracing::warn!("no thread for a client: {e}"),
        }
    }
}

/// Writes the header, then each packet queued, until the queue closes or the client goes.
fn write_client(mut out: Box<dyn Write + Send>, header: &[u8], queued: &Receiver<Arc<[u8]>>) {
    if out.write_all(header).is_err() {
        return;
    }
    while let Ok(packet) = queued.recv() {
        if out.write_all(&packet).is_err() {
            return;
        }
    }
    let _ = out.flush();
}
