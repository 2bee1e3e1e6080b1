//! Live event streams over the network: the AEDAT 4.0 stream that iniVation's DV software
//! ("Output to network" module) and dv-processing's `NetworkWriter` serve over TCP, what a
//! DVXplorer or DAVIS camera sends to whoever connects. The stream is an AEDAT 4.0 file
//! without its signature line and data table: an i32 length and the `IOHeader` flatbuffer
//! (compression, the XML description of the stream with its sensor size), then packets. Any
//! command that takes a recording takes `tcp://HOST:PORT` in its place, or `unix://PATH` for
//! the same stream on a local socket (DV's "Output to local socket", dv-processing's
//! `NetworkWriter` given a socket path).

use std::io::Read;
use std::net::{TcpStream, ToSocketAddrs};
#[cfg(unix)]
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::formats::aedat4;
use crate::source::Source;
use crate::{Error, EventReader, Result};

/// How long connecting, and then the stream's header, may take: a server that accepts and
/// says nothing is not a DV output.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a live stream is, given in place of a file path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Address<'a> {
    /// `tcp://HOST:PORT`.
    Tcp(&'a str),
    /// `unix://PATH`: a local socket.
    Unix(&'a Path),
}

/// The live stream a path names (`tcp://HOST:PORT`, `unix://PATH`), or `None` for a file.
pub fn address(path: &Path) -> Option<Address<'_>> {
    let path = path.to_str()?;
    if let Some(addr) = path.strip_prefix("tcp://") {
        Some(Address::Tcp(addr))
    } else {
        path.strip_prefix("unix://").map(|p| Address::Unix(Path::new(p)))
    }
}

/// Whether a path names a live stream (see [`address`]).
pub fn is_live(path: &Path) -> bool {
    address(path).is_some()
}

/// Whether connecting failed because nothing answers at the address, for now: refused,
/// timed out, unreachable, or no local socket there. A camera's server that is not up yet
/// fails so; a name that does not resolve, or a server that answers with something other
/// than a DV stream, does not.
pub fn nobody_there(error: &Error) -> bool {
    use std::io::ErrorKind::{
        AddrNotAvailable, ConnectionRefused, ConnectionReset, HostUnreachable, NetworkUnreachable, NotFound, TimedOut,
    };
    matches!(
        error,
        Error::Io { error, .. } if matches!(error.kind(), ConnectionRefused | ConnectionReset | TimedOut | HostUnreachable | NetworkUnreachable | AddrNotAvailable | NotFound)
    )
}

/// Connects to the DV network output at `address` and reads its header: the reader then
/// hands out each event packet as it arrives, and ends when the server closes the
/// connection. A read waits as long as the camera sends nothing.
pub fn connect(address: Address<'_>) -> Result<Box<dyn EventReader>> {
    match address {
        Address::Tcp(addr) => connect_tcp(addr),
        Address::Unix(path) => connect_unix(path),
    }
}

#[cfg(unix)]
fn connect_unix(path: &Path) -> Result<Box<dyn EventReader>> {
    let name = PathBuf::from(format!("unix://{}", path.display()));
    let fail = |error: std::io::Error| Error::Io { path: name.clone(), error };
    let stream = UnixStream::connect(path).map_err(|e| fail(not_there(e)))?;
    stream.set_read_timeout(Some(HEADER_TIMEOUT)).map_err(fail)?;
    let reader = read_header(&name, Box::new(stream.try_clone().map_err(fail)?))?;
    stream.set_read_timeout(None).map_err(fail)?;
    Ok(reader)
}

#[cfg(not(unix))]
fn connect_unix(path: &Path) -> Result<Box<dyn EventReader>> {
    let error = std::io::Error::new(std::io::ErrorKind::Unsupported, "local sockets need a Unix system: use tcp://HOST:PORT");
    Err(Error::Io { path: PathBuf::from(format!("unix://{}", path.display())), error })
}

/// `error`, saying what was expected where it happened.
fn not_there(error: std::io::Error) -> std::io::Error {
    std::io::Error::new(
        error.kind(),
        format!("{error}: expected a DV network output there (DV's \"Output to network\" module, or dv-processing's NetworkWriter)"),
    )
}

