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
}
