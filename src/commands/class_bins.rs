//! The output layer's spikes per class and time bin, for `simulate --json`'s
//! `class_counts_per_bin`.

use std::collections::BTreeMap;

use dynapviz_chip::first_bin;

/// The most bins the dense table may have (1000 s at the default 1 ms bins): past it the JSON
/// leaves the table out and says why, where a long gap in a recording's time (or a corrupt
/// timestamp days ahead) would otherwise fill memory and output with empty bins.
pub const MAX_BINS: i64 = 1_000_000;

/// Counts kept only for bins with spikes, so that memory follows the spikes, not the time
/// they span.
pub struct ClassBins {
    bin_us: i64,
    classes: usize,
    counts: BTreeMap<i64, Vec<u64>>,
}

impl ClassBins {
    pub fn new(bin_us: i64, classes: usize) -> Self {
        Self { bin_us, classes, counts: BTreeMap::new() }
    }

    /// Counts a spike of class `class` (below the class count) at `t_us`.
    pub fn add(&mut self, t_us: i64, class: usize) {
        let bin = self.counts.entry(t_us.div_euclid(self.bin_us)).or_insert_with(|| vec![0; self.classes]);
        bin[class] += 1;
    }

    /// The table over the input's time, `input_us` (its first and last event's time), binned
    /// as sinabs bins it: from bin 0 (or the first event's, see [`first_bin`]) to the last
    /// event's bin, or to the last bin with a spike if that is later (the event mode's latency).
    /// `Err` with what went wrong when a spike comes before the first bin or the table would
    /// pass [`MAX_BINS`].
    pub fn dense(&self, input_us: Option<(i64, i64)>) -> Result<Vec<Vec<u64>>, String> {
        let Some((first_us, last_us)) = input_us else { return Ok(Vec::new()) };
        let start = first_bin(first_us, self.bin_us);
        if let Some(&first) = self.counts.keys().next().filter(|&&first| first < start) {
            return Err(format!("an output spike at bin {first} comes before the first input event's bin {start}"));
        }
        let last = self.counts.last_key_value().map_or(i64::MIN, |(&b, _)| b).max(last_us.div_euclid(self.bin_us));
        let len = last.saturating_sub(start).saturating_add(1);
        if len > MAX_BINS {
            return Err(format!(
                "the input and its output span {len} bins of {} µs, more than {MAX_BINS}: pass a larger --bin-us",
                self.bin_us
            ));
        }
        let mut table = vec![vec![0; self.classes]; len as usize];
        for (bin, counts) in &self.counts {
            table[(bin - start) as usize].clone_from(counts);
        }
        Ok(table)
    }
}

#[cfg(test)]
mod tests {
    use dynapviz_chip::MAX_LEADING_BINS;

    use super::{ClassBins, MAX_BINS};

    #[test]
    fn bins_span_the_input_and_empty_ones_are_zero() {
        let mut bins = ClassBins::new(1000, 3);
        let late = MAX_LEADING_BINS * 1000;
        bins.add(late + 2_500, 1);
        bins.add(late + 2_999, 1);
        bins.add(late + 4_000, 2);
        // A recording timed from far after 0: from the first input event's bin to the last
        // spike's, when that is later...
        let table = vec![vec![0; 3], vec![0, 2, 0], vec![0; 3], vec![0, 0, 1]];
        assert_eq!(bins.dense(Some((late + 1_200, late + 3_000))), Ok(table));
        // ... or to the last input event's: bins without spikes at the end count, as sinabs
        // counts every bin of its input.
        assert_eq!(bins.dense(Some((late + 1_200, late + 6_999))).map(|t| t.len()), Ok(6));
        assert!(bins.dense(Some((late + 3_000, late + 5_000))).is_err_and(|e| e.contains("before the first input event")));
        // A recording timed from its start: from bin 0, as sinabs' frames.
        assert_eq!(ClassBins::new(1000, 3).dense(Some((1_200, 2_500))), Ok(vec![vec![0; 3]; 3]));
        assert_eq!(ClassBins::new(1000, 3).dense(None), Ok(Vec::new()));
    }

    #[test]
    fn a_gap_past_the_bound_is_an_error_not_a_table() {
        let mut bins = ClassBins::new(1000, 11);
        bins.add(0, 0);
        bins.add((MAX_BINS - 1) * 1000, 0);
        assert_eq!(bins.dense(Some((0, 0))).map(|t| t.len() as i64), Ok(MAX_BINS));
        bins.add(i64::MAX, 3);
        assert!(bins.dense(Some((0, 0))).is_err_and(|e| e.contains("--bin-us")));
        // An input that spans too long a time, with few spikes, too.
        assert!(ClassBins::new(1000, 3).dense(Some((0, MAX_BINS * 1000))).is_err_and(|e| e.contains("--bin-us")));
    }
}
