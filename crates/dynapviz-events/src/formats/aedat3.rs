//! cAER AEDAT 3.1, the format of DVS128 Gesture: `#` header lines up to `#!END-HEADER`, then
//! packets of a 28-byte little-endian header (u16 type, u16 source, u32 event size, u32 ts
//! offset, u32 ts overflow, u32 capacity, u32 number, u32 valid) and `capacity * size` bytes.
//! Polarity events (type 1, 8 bytes): u32 data, u32 ts; valid = bit 0, p = bit 1,
//! y = (data >> 2) & 0x1FFF, x = (data >> 17) & 0x1FFF, t = overflow << 31 | ts.
//! Packets of other types are skipped and counted; invalid events too.

use std::io::Write;

use crate::reader::Skipped;
use crate::source::{Source, first_outside, header_value};
use crate::{Event, Format, Geometry, Result};

const POLARITY: u16 = 1;
const HEADER: usize = 28;
/// Largest packet body accepted: guards against a corrupt size field asking for gigabytes.
const MAX_PACKET: u64 = 1 << 28;

/// Streaming AEDAT 3.1 decoder.
pub struct Reader {
    src: Source,
    geometry: Option<Geometry>,
    buf: Vec<u8>,
    skipped: Skipped,
}

impl Reader {
    pub(crate) fn new(mut src: Source) -> Result<Self> {
        let lines = src.header_lines(b'#', "#!END-HEADER", true)?;
        let geometry = lines.iter().find_map(|l| {
            let l = l.to_ascii_lowercase();
            (l.starts_with("#source") || l.contains("sizex")).then(|| super::known_sensor(&l)).flatten()
        });
        let geometry = geometry.or_else(|| {
            let w = header_value(&lines, "sizeX")?.parse().ok()?;
            let h = header_value(&lines, "sizeY")?.parse().ok()?;
            Some(Geometry::new(w, h))
        });
        Ok(Self { src, geometry, buf: Vec::new(), skipped: Skipped::default() })
    }
}

impl crate::EventReader for Reader {
    fn format(&self) -> Format {
        Format::Aedat31
    }

    fn geometry(&self) -> Option<Geometry> {
        self.geometry
    }

    fn skipped(&self) -> &Skipped {
        &self.skipped
    }

    fn read_chunk(&mut self, out: &mut Vec<Event>, max: usize) -> Result<usize> {
        let start_len = out.len();
        while out.len() - start_len < max {
            let at = self.src.offset();
            let mut h = [0u8; HEADER];
            let got = self.src.read_up_to(&mut h)?;
            if got == 0 {
                break;
            }
            if got < HEADER {
                return Err(self.src.error_at(at, format!("file ends inside a packet header: {got} of {HEADER} bytes")));
            }
            let u32_at = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
            let kind = u16::from_le_bytes([h[0], h[1]]);
            // The events' valid count (at 24) is not needed: each event says whether it is.
            let (size, overflow, capacity, number) = (u32_at(4), u32_at(12), u32_at(16), u32_at(20));
            let body = u64::from(size) * u64::from(capacity);
            if number > capacity || body > MAX_PACKET {
                return Err(self.src.error_at(at, format!("corrupt packet header: {number} events of {size} bytes in a packet of capacity {capacity}; expected number <= capacity and at most {MAX_PACKET} bytes")));
            }
            if kind != POLARITY {
                self.skipped.other_records += 1;
                self.src.skip(body, "a packet body")?;
                continue;
            }
            if size < 8 {
                return Err(self.src.error_at(at + 4, format!("polarity event size {size}: expected 8")));
            }
            let body_at = self.src.offset();
            self.buf.resize(body as usize, 0);
            let mut buf = std::mem::take(&mut self.buf);
            let read = self.src.read_exact(&mut buf, "a packet body");
            self.buf = buf;
            read?;
            let records = || self.buf.chunks_exact(size as usize).take(number as usize);
            let first = out.len();
            // Room for every record first: a push then never grows the buffer, and the loop
            // stays plain.
            out.reserve(number as usize);
            for r in records() {
                let d = u32::from_le_bytes([r[0], r[1], r[2], r[3]]);
                let ts = u32::from_le_bytes([r[4], r[5], r[6], r[7]]);
                if d & 1 == 0 {
                    self.skipped.invalid_events += 1;
                    continue;
                }
                out.push(Event {
                    t: (i64::from(overflow) << 31) | i64::from(ts),
                    x: ((d >> 17) & 0x1FFF) as u16,
                    y: ((d >> 2) & 0x1FFF) as u16,
                    p: (d >> 1) & 1 == 1,
                });
            }
            // Bounds are checked in a second, branch-light pass; the offset of an offending
            // event is found again only on the error path.
            if let Some((bad, g)) = first_outside(&out[first..], self.geometry) {
                let record = records().enumerate().filter(|(_, r)| r[0] & 1 == 1).nth(bad).map_or(0, |(i, _)| i);
                return Err(self.src.outside(&out[first + bad], g, body_at + record as u64 * u64::from(size)));
            }
        }
        Ok(out.len() - start_len)
    }
}

