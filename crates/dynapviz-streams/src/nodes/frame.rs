//! DVS events -> an image for display (samna `DvsToVizConverter` plus accumulation): ON and
//! OFF counts per pixel with exponential decay between frames, so motion leaves a short trail.

use dynapviz_events::{Event, Geometry};

/// Accumulates events into ON/OFF intensity planes.
#[derive(Clone, Debug)]
pub struct FrameAccumulator {
    geometry: Geometry,
    /// ON activity per pixel (row-major).
    pub on: Vec<f32>,
    /// OFF activity per pixel.
    pub off: Vec<f32>,
    decay_tau_us: Option<f64>,
    last_frame_us: Option<i64>,
    /// Events outside the geometry, ignored.
    pub outside: u64,
}

impl FrameAccumulator {
    /// `decay_tau_us`: time constant of the fade (None: clear every frame).
    pub fn new(geometry: Geometry, decay_tau_us: Option<f64>) -> Self {
        let n = usize::from(geometry.width) * usize::from(geometry.height);
        Self { geometry, on: vec![0.0; n], off: vec![0.0; n], decay_tau_us, last_frame_us: None, outside: 0 }
    }

    /// The sensor size.
    pub fn geometry(&self) -> Geometry {
        self.geometry
    }

    /// Adds events.
    pub fn add(&mut self, events: &[Event]) {
        let w = usize::from(self.geometry.width);
        for e in events {
            if !self.geometry.contains(e.x, e.y) {
                self.outside += 1;
                continue;
            }
            let i = usize::from(e.y) * w + usize::from(e.x);
            if e.p {
                self.on[i] += 1.0;
            } else {
                self.off[i] += 1.0;
            }
        }
    }

    /// Starts a new frame at `t_us`: decays (or clears) what was accumulated.
    pub fn next_frame(&mut self, t_us: i64) {
        let factor = match (self.decay_tau_us, self.last_frame_us) {
            (Some(tau), Some(last)) if tau > 0.0 => (-((t_us - last) as f64) / tau).exp() as f32,
            _ => 0.0,
        };
        self.last_frame_us = Some(t_us);
        for v in self.on.iter_mut().chain(self.off.iter_mut()) {
            *v *= factor;
        }
    }
}
