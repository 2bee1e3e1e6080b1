//! The streaming reader interface and `open`, which picks the decoder for a file.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::formats;
use crate::source::Source;
use crate::{Error, Event, Format, Geometry, Result};

/// Default number of events a caller asks for per chunk: large enough to amortise the call,
/// small enough (about 1 MiB of events) that memory stays bounded on any file size.
pub const CHUNK: usize = 1 << 16;

/// Decodes a recording chunk by chunk; memory use does not depend on the file size.
pub trait EventReader: Send {
    /// The file format being decoded.
    fn format(&self) -> Format;
    /// The sensor size, when the file states it (or the format fixes it).
    fn geometry(&self) -> Option<Geometry>;
    /// Appends up to `max` events to `out` and returns how many; `Ok(0)` means the end.
    fn read_chunk(&mut self, out: &mut Vec<Event>, max: usize) -> Result<usize>;
    /// Records the reader skipped on purpose, with the reason (invalid flags, frames, IMU...).
    fn skipped(&self) -> &Skipped {
        &Skipped::NONE
    }
}

/// Counts of data a reader skipped on purpose, so nothing is lost silently.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Skipped {
    /// Events marked invalid by the file itself (AEDAT 3.1 valid bit).
    pub invalid_events: u64,
    /// Packets or words of other kinds: frames, IMU, triggers, ATIS exposure measurements.
    pub other_records: u64,
}

impl Skipped {
    const NONE: Skipped = Skipped { invalid_events: 0, other_records: 0 };

    /// Both counts together: what several readers of one stream skipped.
    pub fn plus(&self, other: &Skipped) -> Skipped {
        Skipped { invalid_events: self.invalid_events + other.invalid_events, other_records: self.other_records + other.other_records }
    }
}

/// Opens a recording, recognising its format from its content, then its extension; or, for a
/// path `tcp://HOST:PORT`, connects to the live stream there (see [`crate::net`]).
pub fn open(path: &Path) -> Result<Box<dyn EventReader>> {
    if let Some(addr) = crate::net::address(path) {
        return crate::net::connect(addr);
    }
    let format = detect(path)?;
    open_as(path, format)
}

/// Recognises the format of a file without decoding it.
pub fn detect(path: &Path) -> Result<Format> {
    let mut head = [0u8; 512];
    let mut file = File::open(path).map_err(|source| Error::Io { path: path.to_path_buf(), error: source })?;
    let mut n = 0;
    while n < head.len() {
        match file.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(source) => {
                return Err(Error::Io { path: path.to_path_buf(), error: source });
            }
        }
    }
    Format::from_content(&head[..n]).or_else(|| Format::from_extension(path)).ok_or_else(|| Error::UnknownFormat {
        path: path.to_path_buf(),
        reason: "no known magic number or header, and the extension is not one of \
                 .aedat .aedat4 .raw .evt21 .evt3 .dat .es .bin .npy .npz .csv"
            .into(),
    })
}

/// Opens a recording with the decoder of `format`, whatever the file is called.
pub fn open_as(path: &Path, format: Format) -> Result<Box<dyn EventReader>> {
    if format == Format::Npz {
        return Ok(Box::new(formats::npz::Reader::open(path)?));
    }
    let file = File::open(path).map_err(|source| Error::Io { path: path.to_path_buf(), error: source })?;
    from_reader(path, Box::new(file), format)
}

/// Decodes `format` from any byte stream; `name` is used in error messages.
/// (`npz` needs a seekable file: use [`open_as`].)
pub fn from_reader(name: &Path, bytes: Box<dyn Read + Send>, format: Format) -> Result<Box<dyn EventReader>> {
    let src = Source::new(name, bytes);
    Ok(match format {
        Format::Aedat2 => Box::new(formats::aedat2::Reader::new(src)?),
        Format::Aedat31 => Box::new(formats::aedat3::Reader::new(src)?),
        Format::Aedat4 => Box::new(formats::aedat4::Reader::new(src)?),
        Format::Evt2 => Box::new(formats::evt2::Reader::new(src)?),
        Format::Evt21 => Box::new(formats::evt21::Reader::new(src)?),
        Format::Evt3 => Box::new(formats::evt3::Reader::new(src)?),
        Format::Dat => Box::new(formats::dat::Reader::new(src)?),
        Format::Es => Box::new(formats::es::Reader::new(src)?),
        Format::Nmnist => Box::new(formats::nmnist::Reader::new(src)),
        Format::Npy => Box::new(formats::npy::Reader::new(src)?),
        Format::Csv => Box::new(formats::csv::Reader::new(src)),
        Format::Npz => {
            return Err(Error::UnknownFormat { path: name.to_path_buf(), reason: "npz archives must be opened from a file".into() });
        }
    })
}

/// Reads a whole recording into memory: for tests and small files only.
pub fn read_all(reader: &mut dyn EventReader) -> Result<Vec<Event>> {
    let mut out = Vec::new();
    while reader.read_chunk(&mut out, CHUNK)? > 0 {}
    Ok(out)
}
