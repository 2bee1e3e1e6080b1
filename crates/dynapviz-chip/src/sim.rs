//! The simulator: a mapped, discretized network plus a stream of DVS events in; spikes of the
//! monitored layers, counters and power samples out. Two modes:
//! - `Event`: the chip model (DESIGN.md §5): every event updates the neurons under the kernel,
//!   int16 saturation, at most one spike per neuron per incoming event, a per-layer latency.
//! - `Binned`: sinabs' CPU simulation, bit for bit: per time bin all input is summed, then
//!   `n = v / thr` spikes per neuron, subtract (or reset to zero, the layer's choice), clamp.

use std::collections::BTreeSet;

use dynapviz_events::Event;
use dynapviz_model::Network;
use serde::Serialize;

use crate::batch::Batch;
use crate::binned::{Admission, BinInput, BinLayers, Caller, Worker};
use crate::cascade::{Cascade, Queue, Repool, Wiring};
use crate::decimator::{Decimator, OutputDecimator};
use crate::dvs::Front;
use crate::lanes::Kernel;
use crate::layer::{Arithmetic, LayerRt, Site};
use crate::leak::{self, LeakClock};
use crate::peak::Peak;
use crate::power::{Coefficients, Part, PeriodClock, PowerMonitor, PowerSample, Work};
use crate::stages;

/// How time is simulated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Event by event, as the chip.
    Event,
    /// In bins of `bin_us`, as sinabs.
    Binned {
        /// Bin width, µs.
        bin_us: i64,
    },
}

/// Which layers' spikes are reported, like the original's `monitor_layers`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Monitors {
    layers: BTreeSet<usize>,
}

impl Monitors {
    /// Resolves a list of layer names: `"dvs"` or `0` for the DVS layer, `1..N`, and `-1` for the
    /// output layer. The caller's list is not modified (the original mutates it).
    pub fn resolve(names: &[String], layers: usize) -> Result<Self, SimError> {
        let mut set = BTreeSet::new();
        for n in names {
            let i = match n.trim() {
                "dvs" => 0,
                "-1" | "output" => layers,
                v => v.parse::<usize>().map_err(|_| SimError::Monitor(format!("`{v}`: expected dvs, -1 or a layer number 1..{layers}")))?,
            };
            if i > layers {
                return Err(SimError::Monitor(format!("layer {i} does not exist: the network has layers 1..{layers}")));
            }
            set.insert(i);
        }
        Ok(Self { layers: set })
    }

    /// Monitors exactly these layer numbers (0 = DVS).
    pub fn of(layers: impl IntoIterator<Item = usize>) -> Self {
        Self { layers: layers.into_iter().collect() }
    }

    /// Whether layer `i` is monitored.
    pub fn contains(&self, i: usize) -> bool {
        self.layers.contains(&i)
    }
}

/// A core that cannot keep up drops input: the chip's behaviour when a core is busy.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BusyModel {
    /// Processing time per synaptic operation, ns.
    pub ns_per_synop: f64,
    /// Fixed processing time per input event, ns.
    pub ns_per_event: f64,
    /// Largest backlog a core queues before it drops, ns.
    pub max_backlog_ns: f64,
}

impl Default for BusyModel {
    fn default() -> Self {
        // Estimates, not chip data: 1 synop/ns per core and a few µs of input FIFO.
        Self { ns_per_synop: 1.0, ns_per_event: 10.0, max_backlog_ns: 5_000.0 }
    }
}

/// Simulator settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// Event or binned.
    pub mode: Mode,
    /// Layers whose spikes are output.
    pub monitors: Monitors,
    /// Drop input when a core is busy (event mode only); `None` = infinitely fast cores.
    pub busy: Option<BusyModel>,
    /// The layers (1-based) whose cores drop input when busy, as samna's
    /// `input_congestion_balancer_enable` turns it on per layer; empty: every layer.
    pub busy_layers: Vec<usize>,
    /// Add each layer's bias every `leak_tick_us` (event mode; the chip's slow clock).
    pub leak_tick_us: Option<i64>,
    /// The cores' output decimators that are on, at most one per layer (event mode).
    pub decimators: Vec<OutputDecimator>,
    /// Latency of one layer, ns (DESIGN.md §5: about 370 ns).
    pub layer_latency_ns: i64,
    /// Power sample rate, Hz (the original samples at 50 Hz in its visualizer).
    pub power_rate_hz: f64,
    /// Power model coefficients.
    pub power: Coefficients,
    /// Number of power rails (5 with a sensor, 3 without).
    pub power_rails: usize,
    /// Threads: with 2 or more, the layers are cut into as many runs that work as a pipeline,
    /// with identical results (with a leak, each run of layers ticks its own between the
    /// pieces of sensor events; the binned mode into two at most: a bin's first layers on the
    /// caller's thread, the rest on a worker's, a bin behind).
    pub threads: usize,
    /// How much faster (a fraction) the slowest run of layers must get for the pipeline to take
    /// one more of its threads: past the heaviest layer alone more threads only spin. 0 takes
    /// every thread that does not make it slower (the tests, to run every stage).
    pub thread_gain: f64,
    /// Calls to [`Simulator::process`] with fewer sensor events run on one thread: starting the
    /// others costs more than they save (live playback hands over small chunks).
    pub parallel_min_events: usize,
    /// The fastest kernel the event mode may run (the binned mode: up to AVX2). The default,
    /// [`Kernel::Avx512`], runs the fastest the CPU has; lower ones are for comparing speeds
    /// and testing them on a machine that has faster ones. Results are identical.
    pub kernel: Kernel,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            mode: Mode::Event,
            monitors: Monitors::default(),
            busy: None,
            busy_layers: Vec::new(),
            leak_tick_us: None,
            decimators: Vec::new(),
            layer_latency_ns: 370,
            power_rate_hz: 50.0,
            power: Coefficients::default(),
            power_rails: 5,
            threads: 1,
            thread_gain: 0.05,
            parallel_min_events: 16_384,
            kernel: Kernel::Avx512,
        }
    }
}

