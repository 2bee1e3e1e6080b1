//! Binned mode (sinabs' simulation, bit for bit) on two threads: the caller admits the sensor
//! events and runs the first layers of each bin, a worker the rest, a bin behind. A layer's
//! result depends only on its input within each bin and on the bins it runs, so each part
//! runs the bins its own layers would run alone, and the results are those of one thread:
//!
//! - The first part runs the bins one thread runs: a bin with input, and after it the empty
//!   bins up to the first where none of its layers changed (from there on, with no input,
//!   they stay as they are). It hands each bin to the worker with the input it made for the
//!   worker's layers.
//! - The worker runs every bin it is handed, then, where the first part skips empty bins, its
//!   own empty bins up to the first where none of its layers changed.
//!
//! One thread runs empty bins until none of all layers changed: the same bins, as a layer
//! that changed nothing in an empty bin changes nothing in the next. Spikes leave bin by bin,
//! and in a bin layer by layer, as on one thread.

use std::sync::mpsc;
use std::time::Instant;

use crate::cascade::Wiring;
use crate::dvs::Front;
use crate::layer::{LayerRt, Site};
use crate::power::{PowerMonitor, PowerSample, Work};
use crate::sim::{GAP_SLICE_SPIKES, LayerCounters, Spike, first_bin};
use crate::stages::{Events, PIECE_EVENTS};

/// A bin's input of one layer: the sites and how many spikes reach each.
pub(crate) type BinInput = Vec<(Site, i32)>;

/// Bins on their way to the worker at most: bounds the memory when it is the slower part.
const BINS_IN_FLIGHT: usize = 64;

/// What the worker sent back and the caller has not taken yet, at most (finished bins and the
/// slices of a long gap's spikes): bounds the memory when the caller is the slower part, or
/// is not running, while the worker's part fires through a gap. Unbounded, the slices piled up
/// whenever the caller's thread waited for the CPU: a 20 s gap held 1.6-7.9 MB from run to run.
/// The caller takes them while the worker's queue is full (see [`Caller::hand`]), so neither
/// waits for the other at once.
const DONE_IN_FLIGHT: usize = 2;

/// Consecutive layers `first..first + layers.len()` of the binned mode: all of them, or one
/// part on two threads.
pub(crate) struct BinLayers<'a> {
    pub first: usize,
    pub layers: &'a mut [LayerRt],
    /// `counters[i]` is layer `first + i`'s.
    pub counters: &'a mut [LayerCounters],
    /// The open bin's input of each of these layers.
    pub inputs: &'a mut [BinInput],
    /// Nanoseconds each layer took so far, to cut the layers in two where the parts take as
    /// long.
    pub spent_ns: &'a mut [u64],
    pub wiring: &'a Wiring,
}

