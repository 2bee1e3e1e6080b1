//! Text events, one per line: `t_us,x,y,p`. A header line naming the columns is optional and
//! may order them differently (`x,y,p,t`); polarity accepts 0/1, -1/1 and true/false.

use std::io::Write;

use crate::source::Source;
use crate::{Event, Format, Geometry, Result};

/// Column positions of t, x, y, p.
type Columns = [usize; 4];

/// Streaming CSV decoder.
pub struct Reader {
    src: Source,
    columns: Columns,
    started: bool,
    line: u64,
}

impl Reader {
    pub(crate) fn new(src: Source) -> Self {
        Self { src, columns: [0, 1, 2, 3], started: false, line: 0 }
    }

    fn header_columns(line: &str) -> Option<Columns> {
        let names: Vec<String> = line.split([',', ';', '\t']).map(|s| s.trim().to_ascii_lowercase()).collect();
        let find = |alts: &[&str]| names.iter().position(|n| alts.contains(&n.as_str()));
        Some([
            find(&["t", "t_us", "ts", "timestamp", "time", "t_usec"])?,
            find(&["x"])?,
            find(&["y"])?,
            find(&["p", "polarity", "pol", "on"])?,
        ])
    }

    fn parse(&self, text: &str, offset: u64) -> Result<Event> {
        let fields: Vec<&str> = text.split([',', ';', '\t']).map(str::trim).collect();
        let need = self.columns.iter().max().copied().unwrap_or(3) + 1;
        if fields.len() < need {
            return Err(self.src.error_at(
                offset,
                format!("line {}: expected {need} comma-separated fields (t_us,x,y,p), found {}", self.line, fields.len()),
            ));
        }
        let [ct, cx, cy, cp] = self.columns;
        let bad = |what: &str, v: &str| {
            self.src.error_at(
                offset,
                format!(
                    "line {}: {what} `{v}` is not {}",
                    self.line,
                    match what {
                        "t" => "an integer number of microseconds",
                        "p" => "a polarity (0/1, -1/1, true/false)",
                        _ => "a pixel coordinate (0..65535)",
                    }
                ),
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

impl crate::EventReader for Reader {
    fn format(&self) -> Format {
        Format::Csv
    }

    fn geometry(&self) -> Option<Geometry> {
        None
    }

    fn read_chunk(&mut self, out: &mut Vec<Event>, max: usize) -> Result<usize> {
        let mut n = 0;
        while n < max {
            let offset = self.src.offset();
            let Some(raw) = self.src.read_line(4096)? else {
                break;
            };
            self.line += 1;
            let text =
                std::str::from_utf8(&raw).map_err(|_| self.src.error_at(offset, format!("line {}: not UTF-8 text", self.line)))?.trim();
            if text.is_empty() || text.starts_with('#') {
                continue;
            }
            if !self.started {
                self.started = true;
                if text.bytes().any(|b| b.is_ascii_alphabetic()) && !text.contains("true") && !text.contains("false") {
                    self.columns = Self::header_columns(text)
                        .ok_or_else(|| self.src.error_at(offset, format!("header `{text}` does not name the columns t, x, y and p")))?;
                    continue;
                }
            }
            out.push(self.parse(text, offset)?);
            n += 1;
        }
        Ok(n)
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
