//! Prophesee EVT 2.0: `%` header lines, then little-endian 32-bit words, the type in the top
//! four bits. CD_OFF (0x0) / CD_ON (0x1) carry 6 low timestamp bits, an 11-bit x and an 11-bit
//! y; EV_TIME_HIGH (0x8) carries the upper 28 bits. Triggers and vendor words are skipped and
//! counted. Gen3 headers carry no geometry line: the size is inferred from the plugin name
//! (640x480 for Gen3, 1280x720 for IMX636/Gen4) or left unknown, never guessed.

use std::io::Write;

use crate::reader::Skipped;
use crate::source::{Source, first_outside, header_value};
use crate::{Event, Format, Geometry, Result};

const CD_OFF: u32 = 0x0;
const CD_ON: u32 = 0x1;
const TIME_HIGH: u32 = 0x8;

/// Reads the size a Prophesee raw header states: `% geometry WxH`, `% format ...;width=;height=`,
/// or the sensor named by the plugin / generation lines.
pub(crate) fn header_geometry(lines: &[String]) -> Option<Geometry> {
    if let Some(g) = header_value(lines, "geometry").and_then(super::dat::parse_wxh) {
        return Some(g);
    }
    if let Some(fmt) = header_value(lines, "format") {
        let get = |k: &str| fmt.split(';').find_map(|kv| kv.trim().strip_prefix(k)?.strip_prefix('=')?.trim().parse::<u16>().ok());
        if let (Some(w), Some(h)) = (get("width"), get("height")) {
            return Some(Geometry::new(w, h));
        }
    }
    ["plugin_name", "sensor_name", "sensor_generation", "camera_integrator_name"].iter().filter_map(|k| header_value(lines, k)).find_map(
        |v| {
            let v = v.to_ascii_lowercase();
            if v.starts_with("3") {
                Some(Geometry::new(640, 480))
            } else if v.starts_with("4") {
                Some(Geometry::new(1280, 720))
            } else {
                super::known_sensor(&v)
            }
        },
    )
}

/// Streaming EVT 2.0 decoder.
pub struct Reader {
    src: Source,
    geometry: Option<Geometry>,
    buf: Vec<u8>,
    high: i64,
    high_unwrap: super::Unwrap,
    skipped: Skipped,
}

impl Reader {
    pub(crate) fn new(mut src: Source) -> Result<Self> {
        let lines = src.header_lines(b'%', "% end", false)?;
        let geometry = header_geometry(&lines);
        Ok(Self { src, geometry, buf: Vec::new(), high: 0, high_unwrap: super::Unwrap::new(28), skipped: Skipped::default() })
    }
}

impl crate::EventReader for Reader {
    fn format(&self) -> Format {
        Format::Evt2
    }

    fn geometry(&self) -> Option<Geometry> {
        self.geometry
    }

    fn skipped(&self) -> &Skipped {
        &self.skipped
    }

    fn read_chunk(&mut self, out: &mut Vec<Event>, max: usize) -> Result<usize> {
        let start_len = out.len();
        loop {
            let start = self.src.offset();
            let words = self.src.read_records(&mut self.buf, 4, max, "an EVT 2.0 word")?;
            if words == 0 {
                break;
            }
            let first = out.len();
            // Room for every word first: a push then never grows the buffer, and the loop stays
            // plain (an `extend` over a filter cannot size its room and cost twice as much).
            out.reserve(words);
            for w in self.buf[..words * 4].chunks_exact(4) {
                let w = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
                match w >> 28 {
                    CD_OFF | CD_ON => out.push(Event {
                        t: (self.high << 6) | i64::from((w >> 22) & 0x3F),
                        x: ((w >> 11) & 0x7FF) as u16,
                        y: (w & 0x7FF) as u16,
                        p: w >> 28 == CD_ON,
                    }),
                    TIME_HIGH => self.high = self.high_unwrap.apply(u64::from(w & 0x0FFF_FFFF)),
                    _ => self.skipped.other_records += 1,
                }
            }
            // Bounds are checked in a second, branch-light pass; the offset of an offending
            // event is found again only on the error path.
            if let Some((bad, g)) = first_outside(&out[first..], self.geometry) {
                let word = self.buf[..words * 4]
                    .chunks_exact(4)
                    .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]) >> 28)
                    .enumerate()
                    .filter(|(_, k)| *k == CD_OFF || *k == CD_ON)
                    .nth(bad)
                    .map_or(0, |(i, _)| i);
                return Err(self.src.outside(&out[first + bad], g, start + 4 * word as u64));
            }
            if out.len() > start_len {
                break;
            }
        }
        Ok(out.len() - start_len)
    }
}

/// Writes EVT 2.0 with a header that states the geometry.
pub struct Writer<W: Write> {
    out: W,
    high: Option<u64>,
}

impl<W: Write> Writer<W> {
    /// Writes the header.
    pub fn new(mut out: W, geometry: Geometry) -> std::io::Result<Self> {
        write!(
            out,
            "% evt 2.0\n% format EVT2;height={h};width={w}\n% geometry {w}x{h}\n% integrator_name dynapviz\n% end\n",
            w = geometry.width,
            h = geometry.height
        )?;
        Ok(Self { out, high: None })
    }

    /// Appends events; timestamps must be non-negative (EVT 2.0 has no sign).
    pub fn write(&mut self, events: &[Event]) -> std::io::Result<()> {
        for e in events {
            let t = u64::try_from(e.t).map_err(|_| invalid("EVT 2.0 cannot store negative timestamps"))?;
            let high = t >> 6;
            if self.high != Some(high) {
                for step in super::wrap_steps(self.high, high, 28)? {
                    self.out.write_all(&((TIME_HIGH << 28) | (step & 0x0FFF_FFFF) as u32).to_le_bytes())?;
                }
                self.high = Some(high);
            }
            if e.x > 0x7FF || e.y > 0x7FF {
                return Err(invalid("EVT 2.0 stores coordinates below 2048"));
            }
            let kind = if e.p { CD_ON } else { CD_OFF };
            let w = (kind << 28) | (((t & 0x3F) as u32) << 22) | (u32::from(e.x) << 11) | u32::from(e.y);
            self.out.write_all(&w.to_le_bytes())?;
        }
        Ok(())
    }

    /// Flushes and returns the sink.
    pub fn finish(mut self) -> std::io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

pub(crate) fn invalid(msg: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, msg.to_string())
}
