//! Event mode: the input queued for a run of consecutive layers, pushed through them layer by
//! layer for a whole batch of sensor events at once, so each layer's neurons and weights stay
//! in cache while it works. The result is the same as running each sensor event through all
//! layers before the next: a layer's state depends only on the order of its own input, and
//! that order is kept (every queued event carries the index of its sensor event, and a queue
//! fed by several layers is put back in sensor-event order before it runs).

use crate::layer::{Band, Site};
use crate::power::Work;
use crate::sim::{BusyModel, LayerCounters, Spike};

/// An event waiting at a layer's input.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pending {
    /// Index of its sensor event in the batch.
    pub index: u32,
    /// Where it arrived among the layer's input of the batch. Only the banded run uses it: its
    /// threads queue only what reaches their rows, and need a common name for each input.
    pub arrival: u32,
    /// Arrival time, ns.
    pub t_ns: i64,
    pub site: Site,
}

/// What caused a spike: its layer's input event, as (sensor event, arrival); the banded run
/// orders spikes by it (input events run in this order).
pub(crate) type Cause = (u32, u32);

/// Consecutive layers `first..first + layers.len()` (0-based) and their state: whole layers,
/// or one band of rows of each on one of several threads.
pub(crate) struct Cascade<'a, 'b> {
    /// Index of `layers[0]` in the network.
    pub first: usize,
    pub layers: &'a mut [Band<'b>],
    /// Count input events and drops here; the banded run counts input as it merges it instead,
    /// since no thread sees all of it.
    pub count_input: bool,
    /// Counters of these layers (`counters[i]` is layer `first + i`).
    pub counters: &'a mut [LayerCounters],
    /// Input waiting per layer.
    pub queues: &'a mut [Vec<Pending>],
    /// When each core's backlog clears (busy model), ns.
    pub busy_until_ns: &'a mut [f64],
    pub wiring: &'a Wiring,
    /// Room for the spikes of one input event: kept by the owner, so that no event allocates.
    pub fired: &'a mut Vec<Site>,
}

/// What every run of layers shares, fixed when the simulator is made.
#[derive(Clone, Debug)]
pub(crate) struct Wiring {
    /// Destinations of every layer of the network (0-based).
    pub destinations: Vec<Vec<usize>>,
    /// Monitored, by layer number (0 = DVS): the configured monitors as a table, for the hot path.
    pub monitored: Vec<bool>,
    /// Latency of one layer, ns.
    pub latency_ns: i64,
    pub busy: Option<BusyModel>,
}

impl Cascade<'_, '_> {
    /// Runs everything queued for these layers, layer by layer (a layer's spikes only go to
    /// later layers, so one pass empties every queue). Monitored spikes go to
    /// `out(cause, spike)`, in layer order. A spike for layers after this run goes once to
    /// `beyond(pending)`, its `arrival` the cause's: the caller sends it to every destination.
    /// The cause names the input event that made the spike (one sensor event may bring a layer
    /// several). Adds the work done for each sensor event to `work[index]`.
    pub fn run(&mut self, work: &mut [Work], out: impl FnMut(Cause, Spike), beyond: impl FnMut(Pending)) {
        #[cfg(target_arch = "x86_64")]
        if crate::layer::avx2() {
            // SAFETY: the CPU has AVX2, checked just above.
            return unsafe { self.run_avx2(work, out, beyond) };
        }
        // SAFETY: no AVX2 asked for.
        unsafe { self.run_with::<false>(work, out, beyond) }
    }

    /// The whole batch compiled for AVX2 (and the bit instructions [`crate::layer::avx2`]
    /// checks too), so the vector code inlines into the loop.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,popcnt,bmi1")]
    fn run_avx2(&mut self, work: &mut [Work], out: impl FnMut(Cause, Spike), beyond: impl FnMut(Pending)) {
        // SAFETY: this function only runs with AVX2.
        unsafe { self.run_with::<true>(work, out, beyond) }
    }

    /// # Safety
    /// `AVX2 = true` only on a CPU with AVX2.
    #[inline(always)]
    unsafe fn run_with<const AVX2: bool>(&mut self, work: &mut [Work], mut out: impl FnMut(Cause, Spike), mut beyond: impl FnMut(Pending)) {
        let end = self.first + self.layers.len();
        for i in 0..self.layers.len() {
            if self.queues[i].is_empty() {
                continue;
            }
            let li = self.first + i;
            let mut queue = std::mem::take(&mut self.queues[i]);
            if !queue.is_sorted_by_key(|p| p.index) {
                // Fed by several layers, each in turn: stable, so within a sensor event the
                // earlier source still comes first, as one event at a time would give.
                queue.sort_by_key(|p| p.index);
            }
            let monitored = self.wiring.monitored[li + 1];
            let (layer, c, dests, queues) = (&mut self.layers[i], &mut self.counters[i], &self.wiring.destinations[li], &mut *self.queues);
            for &Pending { index, arrival, t_ns, site: s } in &queue {
                let cause = (index, arrival);
                let t_out = t_ns + self.wiring.latency_ns;
                if let Some(b) = self.wiring.busy
                    && self.busy_until_ns[i] - t_out as f64 > b.max_backlog_ns
                {
                    c.dropped_busy += u64::from(self.count_input);
                    continue;
                }
                c.input_events += u64::from(self.count_input);
                let fired = &mut *self.fired;
                fired.clear();
                // SAFETY: the caller's promise.
                let (core_ops, ops, spikes) =
                    unsafe { layer.event_with::<AVX2>(usize::from(s.c), usize::from(s.y), usize::from(s.x), fired) };
                let after_pool = fired.len() as u64;
                if monitored {
                    let t = t_out.div_euclid(1000);
                    fired.iter().for_each(|s| out(cause, Spike { t, layer: (li + 1) as u16, c: s.c, y: s.y, x: s.x }));
                }
                // Marked with its cause's arrival, for the banded run.
                let sent = fired.iter().map(|&site| Pending { index, arrival, t_ns: t_out, site });
                let mut gone_beyond = false;
                for &d in dests {
                    if d < end {
                        queues[d - self.first].extend(sent.clone());
                    } else if !gone_beyond {
                        sent.clone().for_each(&mut beyond);
                        gone_beyond = true;
                    }
                }
                c.synaptic_ops += ops;
                c.spikes += spikes;
                c.spikes_after_pool += after_pool;
                let work = &mut work[index as usize];
                work.synops += ops;
                work.spikes += spikes;
                if monitored {
                    work.output_events += after_pool;
                }
                if let Some(b) = self.wiring.busy {
                    let start = self.busy_until_ns[i].max(t_out as f64);
                    self.busy_until_ns[i] = start + b.ns_per_event + b.ns_per_synop * core_ops as f64;
                }
            }
            // Keep the allocation: no allocation per event on the hot path.
            queue.clear();
            debug_assert!(self.queues[i].is_empty(), "layers only send to later layers");
            self.queues[i] = queue;
        }
    }
}