impl BinLayers<'_> {
    /// Whether one of these layers has a bias: only then does an empty bin change anything.
    pub fn biased(&self) -> bool {
        self.layers.iter().any(LayerRt::has_bias)
    }

    /// Ends bin `bin` for these layers: sums each one's input and fires, layer by layer.
    /// Monitored spikes go to `out`; spikes for the layers after these to `beyond` (`beyond[j]`
    /// is layer `first + layers.len() + j`'s input). Adds the work to `work`. Returns whether
    /// anything happened: input, a spike or a changed potential.
    pub fn run(&mut self, bin: i64, bin_us: i64, out: &mut Vec<Spike>, beyond: &mut [BinInput], work: &mut Work) -> bool {
        #[cfg(x86_kernels)]
        if self.wiring.kernel >= crate::lanes::Kernel::Avx2 {
            // SAFETY: the CPU has AVX2: the wiring's kernel is one it has.
            return unsafe { self.run_avx2(bin, bin_us, out, beyond, work) };
        }
        self.run_with(bin, bin_us, out, beyond, work)
    }

    /// The bin compiled for AVX2, so that the sums over output channels take 8 lanes at once.
    #[cfg(x86_kernels)]
    #[target_feature(enable = "avx2")]
    fn run_avx2(&mut self, bin: i64, bin_us: i64, out: &mut Vec<Spike>, beyond: &mut [BinInput], work: &mut Work) -> bool {
        self.run_with(bin, bin_us, out, beyond, work)
    }

    #[inline(always)]
    fn run_with(&mut self, bin: i64, bin_us: i64, out: &mut Vec<Spike>, beyond: &mut [BinInput], work: &mut Work) -> bool {
        let t = bin * bin_us;
        let end = self.first + self.layers.len();
        let mut happened = false;
        for i in 0..self.layers.len() {
            let started = Instant::now();
            let li = self.first + i;
            let queue = std::mem::take(&mut self.inputs[i]);
            happened |= !queue.is_empty();
            let layer = &mut self.layers[i];
            let c = &mut self.counters[i];
            let mut bin_ops = 0;
            for &(s, n) in &queue {
                c.input_events += n as u64;
                bin_ops += layer.accumulate(usize::from(s.c), usize::from(s.y), usize::from(s.x), n);
            }
            c.synaptic_ops += bin_ops;
            work.synops += bin_ops;
            layer.peak.add_spread(t.saturating_mul(1000), bin_us.saturating_mul(1000), bin_ops);
            c.peak_synops_per_ms = layer.peak.most();
            let monitored = self.wiring.monitored[li + 1];
            let (dests, repools) = (&self.wiring.destinations[li], &self.wiring.repools[li]);
            let (inputs, first) = (&mut *self.inputs, self.first);
            let (mut spikes, mut after_pool) = (0u64, 0u64);
            happened |= layer.fire_binned(|site, n| {
                spikes += n as u64;
                if let Some(site) = site {
                    after_pool += n as u64;
                    if monitored {
                        out.extend((0..n).map(|_| Spike { t, layer: (li + 1) as u16, c: site.c, y: site.y, x: site.x }));
                    }
                    for (&d, repool) in dests.iter().zip(repools) {
                        let input = if d < end { &mut inputs[d - first] } else { &mut beyond[d - end] };
                        match repool {
                            None => input.push((site, n)),
                            Some(r) => input.extend(r.site(site).map(|s| (s, n))),
                        }
                    }
                }
            });
            happened |= spikes > 0;
            c.spikes += spikes;
            c.spikes_after_pool += after_pool;
            work.spikes += spikes;
            if monitored {
                work.output_events += after_pool;
            }
            // Keep the allocation (layers only send to later layers: it is still empty).
            let mut queue = queue;
            queue.clear();
            if self.inputs[i].is_empty() {
                self.inputs[i] = queue;
            }
            self.spent_ns[i] += started.elapsed().as_nanos() as u64;
        }
        happened
    }
}

/// The bin a sensor event at `t_us` ends, with the one it opens, if it ends one; the first
/// event opens the first bin (see [`first_bin`]). `open` is the open bin.
pub(crate) fn next_bin(open: &mut Option<i64>, t_us: i64, bin_us: i64) -> Option<(i64, i64)> {
    let b = t_us.div_euclid(bin_us);
    let cur = *open.get_or_insert_with(|| first_bin(t_us, bin_us));
    (b > cur).then(|| {
        *open = Some(b);
        (cur, b)
    })
}

/// Queues a sensor event at `site` in the open bin, for the first layer and the DVS layer's
/// other destinations: `inputs` holds the first layers' inputs, `rest` those of the layers
/// after them.
pub(crate) fn queue_sensor_event(wiring: &Wiring, site: Site, inputs: &mut [BinInput], rest: &mut [BinInput]) {
    let end = inputs.len();
    inputs[0].push((site, 1));
    for &d in &wiring.destinations[wiring.destinations.len() - 1] {
        let input = if d < end { &mut inputs[d] } else { &mut rest[d - end] };
        input.push((site, 1));
    }
}

