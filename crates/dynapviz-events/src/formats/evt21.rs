//! Prophesee EVT 2.1: `%` header lines, then 64-bit words, the type in the top four bits. The
//! output format of the GenX320 and one of the IMX636's: EVT 2.0's fields with a 32-bit mask,
//! so that one word holds up to 32 events of one row, polarity and time. CD_OFF (0x0) / CD_ON
//! (0x1): 6 low timestamp bits (59..54), x (53..43), y (42..32), and in bits 31..0 the pixels
//! `x + i` that fired; TIME_HIGH (0x8): the upper 28 timestamp bits (59..32). Triggers and
//! vendor words are skipped and counted.
//!
//! Two byte orders exist (Prophesee's EVT 2.1 page): the GenX320 writes each word as one
//! little-endian 64-bit integer; the IMX636 writes its upper 32 bits first, each half little
//! endian, and its files say so with `endianness=legacy` on the `% format` line (OpenEB's
//! `Evt21LegacyDecoder`). Both are read; this crate writes the first.

use std::io::Write;

use crate::reader::Skipped;
use crate::source::{Source, first_outside, header_value};
use crate::{Event, Format, Geometry, Result};

const CD_OFF: u64 = 0x0;
const CD_ON: u64 = 0x1;
const TIME_HIGH: u64 = 0x8;

/// Streaming EVT 2.1 decoder.
pub struct Reader {
    src: Source,
    geometry: Option<Geometry>,
    /// The IMX636's order: the word's upper half first.
    legacy: bool,
    buf: Vec<u8>,
    high: i64,
    high_unwrap: super::Unwrap,
    skipped: Skipped,
}

impl Reader {
    pub(crate) fn new(mut src: Source) -> Result<Self> {
        let lines = src.header_lines(b'%', "% end", false)?;
        let geometry = super::evt2::header_geometry(&lines);
        let legacy =
            header_value(&lines, "format").is_some_and(|f| f.split(';').any(|kv| kv.trim().eq_ignore_ascii_case("endianness=legacy")));
        Ok(Self { src, geometry, legacy, buf: Vec::new(), high: 0, high_unwrap: super::Unwrap::new(28), skipped: Skipped::default() })
    }
}

impl crate::EventReader for Reader {
    fn format(&self) -> Format {
        Format::Evt21
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
            // A word holds up to 32 events: ask for fewer words than events.
            let words = self.src.read_records(&mut self.buf, 8, max.div_ceil(32).max(1), "an EVT 2.1 word")?;
            if words == 0 {
                break;
            }
            let first = out.len();
            for b in self.buf[..words * 8].chunks_exact(8) {
                let w = word(b, self.legacy);
                match w >> 60 {
                    CD_OFF | CD_ON => {
                        let t = (self.high << 6) | ((w >> 54) & 0x3F) as i64;
                        let (x, y, p) = (((w >> 43) & 0x7FF) as u16, ((w >> 32) & 0x7FF) as u16, w >> 60 == CD_ON);
                        let mut mask = w as u32;
                        out.reserve(mask.count_ones() as usize);
                        while mask != 0 {
                            out.push(Event { t, x: x + mask.trailing_zeros() as u16, y, p });
                            mask &= mask - 1;
                        }
                    }
                    TIME_HIGH => self.high = self.high_unwrap.apply((w >> 32) & 0x0FFF_FFFF),
                    _ => self.skipped.other_records += 1,
                }
            }
            // Bounds are checked in a second pass, as EVT 2.0's; the offending event's word is
            // found again only on the error path.
            if let Some((bad, g)) = first_outside(&out[first..], self.geometry) {
                let mut before = bad as u32;
                let at = self.buf[..words * 8]
                    .chunks_exact(8)
                    .map(|b| word(b, self.legacy))
                    .position(|w| {
                        let n = if w >> 60 <= CD_ON { (w as u32).count_ones() } else { 0 };
                        let here = before < n;
                        before = before.saturating_sub(n);
                        here
                    })
                    .unwrap_or(0);
                return Err(self.src.outside(&out[first + bad], g, start + 8 * at as u64));
            }
            if out.len() > start_len {
                break;
            }
        }
        Ok(out.len() - start_len)
    }
}

/// The word stored at `b`, in the file's byte order (`legacy`: the IMX636's, upper half first).
fn word(b: &[u8], legacy: bool) -> u64 {
    let half = |i: usize| u64::from(u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]));
    if legacy { half(0) << 32 | half(4) } else { half(4) << 32 | half(0) }
}

/// Writes EVT 2.1 in the GenX320's byte order, with a header that states the geometry. Events
/// of one time, row and polarity whose x rises within a block of 32 columns share a word, so
/// the file reads back in the order written.
pub struct Writer<W: Write> {
    out: W,
    high: Option<u64>,
    /// The word being filled: its fields without the mask, and the mask.
    open: Option<(u64, u32)>,
    /// The column of the open word's last event.
    last_x: u16,
}

impl<W: Write> Writer<W> {
    /// Writes the header.
    pub fn new(mut out: W, geometry: Geometry) -> std::io::Result<Self> {
        write!(
            out,
            "% evt 2.1\n% format EVT21;height={h};width={w}\n% geometry {w}x{h}\n% integrator_name dynapviz\n% end\n",
            w = geometry.width,
            h = geometry.height
        )?;
        Ok(Self { out, high: None, open: None, last_x: 0 })
    }

