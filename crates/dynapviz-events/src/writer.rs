//! One entry point for writing any writable format, so tools convert without knowing formats.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use crate::formats::{aedat2, aedat3, aedat4, csv, es, evt2, evt3, evt21, npy};
use crate::{Error, Event, Format, Geometry, Result};

type Out = BufWriter<File>;

enum Inner {
    Csv(csv::Writer<Out>),
    Npy(npy::Writer<Out>),
    Es(es::Writer<Out>),
    Aedat2(aedat2::Writer<Out>),
    Aedat31(aedat3::Writer<Out>),
    Aedat4(aedat4::Writer<Out>),
    Evt2(evt2::Writer<Out>),
    Evt21(evt21::Writer<Out>),
    Evt3(evt3::Writer<Out>),
}

/// Writes events to a file in a chosen format.
pub struct EventWriter {
    inner: Inner,
    path: PathBuf,
    format: Format,
    /// The sensor size the file states, which every event must lie in (`None`: the format
    /// states none, CSV and npy). A reader rejects a file with an event outside it.
    sensor: Option<Geometry>,
    /// Events written so far, to name the one that does not fit.
    written: u64,
}

impl EventWriter {
    /// Creates `path` in `format`; `geometry` is stored by the formats that hold one.
    pub fn create(path: &Path, format: Format, geometry: Geometry) -> Result<Self> {
        Self::create_named(path, path, format, geometry)
    }

    /// [`Self::create`] of a file written under a temporary name, `file`, and moved to `path`
    /// once complete: errors name `path`, the file the user asked for.
    pub fn create_named(file: &Path, path: &Path, format: Format, geometry: Geometry) -> Result<Self> {
        let io = |source| Error::Io { path: path.to_path_buf(), error: source };
        let sensor = (!matches!(format, Format::Csv | Format::Npy)).then_some(geometry);
        if sensor.is_some() && (geometry.width == 0 || geometry.height == 0) {
            return Err(Error::Unsupported {
                path: path.to_path_buf(),
                format: format.name(),
                message: format!("a sensor of {geometry} holds no pixel: the file must state a size of at least 1x1"),
            });
        }
        let out = BufWriter::with_capacity(1 << 16, File::create(file).map_err(io)?);
        let inner = match format {
            Format::Csv => Inner::Csv(csv::Writer::new(out).map_err(io)?),
            Format::Npy => Inner::Npy(npy::Writer::new(out).map_err(io)?),
            Format::Es => Inner::Es(es::Writer::new(out, geometry).map_err(io)?),
            Format::Aedat2 => {
                if geometry.width > 128 || geometry.height > 128 {
                    return Err(Error::Unsupported {
                        path: path.to_path_buf(),
                        format: "AEDAT 2.0",
                        message: format!("only DVS128 addresses are written; the sensor is {geometry}"),
                    });
                }
                Inner::Aedat2(aedat2::Writer::new(out).map_err(io)?)
            }
            Format::Aedat31 => {
                let source = if geometry == Geometry::DVS128 {
                    "DVS128".to_string()
                } else {
                    format!("sizeX {} sizeY {}", geometry.width, geometry.height)
                };
                Inner::Aedat31(aedat3::Writer::new(out, &source).map_err(io)?)
            }
            Format::Aedat4 => Inner::Aedat4(aedat4::Writer::new(out, geometry).map_err(io)?),
            Format::Evt2 => Inner::Evt2(evt2::Writer::new(out, geometry).map_err(io)?),
            Format::Evt21 => Inner::Evt21(evt21::Writer::new(out, geometry).map_err(io)?),
            Format::Evt3 => Inner::Evt3(evt3::Writer::new(out, geometry).map_err(io)?),
            Format::Dat | Format::Nmnist | Format::Npz => {
                return Err(Error::Unsupported {
                    path: path.to_path_buf(),
                    format: format.name(),
                    message: format!("this format is read-only here; write one of {}", Format::writable_names()),
                });
            }
        };
        Ok(Self { inner, path: path.to_path_buf(), format, sensor, written: 0 })
    }

    /// A writer's refusal (`InvalidInput`) is data the format cannot hold; anything else is I/O.
    fn wrap(path: &Path, format: Format, e: std::io::Error) -> Error {
        if e.kind() == std::io::ErrorKind::InvalidInput {
            Error::Unsupported { path: path.to_path_buf(), format: format.name(), message: e.to_string() }
        } else {
            Error::Io { path: path.to_path_buf(), error: e }
        }
    }

    /// Appends events.
    pub fn write(&mut self, events: &[Event]) -> Result<()> {
        if let Some(g) = self.sensor
            && let Some(i) = events.iter().position(|e| e.x >= g.width || e.y >= g.height)
        {
            let e = events[i];
            return Err(Error::Unsupported {
                path: self.path.clone(),
                format: self.format.name(),
                message: format!(
                    "event {} (t = {} µs, x = {}, y = {}) lies outside the {g} sensor the file states: give a size that holds it (convert --geometry WxH)",
                    self.written + i as u64 + 1,
                    e.t,
                    e.x,
                    e.y
                ),
            });
        }
        self.written += events.len() as u64;
        let r = match &mut self.inner {
            Inner::Csv(w) => w.write(events),
            Inner::Npy(w) => w.write(events),
            Inner::Es(w) => w.write(events),
            Inner::Aedat2(w) => w.write(events),
            Inner::Aedat31(w) => w.write(events),
            Inner::Aedat4(w) => w.write(events),
            Inner::Evt2(w) => w.write(events),
            Inner::Evt21(w) => w.write(events),
            Inner::Evt3(w) => w.write(events),
        };
        r.map_err(|e| Self::wrap(&self.path, self.format, e))
    }

    /// Completes the file (trailing packets, header fix-ups) and flushes it.
    pub fn finish(self) -> Result<()> {
        let r = match self.inner {
            Inner::Csv(w) => w.finish().map(drop),
            Inner::Npy(w) => w.finish().map(drop),
            Inner::Es(w) => w.finish().map(drop),
            Inner::Aedat2(w) => w.finish().map(drop),
            Inner::Aedat31(w) => w.finish().map(drop),
            Inner::Aedat4(w) => w.finish().map(drop),
            Inner::Evt2(w) => w.finish().map(drop),
            Inner::Evt21(w) => w.finish().map(drop),
            Inner::Evt3(w) => w.finish().map(drop),
        };
        r.map_err(|e| Self::wrap(&self.path, self.format, e))
    }
}
