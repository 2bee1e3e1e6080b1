//! numpy `.npy` arrays of events, in the layouts people save them in:
//! - a structured array with fields named t (or ts, timestamp), x, y and p (or polarity, on),
//!   any integer, bool or float types, any byte order (t in µs);
//! - tonic's float array of shape (N, 4), columns x, y, p, t with t in milliseconds;
//! - an integer array of shape (N, 4), columns x, y, p, t with t in µs.
//!
//! Polarity is ON when positive (0/1, -1/1 and bool all work). The writer stores a structured
//! array `t <i8, x <u2, y <u2, p |u1`.

use std::io::{Seek, SeekFrom, Write};

use crate::source::Source;
use crate::{Event, Format, Geometry, Result};

/// A scalar type of a numpy array.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Scalar {
    Int {
        size: usize,
        signed: bool,
        big: bool,
    },
    Float {
        size: usize,
        big: bool,
    },
    /// Padding bytes of a structured array.
    Void(usize),
}

impl Scalar {
    fn parse(s: &str) -> Option<Scalar> {
        let (order, rest) = match s.as_bytes().first()? {
            b'<' | b'=' | b'|' => (false, &s[1..]),
            b'>' => (true, &s[1..]),
            _ => (false, s),
        };
        // The kind may be any character in a corrupt header: split after it, not after a byte.
        let mut chars = rest.chars();
        let kind = chars.next()?;
        let size: usize = chars.as_str().parse().ok()?;
        Some(match kind {
            'i' if matches!(size, 1 | 2 | 4 | 8) => Scalar::Int { size, signed: true, big: order },
            'u' if matches!(size, 1 | 2 | 4 | 8) => Scalar::Int { size, signed: false, big: order },
            'b' if size == 1 => Scalar::Int { size, signed: false, big: false },
            'f' if matches!(size, 4 | 8) => Scalar::Float { size, big: order },
            'V' => Scalar::Void(size),
            _ => return None,
        })
    }

    fn size(self) -> usize {
        match self {
            Scalar::Int { size, .. } | Scalar::Float { size, .. } | Scalar::Void(size) => size,
        }
    }

    /// Reads the value at the start of `b` as f64 (exact for integers below 2^53).
    #[inline(always)]
    pub(crate) fn f64(self, b: &[u8]) -> f64 {
        match self {
            Scalar::Float { .. } => self.float(b),
            _ => self.int(b) as f64,
        }
    }

    fn float(self, b: &[u8]) -> f64 {
        let mut a = [0u8; 8];
        let Scalar::Float { size, big } = self else {
            return self.int(b) as f64;
        };
        a[..size].copy_from_slice(&b[..size]);
        match (size, big) {
            (4, false) => f64::from(f32::from_le_bytes([a[0], a[1], a[2], a[3]])),
            (4, true) => f64::from(f32::from_be_bytes([a[0], a[1], a[2], a[3]])),
            (_, false) => f64::from_le_bytes(a),
            (_, true) => f64::from_be_bytes(a),
        }
    }

    /// Reads the value as an integer (floats are rounded). The little-endian types people save
    /// events in are read directly: the same branch for every record, which the CPU predicts.
    /// Inlined into the record loop: a call per field cost more than the read.
    #[inline(always)]
    fn int(self, b: &[u8]) -> i64 {
        let bytes = |n: usize| -> [u8; 8] {
            let mut a = [0u8; 8];
            a[..n].copy_from_slice(&b[..n]);
            a
        };
        match self {
            Scalar::Int { size: 1, signed: false, .. } => i64::from(b[0]),
            Scalar::Int { size: 1, signed: true, .. } => i64::from(b[0] as i8),
            Scalar::Int { size: 2, signed, big: false } => {
                let v = u16::from_le_bytes([b[0], b[1]]);
                if signed { i64::from(v as i16) } else { i64::from(v) }
            }
            Scalar::Int { size: 4, signed, big: false } => {
                let [b0, b1, b2, b3, ..] = bytes(4);
                let v = u32::from_le_bytes([b0, b1, b2, b3]);
                if signed { i64::from(v as i32) } else { i64::from(v) }
            }
            Scalar::Int { size: 8, big: false, .. } => i64::from_le_bytes(bytes(8)),
            Scalar::Int { size, signed, big } => {
                let mut a = [0u8; 8];
                if big {
                    a[8 - size..].copy_from_slice(&b[..size]);
                    a.reverse();
                } else {
                    a[..size].copy_from_slice(&b[..size]);
                }
                let v = u64::from_le_bytes(a);
                if signed && size < 8 && v >> (size * 8 - 1) & 1 == 1 { (v | (u64::MAX << (size * 8))) as i64 } else { v as i64 }
            }
            Scalar::Float { .. } => self.float(b).round() as i64,
            Scalar::Void(_) => 0,
        }
    }
}

