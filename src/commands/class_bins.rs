//! The output layer's spikes per class and time bin, for `simulate --json`'s
//! `class_counts_per_bin`.

use std::collections::BTreeMap;

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

    /// The table from the bin of `first_us` (the first input event's time) to the last bin
    /// with a spike; `Err` with what went wrong when a spike comes before that bin or the
    /// table would pass [`MAX_BINS`].
    pub fn dense(&self, first_us: Option<i64>) -> Result<Vec<Vec<u64>>, String> {
        let (Some(first_us), Some((&first, _)), Some((&last, _))) = (first_us, self.counts.first_key_value(), self.counts.last_key_value())
        else {
            return Ok(Vec::new());
        };
        let start = first_us.div_euclid(self.bin_us);
        if first < start {
            return Err(format!("an output spike at bin {first} comes before the first input event's bin {start}"));
        }
        let len = last.saturating_sub(start).saturating_add(1);
        if len > MAX_BINS {
            return Err(format!("the output spikes span {len} bins of {} µs, more than {MAX_BINS}: pass a larger --bin-us", self.bin_us));
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
    use super::{ClassBins, MAX_BINS};

    #[test]
    fn bins_count_from_the_first_input_event_and_empty_ones_are_zero() {
        let mut bins = ClassBins::new(1000, 3);
        bins.add(2_500, 1);
        bins.add(2_999, 1);
        bins.add(4_000, 2);
        assert_eq!(bins.dense(Some(1_200)), Ok(vec![vec![0; 3], vec![0, 2, 0], vec![0; 3], vec![0, 0, 1]]));
        assert_eq!(ClassBins::new(1000, 3).dense(Some(0)), Ok(Vec::new()));
        assert!(bins.dense(Some(3_000)).is_err_and(|e| e.contains("before the first input event")));
    }

    #[test]
    fn a_gap_past_the_bound_is_an_error_not_a_table() {
        let mut bins = ClassBins::new(1000, 11);
        bins.add(0, 0);
        bins.add((MAX_BINS - 1) * 1000, 0);
        assert_eq!(bins.dense(Some(0)).map(|t| t.len() as i64), Ok(MAX_BINS));
        bins.add(i64::MAX, 3);
        assert!(bins.dense(Some(0)).is_err_and(|e| e.contains("--bin-us")));
    }
}
