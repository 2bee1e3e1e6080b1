//! Event Stream (`.es`, version 2): the 12-byte signature `Event Stream`, three version bytes,
//! a type byte (0 generic, 1 DVS, 2 ATIS, 3 colour), for DVS and ATIS the width and height as
//! little-endian u16, then a byte stream of timestamp deltas. DVS: a byte `0xFF` adds 127 µs;
//! any other byte but `0xFE` (reset marker) holds `delta << 1 | polarity` and is followed by x and
//! y as little-endian u16. ATIS: `0b111111xx` adds `63 * xx` µs; otherwise the byte holds
//! `delta << 2 | polarity << 1 | is_exposure`; exposure measurements are skipped and counted.

use std::io::Write;

use crate::reader::Skipped;
use crate::source::Source;
use crate::{Event, Format, Geometry, Result};

const SIGNATURE: &[u8; 12] = b"Event Stream";
const TYPE_DVS: u8 = 1;
const TYPE_ATIS: u8 = 2;

/// Streaming Event Stream decoder (DVS and ATIS types).
pub struct Reader {
    src: Source,
    geometry: Geometry,
    atis: bool,
    t: i64,
    buf: Vec<u8>,
    /// Bytes of a partly read event carried over between chunks.
    pending: Vec<u8>,
    pending_offset: u64,
    skipped: Skipped,
}

impl Reader {
    pub(crate) fn new(mut src: Source) -> Result<Self> {
        let mut head = [0u8; 20];
        src.read_exact(&mut head[..16], "the Event Stream signature, version and type")?;
        if &head[..12] != SIGNATURE {
            return Err(src.error_at(0, "expected the signature `Event Stream`"));
        }
        let (major, kind) = (head[12], head[15]);
        if major != 2 {
            return Err(src.error_at(12, format!("Event Stream version {major}.{}.{} is not supported: expected 2.x", head[13], head[14])));
        }
        let atis = match kind {
            TYPE_DVS => false,
            TYPE_ATIS => true,
            0 | 3 => {
                return Err(src
                    .error_at(15, format!("Event Stream type {kind} (generic/colour) holds no DVS events: expected 1 (DVS) or 2 (ATIS)")));
            }
            k => return Err(src.error_at(15, format!("unknown Event Stream type {k}: expected 0..3"))),
        };
        src.read_exact(&mut head[16..20], "the sensor width and height")?;
        let geometry = Geometry::new(u16::from_le_bytes([head[16], head[17]]), u16::from_le_bytes([head[18], head[19]]));
        Ok(Self {
            src,
            geometry,
            atis,
            t: 0,
            buf: Vec::new(),
            pending: Vec::with_capacity(5),
            pending_offset: 0,
            skipped: Skipped::default(),
        })
    }

    /// Feeds one byte to the decoder state machine.
    fn byte(&mut self, b: u8, offset: u64, out: &mut Vec<Event>) -> Result<()> {
        if self.pending.is_empty() {
            if self.atis {
                if b >> 2 == 0b11_1111 {
                    self.t += 63 * i64::from(b & 0b11);
                    return Ok(());
                }
                self.t += i64::from(b >> 2);
            } else {
                if b == 0xFF {
                    self.t += 127;
                    return Ok(());
                }
                if b == 0xFE {
                    return Ok(());
                }
                self.t += i64::from(b >> 1);
            }
            self.pending.push(b);
            self.pending_offset = offset;
            return Ok(());
        }
        self.pending.push(b);
        if self.pending.len() == 5 {
            let p = &self.pending;
            let x = u16::from_le_bytes([p[1], p[2]]);
            let y = u16::from_le_bytes([p[3], p[4]]);
            let (exposure, polarity) = if self.atis { (p[0] & 1 == 1, p[0] & 2 != 0) } else { (false, p[0] & 1 == 1) };
            if exposure {
                self.skipped.other_records += 1;
            } else {
                // Event Stream counts y from the bottom row.
                let flipped_y = self.geometry.height.checked_sub(1).and_then(|h| h.checked_sub(y));
                let Some(y) = flipped_y.filter(|_| x < self.geometry.width) else {
                    return Err(self
                        .src
                        .error_at(self.pending_offset, format!("event at x={x} y={y} lies outside the {} sensor", self.geometry)));
                };
                out.push(Event { t: self.t, x, y, p: polarity });
            }
            self.pending.clear();
        }
        Ok(())
    }
}

