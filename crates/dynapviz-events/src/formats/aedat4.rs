//! DV AEDAT 4.0: `#!AER-DAT4.0\r\n`, an i32 length and an `IOHeader` flatbuffer (compression,
//! data table position, an XML description of the streams), then packets of an i32 stream id,
//! an i32 size and a (possibly LZ4- or Zstd-compressed) flatbuffer. Only streams whose type is
//! `EVTS` are decoded (`Event { t: i64, x: i16, y: i16, on: bool }`, 16 bytes); frames, IMU and
//! triggers are skipped and counted. The sensor size is the `sizeX`/`sizeY` of the event stream.

use std::collections::HashMap;
use std::io::{Read, Write};

use super::flatbuffer::{self, Table};
use crate::reader::Skipped;
use crate::source::Source;
use crate::{Event, Format, Geometry, Result};

const MAGIC: &[u8; 14] = b"#!AER-DAT4.0\r\n";
const COMPRESSION_NONE: i32 = 0;
const COMPRESSION_LZ4: i32 = 1;
const COMPRESSION_LZ4_HIGH: i32 = 2;
const COMPRESSION_ZSTD: i32 = 3;
const COMPRESSION_ZSTD_HIGH: i32 = 4;
/// Largest packet accepted, compressed or not: a corrupt size must not allocate gigabytes.
const MAX_PACKET: usize = 1 << 28;

/// What the XML header says about one stream.
#[derive(Default, Debug)]
struct StreamInfo {
    kind: String,
    width: Option<u16>,
    height: Option<u16>,
}

/// Parses the `outInfo` nodes of the header XML: per stream id, its type and size.
fn parse_info(xml: &str) -> HashMap<i32, StreamInfo> {
    let mut streams: HashMap<i32, StreamInfo> = HashMap::new();
    let mut current: Option<i32> = None;
    for line in xml.lines() {
        let line = line.trim();
        if let Some(path) = line.strip_prefix("<node ").and_then(|l| l.split("path=\"").nth(1)) {
            current = path.split("outInfo/").nth(1).and_then(|rest| rest.split('/').next()).and_then(|id| id.parse().ok());
            continue;
        }
        let (Some(id), Some(rest)) = (current, line.strip_prefix("<attr key=\"")) else {
            continue;
        };
        let Some((key, rest)) = rest.split_once('"') else {
            continue;
        };
        let value = rest.split_once('>').and_then(|(_, v)| v.split_once('<')).map(|(v, _)| v.trim()).unwrap_or("");
        let info = streams.entry(id).or_default();
        match key {
            "typeIdentifier" => info.kind = value.to_string(),
            "sizeX" => info.width = value.parse().ok(),
            "sizeY" => info.height = value.parse().ok(),
            _ => {}
        }
    }
    streams
}

/// Streaming AEDAT 4.0 decoder.
pub struct Reader {
    src: Source,
    compression: i32,
    /// Where the packets end (the file data table starts), when the header says so.
    end: Option<u64>,
    event_streams: Vec<i32>,
    geometry: Option<Geometry>,
    raw: Vec<u8>,
    packet: Vec<u8>,
    skipped: Skipped,
    /// Hands out each event packet as it arrives, not a chunk of `max` events: a live stream
    /// (see [`crate::net`]) would hold its events back until that many came.
    live: bool,
}

impl Reader {
    pub(crate) fn new(mut src: Source) -> Result<Self> {
        let mut magic = [0u8; 14];
        src.read_exact(&mut magic, "the AEDAT 4.0 signature")?;
        if &magic != MAGIC {
            return Err(src.error_at(0, "expected the signature `#!AER-DAT4.0\\r\\n`"));
        }
        Self::after_signature(src, false)
    }

    /// The reader of a DV network stream: what follows a file's signature (the header, then
    /// packets, with no data table), each event packet handed out as it arrives.
    pub(crate) fn live(src: Source) -> Result<Self> {
        Self::after_signature(src, true)
    }

