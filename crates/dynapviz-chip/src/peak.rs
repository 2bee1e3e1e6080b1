//! Each core's busiest millisecond. sinabs' Speck tips warn that a core given more synaptic
//! operations per second than it can do stalls the whole chip, and that on the chip only an
//! oscilloscope shows it; the simulator counts each core's synaptic operations per millisecond
//! of simulated time, by the arrival of their input, and keeps the most, to hold against a
//! core's bandwidth.

/// A millisecond, ns.
const WINDOW_NS: i64 = 1_000_000;

/// One core's synaptic operations in the millisecond its input arrives in now, and the most in
/// any before.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Peak {
    /// End of the open millisecond, ns.
    end_ns: i64,
    /// Synaptic operations in it.
    ops: u64,
    /// The most in one closed millisecond.
    most: u64,
}

impl Default for Peak {
    fn default() -> Self {
        // The first input opens its millisecond.
        Self { end_ns: i64::MIN, ops: 0, most: 0 }
    }
}

impl Peak {
    /// Adds `ops` synaptic operations for input arriving at `t_ns` (not before the last's: a
    /// layer's input comes in time order; an earlier one counts in the open millisecond).
    #[inline(always)]
    pub fn add(&mut self, t_ns: i64, ops: u64) {
        if t_ns >= self.end_ns {
            self.open(t_ns);
        }
        self.ops += ops;
    }

    /// Closes the open millisecond and opens the one `t_ns` is in.
    #[cold]
    fn open(&mut self, t_ns: i64) {
        self.most = self.most.max(self.ops);
        self.ops = 0;
        self.end_ns = t_ns.div_euclid(WINDOW_NS).saturating_add(1).saturating_mul(WINDOW_NS);
    }

    /// Adds `ops` synaptic operations done over `span_ns` from `start_ns` (a bin of the binned
    /// mode), shared among the milliseconds the span covers by how much of it each holds.
    pub fn add_spread(&mut self, start_ns: i64, span_ns: i64, ops: u64) {
        let end_ns = start_ns.saturating_add(span_ns);
        let (mut at, mut left) = (start_ns, ops);
        while at < end_ns {
            let next = at.div_euclid(WINDOW_NS).saturating_add(1).saturating_mul(WINDOW_NS).min(end_ns);
            // The last part takes what rounding left.
            let part = if next == end_ns { left } else { (ops as u128 * (next - at) as u128 / span_ns as u128) as u64 };
            self.add(at, part);
            left -= part;
            at = next;
        }
    }

    /// The most synaptic operations in one millisecond so far, the open one included.
    pub fn most(&self) -> u64 {
        self.most.max(self.ops)
    }
}

#[cfg(test)]
mod tests {
    use super::Peak;

    #[test]
    fn the_busiest_millisecond_is_kept() {
        let mut p = Peak::default();
        assert_eq!(p.most(), 0);
        // 0.2 and 0.9 ms: one millisecond; 1.0 ms opens the next; a gap; then 7.5 ms.
        for (t_us, ops) in [(200, 10), (900, 15), (1000, 20), (1999, 4), (7500, 30)] {
            p.add(t_us * 1000, ops);
        }
        assert_eq!(p.most(), 30);
        p.add(7_900_000, 1);
        assert_eq!(p.most(), 31, "the open millisecond counts");
        // Negative times (before the recording's 0) and the far end of the clock.
        let mut q = Peak::default();
        q.add(-1, 5);
        q.add(-2, 6);
        q.add(0, 1);
        q.add(i64::MAX - 1, 2);
        assert_eq!(q.most(), 11);
    }

    /// A span's operations go to the milliseconds it covers, by how much of it each holds.
    #[test]
    fn a_span_is_spread_over_its_milliseconds() {
        let most = |spans_us: &[(i64, i64, u64)]| {
            let mut p = Peak::default();
            spans_us.iter().for_each(|&(start, span, ops)| p.add_spread(start * 1000, span * 1000, ops));
            p.most()
        };
        // Spans of 1 ms are the milliseconds.
        assert_eq!(most(&[(0, 1000, 7), (1000, 1000, 9), (2000, 1000, 3)]), 9);
        // Two spans of 0.5 ms in one millisecond add up.
        assert_eq!(most(&[(0, 500, 7), (500, 500, 9), (1000, 500, 10)]), 16);
        // A span of 4 ms holds a quarter in each; one of 1.5 ms from 0.5 ms, a third in each.
        assert_eq!(most(&[(0, 4000, 100)]), 25);
        assert_eq!(most(&[(500, 1500, 90)]), 60);
        assert_eq!(most(&[(-1000, 1000, 5)]), 5);
    }
}
