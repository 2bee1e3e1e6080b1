//! Power samples -> plot points: one line per rail, time in seconds, power in mW.

use dynapviz_chip::PowerSample;

/// Points of the power plot.
#[derive(Clone, Debug, Default)]
pub struct PowerPoints {
    /// Per rail channel: (t seconds since the first sample, mW).
    pub lines: Vec<Vec<(f64, f64)>>,
    t0: Option<i64>,
    max_points: usize,
}

impl PowerPoints {
    /// Keeps at most `max_points` per rail (older ones are dropped: a moving window).
    pub fn new(rails: usize, max_points: usize) -> Self {
        Self { lines: vec![Vec::new(); rails], t0: None, max_points: max_points.max(1) }
    }

    /// Adds samples; samples of channels beyond the rail count are ignored.
    pub fn add(&mut self, samples: &[PowerSample]) {
        for s in samples {
            let t0 = *self.t0.get_or_insert(s.timestamp);
            if let Some(line) = self.lines.get_mut(usize::from(s.channel)) {
                line.push(((s.timestamp - t0) as f64 * 1e-6, s.value * 1e3));
                if line.len() > self.max_points {
                    let excess = line.len() - self.max_points;
                    line.drain(..excess);
                }
            }
        }
    }
}