    fn after_signature(mut src: Source, live: bool) -> Result<Self> {
        let start = src.offset();
        let mut len = [0u8; 4];
        src.read_exact(&mut len, "the header length")?;
        let len = i32::from_le_bytes(len);
        if !(8..=1 << 24).contains(&len) {
            return Err(src.error_at(start, format!("header length {len}: expected 8..16 MiB")));
        }
        let at = src.offset();
        let mut header = vec![0u8; len as usize];
        src.read_exact(&mut header, "the IOHeader")?;
        let table = Table::root(&header).ok_or_else(|| src.error_at(at, "corrupt IOHeader flatbuffer"))?;
        let bad = || src.error_at(at, "corrupt IOHeader field");
        let compression = table.i32(0, COMPRESSION_NONE).ok_or_else(bad)?;
        let position = table.i64(1, -1).ok_or_else(bad)?;
        let info = table.string(2).ok_or_else(bad)?;
        if !(COMPRESSION_NONE..=COMPRESSION_ZSTD_HIGH).contains(&compression) {
            return Err(
                src.error_at(at, format!("unknown compression {compression}: expected 0..4 (none, LZ4, LZ4 high, Zstd, Zstd high)"))
            );
        }
        let streams = parse_info(&String::from_utf8_lossy(info));
        let mut event_streams: Vec<i32> = streams.iter().filter(|(_, s)| s.kind == "EVTS").map(|(id, _)| *id).collect();
        event_streams.sort_unstable();
        let geometry = event_streams.first().and_then(|id| {
            let s = &streams[id];
            Some(Geometry::new(s.width?, s.height?))
        });
        let end = u64::try_from(position).ok().filter(|&p| p > 0);
        Ok(Self { src, compression, end, event_streams, geometry, raw: Vec::new(), packet: Vec::new(), skipped: Skipped::default(), live })
    }

    /// Decompresses `self.raw` into `self.packet`.
    fn decompress(&mut self, at: u64) -> Result<()> {
        self.packet.clear();
        let limited = |r: &mut dyn Read, out: &mut Vec<u8>| (r.take(MAX_PACKET as u64 + 1)).read_to_end(out).map(|_| ());
        let result = match self.compression {
            COMPRESSION_LZ4 | COMPRESSION_LZ4_HIGH => limited(&mut lz4_flex::frame::FrameDecoder::new(&self.raw[..]), &mut self.packet),
            COMPRESSION_ZSTD | COMPRESSION_ZSTD_HIGH => match ruzstd::decoding::StreamingDecoder::new(&self.raw[..]) {
                Ok(mut d) => limited(&mut d, &mut self.packet),
                Err(e) => Err(std::io::Error::other(e.to_string())),
            },
            _ => {
                self.packet.extend_from_slice(&self.raw);
                Ok(())
            }
        };
        result.map_err(|e| self.src.error_at(at, format!("packet does not decompress: {e}")))?;
        if self.packet.len() > MAX_PACKET {
            return Err(self.src.error_at(at, "packet decompresses to more than 256 MiB"));
        }
        Ok(())
    }

    /// Decodes the event packet in `self.packet`.
    fn decode_events(&mut self, at: u64, out: &mut Vec<Event>) -> Result<()> {
        let buf = &self.packet[..];
        // Size-prefixed (as DV writes) or plain: the identifier tells which.
        let body = if buf.get(8..12) == Some(b"EVTS") { &buf[4..] } else { buf };
        let elements =
            Table::root(body).and_then(|t| t.vector(0, 16)).ok_or_else(|| self.src.error_at(at, "corrupt event packet flatbuffer"))?;
        out.reserve(elements.len() / 16);
        for r in elements.chunks_exact(16) {
            let t = i64::from_le_bytes(r[0..8].try_into().unwrap_or_default());
            let x = i16::from_le_bytes([r[8], r[9]]);
            let y = i16::from_le_bytes([r[10], r[11]]);
            let (Ok(x), Ok(y)) = (u16::try_from(x), u16::try_from(y)) else {
                return Err(self.src.error_at(at, format!("event at x={x} y={y}: negative coordinate")));
            };
            let e = Event { t, x, y, p: r[12] != 0 };
            self.src.check_xy(&e, self.geometry, at)?;
            out.push(e);
        }
        Ok(())
    }
}

