//! numpy `.npz` archives: either one entry holding an event array in a layout `npy` reads
//! (preferably named `events`), or separate one-dimensional arrays named t, x, y and p. Entries
//! are streamed straight from the file (stored or deflated), so memory stays bounded.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::npy::{self, Header};
use crate::source::Source;
use crate::{Error, Event, EventReader, Format, Geometry, Result};

/// Streaming `.npz` decoder.
pub enum Reader {
    /// One array holding whole events.
    Single(npy::Reader),
    /// Separate t, x, y, p arrays read side by side.
    Columns(Columns),
}

/// Four one-dimensional arrays read in lockstep.
pub struct Columns {
    srcs: Vec<(Source, Header)>,
    remaining: usize,
    bufs: Vec<Vec<u8>>,
}

struct Entry {
    name: String,
    data_start: u64,
    size: u64,
    deflated: bool,
}

fn zip_error(path: &Path, e: zip::result::ZipError) -> Error {
    Error::Format { path: path.to_path_buf(), offset: 0, message: format!("not a readable npz (zip) archive: {e}") }
}

fn io_error(path: &Path, source: std::io::Error) -> Error {
    Error::Io { path: path.to_path_buf(), error: source }
}

/// Opens one entry as a byte stream of its own.
fn entry_source(path: &Path, e: &Entry) -> Result<Source> {
    let mut file = File::open(path).map_err(|s| io_error(path, s))?;
    file.seek(SeekFrom::Start(e.data_start)).map_err(|s| io_error(path, s))?;
    let raw = file.take(e.size);
    let bytes: Box<dyn Read + Send> = if e.deflated { Box::new(flate2::read::DeflateDecoder::new(raw)) } else { Box::new(raw) };
    Ok(Source::new(&PathBuf::from(format!("{}:{}", path.display(), e.name)), bytes))
}

impl Reader {
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|s| io_error(path, s))?;
        let mut archive = zip::ZipArchive::new(file).map_err(|e| zip_error(path, e))?;
        let mut entries = Vec::new();
        for i in 0..archive.len() {
            let f = archive.by_index_raw(i).map_err(|e| zip_error(path, e))?;
            let deflated = match f.compression() {
                zip::CompressionMethod::Stored => false,
                zip::CompressionMethod::Deflated => true,
                m => {
                    return Err(Error::Format {
                        path: path.to_path_buf(),
                        offset: f.header_start(),
                        message: format!("entry `{}` uses compression {m:?}: expected stored or deflated", f.name()),
                    });
                }
            };
            let name = f.name().trim_end_matches(".npy").to_string();
            entries.push(Entry { name, data_start: f.data_start(), size: f.compressed_size(), deflated });
        }
        let find = |names: &[&str]| entries.iter().find(|e| names.contains(&e.name.to_ascii_lowercase().as_str()));
        if let (Some(t), Some(x), Some(y), Some(p)) = (find(npy::T_NAMES), find(npy::X_NAMES), find(npy::Y_NAMES), find(npy::P_NAMES)) {
            let mut srcs = Vec::new();
            for e in [t, x, y, p] {
                let mut src = entry_source(path, e)?;
                let header = Header::read(&mut src)?;
                if header.fields.len() != 1 || header.shape.len() != 1 {
                    return Err(src.error_at(0, format!("column `{}` must be a one-dimensional plain array", e.name)));
                }
                srcs.push((src, header));
            }
            let rows = srcs[0].1.rows();
            if let Some((src, h)) = srcs.iter().find(|(_, h)| h.rows() != rows) {
                return Err(src.error_at(0, format!("column has {} rows, but t has {rows}", h.rows())));
            }
            return Ok(Reader::Columns(Columns { srcs, remaining: rows, bufs: vec![Vec::new(); 4] }));
        }
        let mut order: Vec<&Entry> = entries.iter().collect();
        order.sort_by_key(|e| e.name != "events");
        let mut first_error = None;
        for e in order {
            match npy::Reader::new(entry_source(path, e)?) {
                Ok(r) => return Ok(Reader::Single(r)),
                Err(err) => {
                    first_error.get_or_insert(err);
                }
            }
        }
        Err(first_error.unwrap_or_else(|| Error::Format { path: path.to_path_buf(), offset: 0, message: "archive holds no arrays".into() }))
    }
}

impl EventReader for Reader {
    fn format(&self) -> Format {
        Format::Npz
    }

    fn geometry(&self) -> Option<Geometry> {
        None
    }

    fn read_chunk(&mut self, out: &mut Vec<Event>, max: usize) -> Result<usize> {
        match self {
            Reader::Single(r) => r.read_chunk(out, max),
            Reader::Columns(c) => c.read_chunk(out, max),
        }
    }
}

impl Columns {
    fn read_chunk(&mut self, out: &mut Vec<Event>, max: usize) -> Result<usize> {
        let want = max.min(self.remaining);
        if want == 0 {
            return Ok(0);
        }
        for ((src, h), buf) in self.srcs.iter_mut().zip(self.bufs.iter_mut()) {
            let n = src.read_records(buf, h.record, want, "a column value")?;
            if n < want {
                return Err(src.error(format!("column ends after {n} of {} remaining values", self.remaining)));
            }
        }
        let scalars: Vec<_> = self.srcs.iter().map(|(_, h)| (h.fields[0].1, h.record)).collect();
        for i in 0..want {
            let v = |c: usize| scalars[c].0.f64(&self.bufs[c][i * scalars[c].1..]);
            let (t, x, y, p) = (v(0), v(1), v(2), v(3));
            let (Ok(x), Ok(y)) = (u16::try_from(x as i64), u16::try_from(y as i64)) else {
                return Err(self.srcs[1].0.error(format!("event at x={x} y={y}: coordinates must be in 0..65535")));
            };
            out.push(Event { t: t.round() as i64, x, y, p: p > 0.0 });
        }
        self.remaining -= want;
        Ok(want)
    }
}
