//! Live event streams over the network: the AEDAT 4.0 stream that iniVation's DV software
//! ("Output to network" module) and dv-processing's `NetworkWriter` serve over TCP, what a
//! DVXplorer or DAVIS camera sends to whoever connects. The stream is an AEDAT 4.0 file
//! without its signature line and data table: an i32 length and the `IOHeader` flatbuffer
//! (compression, the XML description of the stream with its sensor size), then packets. Any
//! command that takes a recording takes `tcp://HOST:PORT` in its place.

use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::formats::aedat4;
use crate::source::Source;
use crate::{Error, EventReader, Result};

/// What marks a live stream's address in place of a file path.
pub const SCHEME: &str = "tcp://";

/// How long connecting, and then the stream's header, may take: a server that accepts and
/// says nothing is not a DV output.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// The `HOST:PORT` of a live stream given in place of a file path (`tcp://HOST:PORT`), or
/// `None` for a file.
pub fn address(path: &Path) -> Option<&str> {
    path.to_str()?.strip_prefix(SCHEME)
}

/// Connects to the DV network output at `addr` (`HOST:PORT`) and reads its header: the
/// reader then hands out each event packet as it arrives, and ends when the server closes
/// the connection. A read waits as long as the camera sends nothing.
pub fn connect(addr: &str) -> Result<Box<dyn EventReader>> {
    let name = PathBuf::from(format!("{SCHEME}{addr}"));
    let fail = |error: std::io::Error| Error::Io { path: name.clone(), error };
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
    let stream = stream.ok_or_else(|| {
        fail(std::io::Error::new(
            last.kind(),
            format!("{last}: expected a DV network output there (DV's \"Output to network\" module, or dv-processing's NetworkWriter)"),
        ))
    })?;
    // Events are small and few per packet at low rates: no batching by the kernel.
    stream.set_nodelay(true).map_err(fail)?;
    stream.set_read_timeout(Some(HEADER_TIMEOUT)).map_err(fail)?;
    let reading = stream.try_clone().map_err(fail)?;
    let reader = aedat4::Reader::live(Source::new(&name, Box::new(reading))).map_err(|e| match e {
        Error::Io { error, .. } if matches!(error.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => Error::Format {
            path: name.clone(),
            offset: 0,
            message: format!("no stream header within {} s: expected a DV network output", HEADER_TIMEOUT.as_secs()),
        },
        e => e,
    })?;
    // From here a quiet camera is no error: wait for it.
    stream.set_read_timeout(None).map_err(fail)?;
    Ok(Box::new(reader))
}
