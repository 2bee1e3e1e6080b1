//! Text events, one per line: `t_us,x,y,p`. A header line naming the columns is optional and
//! may order them differently (`x,y,p,t`); polarity accepts 0/1, -1/1 and true/false.

use std::io::Write;

use crate::source::Source;
use crate::{Event, Format, Geometry, Result};

/// Column positions of t, x, y, p.
type Columns = [usize; 4];

/// Longest line accepted, terminator included.
const LINE_LIMIT: usize = 4096;

/// Streaming CSV decoder. Lines are parsed in place in the read buffer, with no allocation per
/// line: text is the slowest format to decode, and recordings exported as CSV are long.
pub struct Reader {
    src: Source,
    lines: Lines,
    /// Room for a line that straddles the end of the read buffer.
    spill: Vec<u8>,
}

/// The meaning of lines: the columns, and how far the file has come.
struct Lines {
    columns: Columns,
    /// What each of the first eight fields holds, for [`Lines::quick`]; `None` when a column
    /// lies further on.
    roles: Option<[u8; 8]>,
    started: bool,
    /// Lines read so far.
    line: u64,
}

/// What a line holds.
enum Line {
    Event(Event),
    /// Empty, a comment, or the header.
    Skip,
}

impl Reader {
    pub(crate) fn new(src: Source) -> Self {
        let columns = [0, 1, 2, 3];
        Self { src, lines: Lines { columns, roles: Role::of(columns), started: false, line: 0 }, spill: Vec::new() }
    }
}

/// The role of a field in [`Lines::quick`]: the index of its column in [`Columns`].
struct Role;

impl Role {
    const P: u8 = 3;
    const NONE: u8 = 4;

    /// The role of each of the first eight fields; `None` if a column lies further on.
    fn of(columns: Columns) -> Option<[u8; 8]> {
        let mut roles = [Self::NONE; 8];
        for (role, &c) in columns.iter().enumerate() {
            *roles.get_mut(c)? = role as u8;
        }
        Some(roles)
    }
}

impl Lines {
    fn header_columns(line: &str) -> Option<Columns> {
        let names: Vec<String> = line.split(is_delimiter).map(|s| s.trim().to_ascii_lowercase()).collect();
        let find = |alts: &[&str]| names.iter().position(|n| alts.contains(&n.as_str()));
        Some([
            find(&["t", "t_us", "ts", "timestamp", "time", "t_usec"])?,
            find(&["x"])?,
            find(&["y"])?,
            find(&["p", "polarity", "pol", "on"])?,
        ])
    }

    /// One line, terminator included. Errors are messages, for the caller to place.
    #[inline]
    fn line(&mut self, raw: &[u8]) -> std::result::Result<Line, String> {
        self.line += 1;
        if self.started
            && let Some(e) = self.quick(raw)
        {
            return Ok(Line::Event(e));
        }
        self.slow(raw)
    }

    /// The common line in one pass over its bytes: ASCII, decimal numbers, polarity 0 or 1, the
    /// columns among the first eight, fields padded with spaces at most. `None` for anything
    /// else, which [`Self::slow`] decides, so this gives exactly what that would, only sooner.
    #[inline]
    fn quick(&self, raw: &[u8]) -> Option<Event> {
        let roles = self.roles?;
        let (mut values, mut found, mut pos) = ([0u64; 4], 0u8, 0);
        let delimiter = |b: u8| is_delimiter(char::from(b));
        for role in roles {
            if role == Role::NONE {
                while pos < raw.len() && !delimiter(raw[pos]) {
                    pos += 1;
                }
            } else {
                while raw.get(pos) == Some(&b' ') {
                    pos += 1;
                }
                // At most 18 digits: below `i64::MAX`; a polarity is one digit (`01` is not one).
                let (start, most) = (pos, if role == Role::P { 1 } else { 18 });
                let mut v = 0u64;
                while let Some(&b) = raw.get(pos).filter(|b| b.is_ascii_digit()) {
                    if pos - start == most {
                        return None;
                    }
                    v = v * 10 + u64::from(b - b'0');
                    pos += 1;
                }
                if pos == start {
                    return None;
                }
                while raw.get(pos).is_some_and(|b| matches!(b, b' ' | b'\r' | b'\n')) {
                    pos += 1;
                }
                values[usize::from(role)] = v;
                found |= 1 << role;
            }
            match raw.get(pos) {
                // The field ends here: a delimiter, or the end of the line.
                Some(&b) if delimiter(b) => pos += 1,
                None => break,
                Some(_) => return None,
            }
            if found == 0b1111 {
                break;
            }
        }
        let [t, x, y, p] = values;
        // All of it ASCII, the fields skipped too: the slow path rejects a line that is not UTF-8.
        let ok = found == 0b1111 && x <= 0xffff && y <= 0xffff && p <= 1 && raw.is_ascii();
        ok.then_some(Event { t: t as i64, x: x as u16, y: y as u16, p: p == 1 })
    }