/// The reader of the stream `bytes` from `name`, once its header is read: a header that does
/// not come in time is an error that says so.
fn read_header(name: &Path, bytes: Box<dyn Read + Send>) -> Result<Box<dyn EventReader>> {
    let reader = aedat4::Reader::live(Source::new(name, bytes)).map_err(|e| match e {
        Error::Io { error, .. } if matches!(error.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => Error::Format {
            path: name.to_path_buf(),
            offset: 0,
            message: format!("no stream header within {} s: expected a DV network output", HEADER_TIMEOUT.as_secs()),
        },
        e => e,
    })?;
    Ok(Box::new(reader))
}

fn connect_tcp(addr: &str) -> Result<Box<dyn EventReader>> {
    let name = PathBuf::from(format!("tcp://{addr}"));
    let fail = |error: std::io::Error| Error::Io { path: name.clone(), error };
    let stream = dial(addr, &name)?;
    stream.set_read_timeout(Some(HEADER_TIMEOUT)).map_err(fail)?;
    let reading = stream.try_clone().map_err(fail)?;
    let reader = read_header(&name, Box::new(reading))?;
    // From here a quiet camera is no error: wait for it.
    stream.set_read_timeout(None).map_err(fail)?;
    Ok(reader)
}

/// A connection to `addr` (named `name` in errors), set up for a stream read as it comes.
fn dial(addr: &str, name: &Path) -> Result<TcpStream> {
    let fail = |error: std::io::Error| Error::Io { path: name.to_path_buf(), error };
    let targets: Vec<_> =
        addr.to_socket_addrs().map_err(|e| fail(std::io::Error::new(e.kind(), format!("{e}: expected tcp://HOST:PORT"))))?.collect();
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "the host has no address");
    let mut stream = None;
    for target in &targets {
        match TcpStream::connect_timeout(target, HEADER_TIMEOUT) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = e,
        }
    }
    let stream = stream.ok_or_else(|| fail(not_there(last)))?;
    // Events are small and few per packet at low rates: no batching by the kernel.
    stream.set_nodelay(true).map_err(fail)?;
    socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive()).map_err(fail)?;
    Ok(stream)
}

/// A quiet camera is no error, so a read waits without a timeout; a peer that vanished
/// without closing (its host lost power, a cable pulled) would keep it waiting for ever.
/// Probes after [`KEEPALIVE_IDLE`] of silence, [`KEEPALIVE_PROBES`] of them unanswered
/// [`KEEPALIVE_INTERVAL`] apart, end the read with an error instead (after 11 s), which
/// `run` answers by connecting again. A live peer's kernel answers them: nothing changes for
/// a quiet stream.
fn keepalive() -> socket2::TcpKeepalive {
    let k = socket2::TcpKeepalive::new().with_time(KEEPALIVE_IDLE);
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd", target_vendor = "apple", windows))]
    let k = k.with_interval(KEEPALIVE_INTERVAL);
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd", target_vendor = "apple"))]
    let k = k.with_retries(KEEPALIVE_PROBES);
    k
}

/// See [`keepalive`].
const KEEPALIVE_IDLE: Duration = Duration::from_secs(5);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(2);
const KEEPALIVE_PROBES: u32 = 3;

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// The probes are on, at the times [`keepalive`] says (what they do on a vanished peer
    /// is the kernel's: a test here cannot make a peer vanish without closing).
    #[test]
    fn a_camera_connection_probes_a_quiet_peer() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("address").to_string();
        let stream = dial(&addr, Path::new("tcp://test")).expect("dial");
        let s = socket2::SockRef::from(&stream);
        assert!(s.keepalive().expect("SO_KEEPALIVE"));
        assert_eq!(s.tcp_keepalive_time().expect("TCP_KEEPIDLE"), KEEPALIVE_IDLE);
        assert_eq!(s.tcp_keepalive_interval().expect("TCP_KEEPINTVL"), KEEPALIVE_INTERVAL);
        assert_eq!(s.tcp_keepalive_retries().expect("TCP_KEEPCNT"), KEEPALIVE_PROBES);
        assert!(s.tcp_nodelay().expect("TCP_NODELAY"));
    }
}
