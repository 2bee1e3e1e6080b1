//! The chip's leak in the event mode: at every tick of its slow clock each biased layer adds
//! its bias to every neuron and fires those at threshold. A tick acts on every layer at one
//! instant between two sensor events: first every biased layer ticks, in layer order (its
//! spikes wait in the queues of the layers they go to), then the spikes run through the layers
//! as a sensor event's do. The one-thread run and each stage of the pipeline tick the same way,
//! through `Cascade::tick`; this module keeps the clock that says which ticks fall before a
//! sensor event.

use dynapviz_events::Event;

use crate::layer::LayerRt;

/// Ticks one piece of the pipeline carries at most. A gap in the input with more ticks before
/// its next sensor event runs as pieces of ticks alone, so that a leak that fires through a
/// long gap holds the spikes of a few pieces at a time, not of the whole gap. Few, since a
/// tick may fire every neuron (a piece then holds 16 times the network's neurons in spikes);
/// enough that a tick, which touches every neuron of the biased layers, costs more than
/// handing its piece on.
pub(crate) const TICKS_PER_PIECE: u64 = 16;

/// Which ticks of the leak have run.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LeakClock {
    pub tick_us: i64,
    /// The next tick to run; `None` before the first admitted sensor event.
    next_us: Option<i64>,
}

impl LeakClock {
    pub fn new(tick_us: i64) -> Self {
        Self { tick_us, next_us: None }
    }

    /// Back to before the first sensor event.
    pub fn reset(&mut self) {
        self.next_us = None;
    }

    /// The ticks to run before an admitted sensor event at `t_us` (the first one after the
    /// first sensor event, up to `t_us`, none run before): from now on they count as run.
    /// Times are within [`crate::MAX_TIME_US`] (the admission refuses others), so the tick
    /// times do not overflow.
    pub fn until(&mut self, t_us: i64) -> Ticks {
        let tick_us = self.tick_us;
        let first_us = *self.next_us.get_or_insert(next_tick(t_us, tick_us));
        let count = if t_us < first_us { 0 } else { (t_us - first_us) / tick_us + 1 };
        self.next_us = Some(first_us + count * tick_us);
        Ticks { first_us, count: count as u64, tick_us }
    }
}

/// The first tick after `t_us`.
fn next_tick(t_us: i64, tick_us: i64) -> i64 {
    (t_us - t_us.rem_euclid(tick_us)).saturating_add(tick_us)
}

/// How many of `events`, at most `max`, run as one batch: with a leak ticking every
/// `tick_us`, none at or past the first tick after the first, so that no tick falls between
/// the sensor events of a batch. At least one, unless there are none.
pub(crate) fn batch_len(events: &[Event], max: usize, tick_us: Option<i64>) -> usize {
    let len = max.min(events.len());
    match (tick_us, events.first()) {
        (Some(tick_us), Some(first)) if len > 1 => {
            let next = next_tick(first.t, tick_us);
            events[1..len].iter().position(|e| e.t >= next).map_or(len, |n| n + 1)
        }
        _ => len,
    }
}

/// Whether every biased layer of `layers` is quiet: its ticks do nothing until input comes
/// (see `Cascade::tick`).
pub(crate) fn all_quiet(layers: &[LayerRt]) -> bool {
    layers.iter().all(|l| !l.has_bias() || l.quiet)
}

/// Consecutive ticks of the leak, `tick_us` apart.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Ticks {
    pub first_us: i64,
    pub count: u64,
    pub tick_us: i64,
}

impl Ticks {
    /// The time of tick `k`, µs.
    pub fn at(self, k: u64) -> i64 {
        self.first_us + k as i64 * self.tick_us
    }

    /// The first `n` of these (all, if fewer), leaving the others.
    pub fn take(&mut self, n: u64) -> Ticks {
        let head = Ticks { count: n.min(self.count), ..*self };
        self.first_us = self.at(head.count);
        self.count -= head.count;
        head
    }
}

#[cfg(test)]
mod tests {
    use dynapviz_events::Event;

    use super::{LeakClock, Ticks, batch_len};

    #[test]
    fn the_clock_gives_each_tick_once_the_first_after_the_first_event() {
        let mut clock = LeakClock::new(1000);
        // First event at 2.5 ms: the first tick is at 3 ms, none before it.
        assert_eq!(clock.until(2500).count, 0);
        assert_eq!(clock.until(2999).count, 0);
        assert_eq!(clock.until(5000), Ticks { first_us: 3000, count: 3, tick_us: 1000 });
        assert_eq!(clock.until(5000).count, 0, "run already");
        assert_eq!(clock.until(6100), Ticks { first_us: 6000, count: 1, tick_us: 1000 });
        clock.reset();
        assert_eq!(clock.until(-1500), Ticks { first_us: -1000, count: 0, tick_us: 1000 });
    }

    #[test]
    fn ticks_are_taken_from_the_front() {
        let mut ticks = Ticks { first_us: 3000, count: 5, tick_us: 1000 };
        assert_eq!(ticks.take(2), Ticks { first_us: 3000, count: 2, tick_us: 1000 });
        assert_eq!(ticks, Ticks { first_us: 5000, count: 3, tick_us: 1000 });
        assert_eq!(ticks.take(7).count, 3);
        assert_eq!(ticks.count, 0);
    }

    #[test]
    fn a_batch_ends_before_the_next_tick() {
        let events: Vec<Event> = [100, 900, 999, 1000, 1500].iter().map(|&t| Event::new(t, 0, 0, true)).collect();
        assert_eq!(batch_len(&events, 10, Some(1000)), 3);
        assert_eq!(batch_len(&events, 2, Some(1000)), 2);
        assert_eq!(batch_len(&events[3..], 10, Some(1000)), 2);
        assert_eq!(batch_len(&events, 10, None), 5);
        assert_eq!(batch_len(&[], 10, Some(1000)), 0);
        // An event at a tick's time comes after the tick.
        assert_eq!(batch_len(&events[2..], 10, Some(1000)), 1);
    }
}