/// The header of an `.npy` array.
#[derive(Debug)]
pub(crate) struct Header {
    /// Named fields with their byte offset (structured arrays), or one unnamed field.
    pub(crate) fields: Vec<(String, Scalar, usize)>,
    pub(crate) record: usize,
    pub(crate) shape: Vec<usize>,
}

impl Header {
    pub(crate) fn read(src: &mut Source) -> Result<Header> {
        let mut pre = [0u8; 10];
        src.read_exact(&mut pre[..8], "the npy signature and version")?;
        if &pre[..6] != b"\x93NUMPY" {
            return Err(src.error_at(0, "expected the npy signature `\\x93NUMPY`"));
        }
        let len = match pre[6] {
            1 => {
                src.read_exact(&mut pre[8..10], "the header length")?;
                usize::from(u16::from_le_bytes([pre[8], pre[9]]))
            }
            2 | 3 => {
                let mut l = [0u8; 4];
                src.read_exact(&mut l, "the header length")?;
                u32::from_le_bytes(l) as usize
            }
            v => return Err(src.error_at(6, format!("npy version {v}: expected 1, 2 or 3"))),
        };
        if len > 1 << 20 {
            return Err(src.error(format!("npy header of {len} bytes: expected at most 1 MiB")));
        }
        let at = src.offset();
        let mut text = vec![0u8; len];
        src.read_exact(&mut text, "the npy header")?;
        let text = String::from_utf8_lossy(&text).into_owned();
        Self::parse(&text).map_err(|why| src.error_at(at, format!("npy header `{}`: {why}", text.trim())))
    }

    fn parse(text: &str) -> std::result::Result<Header, String> {
        let after = |key: &str| text.split_once(key).map(|(_, r)| r.trim_start().trim_start_matches(':').trim_start());
        if after("'fortran_order'").is_some_and(|r| r.starts_with("True")) {
            return Err("Fortran-ordered arrays are not supported: save with np.ascontiguousarray".into());
        }
        let shape_text = after("'shape'").and_then(|r| r.strip_prefix('(')).and_then(|r| r.split_once(')')).ok_or("no shape")?.0;
        let shape = shape_text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.trim_end_matches('L').parse::<usize>().map_err(|_| format!("bad shape entry `{s}`")))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let descr = after("'descr'").ok_or("no descr")?;
        let mut fields = Vec::new();
        let mut offset = 0;
        if let Some(list) = descr.strip_prefix('[') {
            // [('t', '<i8'), ('x', '<u2'), ...]: the quoted strings come in name/type pairs.
            let list = list.split(']').next().unwrap_or("");
            let quoted: Vec<&str> = list.split('\'').skip(1).step_by(2).collect();
            if list.contains("),") && list.split("),").any(|item| item.matches('\'').count() != 4) {
                return Err("structured fields with sub-array shapes are not supported".into());
            }
            for pair in quoted.chunks(2) {
                let [name, ty] = pair else {
                    return Err("unbalanced structured descr".into());
                };
                let scalar = Scalar::parse(ty).ok_or_else(|| format!("unsupported field type `{ty}`"))?;
                fields.push(((*name).to_string(), scalar, offset));
                offset += scalar.size();
            }
        } else {
            let ty = descr.strip_prefix('\'').and_then(|r| r.split('\'').next()).ok_or("bad descr")?;
            let scalar = Scalar::parse(ty).ok_or_else(|| format!("unsupported type `{ty}`"))?;
            fields.push((String::new(), scalar, 0));
            offset = scalar.size();
        }
        if fields.is_empty() {
            return Err("descr names no field".into());
        }
        if offset == 0 {
            return Err("records of 0 bytes".into());
        }
        Ok(Header { fields, record: offset, shape })
    }

    fn field(&self, names: &[&str]) -> Option<(Scalar, usize)> {
        self.fields.iter().find(|(n, _, _)| names.contains(&n.to_ascii_lowercase().as_str())).map(|(_, s, o)| (*s, *o))
    }

    /// Number of records (rows).
    pub(crate) fn rows(&self) -> usize {
        self.shape.first().copied().unwrap_or(1)
    }
}

