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
    /// The monitored spikes of the leak's ticks before the sensor events, by a key that puts
    /// them in the one-thread order: `2k` for what the layers' tick `k` made, `2k + 1` for what
    /// the run through the layers after it made (see `Stage::tick`). They come out first.
    pub ticked: Vec<(u32, Spike)>,
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
        self.ticked.clear();
        self.work.clear();
        self.len = events.len();
        let work = &mut self.work;
        front.admit_batch(events, dvs, monitor_dvs, first_queue, &mut self.tagged, |i, t| work.admit(i as u32, t, clock));
    }

    /// Starts a batch of no sensor events, for ticks of the leak alone (a piece of a long gap,
    /// see [`crate::leak::TICKS_PER_PIECE`]): their work counts at `t_us`, the time of the
    /// sensor event they come before, as it would if they ran with it.
    pub fn ticks_alone(&mut self, t_us: i64) {
        self.tagged.clear();
        self.ticked.clear();
        self.work.clear();
        self.work.ticks_at(t_us);
        self.len = 0;
    }

    /// Ends the batch: appends the monitored spikes to `out`, the ticks' first (`ticked`), then
    /// the others in sensor-event order (stable: within one event they keep the order they
    /// were tagged in, layer by layer), and adds the work of each period's admitted events to
    /// `power` at the time of its first, in order, `power`'s samples going to `samples`.
    pub fn hand_out(&mut self, out: &mut Vec<Spike>, power: &mut PowerMonitor, samples: &mut Vec<PowerSample>) {
        let ticks = self.ticked.iter().map(|&(key, _)| key as usize + 1).max().unwrap_or(0);
        sort_out(&self.ticked, ticks, &mut self.places, out);
        sort_out(&self.tagged, self.len, &mut self.places, out);
        for part in self.work.parts() {
            power.add(part.t_us, part.work, samples);
        }
    }
}

/// Appends the spikes of `tagged` to `out` by their key (all below `keys`), and in the order
/// given within one key: by a counting sort, linear, and with no scratch memory to allocate
/// but `places`, unlike the standard stable sort.
fn sort_out(tagged: &[(u32, Spike)], keys: usize, places: &mut Vec<usize>, out: &mut Vec<Spike>) {
    if tagged.is_sorted_by_key(|&(key, _)| key) {
        // In order already: one monitored layer tags its spikes in sensor-event order.
        out.extend(tagged.iter().map(|&(_, s)| s));
        return;
    }
    places.clear();
    places.resize(keys + 1, 0);
    for &(key, _) in tagged {
        places[key as usize + 1] += 1;
    }
    // Then each key's first place: the spikes of the keys before it.
    let mut next = out.len();
    for p in places.iter_mut() {
        next += *p;
        *p = next;
    }
    out.resize(next, Spike::default());
    for &(key, s) in tagged {
        let place = &mut places[key as usize];
        out[*place] = s;
        *place += 1;
    }
}