/// Work and losses of one layer (index 0 = the DVS layer).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LayerCounters {
    /// Events received.
    pub input_events: u64,
    /// Synaptic operations (neuron updates by a weight).
    pub synaptic_ops: u64,
    /// Spikes emitted by the neurons.
    pub spikes: u64,
    /// Spikes that left the layer: inside the pooled map, and passed by its output decimator
    /// if it has one.
    pub spikes_after_pool: u64,
    /// Input dropped because the core was busy.
    pub dropped_busy: u64,
    /// Spikes inside the pooled map that the output decimator held back.
    pub decimated: u64,
    /// The most synaptic operations in one millisecond of simulated time, by their input's
    /// arrival (the binned mode spreads a bin's over the milliseconds it spans): what to hold
    /// against a core's bandwidth. Adding counters keeps the larger.
    pub peak_synops_per_ms: u64,
}

impl std::ops::AddAssign for LayerCounters {
    fn add_assign(&mut self, other: Self) {
        self.input_events += other.input_events;
        self.synaptic_ops += other.synaptic_ops;
        self.spikes += other.spikes;
        self.spikes_after_pool += other.spikes_after_pool;
        self.dropped_busy += other.dropped_busy;
        self.decimated += other.decimated;
        self.peak_synops_per_ms = self.peak_synops_per_ms.max(other.peak_synops_per_ms);
    }
}

/// Input the simulator could not use, counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct InputCounters {
    /// Sensor events outside the network's input shape.
    pub out_of_range: u64,
    /// Sensor events removed by the DVS crop.
    pub cropped: u64,
    /// Events earlier than their predecessor: processed at the predecessor's time (event mode)
    /// or dropped because their bin was already simulated (binned mode).
    pub time_backwards: u64,
    /// Events whose time is more than [`MAX_TIME_US`] from 0 (corrupt): dropped.
    pub time_out_of_range: u64,
}

/// Binned mode: the most bins before the first input event that are run. sinabs' frames count
/// bins from t = 0, and a bias charges the neurons in every one, also those before the first
/// event; a recording that starts later than this after 0 (timed by a clock, not from its own
/// start) begins at its first event's bin instead.
pub const MAX_LEADING_BINS: i64 = 10_000;

/// Monitored spikes a gap between sensor events may make (by the leak in event mode, by a bias
/// in the empty bins of binned mode) before they leave for the caller's sink (see
/// [`Simulator::process_sliced`] and [`Simulator::process_stream`]): memory stays bounded
/// however long the gap and however often the neurons fire in it.
pub const GAP_SLICE_SPIKES: usize = 1 << 16;

/// Takes the monitored spikes and power samples made so far (and clears them); false stops.
type Flush<'a> = dyn FnMut(&mut Vec<Spike>, &mut Vec<PowerSample>) -> bool + 'a;

/// A [`Flush`] that hands the spikes and samples to `sink` and clears them; after the sink's
/// first error (kept in `failed`) it calls it no more and says to stop.
fn sink_flush<'a, E>(
    sink: &'a mut impl FnMut(&[Spike], &[PowerSample]) -> Result<(), E>,
    failed: &'a mut Option<E>,
) -> impl FnMut(&mut Vec<Spike>, &mut Vec<PowerSample>) -> bool + 'a {
    move |out, samples| {
        if failed.is_some() {
            return false;
        }
        let sunk = sink(out, samples);
        out.clear();
        samples.clear();
        sunk.map_err(|e| *failed = Some(e)).is_ok()
    }
}