pub(crate) const T_NAMES: &[&str] = &["t", "ts", "timestamp", "time", "t_us"];
pub(crate) const X_NAMES: &[&str] = &["x"];
pub(crate) const Y_NAMES: &[&str] = &["y"];
pub(crate) const P_NAMES: &[&str] = &["p", "polarity", "pol", "on"];

/// How the values of an event sit in one record.
#[derive(Clone, Copy, Debug)]
enum Layout {
    /// (scalar, offset) of t, x, y, p.
    Fields([(Scalar, usize); 4]),
    /// (N, 4) x, y, p, t; `t_ms` when the array is float (tonic).
    Table { scalar: Scalar, t_ms: bool },
}

/// Streaming `.npy` decoder.
pub struct Reader {
    src: Source,
    layout: Layout,
    record: usize,
    remaining: usize,
    buf: Vec<u8>,
}

impl Reader {
    pub(crate) fn new(mut src: Source) -> Result<Self> {
        let header = Header::read(&mut src)?;
        let data = src.offset();
        let (layout, record) = if header.fields.len() > 1 || !header.fields[0].0.is_empty() {
            let get = |names: &[&str], what: &str| {
                header
                    .field(names)
                    .ok_or_else(|| src.error_at(data, format!("structured array has no {what} field (looked for {names:?})")))
            };
            let fields = [get(T_NAMES, "timestamp")?, get(X_NAMES, "x")?, get(Y_NAMES, "y")?, get(P_NAMES, "polarity")?];
            if header.shape.len() != 1 {
                return Err(src.error_at(data, format!("structured array of shape {:?}: expected one dimension", header.shape)));
            }
            (Layout::Fields(fields), header.record)
        } else {
            let scalar = header.fields[0].1;
            if header.shape.len() != 2 || header.shape[1] != 4 {
                return Err(src.error_at(
                    data,
                    format!("array of shape {:?}: expected (N, 4) columns x, y, p, t or a structured array with t, x, y, p", header.shape),
                ));
            }
            (Layout::Table { scalar, t_ms: matches!(scalar, Scalar::Float { .. }) }, 4 * scalar.size())
        };
        Ok(Self { src, layout, record, remaining: header.rows(), buf: Vec::new() })
    }

    fn decode(&self, r: &[u8], at: u64) -> Result<Event> {
        let (t, x, y, p) = match self.layout {
            Layout::Fields([(ts, to), (xs, xo), (ys, yo), (ps, po)]) => {
                (ts.int(&r[to..]), xs.int(&r[xo..]), ys.int(&r[yo..]), ps.f64(&r[po..]))
            }
            Layout::Table { scalar, t_ms } => {
                let s = scalar.size();
                let t = if t_ms { (scalar.f64(&r[3 * s..]) * 1000.0).round() as i64 } else { scalar.int(&r[3 * s..]) };
                (t, scalar.int(r), scalar.int(&r[s..]), scalar.f64(&r[2 * s..]))
            }
        };
        let (Ok(x), Ok(y)) = (u16::try_from(x), u16::try_from(y)) else {
            return Err(self.src.error_at(at, format!("event at x={x} y={y}: coordinates must be in 0..65535")));
        };
        Ok(Event { t, x, y, p: p > 0.0 })
    }
}

impl crate::EventReader for Reader {
    fn format(&self) -> Format {
        Format::Npy
    }

    fn geometry(&self) -> Option<Geometry> {
        None
    }

    fn read_chunk(&mut self, out: &mut Vec<Event>, max: usize) -> Result<usize> {
        let want = max.min(self.remaining);
        if want == 0 {
            return Ok(0);
        }
        let start = self.src.offset();
        let mut buf = std::mem::take(&mut self.buf);
        let n = self.src.read_records(&mut buf, self.record, want, "an npy record");
        let result = n.and_then(|n| {
            if n < want {
                return Err(self.src.error(format!("file ends after {} of the {} records the header promises", n, self.remaining)));
            }
            out.reserve(n);
            for (i, r) in buf[..n * self.record].chunks_exact(self.record).enumerate() {
                out.push(self.decode(r, start + (i * self.record) as u64)?);
            }
            Ok(n)
        });
        self.buf = buf;
        let n = result?;
        self.remaining -= n;
        Ok(n)
    }
}

