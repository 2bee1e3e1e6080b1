//! Prophesee EVT 3.0: `%` header lines, then little-endian 16-bit words, the type in the top
//! four bits. The time is split over TIME_HIGH (bits 12..24) and TIME_LOW (bits 0..12); TIME_HIGH
//! wraps every 2^24 µs and is unwrapped here. Pixels come one at a time (ADDR_X after ADDR_Y) or
//! as 12- and 8-bit masks after VECT_BASE_X, each mask advancing the base x.

use std::io::Write;

use crate::reader::Skipped;
use crate::source::Source;
use crate::{Event, Format, Geometry, Result};

const ADDR_Y: u16 = 0x0;
const ADDR_X: u16 = 0x2;
const VECT_BASE_X: u16 = 0x3;
const VECT_12: u16 = 0x4;
const VECT_8: u16 = 0x5;
const TIME_LOW: u16 = 0x6;
const TIME_HIGH: u16 = 0x8;

/// Streaming EVT 3.0 decoder.
pub struct Reader {
    src: Source,
    geometry: Option<Geometry>,
    buf: Vec<u8>,
    y: u16,
    base_x: u16,
    pol: bool,
    high: i64,
    low: i64,
    high_unwrap: super::Unwrap,
    skipped: Skipped,
}

impl Reader {
    pub(crate) fn new(mut src: Source) -> Result<Self> {
        let lines = src.header_lines(b'%', "% end", false)?;
        let geometry = super::evt2::header_geometry(&lines);
        Ok(Self {
            src,
            geometry,
            buf: Vec::new(),
            y: 0,
            base_x: 0,
            pol: false,
            high: 0,
            low: 0,
            high_unwrap: super::Unwrap::new(12),
            skipped: Skipped::default(),
        })
    }

    fn emit(&self, out: &mut Vec<Event>, x: u16, p: bool, offset: u64) -> Result<()> {
        let e = Event { t: (self.high << 12) | self.low, x, y: self.y, p };
        self.src.check_xy(&e, self.geometry, offset)?;
        out.push(e);
        Ok(())
    }
}

impl crate::EventReader for Reader {
    fn format(&self) -> Format {
        Format::Evt3
    }

    fn geometry(&self) -> Option<Geometry> {
        self.geometry
    }

    fn skipped(&self) -> &Skipped {
        &self.skipped
    }

    fn read_chunk(&mut self, out: &mut Vec<Event>, max: usize) -> Result<usize> {
        let start_len = out.len();
        let mut buf = std::mem::take(&mut self.buf);
        let result = (|| {
            loop {
                let start = self.src.offset();
                let words = self.src.read_records(&mut buf, 2, max.max(1), "an EVT 3.0 word")?;
                if words == 0 {
                    return Ok(());
                }
                for (i, w) in buf[..words * 2].chunks_exact(2).enumerate() {
                    let w = u16::from_le_bytes([w[0], w[1]]);
                    let offset = start + 2 * i as u64;
                    match w >> 12 {
                        ADDR_Y => self.y = w & 0x7FF,
                        ADDR_X => self.emit(out, w & 0x7FF, (w >> 11) & 1 == 1, offset)?,
                        VECT_BASE_X => {
                            self.base_x = w & 0x7FF;
                            self.pol = (w >> 11) & 1 == 1;
                        }
                        VECT_12 | VECT_8 => {
                            let width = if w >> 12 == VECT_12 { 12 } else { 8 };
                            let mask = w & ((1 << width) - 1);
                            for bit in 0..width {
                                if mask & (1 << bit) != 0 {
                                    self.emit(out, self.base_x.wrapping_add(bit), self.pol, offset)?;
                                }
                            }
                            self.base_x = self.base_x.wrapping_add(width);
                        }
                        TIME_LOW => self.low = i64::from(w & 0xFFF),
                        TIME_HIGH => self.high = self.high_unwrap.apply(u64::from(w & 0xFFF)),
                        _ => self.skipped.other_records += 1,
                    }
                }
                if out.len() > start_len {
                    return Ok(());
                }
            }
        })();
        self.buf = buf;
        result.map(|()| out.len() - start_len)
    }
}

/// Writes EVT 3.0 (one ADDR_X word per event; TIME_HIGH, TIME_LOW and ADDR_Y only on change).
pub struct Writer<W: Write> {
    out: W,
    high: Option<u64>,
    low: Option<u64>,
    y: Option<u16>,
}

impl<W: Write> Writer<W> {
    /// Writes the header.
    pub fn new(mut out: W, geometry: Geometry) -> std::io::Result<Self> {
        write!(
            out,
            "% evt 3.0\n% format EVT3;height={h};width={w}\n% geometry {w}x{h}\n% integrator_name dynapviz\n% end\n",
            w = geometry.width,
            h = geometry.height
        )?;
        Ok(Self { out, high: None, low: None, y: None })
    }

    fn word(&mut self, kind: u16, value: u16) -> std::io::Result<()> {
        self.out.write_all(&((kind << 12) | value).to_le_bytes())
    }

    /// Appends events; timestamps must be non-negative.
    pub fn write(&mut self, events: &[Event]) -> std::io::Result<()> {
        for e in events {
            let t = u64::try_from(e.t).map_err(|_| super::evt2::invalid("EVT 3.0 cannot store negative timestamps"))?;
            if e.x > 0x7FF || e.y > 0x7FF {
                return Err(super::evt2::invalid("EVT 3.0 stores coordinates below 2048"));
            }
            let high = t >> 12;
            if self.high != Some(high) {
                for step in super::wrap_steps(self.high, high, 12)? {
                    self.word(TIME_HIGH, (step & 0xFFF) as u16)?;
                }
                self.high = Some(high);
                self.low = None;
            }
            let low = t & 0xFFF;
            if self.low != Some(low) {
                self.word(TIME_LOW, low as u16)?;
                self.low = Some(low);
            }
            if self.y != Some(e.y) {
                self.word(ADDR_Y, e.y)?;
                self.y = Some(e.y);
            }
            self.word(ADDR_X, e.x | (u16::from(e.p) << 11))?;
        }
        Ok(())
    }

    /// Flushes and returns the sink.
    pub fn finish(mut self) -> std::io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}