/// The first bin of a binned simulation (and of a table of bins) whose first input event is at
/// `t_us`: bin 0, as sinabs' frames, unless that is more than [`MAX_LEADING_BINS`] before it.
pub fn first_bin(t_us: i64, bin_us: i64) -> i64 {
    let b = t_us.div_euclid(bin_us);
    if (0..=MAX_LEADING_BINS).contains(&b) { 0 } else { b }
}

/// The highest power sample rate, Hz: a sample every 100 µs of simulated time.
pub const MAX_POWER_RATE_HZ: f64 = 10_000.0;

/// The largest time of a sensor event, either side of 0: about 146 years in µs. The event
/// mode counts in ns, and a corrupt timestamp near the end of `i64` would overflow there.
pub const MAX_TIME_US: i64 = (1 << 62) / 1000;

/// A spike of a monitored layer (layer 0: a sensor event after the DVS layer).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Spike {
    /// Time, µs (binned mode: the start of the bin).
    pub t: i64,
    /// Layer number.
    pub layer: u16,
    /// Channel (feature).
    pub c: u16,
    /// Row.
    pub y: u16,
    /// Column.
    pub x: u16,
}

/// Errors of the simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The network cannot run.
    #[error(transparent)]
    Model(#[from] dynapviz_model::ModelError),
    /// A monitor name is wrong.
    #[error("monitor {0}")]
    Monitor(String),
    /// A setting is wrong.
    #[error("{0}")]
    Config(String),
}

/// Switches the configured output decimators on, or says why one cannot be.
fn set_decimators(layers: &mut [LayerRt], config: &Config) -> Result<(), SimError> {
    for d in &config.decimators {
        if matches!(config.mode, Mode::Binned { .. }) {
            return Err(SimError::Config(format!(
                "output decimator of {d}: the binned mode reproduces sinabs, which has none; use the event mode"
            )));
        }
        if d.interval > OutputDecimator::MAX_INTERVAL {
            return Err(SimError::Config(format!(
                "output decimator of layer {}: interval {} is not one of 0..={}",
                d.layer,
                d.interval,
                OutputDecimator::MAX_INTERVAL
            )));
        }
        let n = layers.len();
        let layer = d
            .layer
            .checked_sub(1)
            .and_then(|i| layers.get_mut(i))
            .ok_or_else(|| SimError::Config(format!("output decimator of layer {}: the network has layers 1..{n}", d.layer)))?;
        if layer.decimator.is_some() {
            return Err(SimError::Config(format!("layer {} has two output decimators: a core has one", d.layer)));
        }
        layer.decimator = Some(Decimator::new(*d));
    }
    Ok(())
}

/// Rules out what the simulator cannot run: a layer sending to itself or an earlier layer (a
/// recurrent network), to a layer that does not exist, or to one whose input is smaller than its
/// output.
fn check_connections(network: &Network) -> Result<(), SimError> {
    let n = network.layers.len();
    if let Some(first) = network.layers.first()
        && first.in_shape[0] < if network.dvs.merge_polarities { 1 } else { 2 }
    {
        return Err(SimError::Config(format!(
            "layer 1 takes {} input channel(s) but the DVS layer sends 2 polarities: merge them or give 2 input channels",
            first.in_shape[0]
        )));
    }
    // A merge takes the larger of its inputs' shapes (sinabs' `Merge` pads the smaller with
    // zeros at the end): what reaches a layer may be smaller than its input, never larger.
    let fits = |sender: &str, sent: [usize; 3], d: usize| {
        let to = &network.layers[d - 1];
        if (0..3).any(|i| sent[i] > to.in_shape[i]) {
            return Err(SimError::Config(format!("{sender} sends {sent:?} (C, H, W) to layer {d}, which takes {:?}", to.in_shape)));
        }
        Ok(())
    };
    for &d in &network.dvs.destinations {
        if d == 0 || d > n {
            return Err(SimError::Config(format!("the DVS layer sends to layer {d}: the network has layers 1 to {n}")));
        }
        // Layer 1 has the channel check above.
        if d > 1 {
            fits("the DVS layer", network.dvs.output_shape, d)?;
        }
    }
    for l in &network.layers {
        for (k, &d) in l.destinations.iter().enumerate() {
            if d <= l.index || d > n {
                return Err(SimError::Config(format!(
                    "layer {} sends to layer {d}: the simulator runs feed-forward networks (destinations after the layer, up to {n})",
                    l.index
                )));
            }
            fits(&format!("layer {}", l.index), l.shape_to(k), d)?;
            if let Some(p) = l.destination_pools.get(k)
                && (p[0] % l.pool[0].max(1) != 0 || p[1] % l.pool[1].max(1) != 0)
            {
                return Err(SimError::Config(format!(
                    "layer {} pools {:?} to layer {d}: not a multiple of its own pooling {:?}",
                    l.index, p, l.pool
                )));
            }
        }
    }
    Ok(())
}

/// Sensor events the binned mode runs on one thread first (at most
/// [`Config::parallel_min_events`]), to measure where to cut its layers for two.
const BIN_MEASURE_EVENTS: usize = 4 * stages::PIECE_EVENTS;

