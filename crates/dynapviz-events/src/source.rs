//! A buffered byte source that knows its file name and position, so that every decoder can
//! report errors as "file, byte offset, what was expected" without bookkeeping of its own.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use crate::{Error, Event, Geometry, Result};

/// Bytes of a file (or any reader) with the current offset.
pub(crate) struct Source {
    inner: BufReader<Box<dyn Read + Send>>,
    offset: u64,
    path: PathBuf,
}

impl Source {
    pub(crate) fn new(path: &Path, inner: Box<dyn Read + Send>) -> Self {
        Self { inner: BufReader::with_capacity(1 << 16, inner), offset: 0, path: path.to_path_buf() }
    }

    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    /// What the bytes are, for messages: a live stream (see [`crate::net`]) or a file.
    pub(crate) fn kind(&self) -> &'static str {
        if crate::net::is_live(&self.path) { "stream" } else { "file" }
    }

    /// A format error at `offset`.
    pub(crate) fn error_at(&self, offset: u64, message: impl Into<String>) -> Error {
        Error::Format { path: self.path.clone(), offset, message: message.into() }
    }

    /// A format error at the current offset.
    pub(crate) fn error(&self, message: impl Into<String>) -> Error {
        self.error_at(self.offset, message)
    }

    pub(crate) fn io(&self, source: std::io::Error) -> Error {
        Error::Io { path: self.path.clone(), error: source }
    }

    /// The next byte without consuming it, `None` at the end of the file.
    pub(crate) fn peek(&mut self) -> Result<Option<u8>> {
        let buf = self.inner.fill_buf().map_err(|e| Error::Io { path: self.path.clone(), error: e })?;
        Ok(buf.first().copied())
    }

    /// Fills `buf` completely; a short file is an error that says what was being read.
    pub(crate) fn read_exact(&mut self, buf: &mut [u8], what: &str) -> Result<()> {
        let got = self.read_up_to(buf)?;
        if got < buf.len() {
            let (ends, len) = (self.kind(), buf.len());
            return Err(self.error_at(self.offset - got as u64, format!("{ends} ends after {got} of the {len} bytes of {what}")));
        }
        Ok(())
    }

    /// Reads as many bytes as are available up to `buf.len()`; fewer only at the end of the file.
    pub(crate) fn read_up_to(&mut self, buf: &mut [u8]) -> Result<usize> {
        let mut got = 0;
        while got < buf.len() {
            match self.inner.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.io(e)),
            }
        }
        self.offset += got as u64;
        Ok(got)
    }

    /// Reads up to `max` whole records of `size` bytes into the front of `buf` and returns how
    /// many; the buffer only grows, so steady-state reading neither allocates nor clears it.
    /// Trailing bytes that do not make a whole record are an error.
    pub(crate) fn read_records(&mut self, buf: &mut Vec<u8>, size: usize, max: usize, what: &str) -> Result<usize> {
        if buf.len() < size * max {
            buf.resize(size * max, 0);
        }
        let got = self.read_up_to(&mut buf[..size * max])?;
        let partial = got % size;
        if partial != 0 {
            return Err(self.error_at(
                self.offset - partial as u64,
                format!("file ends inside {what}: {partial} trailing bytes, expected records of {size} bytes"),
            ));
        }
        Ok(got / size)
    }

    /// Skips `n` bytes; an error if the file ends first.
    pub(crate) fn skip(&mut self, n: u64, what: &str) -> Result<()> {
        let copied = std::io::copy(&mut (&mut self.inner).take(n), &mut std::io::sink()).map_err(|e| self.io(e))?;
        self.offset += copied;
        if copied < n {
            return Err(self.error(format!("{} ends inside {what}: {copied} of {n} bytes present", self.kind())));
        }
        Ok(())
    }

    /// Reads one line including its terminator (at most `limit` bytes), `None` at the end.
    pub(crate) fn read_line(&mut self, limit: usize) -> Result<Option<Vec<u8>>> {
        let mut line = Vec::new();
        Ok(self.read_line_into(limit, &mut line)?.map(|_| line))
    }

    /// Hands lines to `line(offset, bytes)` (terminator included, at most `limit` bytes each)
    /// until it returns false (after that line) or the file ends. Lines whole in the read
    /// buffer are handed out in place, so text formats read without a copy or an allocation per
    /// line; the rare line that straddles the buffer's end goes through `spill`, which keeps its
    /// room. [`Self::offset`] is past the last line handed out.
    pub(crate) fn lines(&mut self, limit: usize, spill: &mut Vec<u8>, mut line: impl FnMut(u64, &[u8]) -> bool) -> Result<()> {
        loop {
            let buf = self.inner.fill_buf().map_err(|e| Error::Io { path: self.path.clone(), error: e })?;
            if buf.is_empty() {
                return Ok(());
            }
            let (mut used, mut stopped) = (0, false);
            while let Some(end) = memchr::memchr(b'\n', &buf[used..]) {
                if end >= limit {
                    break;
                }
                let offset = self.offset + used as u64;
                used += end + 1;
                if !line(offset, &buf[used - end - 1..used]) {
                    stopped = true;
                    break;
                }
            }
            self.inner.consume(used);
            self.offset += used as u64;
            if stopped {
                return Ok(());
            }
            if used == 0 {
                // No whole line at the front of the buffer: the line straddles its end, is too
                // long, or is the last one and has no terminator.
                spill.clear();
                let Some(len) = self.read_line_into(limit, spill)? else { return Ok(()) };
                if !line(self.offset - len as u64, spill) {
                    return Ok(());
                }
            }
        }
    }

    /// [`Self::read_line`] into `line`; returns the bytes read, `None` at the end.
    fn read_line_into(&mut self, limit: usize, line: &mut Vec<u8>) -> Result<Option<usize>> {
        let n =
            (&mut self.inner).take(limit as u64).read_until(b'\n', line).map_err(|e| Error::Io { path: self.path.clone(), error: e })?;
        if n == 0 {
            return Ok(None);
        }
        if n == limit && line.last() != Some(&b'\n') {
            return Err(self.error(format!("line longer than {limit} bytes")));
        }
        self.offset += n as u64;
        Ok(Some(n))
    }

    /// Reads the text header lines that start with `prefix` (like `%` or `#`). The header ends
    /// after a line equal to `end` (binary data may itself start with the prefix byte, so a
    /// terminator wins when the format has one), or else at the first byte that is not the
    /// prefix; with `end_required` a missing terminator is an error.
    pub(crate) fn header_lines(&mut self, prefix: u8, end: &str, end_required: bool) -> Result<Vec<String>> {
        let mut lines = Vec::new();
        while self.peek()? == Some(prefix) {
            let start = self.offset;
            let Some(raw) = self.read_line(1 << 16)? else {
                break;
            };
            let text = String::from_utf8_lossy(&raw).trim_end_matches(['\r', '\n']).to_string();
            let done = text.trim_end() == end;
            lines.push(text);
            if done {
                return Ok(lines);
            }
            if lines.len() > 100_000 {
                return Err(self.error_at(start, "more than 100000 header lines: not a header"));
            }
        }
        if end_required {
            return Err(self.error(format!("header has no line `{end}`")));
        }
        Ok(lines)
    }

    /// Checks that a decoded pixel lies on the sensor.
    #[inline]
    pub(crate) fn check_xy(&self, e: &Event, geometry: Option<Geometry>, record_offset: u64) -> Result<()> {
        if let Some(g) = geometry
            && !g.contains(e.x, e.y)
        {
            return Err(self.outside(e, g, record_offset));
        }
        Ok(())
    }

    /// The error for `e`, decoded from the record at `record_offset`, lying outside the sensor `g`.
    pub(crate) fn outside(&self, e: &Event, g: Geometry, record_offset: u64) -> Error {
        self.error_at(record_offset, format!("event at x={} y={} lies outside the {g} sensor", e.x, e.y))
    }
}

/// The first of `events` that lies outside `geometry`, with its index: the second pass of a
/// reader that decodes a block with no check per event (and finds the offending record's offset
/// again only on this error path).
pub(crate) fn first_outside(events: &[Event], geometry: Option<Geometry>) -> Option<(usize, Geometry)> {
    let g = geometry?;
    events.iter().position(|e| !g.contains(e.x, e.y)).map(|i| (i, g))
}

/// Detects a value of `key` in header lines of the form `% key value` / `# key: value`.
pub(crate) fn header_value<'a>(lines: &'a [String], key: &str) -> Option<&'a str> {
    lines.iter().find_map(|l| {
        let l = l.trim_start_matches(['%', '#']).trim();
        let rest = l.strip_prefix(key)?;
        let rest = rest.strip_prefix(':').unwrap_or(rest);
        (rest.starts_with(' ') || rest.is_empty()).then(|| rest.trim())
    })
}
