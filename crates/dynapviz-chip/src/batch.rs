//! A batch of sensor events in the event mode, from admission to hand-out: the one-thread and
//! the pipelined run share it, so both admit and order their output the same way.

use dynapviz_events::Event;

use crate::cascade::Queue;
use crate::dvs::Front;
use crate::power::{PeriodClock, PeriodWork, PowerMonitor, PowerSample};
use crate::sim::{LayerCounters, Spike};

/// Per batch of sensor events (indexed by position in the batch): monitored spikes and work.
/// Kept between batches, so a batch allocates nothing once warm.
#[derive(Default)]
pub(crate) struct Batch {
    /// Monitored spikes with their sensor event.
    pub tagged: Vec<(u32, Spike)>,
    /// The work of the admitted sensor events, by power period.
    pub work: PeriodWork,
    /// Sensor events in the batch, admitted or not.
    pub len: usize,
    /// Per sensor event, where its monitored spikes go in the hand-out.
    places: Vec<usize>,
}

impl Batch {
    /// Starts a batch of `events`: each admitted one is queued for the first layer, its DVS
    /// spike tagged when the DVS layer is monitored, and its sensor event of work noted in the
    /// period `clock` puts it in.
    pub fn admit(
        &mut self,
        events: &[Event],
        front: &mut Front,
        dvs: &mut LayerCounters,
        monitor_dvs: bool,
        first_queue: &mut Queue,
        clock: &mut PeriodClock,
    ) {
        self.tagged.clear();
        self.work.clear();
        self.len = events.len();
        let work = &mut self.work;
        front.admit_batch(events, dvs, monitor_dvs, first_queue, &mut self.tagged, |i, t| work.admit(i as u32, t, clock));
    }

    /// Ends the batch: appends the monitored spikes to `out` in sensor-event order (stable:
    /// within one event they keep the order they were tagged in, layer by layer) and adds the
    /// work of each period's admitted events to `power` at the time of its first, in order,
    /// `power`'s samples going to `samples`.
    pub fn hand_out(&mut self, out: &mut Vec<Spike>, power: &mut PowerMonitor, samples: &mut Vec<PowerSample>) {
        if self.tagged.is_sorted_by_key(|&(i, _)| i) {
            // In order already: one monitored layer tags its spikes in sensor-event order.
            out.extend(self.tagged.iter().map(|&(_, s)| s));
        } else {
            self.sort_out(out);
        }
        for part in self.work.parts() {
            power.add(part.t_us, part.work, samples);
        }
    }

    /// Appends the monitored spikes to `out` by a counting sort on their sensor event: stable,
    /// linear, and with no scratch memory to allocate, unlike the standard stable sort.
    fn sort_out(&mut self, out: &mut Vec<Spike>) {
        self.places.clear();
        self.places.resize(self.len + 1, 0);
        for &(i, _) in &self.tagged {
            self.places[i as usize + 1] += 1;
        }
        // Then each sensor event's first place: the spikes of the events before it.
        let mut next = out.len();
        for p in &mut self.places {
            next += *p;
            *p = next;
        }
        out.resize(next, Spike::default());
        for &(i, s) in &self.tagged {
            let place = &mut self.places[i as usize];
            out[*place] = s;
            *place += 1;
        }
    }
}