/// Sensor events the binned mode runs on two threads before it measures again where to cut.
const BIN_RECUT_EVENTS: usize = 64 * stages::PIECE_EVENTS;

/// The simulated chip.
pub struct Simulator {
    front: Front,
    layers: Vec<LayerRt>,
    wiring: Wiring,
    config: Config,
    counters: Vec<LayerCounters>,
    power: PowerMonitor,
    power_samples: Vec<PowerSample>,
    /// The power periods as the admission sees them: ahead of `power`'s by the batches on
    /// their way (see [`PeriodClock`]).
    clock: PeriodClock,
    /// Event mode: per layer, events waiting.
    queues: Vec<Queue>,
    /// Binned mode: per layer, the input of the open bin with its spike counts.
    bin_input: Vec<BinInput>,
    /// Binned mode: nanoseconds each layer took, and the admission, over how many sensor
    /// events on one thread: where to cut the layers for two threads.
    bin_spent_ns: Vec<u64>,
    bin_admission_ns: u64,
    bin_measured_events: usize,
    /// Binned mode on two threads: their memory, kept between calls.
    bin_buffers: crate::binned::Buffers,
    /// [`Self::process_sliced`]'s spikes between two calls of its sink, kept between calls.
    sliced: Vec<Spike>,
    busy_until_ns: Vec<f64>,
    /// Buffers of the one-thread event mode, kept between calls.
    batch: Batch,
    /// Room for one input event's spikes (event mode).
    fired: Vec<Site>,
    /// Several threads: their memory, kept between calls.
    stages: stages::Buffers,
    bin: Option<i64>,
    /// The leak's clock (event mode), ticking every [`Config::leak_tick_us`] when some layer
    /// has a bias to add. Without one a tick changes nothing, and the events run as without a
    /// leak.
    leak: Option<LeakClock>,
}

impl Simulator {
    /// Prepares a discretized network.
    pub fn new(network: &Network, config: Config) -> Result<Self, SimError> {
        if let Mode::Binned { bin_us } = config.mode
            && bin_us <= 0
        {
            return Err(SimError::Config(format!("bin width {bin_us} µs: must be positive")));
        }
        // A sample a period: at most MAX_POWER_RATE_HZ, or a long recording's samples would
        // outgrow its events.
        if !(config.power_rate_hz > 0.0 && config.power_rate_hz <= MAX_POWER_RATE_HZ) {
            return Err(SimError::Config(format!(
                "power sample rate {} Hz: expected more than 0 and at most {MAX_POWER_RATE_HZ}",
                config.power_rate_hz
            )));
        }
        if config.leak_tick_us.is_some_and(|t| t <= 0) {
            return Err(SimError::Config("the leak tick must be positive".into()));
        }
        if config.threads == 0 {
            return Err(SimError::Config("threads must be at least 1".into()));
        }
        if !(0.0..1.0).contains(&config.thread_gain) {
            return Err(SimError::Config(format!("thread_gain must be in [0, 1), not {}", config.thread_gain)));
        }
        let arithmetic = if matches!(config.mode, Mode::Binned { .. }) { Arithmetic::Exact } else { Arithmetic::Chip };
        let mut layers = network.layers.iter().map(|l| LayerRt::new(l, arithmetic)).collect::<Result<Vec<_>, _>>()?;
        check_connections(network)?;
        set_decimators(&mut layers, &config)?;
        if let Some(&l) = config.busy_layers.iter().find(|&&l| l == 0 || l > layers.len()) {
            return Err(SimError::Config(format!("busy model on layer {l}: the network has layers 1..{}", layers.len())));
        }
        let leak_tick_us = config.leak_tick_us.filter(|_| layers.iter().any(LayerRt::has_bias));
        if config.mode == Mode::Event && leak_tick_us.is_none() && config.leak_tick_us.is_some() {
            tracing::warn!("no layer has a bias: the leak changes nothing");
        }
        let n = layers.len();
        let mut destinations: Vec<Vec<usize>> = network.layers.iter().map(|l| l.destinations.iter().map(|&d| d - 1).collect()).collect();
        // Then the DVS layer's besides the first layer, which the admission feeds: spikes in
        // flight from the DVS layer name source `n`.
        destinations.push(network.dvs.destinations.iter().filter(|&&d| d != 1).map(|&d| d - 1).collect());
        let dvs_destinations = destinations[n].len();
        Ok(Self {
            front: Front::new(&network.dvs),
            wiring: Wiring {
                merged: (0..n).map(|l| destinations.iter().filter(|d| d.contains(&l)).count() > 1).collect(),
                destinations,
                repools: network
                    .layers
                    .iter()
                    .map(|l| {
                        (0..l.destinations.len())
                            .map(|k| {
                                let [_, h, w] = l.shape_to(k);
                                Repool::new(l.pool, l.pool_to(k), [h, w])
                            })
                            .collect()
                    })
                    .chain([vec![None; dvs_destinations]])
                    .collect(),
                monitored: (0..=n).map(|i| config.monitors.contains(i)).collect(),
                latency_ns: config.layer_latency_ns,
                busy: (1..=n).map(|l| config.busy.filter(|_| config.busy_layers.is_empty() || config.busy_layers.contains(&l))).collect(),
                kernel: config.kernel.on_this_cpu(),
            },
            power: PowerMonitor::new(config.power_rate_hz, config.power_rails, config.power),
            clock: PeriodClock::new(config.power_rate_hz),
            counters: vec![LayerCounters::default(); n + 1],
            power_samples: Vec::new(),
            queues: vec![Queue::default(); n],
            bin_input: vec![Vec::new(); n],
            bin_spent_ns: vec![0; n],
            bin_admission_ns: 0,
            bin_measured_events: 0,
            bin_buffers: crate::binned::Buffers::default(),
            sliced: Vec::new(),
            busy_until_ns: vec![0.0; n],
            batch: Batch::default(),
            fired: Vec::new(),
            stages: stages::Buffers::default(),
            bin: None,
            leak: leak_tick_us.map(LeakClock::new),
            layers,
            config,
        })
    }

