//! Just enough of the flatbuffers wire format for AEDAT 4.0: reading tables, scalars, strings
//! and vectors of structs with bounds checks (a corrupt file yields `None`, never a panic), and
//! writing the two buffers AEDAT 4.0 needs, laid out as flatc's builder lays them out.

/// A table inside a flatbuffer.
#[derive(Clone, Copy)]
pub(crate) struct Table<'a> {
    buf: &'a [u8],
    pos: usize,
    vtable: usize,
    vtable_len: usize,
}

fn u16_at(buf: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(buf.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(buf: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(buf.get(at..at + 4)?.try_into().ok()?))
}

impl<'a> Table<'a> {
    /// The root table of `buf` (which starts at the root offset, after any size prefix).
    pub(crate) fn root(buf: &'a [u8]) -> Option<Self> {
        Self::at(buf, u32_at(buf, 0)? as usize)
    }

    fn at(buf: &'a [u8], pos: usize) -> Option<Self> {
        let soffset = i32::from_le_bytes(buf.get(pos..pos + 4)?.try_into().ok()?);
        let vtable = usize::try_from(pos as i64 - i64::from(soffset)).ok()?;
        let vtable_len = usize::from(u16_at(buf, vtable)?);
        (vtable_len >= 4 && vtable + vtable_len <= buf.len()).then_some(Self { buf, pos, vtable, vtable_len })
    }

    /// Absolute position of field `index`, `None` when absent.
    fn field(&self, index: usize) -> Option<usize> {
        let entry = 4 + 2 * index;
        if entry + 2 > self.vtable_len {
            return None;
        }
        let off = usize::from(u16_at(self.buf, self.vtable + entry)?);
        (off != 0).then_some(self.pos + off)
    }

    pub(crate) fn i32(&self, index: usize, default: i32) -> Option<i32> {
        match self.field(index) {
            None => Some(default),
            Some(at) => Some(i32::from_le_bytes(self.buf.get(at..at + 4)?.try_into().ok()?)),
        }
    }

    pub(crate) fn i64(&self, index: usize, default: i64) -> Option<i64> {
        match self.field(index) {
            None => Some(default),
            Some(at) => Some(i64::from_le_bytes(self.buf.get(at..at + 8)?.try_into().ok()?)),
        }
    }

    /// The bytes of a vector field holding elements of `elem` bytes (empty when absent).
    pub(crate) fn vector(&self, index: usize, elem: usize) -> Option<&'a [u8]> {
        let Some(at) = self.field(index) else {
            return Some(&[]);
        };
        let start = at + u32_at(self.buf, at)? as usize;
        let len = u32_at(self.buf, start)? as usize;
        self.buf.get(start + 4..start + 4 + len.checked_mul(elem)?)
    }

    pub(crate) fn string(&self, index: usize) -> Option<&'a [u8]> {
        self.vector(index, 1)
    }
}

/// `EventPacket { elements: [Event] }`, size-prefixed, identifier `EVTS`; `events` holds the
/// 16-byte structs already encoded.
pub(crate) fn event_packet(events: &[u8]) -> Vec<u8> {
    let count = (events.len() / 16) as u32;
    let mut b = Vec::with_capacity(32 + events.len());
    b.extend_from_slice(&((28 + events.len()) as u32).to_le_bytes()); // size prefix
    b.extend_from_slice(&16u32.to_le_bytes()); // root table at 4 + 16
    b.extend_from_slice(b"EVTS");
    b.extend_from_slice(&[0, 0]);
    for v in [6u16, 8, 4] {
        b.extend_from_slice(&v.to_le_bytes()); // vtable: size, table size, field 0 at +4
    }
    b.extend_from_slice(&6i32.to_le_bytes()); // table -> vtable
    b.extend_from_slice(&4u32.to_le_bytes()); // elements vector at +4
    b.extend_from_slice(&count.to_le_bytes());
    b.extend_from_slice(events);
    b
}

/// `IOHeader { compression, dataTablePosition, infoNode }`, identifier `IOHE`.
pub(crate) fn io_header(compression: i32, data_table_position: i64, info: &str) -> Vec<u8> {
    let mut b = Vec::with_capacity(64 + info.len());
    b.extend_from_slice(&24u32.to_le_bytes());
    b.extend_from_slice(b"IOHE");
    for v in [10u16, 20, 4, 8, 16] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    b.extend_from_slice(&[0; 6]);
    b.extend_from_slice(&16i32.to_le_bytes());
    b.extend_from_slice(&compression.to_le_bytes());
    b.extend_from_slice(&data_table_position.to_le_bytes());
    b.extend_from_slice(&4u32.to_le_bytes());
    b.extend_from_slice(&(info.len() as u32).to_le_bytes());
    b.extend_from_slice(info.as_bytes());
    b.push(0);
    while b.len() % 4 != 0 {
        b.push(0);
    }
    b
}
