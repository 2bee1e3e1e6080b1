//! The chip's output decimator: a block at a core's output that passes one of every
//! `2^(interval + 1)` spikes leaving it, to keep a busy layer from flooding the next
//! (samna's `output_decimator_enable` and `output_decimator_interval` of a CNN layer, "spike
//! decimator on each layer" in its Speck 2e overview; sinabs' Speck tips: interval `0b001`
//! passes one spike of every 4). It sees the spikes that leave the core after its pooling, its
//! leak's too, and what it holds back reaches neither the destinations nor the monitor. Two
//! things samna's reference does not say are assumed here: which spike of each group passes
//! (the last, the one that completes the group, so that a core that sends fewer spikes than a
//! group sends none), and that the monitor taps the core after its decimator. Not in sinabs'
//! simulation, so the event mode only.

use std::fmt;
use std::str::FromStr;

use crate::layer::Site;

/// A core's output decimator, as configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutputDecimator {
    /// The layer whose core decimates (1-based, the network's numbering).
    pub layer: usize,
    /// samna's `output_decimator_interval`: one spike of every `2^(interval + 1)` passes.
    pub interval: u8,
}

impl OutputDecimator {
    /// The largest interval taken (one spike of every 256). samna's reference does not give
    /// the register's width; a larger one is more likely a typing error than a setting.
    pub const MAX_INTERVAL: u8 = 7;

    /// Spikes per spike passed.
    pub fn group(self) -> u32 {
        2 << self.interval
    }
}

impl fmt::Display for OutputDecimator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "layer {}: 1 spike of every {}", self.layer, self.group())
    }
}

/// `LAYER=INTERVAL`, as `simulate --output-decimator` takes it.
impl FromStr for OutputDecimator {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (layer, interval) = s.split_once('=').ok_or_else(|| format!("`{s}`: expected LAYER=INTERVAL, e.g. 1=1"))?;
        let layer = layer.trim().parse().map_err(|_| format!("`{s}`: the layer `{layer}` is not a layer number (1..N)"))?;
        let interval = interval
            .trim()
            .parse()
            .ok()
            .filter(|&i| i <= Self::MAX_INTERVAL)
            .ok_or_else(|| format!("`{s}`: the interval `{interval}` is not one of 0..={}", Self::MAX_INTERVAL))?;
        Ok(Self { layer, interval })
    }
}

/// A decimator's count as the simulation runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Decimator {
    group: u32,
    /// Spikes since the last one passed: `0..group`.
    seen: u32,
}

impl Decimator {
    pub fn new(d: OutputDecimator) -> Self {
        Self { group: d.group(), seen: 0 }
    }

    /// As the chip starts.
    pub fn reset(&mut self) {
        self.seen = 0;
    }

    /// Keeps, of the spikes `sites[start..]` in the order the core sends them, those it passes;
    /// returns how many it held back. Out of line: the layers' loops stay as they are without
    /// a decimator.
    #[inline(never)]
    pub fn thin(&mut self, sites: &mut Vec<Site>, start: usize) -> u64 {
        let (n, group) = (sites.len() - start, self.group as usize);
        // The first to pass is the one that completes the group begun before.
        let first = start + (group - 1 - self.seen as usize);
        let mut kept = start;
        for i in (first..sites.len()).step_by(group) {
            sites[kept] = sites[i];
            kept += 1;
        }
        self.seen = ((self.seen as usize + n) % group) as u32;
        sites.truncate(kept);
        (n - (kept - start)) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::{Decimator, OutputDecimator};
    use crate::layer::Site;

    fn sites(xs: impl IntoIterator<Item = u16>) -> Vec<Site> {
        xs.into_iter().map(|x| Site { c: 0, y: 0, x }).collect()
    }

    /// Every 4th spike passes, counted across runs of any size, and the sites before `start`
    /// (other runs already queued) stay.
    #[test]
    fn one_spike_of_each_group_passes_across_runs() {
        let mut d = Decimator::new(OutputDecimator { layer: 1, interval: 1 });
        let mut queue = sites([100]);
        let mut held = 0;
        for run in [1..3, 3..4, 4..4, 4..13, 13..14] {
            let start = queue.len();
            queue.extend(sites(run));
            held += d.thin(&mut queue, start);
        }
        // Spikes 1..=13 in order: the 4th, 8th and 12th pass.
        assert_eq!(queue, sites([100, 4, 8, 12]));
        assert_eq!(held, 10);
        d.reset();
        let mut again = sites(1..5);
        assert_eq!(d.thin(&mut again, 0), 3);
        assert_eq!(again, sites([4]));
    }

    #[test]
    fn settings_are_parsed_and_bad_ones_named() {
        assert_eq!("3=0".parse(), Ok(OutputDecimator { layer: 3, interval: 0 }));
        assert_eq!(" 2 = 7 ".parse::<OutputDecimator>().map(OutputDecimator::group), Ok(256));
        for bad in ["3", "x=1", "1=8", "1=-1", "=1"] {
            let e = bad.parse::<OutputDecimator>().expect_err(bad);
            assert!(e.contains(&format!("`{bad}`")), "{e}");
        }
    }
}