    /// The kernel the event mode runs on this CPU (see [`Config::kernel`]).
    pub fn kernel(&self) -> Kernel {
        self.wiring.kernel
    }

    /// Per-layer counters; index 0 is the DVS layer.
    pub fn counters(&self) -> &[LayerCounters] {
        &self.counters
    }

    /// Input the simulator could not use.
    pub fn input_counters(&self) -> InputCounters {
        self.front.input
    }

    /// Power samples produced so far (drained).
    pub fn take_power_samples(&mut self) -> Vec<PowerSample> {
        std::mem::take(&mut self.power_samples)
    }

    /// Bytes of neuron state per layer (1-based order).
    pub fn state_bytes(&self) -> Vec<usize> {
        self.layers.iter().map(LayerRt::state_bytes).collect()
    }

    /// Number of chip layers.
    pub fn layer_count(&self) -> usize {
        self.layers.len()
    }

    /// Puts every neuron back where the network starts (0, or the initial potentials of a biased
    /// network: `QuantParams::initial_v_mem`) and clears the counters, for a new recording, as
    /// a freshly made simulator would run it.
    pub fn reset(&mut self) {
        self.layers.iter_mut().for_each(LayerRt::reset_state);
        self.counters.iter_mut().for_each(|c| *c = LayerCounters::default());
        self.layers.iter_mut().for_each(|l| l.peak = Peak::default());
        self.front.input = InputCounters::default();
        self.front.last_t = None;
        self.queues.iter_mut().for_each(|q| q.clear());
        self.bin_input.iter_mut().for_each(Vec::clear);
        self.busy_until_ns.iter_mut().for_each(|b| *b = 0.0);
        self.bin = None;
        self.leak.iter_mut().for_each(LeakClock::reset);
        self.power = PowerMonitor::new(self.config.power_rate_hz, self.config.power_rails, self.config.power);
        self.clock = PeriodClock::new(self.config.power_rate_hz);
    }

    /// The most threads a call of [`Self::process`] with enough events runs on:
    /// [`Config::threads`] in event mode (the pipeline takes fewer where more would not make it
    /// faster), at most two in binned mode.
    pub fn threads(&self) -> usize {
        match self.config.mode {
            Mode::Event => self.config.threads,
            Mode::Binned { .. } => self.config.threads.min(2),
        }
    }

    /// Feeds a chunk of sensor events; appends the spikes of monitored layers to `out`, in the
    /// order a one-thread simulation gives them, whatever [`Config::threads`] says. All of
    /// them: with a leak or a bias that fires, a long gap's spikes too ([`Self::process_sliced`]
    /// hands those out as they come).
    pub fn process(&mut self, events: &[Event], out: &mut Vec<Spike>) {
        // The caller asked for every spike of `events`: nothing leaves before the end.
        self.process_flushing(events, out, &mut |_, _| true);
    }

    /// [`Self::process`], but the monitored spikes and the power samples go to `sink` as they
    /// come out, in the same order, a bounded number at a time (they are cleared after each
    /// call): a gap in which a leak or a bias fires, however long, holds no more than
    /// [`GAP_SLICE_SPIKES`]. For a caller that gets its events in chunks as they come (a live
    /// view) and cannot let one chunk's spikes grow without bound. Stops at the sink's first
    /// error and returns it.
    pub fn process_sliced<E>(
        &mut self,
        events: &[Event],
        mut sink: impl FnMut(&[Spike], &[PowerSample]) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut out = std::mem::take(&mut self.sliced);
        let mut failed = None;
        self.process_flushing(events, &mut out, &mut sink_flush(&mut sink, &mut failed));
        // Every path above hands out what it makes; left are the power samples an earlier
        // `process` kept, when `events` made no piece to flush.
        if !out.is_empty() || !self.power_samples.is_empty() {
            sink_flush(&mut sink, &mut failed)(&mut out, &mut self.power_samples);
        }
        out.clear();
        self.sliced = out;
        failed.map_or(Ok(()), Err)
    }

