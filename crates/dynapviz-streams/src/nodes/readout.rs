//! From output spikes to a decision: collection per interval (samna `SpikeCollectionNode`),
//! counts per feature (`SpikeCountNode`) and the majority readout (`MajorityReadoutNode`) with
//! the original's rules (DESIGN.md §2).

use dynapviz_chip::Spike;

use super::{NodeError, invalid};

/// The spikes of one collection interval, as counts per channel: memory stays bounded
/// whatever the spike rate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Collection {
    /// Start of the interval, µs.
    pub start_us: i64,
    /// End of the interval (exclusive), µs.
    pub end_us: i64,
    /// Spikes per channel (index = channel; grows to the largest channel seen).
    pub per_channel: Vec<u64>,
    /// All spikes of the interval.
    pub total: u64,
}

impl Collection {
    /// An empty interval.
    pub fn new(start_us: i64, end_us: i64) -> Self {
        Self { start_us, end_us, ..Self::default() }
    }

    /// Adds one spike of `channel`.
    pub fn add(&mut self, channel: u16) {
        let c = usize::from(channel);
        if self.per_channel.len() <= c {
            self.per_channel.resize(c + 1, 0);
        }
        self.per_channel[c] += 1;
        self.total += 1;
    }
}

/// The most empty collections one step of time yields (a minute at the original's 500 ms):
/// past them the collector moves straight to the interval the time is in, so that a pause of
/// hours in a recording, or a corrupt timestamp days ahead, costs nothing.
pub const EMPTY_COLLECTIONS_IN_FULL: usize = 120;

/// Groups spikes into fixed intervals by their own timestamps: deterministic, so a replay gives
/// the same collections. Empty intervals yield empty collections, so plots keep moving, up to
/// [`EMPTY_COLLECTIONS_IN_FULL`] in a row.
#[derive(Clone, Debug)]
pub struct SpikeCollector {
    interval_us: i64,
    current: Option<Collection>,
}

impl SpikeCollector {
    /// Intervals of `interval_ms` milliseconds.
    pub fn new(interval_ms: f64) -> Result<Self, NodeError> {
        let interval_us = (interval_ms * 1000.0).round() as i64;
        if interval_us <= 0 {
            return Err(invalid("spike collection", format!("interval {interval_ms} ms must be positive")));
        }
        Ok(Self { interval_us, current: None })
    }

    /// Declares that time has reached `t_us` (e.g. from input events when no spike comes):
    /// completes every interval ending at or before it.
    pub fn advance(&mut self, t_us: i64, out: &mut Vec<Collection>) {
        let Some(cur) = &mut self.current else { return };
        let mut empty = 0;
        while t_us >= cur.end_us {
            let next = Collection::new(cur.end_us, cur.end_us + self.interval_us);
            let done = std::mem::replace(cur, next);
            empty += usize::from(done.total == 0);
            out.push(done);
            if empty == EMPTY_COLLECTIONS_IN_FULL && t_us >= cur.end_us {
                let start = cur.start_us.saturating_add(t_us.saturating_sub(cur.start_us) / self.interval_us * self.interval_us);
                *cur = Collection::new(start, start.saturating_add(self.interval_us));
            }
        }
    }

    /// Starts the intervals at `t_us` (otherwise at the first spike).
    pub fn start(&mut self, t_us: i64) {
        self.current.get_or_insert(Collection::new(t_us, t_us + self.interval_us));
    }

    /// Adds spikes (in time order); appends completed collections to `out`.
    pub fn add(&mut self, spikes: &[Spike], out: &mut Vec<Collection>) {
        for s in spikes {
            self.start(s.t);
            self.advance(s.t, out);
            if let Some(cur) = &mut self.current {
                cur.add(s.c);
            }
        }
    }

    /// Completes the open interval.
    pub fn finish(&mut self, out: &mut Vec<Collection>) {
        out.extend(self.current.take());
    }
}

/// Groups spikes by wall-clock interval, for live sources whose timestamps are not to be
/// trusted (samna's collection node works this way): a collection closes when `interval` of
/// real time has passed since it opened, whatever the spikes' own timestamps say.
#[derive(Clone, Debug)]
pub struct WallClockCollector {
    interval: std::time::Duration,
    opened: Option<std::time::Instant>,
    current: Collection,
}