/// Where to cut `spent_ns` (per layer) in two so that the slower part, the first with
/// `admission_ns` besides, takes least; `None` when no cut makes that a fraction `gain`
/// faster than one thread (see [`crate::Config::thread_gain`]). A `gain` of 0 takes a cut
/// always, after the first layer when nothing was measured.
pub(crate) fn best_cut(spent_ns: &[u64], admission_ns: u64, gain: f64) -> Option<usize> {
    let total: u64 = spent_ns.iter().sum::<u64>() + admission_ns;
    if gain == 0.0 && total == 0 {
        return (spent_ns.len() >= 2).then_some(1);
    }
    let mut before = admission_ns;
    let mut best: Option<(u64, usize)> = None;
    for cut in 1..spent_ns.len() {
        before += spent_ns[cut - 1];
        let slower = before.max(total - before);
        if best.is_none_or(|(b, _)| slower < b) {
            best = Some((slower, cut));
        }
    }
    best.filter(|&(slower, _)| slower as f64 <= total as f64 * (1.0 - gain)).map(|(_, cut)| cut)
}

/// One bin the first part ran, on its way to the worker.
#[derive(Default)]
pub(crate) struct Handed {
    bin: i64,
    /// The monitored spikes of the sensor events admitted while the bin was open (the first
    /// of the next bin's included, as on one thread): they come before the layers'.
    sensor: Vec<Spike>,
    /// The monitored spikes of the first part's layers.
    spikes: Vec<Spike>,
    /// The bin's input of each of the worker's layers.
    inputs: Vec<BinInput>,
    /// The first part's work.
    work: Work,
    /// The bin the first part opened when it ended this one, after its empty bins: the worker
    /// runs its own empty bins up to it after this one. `None` for a bin with more after it.
    then_open: Option<i64>,
    /// Room for the power samples the worker makes, kept from bin to bin.
    samples: Vec<PowerSample>,
}

impl Handed {
    /// Empties it for the next bin, keeping its memory.
    fn clear(&mut self) {
        self.sensor.clear();
        self.spikes.clear();
        self.inputs.iter_mut().for_each(Vec::clear);
        self.work = Work::default();
        self.then_open = None;
        self.samples.clear();
    }
}

/// What the worker sends back: a handed bin (to be used again), and the monitored spikes and
/// power samples in order (in the memory of the bin's, which goes back with it). A long gap's
/// empty bins send theirs every [`GAP_SLICE_SPIKES`], without a bin.
struct Done {
    handed: Option<Handed>,
    spikes: Vec<Spike>,
    samples: Vec<PowerSample>,
}

/// The worker's part: its layers and the power monitor (the last to see a bin's work).
pub(crate) struct Worker<'a> {
    layers: BinLayers<'a>,
    power: &'a mut PowerMonitor,
    bin_us: i64,
    /// The last bin it ran, and whether its layers changed nothing then.
    last: Option<(i64, bool)>,
}

impl<'a> Worker<'a> {
    pub fn new(layers: BinLayers<'a>, power: &'a mut PowerMonitor, bin_us: i64) -> Self {
        Self { layers, power, bin_us, last: None }
    }

    /// Runs the bins handed to it until the channel closes, sending each back with what it
    /// made.
    fn serve(mut self, from: mpsc::Receiver<Handed>, back: mpsc::SyncSender<Done>) {
        let biased = self.layers.biased();
        for mut handed in from {
            let (mut spikes, mut samples) = (std::mem::take(&mut handed.sensor), std::mem::take(&mut handed.samples));
            spikes.append(&mut handed.spikes);
            for (input, from) in self.layers.inputs.iter_mut().zip(&mut handed.inputs) {
                // Emptied by the last bin: the memory changes hands, nothing is copied.
                std::mem::swap(input, from);
            }
            let mut work = handed.work;
            self.bin(handed.bin, &mut spikes, &mut samples, &mut work);
            if let Some(open) = handed.then_open.filter(|_| biased) {
                while let Some((last, false)) = self.last.filter(|&(last, _)| last + 1 < open) {
                    self.bin(last + 1, &mut spikes, &mut samples, &mut Work::default());
                    if spikes.len() >= GAP_SLICE_SPIKES {
                        let slice = Done { handed: None, spikes: std::mem::take(&mut spikes), samples: std::mem::take(&mut samples) };
                        if back.send(slice).is_err() {
                            return;
                        }
                    }
                }
            }
            if back.send(Done { handed: Some(handed), spikes, samples }).is_err() {
                return;
            }
        }
    }