    /// Any line, with the errors of a bad one.
    #[cold]
    fn slow(&mut self, raw: &[u8]) -> std::result::Result<Line, String> {
        let text = std::str::from_utf8(raw).map_err(|_| format!("line {}: not UTF-8 text", self.line))?.trim();
        if text.is_empty() || text.starts_with('#') {
            return Ok(Line::Skip);
        }
        if !self.started {
            self.started = true;
            if text.bytes().any(|b| b.is_ascii_alphabetic()) && !text.contains("true") && !text.contains("false") {
                self.columns =
                    Self::header_columns(text).ok_or_else(|| format!("header `{text}` does not name the columns t, x, y and p"))?;
                self.roles = Role::of(self.columns);
                return Ok(Line::Skip);
            }
        }
        self.parse(text).map(Line::Event)
    }

    fn parse(&self, text: &str) -> std::result::Result<Event, String> {
        let fields: Vec<&str> = text.split(is_delimiter).map(str::trim).collect();
        let need = self.columns.iter().max().copied().unwrap_or(3) + 1;
        if fields.len() < need {
            return Err(format!("line {}: expected {need} comma-separated fields (t_us,x,y,p), found {}", self.line, fields.len()));
        }
        let [ct, cx, cy, cp] = self.columns;
        let bad = |what: &str, v: &str| {
            format!(
                "line {}: {what} `{v}` is not {}",
                self.line,
                match what {
                    "t" => "an integer number of microseconds",
                    "p" => "a polarity (0/1, -1/1, true/false)",
                    _ => "a pixel coordinate (0..65535)",
                }
            )
        };
        let t = fields[ct].parse::<i64>().map_err(|_| bad("t", fields[ct]))?;
        let x = fields[cx].parse::<u16>().map_err(|_| bad("x", fields[cx]))?;
        let y = fields[cy].parse::<u16>().map_err(|_| bad("y", fields[cy]))?;
        let p = match fields[cp] {
            "1" | "true" | "True" | "+1" => true,
            "0" | "-1" | "false" | "False" => false,
            v => return Err(bad("p", v)),
        };
        Ok(Event { t, x, y, p })
    }
}

/// What separates fields: one definition for the one-pass and the full reading.
#[inline]
fn is_delimiter(c: char) -> bool {
    matches!(c, ',' | ';' | '\t')
}

impl crate::EventReader for Reader {
    fn format(&self) -> Format {
        Format::Csv
    }

    fn geometry(&self) -> Option<Geometry> {
        None
    }

    fn read_chunk(&mut self, out: &mut Vec<Event>, max: usize) -> Result<usize> {
        let before = out.len();
        if max == 0 {
            return Ok(0);
        }
        let mut failed = None;
        let lines = &mut self.lines;
        self.src.lines(LINE_LIMIT, &mut self.spill, |offset, raw| match lines.line(raw) {
            Ok(Line::Event(e)) => {
                out.push(e);
                out.len() - before < max
            }
            Ok(Line::Skip) => true,
            Err(message) => {
                failed = Some((offset, message));
                false
            }
        })?;
        if let Some((offset, message)) = failed {
            return Err(self.src.error_at(offset, message));
        }
        Ok(out.len() - before)
    }
}