    /// Appends events; timestamps must be non-negative (EVT 2.1 has no sign).
    pub fn write(&mut self, events: &[Event]) -> std::io::Result<()> {
        for e in events {
            let t = u64::try_from(e.t).map_err(|_| super::evt2::invalid("EVT 2.1 cannot store negative timestamps"))?;
            if e.x > 0x7FF || e.y > 0x7FF {
                return Err(super::evt2::invalid("EVT 2.1 stores coordinates below 2048"));
            }
            let base = e.x & !31;
            let kind = if e.p { CD_ON } else { CD_OFF };
            let fields = kind << 60 | (t & 0x3F) << 54 | u64::from(base) << 43 | u64::from(e.y) << 32;
            let high = t >> 6;
            match &mut self.open {
                Some((open, mask)) if *open == fields && self.high == Some(high) && e.x > self.last_x => {
                    *mask |= 1 << (e.x - base);
                }
                _ => {
                    self.flush_word()?;
                    if self.high != Some(high) {
                        for step in super::wrap_steps(self.high, high, 28)? {
                            self.out.write_all(&(TIME_HIGH << 60 | (step & 0x0FFF_FFFF) << 32).to_le_bytes())?;
                        }
                        self.high = Some(high);
                    }
                    self.open = Some((fields, 1 << (e.x - base)));
                }
            }
            self.last_x = e.x;
        }
        Ok(())
    }

    /// Writes the word being filled, if any.
    fn flush_word(&mut self) -> std::io::Result<()> {
        if let Some((fields, mask)) = self.open.take() {
            self.out.write_all(&(fields | u64::from(mask)).to_le_bytes())?;
        }
        Ok(())
    }

    /// Writes the last word, flushes and returns the sink.
    pub fn finish(mut self) -> std::io::Result<W> {
        self.flush_word()?;
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EventReader;
    use crate::reader::{from_reader, read_all};
    use std::path::Path;

    fn decode(bytes: Vec<u8>) -> crate::Result<(Vec<Event>, Box<dyn EventReader>)> {
        let mut r = from_reader(Path::new("test.raw"), Box::new(std::io::Cursor::new(bytes)), Format::Evt21)?;
        let events = read_all(r.as_mut())?;
        Ok((events, r))
    }

    /// Words built from Prophesee's bit table by hand: a TIME_HIGH, an ON word of three pixels,
    /// a trigger, an OFF word of one.
    fn words() -> [u64; 4] {
        [
            0x8 << 60 | 0x123 << 32,
            0x1 << 60 | 5 << 54 | 64 << 43 | 7 << 32 | 0b1000_0000_0000_0000_0000_0000_0000_0101,
            0xA << 60 | 9 << 54 | 3 << 40 | 1 << 32,
            // Type 0x0 (CD_OFF) in the top bits.
            63 << 54 | 1216 << 43 | 719 << 32 | 1 << 31,
        ]
    }

    fn expected() -> Vec<Event> {
        let t = 0x123 << 6;
        vec![
            Event { t: t + 5, x: 64, y: 7, p: true },
            Event { t: t + 5, x: 66, y: 7, p: true },
            Event { t: t + 5, x: 95, y: 7, p: true },
            Event { t: t + 63, x: 1247, y: 719, p: false },
        ]
    }

    #[test]
    fn words_decode_as_the_bit_table_says_in_both_byte_orders() {
        for (format_line, legacy) in [("EVT21;height=720;width=1280", false), ("EVT21;height=720;width=1280;endianness=legacy", true)] {
            let mut bytes = format!("% evt 2.1\n% format {format_line}\n% end\n").into_bytes();
            for w in words() {
                if legacy {
                    bytes.extend_from_slice(&((w >> 32) as u32).to_le_bytes());
                    bytes.extend_from_slice(&(w as u32).to_le_bytes());
                } else {
                    bytes.extend_from_slice(&w.to_le_bytes());
                }
            }
            let (events, r) = decode(bytes).expect("decodes");
            assert_eq!(events, expected(), "{format_line}");
            assert_eq!(r.geometry(), Some(Geometry::new(1280, 720)));
            assert_eq!(r.skipped().other_records, 1, "the trigger");
        }
    }

    #[test]
    fn a_pixel_outside_the_sensor_is_an_error_at_its_word() {
        let mut bytes = b"% format EVT21;height=720;width=1280\n% end\n".to_vec();
        let header = bytes.len();
        bytes.extend_from_slice(&(0x1u64 << 60 | 1264 << 43 | 3 << 32 | 1 << 31).to_le_bytes());
        let err = decode(bytes).err().expect("x = 1264 + 31 is outside").to_string();
        assert!(err.contains("x=1295"), "{err}");
        assert!(err.contains(&format!("{header}")), "names the word's offset: {err}");
    }

    #[test]
    fn events_of_one_row_and_time_share_a_word_and_read_back_in_order() {
        let events = vec![
            Event { t: 10, x: 3, y: 1, p: true },
            Event { t: 10, x: 4, y: 1, p: true },
            Event { t: 10, x: 31, y: 1, p: true },
            // The next block of 32 columns: a word of its own.
            Event { t: 10, x: 32, y: 1, p: true },
            // x falls: a new word keeps the order.
            Event { t: 10, x: 2, y: 1, p: true },
            Event { t: 10, x: 2, y: 1, p: false },
            Event { t: 11, x: 2, y: 1, p: false },
            Event { t: 1 << 40, x: 2, y: 1, p: false },
        ];
        let mut w = Writer::new(Vec::new(), Geometry::new(64, 2)).expect("header");
        w.write(&events).expect("writes");
        let bytes = w.finish().expect("finishes");
        let (back, _) = decode(bytes.clone()).expect("decodes");
        assert_eq!(back, events);
        let body = &bytes[bytes.windows(6).position(|w| w == b"% end\n").expect("header end") + 6..];
        let cd_words = body.chunks_exact(8).filter(|&b| u64::from_le_bytes(b.try_into().expect("8 bytes")) >> 60 <= 1).count();
        assert_eq!(cd_words, 6, "three events share the first word");
    }
}