    /// Runs bin `bin` through its layers with `work` from before them.
    fn bin(&mut self, bin: i64, spikes: &mut Vec<Spike>, samples: &mut Vec<PowerSample>, work: &mut Work) {
        let happened = self.layers.run(bin, self.bin_us, spikes, &mut [], work);
        self.power.add(bin * self.bin_us, *work, samples);
        self.last = Some((bin, !happened));
    }
}

/// Memory of the two threads, kept between calls so that a warm simulator allocates nothing
/// per bin: bins to hand, and the worker's inputs.
#[derive(Default)]
pub(crate) struct Buffers {
    spare: Vec<Handed>,
    worker_inputs: Vec<BinInput>,
}

impl Buffers {
    /// The bins to hand, and the inputs of a worker that runs `layers` layers.
    pub fn parts(&mut self, layers: usize) -> (&mut Vec<Handed>, &mut [BinInput]) {
        self.worker_inputs.resize_with(layers, Vec::new);
        (&mut self.spare, &mut self.worker_inputs)
    }
}

/// What the caller's part needs to admit the sensor events into the open bin.
pub(crate) struct Admission<'a> {
    pub front: &'a mut Front,
    pub dvs_counters: &'a mut LayerCounters,
    /// The open bin (the simulator's, kept between calls).
    pub open: &'a mut Option<i64>,
    pub bin_us: i64,
}

/// Takes back the bins the worker finished (delivering what they made) into the spare ones,
/// after waiting for one if asked (the caller has nothing else to do); false to stop.
type TakeBack<'a> = dyn FnMut(&mut Vec<Handed>, Wait) -> bool + 'a;

/// How long [`TakeBack`] waits for the worker.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// Not at all: whatever it sent so far.
    No,
    /// For one message, then whatever else it sent.
    One,
    /// Until it is gone.
    All,
}

/// The caller's part: admits the sensor events into the open bin; when a bin ends, runs the
/// first layers on it and the empty bins after it, and hands each to the worker.
pub(crate) struct Caller<'a> {
    layers: BinLayers<'a>,
    /// The open bin's input of the worker's layers (from the DVS layer).
    worker_inputs: &'a mut [BinInput],
    admission: Admission<'a>,
    /// The monitored spikes of the sensor events admitted since the last bin ended.
    sensor: Vec<Spike>,
    /// Bins the worker sent back, to be handed again.
    spare: &'a mut Vec<Handed>,
}

impl<'a> Caller<'a> {
    pub fn new(layers: BinLayers<'a>, worker_inputs: &'a mut [BinInput], admission: Admission<'a>, spare: &'a mut Vec<Handed>) -> Self {
        Self { layers, worker_inputs, admission, sensor: Vec::new(), spare }
    }

    /// Admits `e`, after handing the bins that end before it, each followed by `take_back`
    /// (see [`Self::hand`]); false once the worker is gone or `take_back` says to stop.
    fn admit(&mut self, e: &dynapviz_events::Event, to_worker: &mpsc::SyncSender<Handed>, take_back: &mut TakeBack) -> bool {
        let Admission { front, dvs_counters, open, bin_us } = &mut self.admission;
        let Some((t, site)) = front.admit(e, true, dvs_counters) else { return true };
        let wiring = self.layers.wiring;
        if wiring.monitored[0] {
            self.sensor.push(Spike { t, layer: 0, c: site.c, y: site.y, x: site.x });
        }
        if let Some((cur, b)) = next_bin(open, t, *bin_us)
            && !self.hand(cur, b, to_worker, take_back)
        {
            return false;
        }
        queue_sensor_event(wiring, site, self.layers.inputs, self.worker_inputs);
        true
    }