/// Writes `t_us,x,y,p` with a header line.
pub struct Writer<W: Write> {
    out: W,
}

impl<W: Write> Writer<W> {
    /// Starts the file with its header.
    pub fn new(mut out: W) -> std::io::Result<Self> {
        out.write_all(b"t_us,x,y,p\n")?;
        Ok(Self { out })
    }

    /// Appends events.
    pub fn write(&mut self, events: &[Event]) -> std::io::Result<()> {
        for e in events {
            writeln!(self.out, "{},{},{},{}", e.t, e.x, e.y, u8::from(e.p))?;
        }
        Ok(())
    }

    /// Flushes and returns the sink.
    pub fn finish(mut self) -> std::io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::{Line, Lines, Role};

    fn lines(columns: [usize; 4]) -> Lines {
        Lines { columns, roles: Role::of(columns), started: true, line: 0 }
    }

    /// Fields of the lines people write, and of the ones they should not.
    fn field() -> impl Strategy<Value = String> {
        let core = prop_oneof![
            4 => (0u64..3).prop_map(|n| n.to_string()),
            3 => (0u64..100_000).prop_map(|n| n.to_string()),
            1 => prop::sample::select(vec!["65535", "65536", "999999999999999999", "9999999999999999999", "123456789012345678901"])
                .prop_map(String::from),
            1 => (0u64..10).prop_map(|n| format!("0{n}")),
            1 => prop::sample::select(vec!["+1", "-1", "-7", "true", "False", "", "#", "x", "é", "\u{a0}", "1e3", "0x10", "1 2"])
                .prop_map(String::from),
        ];
        let pad = || prop::sample::select(vec!["", "", "", "", "", " ", "  ", "\r", "\x0b", "\x0c"]);
        (pad(), core, pad()).prop_map(|(a, c, b)| format!("{a}{c}{b}"))
    }

    fn line() -> impl Strategy<Value = String> {
        let delimiter = prop::sample::select(vec![",", ",", ",", ";", "\t"]);
        (prop::collection::vec((field(), delimiter), 3..8), prop::sample::select(vec!["\n", "\r\n", ""])).prop_map(|(fields, end)| {
            let mut s: String = fields.iter().map(|(f, d)| format!("{f}{d}")).collect();
            s.pop();
            s + end
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// The one-pass reading of a line takes only lines it reads exactly as the full one.
        #[test]
        fn quick_reading_agrees_with_the_full_one(text in line(), order in 0usize..3) {
            let columns = [[0, 1, 2, 3], [3, 0, 1, 2], [1, 5, 2, 0]][order];
            let full = lines(columns).slow(text.as_bytes());
            if let Some(e) = lines(columns).quick(text.as_bytes()) {
                prop_assert!(matches!(full, Ok(Line::Event(f)) if f == e), "{text:?}: quick {e:?}, full {:?}", full.map(|_| ()));
            }
        }
    }

    #[test]
    fn quick_reading_takes_the_common_lines() {
        let l = lines([0, 1, 2, 3]);
        for text in ["10,2,3,1\n", "10, 2 ,3,0\r\n", "10;2;3;1", "10\t2\t3\t1\n", "10,2,3,1,extra\n", "999999999999999999,65535,3,1\n"] {
            assert!(l.quick(text.as_bytes()).is_some(), "{text:?}");
        }
        for text in [
            "-10,2,3,1\n",
            "10,2,3,true\n",
            "10,2,3,01\n",
            "10,65536,3,1\n",
            "10,2,3\n",
            "10,2,3,1,é\n",
            "9999999999999999999,2,3,1\n",
            "10,2,3,1e3\n",
        ] {
            assert!(l.quick(text.as_bytes()).is_none(), "{text:?}");
        }
        // Bytes that are not UTF-8, in a column no one reads: the full reading rejects the line.
        let skipping = lines([1, 2, 3, 4]);
        assert!(skipping.quick(b"0,10,2,3,1\n").is_some());
        assert!(skipping.quick(b"\xff,10,2,3,1\n").is_none());
        assert!(skipping.quick(b"10,2,3,1,\xff\n").is_none());
    }
}