impl WallClockCollector {
    /// Intervals of `interval_ms` milliseconds of real time.
    pub fn new(interval_ms: f64) -> Result<Self, NodeError> {
        if !(interval_ms > 0.0 && interval_ms.is_finite()) {
            return Err(invalid("spike collection", format!("interval {interval_ms} ms must be positive")));
        }
        Ok(Self { interval: std::time::Duration::from_secs_f64(interval_ms / 1000.0), opened: None, current: Collection::default() })
    }

    /// Adds spikes arriving `now`; appends the collection that closed, if one did.
    pub fn add(&mut self, spikes: &[Spike], now: std::time::Instant, out: &mut Vec<Collection>) {
        self.poll(now, out);
        for s in spikes {
            if self.current.total == 0 && self.current.start_us == 0 {
                self.current.start_us = s.t;
            }
            self.current.end_us = s.t;
            self.current.add(s.c);
        }
    }

    /// Closes the open collection when its interval has passed (call regularly, also without
    /// spikes, so empty intervals are reported).
    pub fn poll(&mut self, now: std::time::Instant, out: &mut Vec<Collection>) {
        let opened = *self.opened.get_or_insert(now);
        if now.duration_since(opened) >= self.interval {
            out.push(std::mem::take(&mut self.current));
            self.opened = Some(now);
        }
    }
}

/// Counts spikes per feature (output channel `< feature_count`) in a collection.
#[derive(Clone, Copy, Debug)]
pub struct SpikeCount {
    /// Number of features.
    pub feature_count: usize,
}

impl SpikeCount {
    /// Counts per feature; channels beyond `feature_count` are not counted.
    pub fn count(&self, collection: &Collection) -> Vec<u64> {
        let mut counts = collection.per_channel.clone();
        counts.resize(self.feature_count, 0);
        counts
    }
}

/// The majority readout with the original's rules, the prediction threshold wired in.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MajorityReadout {
    /// Fewest spikes in a collection for a decision (inclusive).
    pub threshold_low: u64,
    /// Most spikes in a collection for a decision (inclusive).
    pub threshold_high: u64,
    /// The winner's count must exceed this (strictly).
    pub prediction_threshold: u64,
    /// Returned when no decision is made.
    pub default_feature: usize,
    /// Number of features.
    pub feature_count: usize,
}

impl MajorityReadout {
    /// Checks the settings.
    pub fn new(
        threshold_low: u64,
        threshold_high: u64,
        prediction_threshold: u64,
        default_feature: usize,
        feature_count: usize,
    ) -> Result<Self, NodeError> {
        if threshold_low > threshold_high {
            return Err(invalid("readout", format!("threshold low {threshold_low} is above threshold high {threshold_high}")));
        }
        if default_feature >= feature_count {
            return Err(invalid(
                "readout",
                format!("default feature {default_feature} does not exist (features 0..{})", feature_count.saturating_sub(1)),
            ));
        }
        Ok(Self { threshold_low, threshold_high, prediction_threshold, default_feature, feature_count })
    }

    /// The decision for one collection: if `threshold_low <= spikes <= threshold_high`, the most
    /// active feature when its count exceeds the prediction threshold and no other feature ties
    /// it; otherwise the default feature.
    pub fn decide(&self, collection: &Collection) -> usize {
        self.predict(collection).unwrap_or(self.default_feature)
    }

    /// The prediction, or `None` when the rules give the default (so a display can tell a real
    /// prediction of the default class from no prediction at all).
    pub fn predict(&self, collection: &Collection) -> Option<usize> {
        let total = collection.total;
        if total < self.threshold_low || total > self.threshold_high {
            return None;
        }
        let counts = SpikeCount { feature_count: self.feature_count }.count(collection);
        let best = *counts.iter().max()?;
        let winners = counts.iter().filter(|&&c| c == best).count();
        (best > self.prediction_threshold && winners == 1).then(|| counts.iter().position(|&c| c == best)).flatten()
    }
}