    /// Feeds a chunk of sensor events on as many threads as it pays for (see
    /// [`Self::threads`]); the monitored spikes go to `out`, and `flush` may take them and the
    /// power samples after each piece, bin or leak slice (it clears them), or leave them.
    /// Returns false once `flush` said to stop.
    fn process_flushing(&mut self, events: &[Event], out: &mut Vec<Spike>, flush: &mut Flush) -> bool {
        let mut go_on = true;
        if self.threads() >= 2 && events.len() >= self.config.parallel_min_events {
            if let Mode::Binned { bin_us } = self.config.mode {
                self.process_binned_stages(&mut { events }, bin_us, |spikes, samples| {
                    out.append(spikes);
                    go_on = flush(out, samples);
                    go_on
                });
            } else {
                self.process_stages(&mut { events }, |batch, power, samples| {
                    batch.hand_out(out, power, samples);
                    go_on = flush(out, samples);
                    go_on
                });
            }
            return go_on;
        }
        for piece in events.chunks(stages::PIECE_EVENTS) {
            self.process_serial(piece, out, flush);
            if !flush(out, &mut self.power_samples) {
                return false;
            }
        }
        true
    }

    /// Feeds a whole stream of sensor events: `next` replaces the contents of its buffer with
    /// the next chunk and says false at the end. `sink` gets the monitored spikes (in the order
    /// of [`Simulator::process`]) and the power samples as they come out, a few thousand sensor
    /// events at a time; they are cleared after each call. The results are those of calling
    /// [`Simulator::process`] per chunk, but several threads run through the chunks as one
    /// pipeline, which they would otherwise fill and drain once per chunk. Stops at the first
    /// error of either closure and returns it.
    pub fn process_stream<E>(
        &mut self,
        mut next: impl FnMut(&mut Vec<Event>) -> Result<bool, E>,
        mut sink: impl FnMut(&[Spike], &[PowerSample]) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut out = Vec::new();
        if self.threads() < 2 {
            let mut chunk = Vec::new();
            let mut failed = None;
            while next(&mut chunk)? && self.process_flushing(&chunk, &mut out, &mut sink_flush(&mut sink, &mut failed)) {}
            return failed.map_or(Ok(()), Err);
        }
        let (mut read_error, mut sink_error) = (None, None);
        let mut events = stages::Chunks::new(|chunk: &mut Vec<Event>| {
            next(chunk).unwrap_or_else(|e| {
                read_error = Some(e);
                false
            })
        });
        let mut flush = sink_flush(&mut sink, &mut sink_error);
        if let Mode::Binned { bin_us } = self.config.mode {
            self.process_binned_stages(&mut events, bin_us, &mut flush);
        } else {
            self.process_stages(&mut events, |batch, power, samples| {
                batch.hand_out(&mut out, power, samples);
                flush(&mut out, samples)
            });
        }
        drop((events, flush));
        match read_error.or(sink_error) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// One thread through `events`. `flush` may take what `out` and the power samples hold
    /// before the end, when a leak gap makes many spikes (it clears them); it says false to
    /// stop the gap there (the caller's sink failed).
    fn process_serial(&mut self, events: &[Event], out: &mut Vec<Spike>, flush: &mut Flush) {
        match (self.config.mode, self.leak.map(|l| l.tick_us)) {
            (Mode::Binned { bin_us }, _) => {
                let (started, layers_ns) = (std::time::Instant::now(), self.bin_spent_ns.iter().sum::<u64>());
                for e in events {
                    let Some((t, site)) = self.front.admit(e, true, &mut self.counters[0]) else { continue };
                    if self.wiring.monitored[0] {
                        out.push(Spike { t, layer: 0, c: site.c, y: site.y, x: site.x });
                    }
                    self.binned_input(t, bin_us, site, out, flush);
                }
                let in_layers = self.bin_spent_ns.iter().sum::<u64>() - layers_ns;
                self.bin_admission_ns += (started.elapsed().as_nanos() as u64).saturating_sub(in_layers);
                self.bin_measured_events += events.len();
            }
            // The leak acts on every layer at its tick, between sensor events: a batch holds
            // the events up to the next tick.
            (Mode::Event, Some(tick)) => {
                let mut rest = events;
                while !rest.is_empty() {
                    let (batch, after) = rest.split_at(leak::batch_len(rest, rest.len(), Some(tick)));
                    self.event_batch(batch, out, flush);
                    rest = after;
                }
            }
            (Mode::Event, None) => self.event_batch(events, out, flush),
        }
    }

    /// Event mode on one thread: admits the batch, runs it through all layers, then puts the
    /// monitored spikes in sensor-event order and adds each event's work to the power estimate.
    fn event_batch(&mut self, events: &[Event], out: &mut Vec<Spike>, flush: &mut Flush) {
        let mut batch = std::mem::take(&mut self.batch);
        batch.admit(events, &mut self.front, &mut self.counters[0], self.wiring.monitored[0], &mut self.queues[0], &mut self.clock);
        if let Some(leak) = &mut self.leak
            && let Some(&Part { first, t_us, .. }) = batch.work.parts().first()
        {
            // With a leak a batch holds no tick between its events (see `process_serial`):
            // the ticks up to its first run first, each tick's spikes through the layers
            // before the next tick, and the monitored ones leave every [`GAP_SLICE_SPIKES`],
            // so that a long gap with a leak that fires holds no more than that. The events
            // wait in the first layer's queue, which no tick feeds; the ticks' spikes leave
            // before theirs (the DVS layer's, tagged at admission, stay). A tick after which
            // every biased layer is quiet ends them: the others would repeat it.
            let ticks = leak.until(t_us);
            let event = std::mem::take(&mut self.queues[0]);
            let admitted = batch.tagged.len();
            for k in 0..ticks.count {
                let mut cascade = self.cascade_all();
                let quiet = cascade.tick(ticks.at(k), first, &mut batch.tagged, first);
                cascade.run(&mut batch.work, &mut batch.tagged);
                // All of one tick: in order as tagged.
                out.extend(batch.tagged.drain(admitted..).map(|(_, s)| s));
                if quiet || (out.len() >= GAP_SLICE_SPIKES && !flush(out, &mut self.power_samples)) {
                    break;
                }
            }
            self.queues[0] = event;
        }
        self.wiring.send_dvs_on(&mut self.queues, None);
        self.cascade_all().run(&mut batch.work, &mut batch.tagged);
        let (power, samples) = (&mut self.power, &mut self.power_samples);
        batch.hand_out(out, power, samples);
        self.batch = batch;
    }

    /// Every layer, to run on this thread.
    fn cascade_all(&mut self) -> Cascade<'_> {
        Cascade {
            first: 0,
            layers: &mut self.layers,
            counters: &mut self.counters[1..],
            queues: &mut self.queues,
            busy_until_ns: &mut self.busy_until_ns,
            wiring: &self.wiring,
            fired: &mut self.fired,
            flight: None,
            spent_ns: None,
        }
    }

