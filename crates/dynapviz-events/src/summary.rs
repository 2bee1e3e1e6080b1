//! Figures of a recording, gathered in one streaming pass: what `dynapviz inspect` prints.

use crate::{Event, Format, Geometry};

/// Counts and ranges of a stream of events.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Summary {
    /// Number of events.
    pub events: u64,
    /// ON events.
    pub on: u64,
    /// OFF events.
    pub off: u64,
    /// First and last timestamp, µs.
    pub t_first_us: Option<i64>,
    /// Last timestamp, µs.
    pub t_last_us: Option<i64>,
    /// Smallest and largest x.
    pub x_range: Option<(u16, u16)>,
    /// Smallest and largest y.
    pub y_range: Option<(u16, u16)>,
    /// Events whose timestamp is smaller than the one before.
    pub non_monotonic: u64,
}

impl Summary {
    /// Adds a chunk of events.
    pub fn add(&mut self, events: &[Event]) {
        for e in events {
            self.events += 1;
            if e.p {
                self.on += 1;
            } else {
                self.off += 1;
            }
            if self.t_last_us.is_some_and(|l| e.t < l) {
                self.non_monotonic += 1;
            }
            self.t_first_us.get_or_insert(e.t);
            self.t_last_us = Some(e.t);
            let grow = |r: &mut Option<(u16, u16)>, v: u16| {
                *r = Some(r.map_or((v, v), |(lo, hi)| (lo.min(v), hi.max(v))));
            };
            grow(&mut self.x_range, e.x);
            grow(&mut self.y_range, e.y);
        }
    }

    /// Duration from the first to the last event, µs.
    pub fn duration_us(&self) -> i64 {
        match (self.t_first_us, self.t_last_us) {
            (Some(a), Some(b)) => b - a,
            _ => 0,
        }
    }

    /// Mean event rate over the duration, events per second (0 when the duration is 0).
    pub fn mean_rate_hz(&self) -> f64 {
        let d = self.duration_us();
        if d > 0 { self.events as f64 * 1e6 / d as f64 } else { 0.0 }
    }

    /// The sensor size: the file's own, else the smallest one holding every event.
    pub fn geometry_or_extent(&self, stated: Option<Geometry>) -> Option<Geometry> {
        stated.or_else(|| {
            let (x, y) = (self.x_range?, self.y_range?);
            Some(Geometry::new(x.1.saturating_add(1), y.1.saturating_add(1)))
        })
    }
}

/// A finished inspection of one file.
#[derive(Clone, Debug)]
pub struct Inspection {
    /// The decoded format.
    pub format: Format,
    /// The size stated by the file (or fixed by its format).
    pub geometry: Option<Geometry>,
    /// The figures.
    pub summary: Summary,
}
