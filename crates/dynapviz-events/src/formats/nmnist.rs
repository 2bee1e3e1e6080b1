//! N-MNIST / N-Caltech101 binary: 5 bytes per event, x, y, then polarity in bit 7 and a 23-bit
//! microsecond timestamp. The sensor is the 34x34 crop of an ATIS for N-MNIST; the format
//! itself stores no size, so none is claimed.

use crate::source::Source;
use crate::{Event, Format, Geometry, Result};

/// Streaming N-MNIST decoder.
pub struct Reader {
    src: Source,
    buf: Vec<u8>,
    time: super::Unwrap,
}

impl Reader {
    pub(crate) fn new(src: Source) -> Self {
        Self { src, buf: Vec::new(), time: super::Unwrap::new(23) }
    }
}

impl crate::EventReader for Reader {
    fn format(&self) -> Format {
        Format::Nmnist
    }

    fn geometry(&self) -> Option<Geometry> {
        None
    }

    fn read_chunk(&mut self, out: &mut Vec<Event>, max: usize) -> Result<usize> {
        let n = self.src.read_records(&mut self.buf, 5, max, "a 5-byte N-MNIST event")?;
        out.reserve(n);
        for r in self.buf[..n * 5].chunks_exact(5) {
            let raw = (u64::from(r[2] & 0x7F) << 16) | (u64::from(r[3]) << 8) | u64::from(r[4]);
            out.push(Event { t: self.time.apply(raw), x: u16::from(r[0]), y: u16::from(r[1]), p: r[2] & 0x80 != 0 });
        }
        Ok(n)
    }
}