/// Writes AEDAT 3.1 polarity packets, as the DVS128 Gesture recordings are laid out.
pub struct Writer<W: Write> {
    out: W,
    packet: Vec<u8>,
    count: u32,
    overflow: Option<u32>,
}

/// Events per packet: what cAER itself writes at most.
const PACKET_EVENTS: u32 = 8192;

impl<W: Write> Writer<W> {
    /// Writes the text header; `source` names the camera (e.g. `DVS128`).
    pub fn new(mut out: W, source: &str) -> std::io::Result<Self> {
        write!(
            out,
            "#!AER-DAT3.1\r\n#Format: RAW\r\n#Source 1: {source}\r\n#Start-Time: 1970-01-01 00:00:00 (TZ+0000)\r\n#!END-HEADER\r\n"
        )?;
        Ok(Self { out, packet: Vec::new(), count: 0, overflow: None })
    }

    fn flush_packet(&mut self) -> std::io::Result<()> {
        let Some(overflow) = self.overflow else {
            return Ok(());
        };
        if self.count == 0 {
            return Ok(());
        }
        let mut h = Vec::with_capacity(HEADER);
        h.extend_from_slice(&POLARITY.to_le_bytes());
        h.extend_from_slice(&1u16.to_le_bytes());
        for v in [8, 4, overflow, self.count, self.count, self.count] {
            h.extend_from_slice(&v.to_le_bytes());
        }
        self.out.write_all(&h)?;
        self.out.write_all(&self.packet)?;
        self.packet.clear();
        self.count = 0;
        Ok(())
    }

    /// Appends events; timestamps must be non-negative.
    pub fn write(&mut self, events: &[Event]) -> std::io::Result<()> {
        for e in events {
            if e.t < 0 || e.x > 0x1FFF || e.y > 0x1FFF {
                return Err(super::evt2::invalid("AEDAT 3.1 holds non-negative timestamps and coordinates below 8192"));
            }
            let overflow = u32::try_from(e.t >> 31).map_err(|_| super::evt2::invalid("timestamp beyond AEDAT 3.1's range"))?;
            if self.overflow != Some(overflow) || self.count == PACKET_EVENTS {
                self.flush_packet()?;
                self.overflow = Some(overflow);
            }
            let d = (u32::from(e.x) << 17) | (u32::from(e.y) << 2) | (u32::from(e.p) << 1) | 1;
            self.packet.extend_from_slice(&d.to_le_bytes());
            self.packet.extend_from_slice(&((e.t & 0x7FFF_FFFF) as u32).to_le_bytes());
            self.count += 1;
        }
        Ok(())
    }

    /// Writes the last packet, flushes and returns the sink.
    pub fn finish(mut self) -> std::io::Result<W> {
        self.flush_packet()?;
        self.out.flush()?;
        Ok(self.out)
    }
}
