//! Event filters: decimation, rescaling, crop, polarity, layer selection, hot pixels and
//! background activity. Each filters a chunk in place.

use dynapviz_chip::Spike;
use dynapviz_events::{Event, Geometry};

use super::{NodeError, invalid};

/// Keeps L of every M events (samna `DvsEventDecimate.set_decimation_fraction(M, L)`): of each
/// run of M events the first L pass.
#[derive(Clone, Debug)]
pub struct Decimate {
    m: u32,
    l: u32,
    seen: u32,
}

impl Decimate {
    /// Needs 1 <= L <= M.
    pub fn new(m: u32, l: u32) -> Result<Self, NodeError> {
        if l == 0 || l > m {
            return Err(invalid("decimate", format!("keep {l} of every {m}: needs 1 <= L <= M")));
        }
        Ok(Self { m, l, seen: 0 })
    }

    /// Filters in place.
    pub fn apply(&mut self, events: &mut Vec<Event>) {
        events.retain(|_| {
            let keep = self.seen < self.l;
            self.seen = (self.seen + 1) % self.m;
            keep
        });
    }
}

/// Divides coordinates (samna `DvsEventRescale`): `x / wc`, `y / hc`, rounded down; fits a
/// 640x480 camera to a 128x128 network with (5, 3.75).
#[derive(Clone, Copy, Debug)]
pub struct Rescale {
    wc: f64,
    hc: f64,
}

impl Rescale {
    /// Coefficients must be positive and finite.
    pub fn new(wc: f64, hc: f64) -> Result<Self, NodeError> {
        if !(wc > 0.0 && hc > 0.0 && wc.is_finite() && hc.is_finite()) {
            return Err(invalid("rescale", format!("coefficients ({wc}, {hc}) must be positive")));
        }
        Ok(Self { wc, hc })
    }

    /// The coefficients that fit `from` onto `to`.
    pub fn fit(from: Geometry, to: Geometry) -> Result<Self, NodeError> {
        Self::new(f64::from(from.width) / f64::from(to.width), f64::from(from.height) / f64::from(to.height))
    }

    /// Rescales in place.
    pub fn apply(&self, events: &mut [Event]) {
        for e in events {
            e.x = (f64::from(e.x) / self.wc) as u16;
            e.y = (f64::from(e.y) / self.hc) as u16;
        }
    }
}

/// Keeps events inside a region of interest; `shift` moves its corner to (0, 0).
#[derive(Clone, Copy, Debug)]
pub struct Crop {
    x0: u16,
    y0: u16,
    x1: u16,
    y1: u16,
    shift: bool,
}

impl Crop {
    /// Columns `x0..x1`, rows `y0..y1` (end exclusive).
    pub fn new(x0: u16, y0: u16, x1: u16, y1: u16, shift: bool) -> Result<Self, NodeError> {
        if x0 >= x1 || y0 >= y1 {
            return Err(invalid("crop", format!("region x {x0}..{x1}, y {y0}..{y1} is empty")));
        }
        Ok(Self { x0, y0, x1, y1, shift })
    }

    /// Filters in place.
    pub fn apply(&self, events: &mut Vec<Event>) {
        events.retain_mut(|e| {
            let inside = (self.x0..self.x1).contains(&e.x) && (self.y0..self.y1).contains(&e.y);
            if inside && self.shift {
                e.x -= self.x0;
                e.y -= self.y0;
            }
            inside
        });
    }
}

/// Keeps one polarity.
#[derive(Clone, Copy, Debug)]
pub struct PolarityFilter {
    /// Keep ON events (else OFF).
    pub on: bool,
}

impl PolarityFilter {
    /// Filters in place.
    pub fn apply(&self, events: &mut Vec<Event>) {
        events.retain(|e| e.p == self.on);
    }
}

/// Keeps spikes of the given layers (samna `MemberSelect`).
#[derive(Clone, Debug)]
pub struct LayerSelect {
    layers: Vec<u16>,
}

impl LayerSelect {
    /// Keeps these layer numbers (0 = DVS).
    pub fn new(layers: &[u16]) -> Self {
        Self { layers: layers.to_vec() }
    }