    /// Event mode on several threads (see [`stages`]); `deliver` hands out each piece's batch
    /// and says whether to go on.
    fn process_stages(
        &mut self,
        events: &mut dyn stages::Events,
        mut deliver: impl FnMut(&mut Batch, &mut PowerMonitor, &mut Vec<PowerSample>) -> bool,
    ) {
        let Some((dvs_counters, counters)) = self.counters.split_first_mut() else { return };
        let call = stages::Call {
            layers: &mut self.layers,
            threads: self.config.threads,
            thread_gain: self.config.thread_gain,
            front: &mut self.front,
            clock: &mut self.clock,
            dvs_counters,
            counters,
            busy_until_ns: &mut self.busy_until_ns,
            wiring: &self.wiring,
            leak: self.leak.as_mut(),
        };
        let (power, samples) = (&mut self.power, &mut self.power_samples);
        stages::run(call, events, &mut self.stages, |batch| deliver(batch, power, samples));
    }

    /// Completes the simulation: runs the last open bin (binned mode) and emits the last
    /// complete power sample.
    pub fn finish(&mut self, out: &mut Vec<Spike>) {
        if let (Mode::Binned { bin_us }, Some(b)) = (self.config.mode, self.bin) {
            self.run_bin(b, bin_us, out);
            self.bin = None;
        }
        if let Some(t) = self.front.last_t {
            self.power.advance(t, &mut self.power_samples);
        }
    }

    // ---------------- binned mode ----------------

    /// Queues a sensor event at `t` in its bin, after running the bins that end before it.
    /// `flush` takes the spikes of a long gap's empty bins as they come (see
    /// [`GAP_SLICE_SPIKES`]).
    fn binned_input(&mut self, t: i64, bin_us: i64, site: Site, out: &mut Vec<Spike>, flush: &mut Flush) {
        if let Some((cur, b)) = crate::binned::next_bin(&mut self.bin, t, bin_us) {
            self.run_bin(cur, bin_us, out);
            // Empty bins between matter only when a bias changes the state every bin, and
            // only up to the first that changes nothing: every later one would repeat it.
            if self.layers.iter().any(LayerRt::has_bias) {
                for empty in cur + 1..b {
                    if !self.run_bin(empty, bin_us, out) || (out.len() >= GAP_SLICE_SPIKES && !flush(out, &mut self.power_samples)) {
                        break;
                    }
                }
            }
        }
        crate::binned::queue_sensor_event(&self.wiring, site, &mut self.bin_input, &mut []);
    }