impl crate::EventReader for Reader {
    fn format(&self) -> Format {
        Format::Aedat4
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
            if self.end.is_some_and(|end| at >= end) {
                break;
            }
            let mut h = [0u8; 8];
            let got = self.src.read_up_to(&mut h)?;
            if got == 0 {
                break;
            }
            if got < 8 {
                return Err(self.src.error_at(at, format!("{} ends inside a packet header: {got} of 8 bytes", self.src.kind())));
            }
            let stream = i32::from_le_bytes([h[0], h[1], h[2], h[3]]);
            let size = i32::from_le_bytes([h[4], h[5], h[6], h[7]]);
            let size = usize::try_from(size)
                .ok()
                .filter(|&s| s <= MAX_PACKET)
                .ok_or_else(|| self.src.error_at(at + 4, format!("packet size {size}: expected 0..256 MiB (corrupt packet header)")))?;
            if !self.event_streams.contains(&stream) {
                self.skipped.other_records += 1;
                self.src.skip(size as u64, "a packet")?;
                continue;
            }
            let mut raw = std::mem::take(&mut self.raw);
            raw.resize(size, 0);
            let read = self.src.read_exact(&mut raw, "a packet");
            self.raw = raw;
            read?;
            self.decompress(at + 8)?;
            self.decode_events(at + 8, out)?;
            if self.live && out.len() > start_len {
                break;
            }
        }
        Ok(out.len() - start_len)
    }
}

/// Writes AEDAT 4.0 with one LZ4-compressed event stream, as DV records it.
pub struct Writer<W: Write> {
    out: W,
    pending: Vec<u8>,
}

/// Events per packet.
const PACKET_EVENTS: usize = 4096;

/// How the packets of a stream that dynapviz writes are compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Lz4,
    /// Zstandard at its fastest level (about zstd's level 1).
    Zstd,
}

impl Compression {
    fn code(self) -> i32 {
        match self {
            Compression::None => COMPRESSION_NONE,
            Compression::Lz4 => COMPRESSION_LZ4,
            Compression::Zstd => COMPRESSION_ZSTD,
        }
    }

    /// The name the stream's header gives it.
    fn name(self) -> &'static str {
        match self {
            Compression::None => "NONE",
            Compression::Lz4 => "LZ4",
            Compression::Zstd => "ZSTD",
        }
    }
}

/// The header of one event stream of `geometry`, as its length and the `IOHeader`
/// flatbuffer: what follows the signature in a file (`path` "/mainloop/Recorder/outInfo/", as
/// DV's recorder writes it) and starts a network stream ("/outInfo/", as dv-processing's
/// `NetworkWriter` sends it).
pub(crate) fn stream_header(geometry: Geometry, compression: Compression, path: &str) -> Vec<u8> {
    let name = compression.name();
    let info = format!(
        "<dv version=\"2.0\">\n    <node name=\"outInfo\" path=\"{path}\">\n        <node name=\"0\" path=\"{path}0/\">\n            <attr key=\"compression\" type=\"string\">{name}</attr>\n            <attr key=\"originalModuleName\" type=\"string\">dynapviz</attr>\n            <attr key=\"originalOutputName\" type=\"string\">events</attr>\n            <attr key=\"typeDescription\" type=\"string\">Array of events (polarity ON/OFF).</attr>\n            <attr key=\"typeIdentifier\" type=\"string\">EVTS</attr>\n            <node name=\"info\" path=\"{path}0/info/\">\n                <attr key=\"sizeX\" type=\"int\">{}</attr>\n                <attr key=\"sizeY\" type=\"int\">{}</attr>\n                <attr key=\"source\" type=\"string\">dynapviz</attr>\n            </node>\n        </node>\n    </node>\n</dv>\n",
        geometry.width, geometry.height
    );
    let header = flatbuffer::io_header(compression.code(), -1, &info);
    let mut out = Vec::with_capacity(4 + header.len());
    out.extend_from_slice(&(header.len() as i32).to_le_bytes());
    out.extend_from_slice(&header);
    out
}

/// Appends `events` to `raw` as an `EventPacket` stores them (16 bytes each).
pub(crate) fn packet_events(events: &[Event], raw: &mut Vec<u8>) -> std::io::Result<()> {
    for e in events {
        let (Ok(x), Ok(y)) = (i16::try_from(e.x), i16::try_from(e.y)) else {
            return Err(super::evt2::invalid("AEDAT 4.0 stores coordinates below 32768"));
        };
        raw.extend_from_slice(&e.t.to_le_bytes());
        raw.extend_from_slice(&x.to_le_bytes());
        raw.extend_from_slice(&y.to_le_bytes());
        raw.extend_from_slice(&[u8::from(e.p), 0, 0, 0]);
    }
    Ok(())
}