/// Writes a structured array `t <i8, x <u2, y <u2, p |u1`; the row count is filled in at the end.
pub struct Writer<W: Write + Seek> {
    out: W,
    count: u64,
}

const HEADER_LEN: usize = 128;

fn header_bytes(count: u64) -> Vec<u8> {
    let dict =
        format!("{{'descr': [('t', '<i8'), ('x', '<u2'), ('y', '<u2'), ('p', '|u1')], 'fortran_order': False, 'shape': ({count},), }}");
    let mut h = b"\x93NUMPY\x01\x00".to_vec();
    h.extend_from_slice(&((HEADER_LEN - 10) as u16).to_le_bytes());
    h.extend_from_slice(dict.as_bytes());
    h.resize(HEADER_LEN - 1, b' ');
    h.push(b'\n');
    h
}

impl<W: Write + Seek> Writer<W> {
    /// Reserves the header.
    pub fn new(mut out: W) -> std::io::Result<Self> {
        out.write_all(&header_bytes(0))?;
        Ok(Self { out, count: 0 })
    }

    /// Appends events.
    pub fn write(&mut self, events: &[Event]) -> std::io::Result<()> {
        let mut rec = [0u8; 13];
        for e in events {
            rec[..8].copy_from_slice(&e.t.to_le_bytes());
            rec[8..10].copy_from_slice(&e.x.to_le_bytes());
            rec[10..12].copy_from_slice(&e.y.to_le_bytes());
            rec[12] = u8::from(e.p);
            self.out.write_all(&rec)?;
        }
        self.count += events.len() as u64;
        Ok(())
    }

    /// Writes the final row count into the header and returns the sink.
    pub fn finish(mut self) -> std::io::Result<W> {
        self.out.seek(SeekFrom::Start(0))?;
        self.out.write_all(&header_bytes(self.count))?;
        self.out.seek(SeekFrom::End(0))?;
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::{Header, Scalar};

    /// Headers that panicked: no field at all (found by the fuzzer), and records of no bytes
    /// (a division by zero, found by reading the code).
    #[test]
    fn headers_without_fields_or_bytes_are_refused() {
        let shape = "'fortran_order': False, 'shape': (10,), }";
        assert_eq!(Header::parse(&format!("{{'descr': [], {shape}")).err().as_deref(), Some("descr names no field"));
        let empty = "[('t', '|V0'), ('x', '|V0'), ('y', '|V0'), ('p', '|V0')]";
        assert_eq!(Header::parse(&format!("{{'descr': {empty}, {shape}")).err().as_deref(), Some("records of 0 bytes"));
        assert_eq!(Header::parse(&format!("{{'descr': '|V0', {shape}")).err().as_deref(), Some("records of 0 bytes"));
        assert!(Header::parse(&format!("{{'descr': '<i8', {shape}")).is_ok());
    }

    /// A corrupt type code whose kind is not ASCII is no type (the fuzzer found it panicking).
    #[test]
    fn a_type_code_of_any_text_is_read_or_refused() {
        assert_eq!(Scalar::parse("<i2"), Some(Scalar::Int { size: 2, signed: true, big: false }));
        for bad in ["<\u{ffff}8", "\u{e9}", ">\u{1F600}4", "<", "i", "<i3"] {
            assert_eq!(Scalar::parse(bad), None, "{bad:?}");
        }
    }

    /// Every integer type in both byte orders reads back the value written, at its extremes too.
    #[test]
    fn integers_read_back_in_every_size_sign_and_order() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for size in [1usize, 2, 4, 8] {
            for signed in [false, true] {
                for big in [false, true] {
                    let bits = 8 * size as u32;
                    let (lo, hi) = if signed { (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1) } else { (0, (1i128 << bits) - 1) };
                    let mut values = vec![0, 1, lo, hi, lo + 1, hi - 1];
                    for _ in 0..50 {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        values.push(lo + (i128::from(x) % (hi - lo + 1)));
                    }
                    for v in values.into_iter().filter(|v| (lo..=hi).contains(v) && *v <= i128::from(i64::MAX)) {
                        let le = (v as u64).to_le_bytes();
                        let mut b = le[..size].to_vec();
                        if big {
                            b.reverse();
                        }
                        b.push(0xAB); // the next field's byte, never read
                        let scalar = Scalar::Int { size, signed, big };
                        assert_eq!(i128::from(scalar.int(&b)), v, "{scalar:?} {v}");
                    }
                }
            }
        }
    }
}
