//! The event model shared by every crate: one DVS event and the sensor it came from.

/// One change event of a dynamic vision sensor.
///
/// `t` is in microseconds and signed so that recordings with a negative time origin and
/// differences of timestamps need no special casing. `x` grows to the right and `y` grows
/// downwards from the top row, whatever the file format stores.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Event {
    /// Timestamp in microseconds.
    pub t: i64,
    /// Column, 0 at the left.
    pub x: u16,
    /// Row, 0 at the top.
    pub y: u16,
    /// `true` for ON (brightness increase), `false` for OFF.
    pub p: bool,
}

impl Event {
    /// Builds an event; a shorthand used everywhere in tests and generators.
    pub const fn new(t: i64, x: u16, y: u16, p: bool) -> Self {
        Self { t, x, y, p }
    }
}

/// The pixel array size of the sensor that produced a recording.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Geometry {
    /// Number of columns.
    pub width: u16,
    /// Number of rows.
    pub height: u16,
}

impl Geometry {
    /// A sensor of `width` x `height` pixels.
    pub const fn new(width: u16, height: u16) -> Self {
        Self { width, height }
    }

    /// The 128x128 sensor of the DVS128 and of Speck.
    pub const DVS128: Self = Self::new(128, 128);

    /// Whether the pixel `(x, y)` lies on this sensor.
    pub const fn contains(&self, x: u16, y: u16) -> bool {
        x < self.width && y < self.height
    }
}

impl std::fmt::Display for Geometry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}