impl crate::EventReader for Reader {
    fn format(&self) -> Format {
        Format::Es
    }

    fn geometry(&self) -> Option<Geometry> {
        Some(self.geometry)
    }

    fn skipped(&self) -> &Skipped {
        &self.skipped
    }

    fn read_chunk(&mut self, out: &mut Vec<Event>, max: usize) -> Result<usize> {
        let start_len = out.len();
        let mut buf = std::mem::take(&mut self.buf);
        buf.resize(max.max(1) * 5, 0);
        let result = loop {
            let start = self.src.offset();
            let n = match self.src.read_up_to(&mut buf) {
                Ok(n) => n,
                Err(e) => break Err(e),
            };
            if n == 0 {
                if !self.pending.is_empty() {
                    break Err(self.src.error_at(
                        self.pending_offset,
                        format!("file ends inside an event: {} of its 5 bytes present", self.pending.len()),
                    ));
                }
                break Ok(());
            }
            if let Err(e) = buf[..n].iter().enumerate().try_for_each(|(i, &b)| self.byte(b, start + i as u64, out)) {
                break Err(e);
            }
            if out.len() > start_len {
                break Ok(());
            }
        };
        self.buf = buf;
        result.map(|()| out.len() - start_len)
    }
}

/// Writes Event Stream 2.0.0, DVS type. The format counts time from 0 by deltas, so the first
/// timestamp must be small (a recording far from 0 needs `--rebase-time`).
pub struct Writer<W: Write> {
    out: W,
    geometry: Geometry,
    t: Option<i64>,
}

/// Largest first timestamp written: beyond it the leading overflow bytes would dominate the file.
const MAX_START_US: i64 = 1 << 27;

impl<W: Write> Writer<W> {
    /// Writes the header.
    pub fn new(mut out: W, geometry: Geometry) -> std::io::Result<Self> {
        out.write_all(SIGNATURE)?;
        out.write_all(&[2, 0, 0, TYPE_DVS])?;
        out.write_all(&geometry.width.to_le_bytes())?;
        out.write_all(&geometry.height.to_le_bytes())?;
        Ok(Self { out, geometry, t: None })
    }

    /// Appends events; timestamps must not decrease.
    pub fn write(&mut self, events: &[Event]) -> std::io::Result<()> {
        for e in events {
            let prev = match self.t {
                Some(t) => t,
                None if (0..MAX_START_US).contains(&e.t) => 0,
                None => {
                    return Err(super::evt2::invalid(
                        "Event Stream counts time from 0: the first timestamp must be in 0..2^27 µs (use --rebase-time)",
                    ));
                }
            };
            let mut delta = e.t - prev;
            if delta < 0 {
                return Err(super::evt2::invalid("Event Stream timestamps must not decrease"));
            }
            if !self.geometry.contains(e.x, e.y) {
                return Err(super::evt2::invalid("event outside the sensor geometry"));
            }
            while delta >= 127 {
                self.out.write_all(&[0xFF])?;
                delta -= 127;
            }
            let y = self.geometry.height - 1 - e.y;
            let mut rec = [((delta as u8) << 1) | u8::from(e.p), 0, 0, 0, 0];
            rec[1..3].copy_from_slice(&e.x.to_le_bytes());
            rec[3..5].copy_from_slice(&y.to_le_bytes());
            self.out.write_all(&rec)?;
            self.t = Some(e.t);
        }
        Ok(())
    }

    /// Flushes and returns the sink.
    pub fn finish(mut self) -> std::io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}
