//! One module per file format: a streaming `Reader` and, where the format is worth writing, a
//! `Writer`. Shared helpers live here.

pub mod aedat2;
pub mod aedat3;
pub mod aedat4;
pub mod csv;
pub mod dat;
pub mod es;
pub mod evt2;
pub mod evt21;
pub mod evt3;
pub(crate) mod flatbuffer;
pub mod nmnist;
pub mod npy;
pub mod npz;

/// Extends timestamps that wrap around after `bits` bits into a monotonic 64-bit time line.
/// A raw value smaller than the previous one by more than half the period is taken as a wrap;
/// a small step back (jitter between packets) is passed through as it is.
#[derive(Clone, Debug)]
pub(crate) struct Unwrap {
    bits: u32,
    last: u64,
    base: i64,
    pub(crate) wraps: u64,
}

impl Unwrap {
    pub(crate) fn new(bits: u32) -> Self {
        Self { bits, last: 0, base: 0, wraps: 0 }
    }

    pub(crate) fn apply(&mut self, raw: u64) -> i64 {
        let period = 1u64 << self.bits;
        if raw < self.last && self.last - raw > period / 2 {
            self.base += period as i64;
            self.wraps += 1;
        }
        self.last = raw;
        self.base + raw as i64
    }
}

/// The values a writer of a wrapping `bits`-bit time field emits to move from `prev` to `next`
/// so that [`Unwrap`] on the reading side recovers `next` exactly: intermediate values every
/// half period when time jumps far (a file starts at time 0 for the reader). Ends with `next`.
pub(crate) fn wrap_steps(prev: Option<u64>, next: u64, bits: u32) -> std::io::Result<Vec<u64>> {
    let half = (1u64 << bits) / 2 - 1;
    let prev = prev.unwrap_or(0);
    if next < prev {
        return Err(evt2::invalid("timestamps must not decrease"));
    }
    let steps = (next - prev) / half;
    if steps > 1 << 20 {
        return Err(evt2::invalid("timestamps too far from 0 for this format: shift them first (convert --rebase-time)"));
    }
    Ok((1..=steps).map(|i| prev + i * half).chain(std::iter::once(next)).collect())
}

/// Sensor sizes of cameras that formats name instead of giving a size.
pub(crate) fn known_sensor(name: &str) -> Option<crate::Geometry> {
    use crate::Geometry;
    let n = name.to_ascii_lowercase();
    Some(if n.contains("dvxplorer") && n.contains("lite") {
        Geometry::new(320, 240)
    } else if n.contains("dvxplorer") || n.contains("dvxp") {
        Geometry::new(640, 480)
    } else if n.contains("davis346") {
        Geometry::new(346, 260)
    } else if n.contains("davis240") {
        Geometry::new(240, 180)
    } else if n.contains("dvs128") {
        Geometry::DVS128
    } else if n.contains("imx636") || n.contains("gen4") || n.contains("gen41") || n.contains("imx646") {
        Geometry::new(1280, 720)
    } else if n.contains("gen3") || n.contains("gen31") || n.contains("vga") {
        Geometry::new(640, 480)
    } else if n.contains("atis") {
        Geometry::new(304, 240)
    } else {
        return None;
    })
}
