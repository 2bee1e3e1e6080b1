//! jAER AEDAT 2.0: `#` header lines, then big-endian records of a u32 address and a u32
//! timestamp (µs, wrapping at 2^32 and unwrapped here).
//!
//! DVS128 addresses: `x = 127 - ((a >> 1) & 0x7F)`, `y = 127 - ((a >> 8) & 0x7F)`,
//! `p = 1 - (a & 1)`. DAVIS addresses (jAER 240/346 layout, bit 31 clear for DVS events):
//! `x = W-1 - ((a >> 12) & 0x3FF)`, `y = H-1 - ((a >> 22) & 0x1FF)`, `p = (a >> 11) & 1`;
//! APS/IMU samples (bit 31 set, or the DAVIS external-input bit 10) are skipped and counted.
//! The camera is taken from the header (`# HardwareInterface: ...`, `#Source ...`); without
//! one the file is read as DVS128, the camera jAER's AEDAT 2.0 exists for.

use std::io::Write;

use crate::reader::Skipped;
use crate::source::Source;
use crate::{Event, Format, Geometry, Result};

/// Streaming AEDAT 2.0 decoder.
pub struct Reader {
    src: Source,
    davis: Option<Geometry>,
    buf: Vec<u8>,
    time: super::Unwrap,
    skipped: Skipped,
}

impl Reader {
    pub(crate) fn new(mut src: Source) -> Result<Self> {
        let lines = src.header_lines(b'#', "#!END-HEADER", false)?;
        let davis = lines.iter().find_map(|l| {
            let l = l.to_ascii_lowercase();
            (l.contains("davis") && (l.contains("hardwareinterface") || l.contains("source") || l.contains("chip")))
                .then(|| super::known_sensor(&l).unwrap_or(Geometry::new(240, 180)))
        });
        Ok(Self { src, davis, buf: Vec::new(), time: super::Unwrap::new(32), skipped: Skipped::default() })
    }
}

impl crate::EventReader for Reader {
    fn format(&self) -> Format {
        Format::Aedat2
    }

    fn geometry(&self) -> Option<Geometry> {
        Some(self.davis.unwrap_or(Geometry::DVS128))
    }

    fn skipped(&self) -> &Skipped {
        &self.skipped
    }

    fn read_chunk(&mut self, out: &mut Vec<Event>, max: usize) -> Result<usize> {
        let start_len = out.len();
        loop {
            let start = self.src.offset();
            let n = self.src.read_records(&mut self.buf, 8, max, "an AEDAT 2.0 record (address, timestamp)")?;
            if n == 0 {
                break;
            }
            for (i, r) in self.buf[..n * 8].chunks_exact(8).enumerate() {
                let a = u32::from_be_bytes([r[0], r[1], r[2], r[3]]);
                let ts = u32::from_be_bytes([r[4], r[5], r[6], r[7]]);
                let t = self.time.apply(u64::from(ts));
                let offset = start + 8 * i as u64;
                let e = match self.davis {
                    None => {
                        if a >> 15 != 0 {
                            return Err(self.src.error_at(offset, format!("address 0x{a:08x} is not a DVS128 address (15 bits); a DAVIS file needs a `# HardwareInterface: ...DAVIS...` header line")));
                        }
                        Event { t, x: 127 - ((a >> 1) & 0x7F) as u16, y: 127 - ((a >> 8) & 0x7F) as u16, p: a & 1 == 0 }
                    }
                    Some(g) => {
                        if a >> 31 != 0 || (a >> 10) & 1 != 0 {
                            self.skipped.other_records += 1;
                            continue;
                        }
                        let (rx, ry) = (((a >> 12) & 0x3FF) as u16, ((a >> 22) & 0x1FF) as u16);
                        if rx >= g.width || ry >= g.height {
                            return Err(self
                                .src
                                .error_at(offset, format!("DAVIS address 0x{a:08x} gives x={rx} y={ry}, outside the {g} sensor")));
                        }
                        Event { t, x: g.width - 1 - rx, y: g.height - 1 - ry, p: (a >> 11) & 1 == 1 }
                    }
                };
                out.push(e);
            }
            if out.len() > start_len {
                break;
            }
        }
        Ok(out.len() - start_len)
    }
}

/// Writes AEDAT 2.0 with DVS128 addresses (the only layout every AEDAT 2.0 tool reads).
pub struct Writer<W: Write> {
    out: W,
}

impl<W: Write> Writer<W> {
    /// Writes the header.
    pub fn new(mut out: W) -> std::io::Result<Self> {
        out.write_all(b"#!AER-DAT2.0\r\n# This is a raw AE data file - do not edit\r\n# Data format is int32 address, int32 timestamp (8 bytes total), repeated for each event\r\n# Timestamps tick is 1 us\r\n# created by dynapviz\r\n# HardwareInterface: DVS128\r\n")?;
        Ok(Self { out })
    }

    /// Appends events; the sensor must be at most 128x128 and timestamps non-negative
    /// (they are stored modulo 2^32, as jAER does).
    pub fn write(&mut self, events: &[Event]) -> std::io::Result<()> {
        for e in events {
            if e.x > 127 || e.y > 127 {
                return Err(super::evt2::invalid("AEDAT 2.0 DVS128 addresses hold x, y < 128"));
            }
            if e.t < 0 {
                return Err(super::evt2::invalid("AEDAT 2.0 cannot store negative timestamps"));
            }
            let a = (u32::from(127 - e.y) << 8) | (u32::from(127 - e.x) << 1) | u32::from(!e.p);
            self.out.write_all(&a.to_be_bytes())?;
            self.out.write_all(&(e.t as u64 as u32).to_be_bytes())?;
        }
        Ok(())
    }

    /// Flushes and returns the sink.
    pub fn finish(mut self) -> std::io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}