    /// Filters in place.
    pub fn apply(&self, spikes: &mut Vec<Spike>) {
        spikes.retain(|s| self.layers.contains(&s.layer));
    }
}

/// Drops events of pixels that fire far more than the rest: over each window, pixels with more
/// than `factor` x the mean count (and at least `min_count`) are masked for the next window.
#[derive(Clone, Debug)]
pub struct HotPixelFilter {
    geometry: Geometry,
    window_us: i64,
    factor: f64,
    min_count: u32,
    counts: Vec<u32>,
    hot: Vec<bool>,
    window_end: Option<i64>,
    /// Events removed so far.
    pub removed: u64,
}

impl HotPixelFilter {
    /// A filter for a sensor of `geometry`.
    pub fn new(geometry: Geometry, window_us: i64, factor: f64, min_count: u32) -> Result<Self, NodeError> {
        if window_us <= 0 || factor <= 1.0 {
            return Err(invalid("hot-pixel filter", "needs a positive window and a factor above 1"));
        }
        let n = usize::from(geometry.width) * usize::from(geometry.height);
        Ok(Self { geometry, window_us, factor, min_count, counts: vec![0; n], hot: vec![false; n], window_end: None, removed: 0 })
    }

    fn close_window(&mut self) {
        let total: u64 = self.counts.iter().map(|&c| u64::from(c)).sum();
        let active = self.counts.iter().filter(|&&c| c > 0).count().max(1);
        let limit = (self.factor * total as f64 / active as f64).max(f64::from(self.min_count));
        for (h, c) in self.hot.iter_mut().zip(&mut self.counts) {
            *h = f64::from(*c) > limit;
            *c = 0;
        }
    }

    /// Filters in place.
    pub fn apply(&mut self, events: &mut Vec<Event>) {
        let w = usize::from(self.geometry.width);
        events.retain(|e| {
            let end = *self.window_end.get_or_insert(e.t + self.window_us);
            if e.t >= end {
                self.close_window();
                self.window_end = Some(e.t + self.window_us);
            }
            if !self.geometry.contains(e.x, e.y) {
                return true;
            }
            let i = usize::from(e.y) * w + usize::from(e.x);
            self.counts[i] = self.counts[i].saturating_add(1);
            if self.hot[i] {
                self.removed += 1;
                false
            } else {
                true
            }
        });
    }
}

/// Delbruck's background-activity filter: an event passes when one of its 8 neighbours had an
/// event within `dt_us` before it; isolated noise events are dropped.
#[derive(Clone, Debug)]
pub struct BackgroundActivityFilter {
    geometry: Geometry,
    dt_us: i64,
    last: Vec<i64>,
    /// Events removed so far.
    pub removed: u64,
}

impl BackgroundActivityFilter {
    /// A filter for a sensor of `geometry`.
    pub fn new(geometry: Geometry, dt_us: i64) -> Result<Self, NodeError> {
        if dt_us <= 0 {
            return Err(invalid("background-activity filter", "needs a positive time window"));
        }
        let n = usize::from(geometry.width) * usize::from(geometry.height);
        Ok(Self { geometry, dt_us, last: vec![i64::MIN / 2; n], removed: 0 })
    }

    /// Filters in place.
    pub fn apply(&mut self, events: &mut Vec<Event>) {
        let (w, h) = (i32::from(self.geometry.width), i32::from(self.geometry.height));
        events.retain(|e| {
            if !self.geometry.contains(e.x, e.y) {
                return true;
            }
            let (x, y) = (i32::from(e.x), i32::from(e.y));
            let mut support = false;
            for dy in -1..=1 {
                for dx in -1..=1 {
                    let (nx, ny) = (x + dx, y + dy);
                    if (dx, dy) != (0, 0)
                        && (0..w).contains(&nx)
                        && (0..h).contains(&ny)
                        && e.t - self.last[(ny * w + nx) as usize] <= self.dt_us
                    {
                        support = true;
                    }
                }
            }
            self.last[(y * w + x) as usize] = e.t;
            if !support {
                self.removed += 1;
            }
            support
        });
    }
}
