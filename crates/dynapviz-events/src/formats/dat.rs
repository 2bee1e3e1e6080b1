//! Prophesee DAT: `%` header lines, then (from version 2) one byte event type and one byte event
//! size, then 8-byte events: u32 timestamp (µs), u32 with x in bits 0..14, y in 14..28 and
//! polarity in bit 28. The same layout serves the CD type (0x0C) of newer tools and the old
//! ATIS "2d" type (0x00) of N-CARS. The size comes from `% Width`/`% Height` or the sensor name.

use crate::source::{Source, header_value};
use crate::{Event, Format, Geometry, Result};

/// Streaming DAT decoder.
pub struct Reader {
    src: Source,
    geometry: Option<Geometry>,
    record: usize,
    buf: Vec<u8>,
    time: super::Unwrap,
}

impl Reader {
    pub(crate) fn new(mut src: Source) -> Result<Self> {
        let lines = src.header_lines(b'%', "% end", false)?;
        let num = |k: &str| header_value(&lines, k).and_then(|v| v.parse::<u16>().ok());
        let geometry = match (num("Width"), num("Height")) {
            (Some(w), Some(h)) => Some(Geometry::new(w, h)),
            _ => header_value(&lines, "geometry")
                .and_then(parse_wxh)
                .or_else(|| lines.iter().find_map(|l| super::known_sensor(l).filter(|_| l.contains("sensor")))),
        };
        let mut record = 8;
        let version = header_value(&lines, "Version").and_then(|v| v.parse::<u32>().ok()).unwrap_or(2);
        if version >= 2 || lines.is_empty() {
            let at = src.offset();
            let mut ts = [0u8; 2];
            src.read_exact(&mut ts, "the event type and size bytes")?;
            record = usize::from(ts[1]);
            if record < 8 {
                return Err(src.error_at(at + 1, format!("event size {record} is too small: expected 8 or more")));
            }
        }
        Ok(Self { src, geometry, record, buf: Vec::new(), time: super::Unwrap::new(32) })
    }
}

pub(crate) fn parse_wxh(v: &str) -> Option<Geometry> {
    let (w, h) = v.split_once(['x', 'X'])?;
    Some(Geometry::new(w.trim().parse().ok()?, h.trim().parse().ok()?))
}

impl crate::EventReader for Reader {
    fn format(&self) -> Format {
        Format::Dat
    }

    fn geometry(&self) -> Option<Geometry> {
        self.geometry
    }

    fn read_chunk(&mut self, out: &mut Vec<Event>, max: usize) -> Result<usize> {
        let start = self.src.offset();
        let n = self.src.read_records(&mut self.buf, self.record, max, "a DAT event")?;
        out.reserve(n);
        for (i, r) in self.buf[..n * self.record].chunks_exact(self.record).enumerate() {
            let ts = u32::from_le_bytes([r[0], r[1], r[2], r[3]]);
            let d = u32::from_le_bytes([r[4], r[5], r[6], r[7]]);
            let e =
                Event { t: self.time.apply(u64::from(ts)), x: (d & 0x3FFF) as u16, y: ((d >> 14) & 0x3FFF) as u16, p: (d >> 28) & 1 == 1 };
            self.src.check_xy(&e, self.geometry, start + (i * self.record) as u64)?;
            out.push(e);
        }
        Ok(n)
    }
}