    /// Ends bin `cur` of the first part, and the empty bins after it that change one of its
    /// layers, up to `open`; hands each to the worker, then takes back what it finished, so
    /// that a long gap holds at most the bins in flight.
    fn hand(&mut self, cur: i64, open: i64, to_worker: &mpsc::SyncSender<Handed>, take_back: &mut TakeBack) -> bool {
        let (biased, bin_us) = (self.layers.biased(), self.admission.bin_us);
        let mut bin = cur;
        loop {
            let mut h = self.spare.pop().unwrap_or_default();
            h.inputs.resize_with(self.worker_inputs.len(), Vec::new);
            h.bin = bin;
            if bin == cur {
                std::mem::swap(&mut h.sensor, &mut self.sensor);
                // `h`'s inputs are empty: the memory changes hands.
                for (to, from) in h.inputs.iter_mut().zip(self.worker_inputs.iter_mut()) {
                    std::mem::swap(to, from);
                }
            }
            h.work.sensor_events = self.layers.inputs[0].len() as u64;
            let happened = self.layers.run(bin, bin_us, &mut h.spikes, &mut h.inputs, &mut h.work);
            // One thread runs the empty bins after a bin until one changes nothing.
            let last = !(biased && (happened || bin == cur) && bin + 1 < open);
            h.then_open = last.then_some(open);
            // While the worker's queue is full, what it sends back is taken (it may be waiting
            // for room to send a gap's spikes before it takes the next bin).
            loop {
                match to_worker.try_send(h) {
                    Ok(()) => break,
                    Err(mpsc::TrySendError::Full(back)) if take_back(self.spare, Wait::One) => h = back,
                    Err(_) => return false,
                }
            }
            if !take_back(self.spare, Wait::No) {
                return false;
            }
            if last {
                return true;
            }
            bin += 1;
        }
    }
}

/// Runs at most `limit` (and a piece) of `events` on the two parts, the worker on a thread of
/// its own; `deliver` takes the monitored spikes in the order of one thread, and the power
/// samples (the caller's `samples`, where they are left), and says whether to go on. Returns
/// whether to go on.
pub(crate) fn run(
    mut caller: Caller<'_>,
    worker: Worker<'_>,
    events: &mut dyn Events,
    samples: &mut Vec<PowerSample>,
    mut deliver: impl FnMut(&mut Vec<Spike>, &mut Vec<PowerSample>) -> bool,
    limit: usize,
) -> bool {
    std::thread::scope(|scope| {
        let (to_worker, handed) = mpsc::sync_channel::<Handed>(BINS_IN_FLIGHT);
        let (to_caller, done) = mpsc::sync_channel::<Done>(DONE_IN_FLIGHT);
        scope.spawn(move || worker.serve(handed, to_caller));
        let mut take_back = |spare: &mut Vec<Handed>, wait: Wait| {
            let mut first = true;
            let mut next = || {
                let wait = wait == Wait::All || std::mem::take(&mut first) && wait == Wait::One;
                if wait { done.recv().ok() } else { done.try_recv().ok() }
            };
            while let Some(Done { handed, mut spikes, samples: mut made }) = next() {
                samples.append(&mut made);
                let go_on = deliver(&mut spikes, samples);
                if let Some(mut handed) = handed {
                    (handed.sensor, handed.samples) = (spikes, made);
                    handed.clear();
                    spare.push(handed);
                }
                if !go_on {
                    return false;
                }
            }
            true
        };
        let (mut go_on, mut admitted) = (true, 0);
        while go_on && admitted < limit {
            let piece = events.next_piece(PIECE_EVENTS, None);
            if piece.is_empty() {
                break;
            }
            admitted += piece.len();
            for e in piece {
                go_on = caller.admit(e, &to_worker, &mut take_back);
                if !go_on {
                    break;
                }
            }
        }
        drop(to_worker);
        go_on = go_on && take_back(caller.spare, Wait::All);
        // The sensor events of the open bin, as one thread gives them before its end.
        go_on && deliver(&mut caller.sensor, samples)
    })
}
