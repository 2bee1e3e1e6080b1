//! A batch of sensor events in the event mode, from admission to hand-out: the one-thread and
//! the pipelined run share it, so both admit and order their output the same way.

use dynapviz_events::Event;

use crate::cascade::Queue;
use crate::dvs::Front;
use crate::power::{PowerMonitor, PowerSample, Work};
use crate::sim::{LayerCounters, Spike};

/// Per batch of sensor events (indexed by position in the batch): monitored spikes, work and
/// time. Kept between batches, so a batch allocates nothing once warm.
#[derive(Default)]
pub(crate) struct Batch {
    /// Monitored spikes with their sensor event.
    pub tagged: Vec<(u32, Spike)>,
    /// Per sensor event; `sensor_events` is 1 for the admitted ones.
    pub work: Vec<Work>,
    /// Per sensor event, its time (µs) once admitted.
    pub times: Vec<i64>,
    /// Per sensor event, where its monitored spikes go in the hand-out.
    places: Vec<usize>,
}

impl Batch {
    /// Starts a batch of `events`: each admitted one is queued for the first layer, its DVS
    /// spike tagged when the DVS layer is monitored, its time and a sensor event of work noted.
    pub fn admit(&mut self, events: &[Event], front: &mut Front, dvs: &mut LayerCounters, monitor_dvs: bool, first_queue: &mut Queue) {
        self.tagged.clear();
        self.work.clear();
        self.work.resize(events.len(), Work::default());
        self.times.clear();
        self.times.resize(events.len(), 0);
        let (work, times) = (&mut self.work, &mut self.times);
        front.admit_batch(events, dvs, monitor_dvs, first_queue, &mut self.tagged, |i, t| (work[i].sensor_events, times[i]) = (1, t));
    }

    /// Ends the batch: appends the monitored spikes to `out` in sensor-event order (stable:
    /// within one event they keep the order they were tagged in, layer by layer) and adds the
    /// work of each admitted event to `power` at its time, in order, `power`'s samples going
    /// to `samples`.
    pub fn hand_out(&mut self, out: &mut Vec<Spike>, power: &mut PowerMonitor, samples: &mut Vec<PowerSample>) {
        // A counting sort by sensor event: stable, linear, and with no scratch memory to
        // allocate, unlike the standard stable sort.
        self.places.clear();
        self.places.resize(self.work.len() + 1, 0);
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
        let admitted = self.work.iter().zip(&self.times).filter(|(w, _)| w.sensor_events > 0);
        power.add_all(admitted.map(|(&w, &t)| (t, w)), samples);
    }
}