    /// Ends a bin: sums its input into every layer and fires, layer by layer. Returns whether
    /// anything happened: input, a spike or a changed potential.
    fn run_bin(&mut self, bin: i64, bin_us: i64, out: &mut Vec<Spike>) -> bool {
        let mut work = Work { sensor_events: self.bin_input[0].len() as u64, ..Work::default() };
        let happened = BinLayers {
            first: 0,
            layers: &mut self.layers,
            counters: &mut self.counters[1..],
            inputs: &mut self.bin_input,
            spent_ns: &mut self.bin_spent_ns,
            wiring: &self.wiring,
        }
        .run(bin, bin_us, out, &mut [], &mut work);
        self.power.add(bin * bin_us, work, &mut self.power_samples);
        happened
    }

    /// Binned mode on two threads (see [`crate::binned`]): the caller admits the sensor
    /// events and runs the layers before a cut, a worker those after it. Measures the layers
    /// on one thread first, and stays on one while no cut would make it faster; measures again
    /// every [`BIN_RECUT_EVENTS`]. `deliver` takes the monitored spikes, in the order of one
    /// thread, and the power samples, and says whether to go on.
    fn process_binned_stages(
        &mut self,
        events: &mut dyn stages::Events,
        bin_us: i64,
        mut deliver: impl FnMut(&mut Vec<Spike>, &mut Vec<PowerSample>) -> bool,
    ) {
        let mut out = Vec::new();
        loop {
            // One thread, piece by piece, until enough is measured and a cut makes it faster.
            let cut = loop {
                let measured = self.bin_measured_events >= BIN_MEASURE_EVENTS.min(self.config.parallel_min_events);
                if let Some(cut) =
                    crate::binned::best_cut(&self.bin_spent_ns, self.bin_admission_ns, self.config.thread_gain).filter(|_| measured)
                {
                    break cut;
                }
                let piece = events.next_piece(stages::PIECE_EVENTS, None);
                if piece.is_empty() {
                    return;
                }
                self.process_serial(piece, &mut out, &mut |spikes, samples| deliver(spikes, samples));
                if !deliver(&mut out, &mut self.power_samples) {
                    return;
                }
            };
            tracing::debug!(
                cut,
                admission_ms = self.bin_admission_ns as f64 * 1e-6,
                "binned mode on two threads: the caller runs layers 1..={cut}; ms per layer measured: {:?}",
                self.bin_spent_ns.iter().map(|&ns| (ns / 10_000) as f64 / 100.0).collect::<Vec<_>>()
            );
            if !self.binned_pair(cut, events, bin_us, &mut deliver) || events.is_done() {
                return;
            }
            // Measured afresh before the next cut: a measurement a busy host spoiled, or an
            // input that changed, does not hold for the rest of a long recording.
            self.bin_spent_ns.fill(0);
            (self.bin_admission_ns, self.bin_measured_events) = (0, 0);
        }
    }

    /// [`BIN_RECUT_EVENTS`] sensor events (or fewer, at the end) of the binned mode on two
    /// threads, the layers cut before layer `cut` (0-based); returns whether to go on.
    fn binned_pair(
        &mut self,
        cut: usize,
        events: &mut dyn stages::Events,
        bin_us: i64,
        deliver: impl FnMut(&mut Vec<Spike>, &mut Vec<PowerSample>) -> bool,
    ) -> bool {
        let Self { front, layers, wiring, counters, power, power_samples, bin_input, bin_spent_ns, bin, bin_buffers, .. } = self;
        let (a_layers, b_layers) = layers.split_at_mut(cut);
        let Some((dvs_counters, layer_counters)) = counters.split_first_mut() else { return false };
        let (a_counters, b_counters) = layer_counters.split_at_mut(cut);
        // The open bin's input of the worker's layers (from the DVS layer) stays with the
        // caller until the bin ends; the worker sums its bins in its own.
        let (a_inputs, b_open) = bin_input.split_at_mut(cut);
        let (a_spent, b_spent) = bin_spent_ns.split_at_mut(cut);
        let (spare, b_inputs) = bin_buffers.parts(b_open.len());
        let caller = Caller::new(
            BinLayers { first: 0, layers: a_layers, counters: a_counters, inputs: a_inputs, spent_ns: a_spent, wiring },
            b_open,
            Admission { front, dvs_counters, open: bin, bin_us },
            spare,
        );
        let worker = Worker::new(
            BinLayers { first: cut, layers: b_layers, counters: b_counters, inputs: b_inputs, spent_ns: b_spent, wiring },
            power,
            bin_us,
        );
        crate::binned::run(caller, worker, events, power_samples, deliver, BIN_RECUT_EVENTS)
    }
}