/// One packet of stream 0 holding the events `raw` (see [`packet_events`]): its stream id,
/// size and compressed `EventPacket`.
pub(crate) fn packet(raw: &[u8], compression: Compression) -> std::io::Result<Vec<u8>> {
    let packet = flatbuffer::event_packet(raw);
    let body = match compression {
        Compression::None => packet,
        Compression::Lz4 => {
            let mut enc = lz4_flex::frame::FrameEncoder::new(Vec::new());
            enc.write_all(&packet)?;
            enc.finish().map_err(std::io::Error::other)?
        }
        Compression::Zstd => with_content_size(
            ruzstd::encoding::compress_to_vec(&packet[..], ruzstd::encoding::CompressionLevel::Fastest),
            packet.len() as u64,
        )?,
    };
    let mut out = Vec::with_capacity(8 + body.len());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&(body.len() as i32).to_le_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// A Zstandard frame with its content size stated in its header: dv-processing's decoder
/// refuses a frame without it ("unknown content size"), and ruzstd writes none. The header is
/// the magic number, a descriptor byte and a window byte; the size goes after them as 8 bytes
/// (descriptor bits 7-6 = 3), which changes nothing else in the frame (RFC 8878, 3.1.1.1).
fn with_content_size(mut frame: Vec<u8>, size: u64) -> std::io::Result<Vec<u8>> {
    const MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];
    // No size, not single-segment, no dictionary: what ruzstd writes, and all this expects.
    let plain = frame.len() > 6 && frame[..4] == MAGIC && frame[4] & 0b1110_0011 == 0;
    if !plain {
        return Err(std::io::Error::other("an unexpected Zstandard frame header"));
    }
    frame[4] |= 0b1100_0000;
    frame.splice(6..6, size.to_le_bytes());
    Ok(frame)
}

impl<W: Write> Writer<W> {
    /// Writes the signature and header for one event stream of `geometry`.
    pub fn new(mut out: W, geometry: Geometry) -> std::io::Result<Self> {
        out.write_all(MAGIC)?;
        out.write_all(&stream_header(geometry, Compression::Lz4, "/mainloop/Recorder/outInfo/"))?;
        Ok(Self { out, pending: Vec::new() })
    }

    fn flush_packet(&mut self) -> std::io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.out.write_all(&packet(&self.pending, Compression::Lz4)?)?;
        self.pending.clear();
        Ok(())
    }

    /// Appends events.
    pub fn write(&mut self, events: &[Event]) -> std::io::Result<()> {
        let mut rest = events;
        while !rest.is_empty() {
            let room = PACKET_EVENTS - self.pending.len() / 16;
            let (now, later) = rest.split_at(room.min(rest.len()));
            packet_events(now, &mut self.pending)?;
            if self.pending.len() == PACKET_EVENTS * 16 {
                self.flush_packet()?;
            }
            rest = later;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A Zstandard packet states its content size (dv-processing's decoder needs it) and
    /// decodes to the `EventPacket` it holds.
    #[test]
    fn a_zstd_packet_states_its_content_size_and_decodes() {
        let mut raw = Vec::new();
        packet_events(&(0..500).map(|i| Event::new(i, (i % 300) as u16, 7, i % 2 == 0)).collect::<Vec<_>>(), &mut raw).expect("events");
        let plain = flatbuffer::event_packet(&raw);
        let packet = packet(&raw, Compression::Zstd).expect("packet");
        let frame = &packet[8..];
        assert_eq!(usize::try_from(i32::from_le_bytes([packet[4], packet[5], packet[6], packet[7]])).ok(), Some(frame.len()));
        assert_eq!(frame[4] >> 6, 3, "an 8-byte content size");
        let size = u64::from_le_bytes(frame[6..14].try_into().expect("8 bytes"));
        assert_eq!(size, plain.len() as u64);
        let mut decoded = Vec::new();
        ruzstd::decoding::StreamingDecoder::new(frame).expect("a frame").read_to_end(&mut decoded).expect("decodes");
        assert_eq!(decoded, plain);
    }
}
