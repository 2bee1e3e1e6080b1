//! A running session: source -> event nodes -> (simulated chip) -> collection -> count and
//! readout, on its own thread. The display receives coalesced frames through a
//! [`LatestSlot`]; analysis results go through a lossless bounded channel. The source is never
//! blocked by the display.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender};
use std::thread::JoinHandle;
use std::time::Instant;

use dynapviz_chip::{PowerSample, Simulator, Spike};
use dynapviz_events::{Event, Geometry};

use crate::nodes::frame::FrameAccumulator;
use crate::nodes::readout::{Collection, MajorityReadout, SpikeCollector, SpikeCount};
use crate::pipeline::{LatestSlot, batched};

/// The most snapshots (`SessionConfig::snapshot_us`) of empty frames in a row: two minutes of a
/// pause in the recording at one a second; a longer gap gets one frame for the rest.
pub const EMPTY_SNAPSHOTS_IN_FULL: usize = 120;

/// Anything that yields events in chunks.
pub trait Source: Send {
    /// Appends the next events; `Ok(false)` at the end.
    fn next_chunk(&mut self, out: &mut Vec<Event>) -> Result<bool, String>;
}

impl Source for crate::source::FileSource {
    fn next_chunk(&mut self, out: &mut Vec<Event>) -> Result<bool, String> {
        crate::source::FileSource::next_chunk(self, out).map_err(|e| e.to_string())
    }
}

impl<S: crate::synth::Stage + Send> Source for crate::synth::SceneSource<S> {
    fn next_chunk(&mut self, out: &mut Vec<Event>) -> Result<bool, String> {
        Ok(self.next_step(out))
    }
}

/// An event-processing step applied to every chunk (rescale, decimate, filters...).
pub type EventNode = Box<dyn FnMut(&mut Vec<Event>) + Send>;

/// What the display shows at one moment.
#[derive(Clone, Debug, PartialEq)]
pub struct DisplayFrame {
    /// Event time of the frame, µs.
    pub t_us: i64,
    /// Sensor size of the planes.
    pub geometry: Geometry,
    /// ON activity per pixel.
    pub on: Vec<f32>,
    /// OFF activity per pixel.
    pub off: Vec<f32>,
    /// When the newest event in the frame entered the pipeline (for latency measurement).
    pub newest_input: Instant,
    /// Input events so far.
    pub events_total: u64,
    /// Spike activity of the heat-map layer per channel, decayed like the DVS frame.
    pub heat: Option<Heat>,
}

/// A monitored layer's recent spikes per output neuron, for a feature-map heat map.
#[derive(Clone, Debug, PartialEq)]
pub struct Heat {
    /// The layer (1..N).
    pub layer: u16,
    /// Output channels, width and height.
    pub shape: HeatShape,
    /// Decayed spike counts, `[channel][y][x]`.
    pub values: Vec<f32>,
}

/// The output shape of a heat-map layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeatShape {
    /// Output channels.
    pub channels: usize,
    /// Width.
    pub width: usize,
    /// Height.
    pub height: usize,
}

impl HeatShape {
    /// Neurons in the layer.
    pub fn len(&self) -> usize {
        self.channels * self.width * self.height
    }

    /// Whether the layer has no neurons.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An analysis result: never dropped.
#[derive(Clone, Debug, PartialEq)]
pub enum Analysis {
    /// Spike counts per feature of one collection interval.
    Counts {
        /// End of the interval, µs.
        t_us: i64,
        /// Count per feature.
        counts: Vec<u64>,
    },
    /// The readout of one interval.
    Readout {
        /// End of the interval, µs.
        t_us: i64,
        /// The decided feature.
        feature: usize,
        /// Whether a prediction passed the rules (else `feature` is the default).
        predicted: bool,
    },
    /// A power reading.
    Power(PowerSample),
    /// Cumulative counters of every simulated layer (index 0 = DVS), once per collection.
    Layers {
        /// Event time, µs.
        t_us: i64,
        /// Counters per layer.
        counters: Vec<dynapviz_chip::LayerCounters>,
    },
    /// A display frame taken every [`SessionConfig::snapshot_us`] of event time, in order with
    /// the other results: what an offline renderer (headless PNG, GIF) draws, with none skipped.
    Snapshot(Box<DisplayFrame>),
}

/// Session settings.
pub struct SessionConfig {
    /// Display frame period in event time, µs.
    pub frame_us: i64,
    /// Decay of the DVS display, µs (None: clear each frame).
    pub decay_us: Option<f64>,
    /// Sensor size of the display.
    pub geometry: Geometry,
    /// Spike collection interval, ms.
    pub collection_ms: f64,
    /// Feature count of the spike-count plot.
    pub feature_count: usize,
    /// Readout rules (None: no readout).
    pub readout: Option<MajorityReadout>,
    /// Analysis channel capacity, in batches.
    pub analysis_capacity: usize,
    /// A monitored layer shown as a heat map: its number and output shape. The simulator must
    /// monitor it.
    pub heatmap_layer: Option<(u16, HeatShape)>,
    /// Also send a display frame through the lossless analysis channel every this many µs of
    /// event time (None: only the coalescing display slot gets frames).
    pub snapshot_us: Option<i64>,
    /// Tee of the input events (after the nodes) to a file.
    pub record_input: Option<crate::record::EventRecorder>,
    /// Tee of the analysis results to a JSON-lines file.
    pub record_analysis: Option<crate::record::AnalysisRecorder>,
}

/// A running session.
pub struct Session {
    /// Coalesced display frames.
    pub display: Arc<LatestSlot<DisplayFrame>>,
    /// Lossless analysis results, in batches.
    pub analysis: Receiver<Vec<Analysis>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: JoinHandle<Result<Stats, String>>,
}

/// Totals of a finished session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Input events after the nodes.
    pub events: u64,
    /// Output spikes of the simulated chip's last layer.
    pub output_spikes: u64,
    /// Collections made.
    pub collections: u64,
    /// Events written to the input recording.
    pub recorded_events: u64,
}

/// The display's picture of `frame` at `t_us`, with the heat map's `heat` if there is one.
fn display_frame(
    frame: &FrameAccumulator,
    config: &SessionConfig,
    heat: &[f32],
    t_us: i64,
    newest_input: Instant,
    events_total: u64,
) -> DisplayFrame {
    DisplayFrame {
        t_us,
        geometry: config.geometry,
        on: frame.on.clone(),
        off: frame.off.clone(),
        newest_input,
        events_total,
        heat: config.heatmap_layer.map(|(layer, shape)| Heat { layer, shape, values: heat.to_vec() }),
    }
}

impl Session {
    /// Starts the session thread. Without a simulator, sensor events themselves are collected
    /// and counted (channel = polarity), which is what a DVS-only view needs.
    pub fn start(
        mut source: Box<dyn Source>,
        mut nodes: Vec<EventNode>,
        mut sim: Option<Simulator>,
        config: SessionConfig,
    ) -> Result<Self, String> {
        let display = LatestSlot::new();
        let (tx, analysis) = batched(config.analysis_capacity);
        let slot = Arc::clone(&display);
        let mut collector = SpikeCollector::new(config.collection_ms).map_err(|e| e.to_string())?;
        let output_layer = sim.as_ref().map_or(0, |s| s.layer_count() as u16);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("dynapviz-session".into())
            .spawn(move || {
                let mut config = config;
                let mut frame = FrameAccumulator::new(config.geometry, config.decay_us);
                let mut heat = vec![0f32; config.heatmap_layer.map_or(0, |(_, shape)| shape.len())];
                let mut events = Vec::new();
                let mut spikes: Vec<Spike> = Vec::new();
                let mut collections = Vec::new();
                let mut stats = Stats::default();
                let mut next_frame: Option<i64> = None;
                let mut next_snapshot: Option<i64> = None;
                let mut quiet_snapshots = 0;
                // When the newest events of the frame being made came, if they are not shown yet.
                let mut unshown: Option<Instant> = None;
                let counter = SpikeCount { feature_count: config.feature_count };
                let mut results: Vec<Analysis> = Vec::new();
                while !stopped.load(std::sync::atomic::Ordering::Relaxed) && source.next_chunk(&mut events)? {
                    let arrived = Instant::now();
                    let quiet = events.is_empty();
                    for node in &mut nodes {
                        node(&mut events);
                    }
                    if events.is_empty() {
                        // Nothing came for a while (a live stream that is quiet, or down): the
                        // frame being made shows what it has now, not when the next event comes.
                        if quiet && let (Some(arrived), Some(t_us)) = (unshown.take(), next_frame) {
                            slot.publish(display_frame(&frame, &config, &heat, t_us, arrived, stats.events));
                        }
                        continue;
                    }
                    stats.events += events.len() as u64;
                    if next_snapshot.is_none() {
                        next_snapshot = config.snapshot_us.map(|every| events[0].t + every);
                    }
                    if let Some(r) = &mut config.record_input {
                        r.record(&events);
                    }
                    // Display: frames by event time; a frame is published when time passes it.
                    let mut start = 0;
                    while start < events.len() {
                        let boundary = *next_frame.get_or_insert(events[start].t + config.frame_us);
                        let end = start + events[start..].partition_point(|e| e.t < boundary);
                        frame.add(&events[start..end]);
                        if end > start {
                            quiet_snapshots = 0;
                            unshown = Some(arrived);
                        }
                        if end < events.len() {
                            let shown = display_frame(&frame, &config, &heat, boundary, arrived, stats.events);
                            if let Some(every) = config.snapshot_us {
                                let due = next_snapshot.unwrap_or(boundary);
                                if boundary >= due {
                                    results.push(Analysis::Snapshot(Box::new(shown.clone())));
                                    next_snapshot = Some(due + every * ((boundary - due) / every.max(1) + 1));
                                    quiet_snapshots += usize::from(end == start);
                                }
                            }
                            slot.publish(shown);
                            unshown = None;
                            // The frames up to the next event's are empty. Only the last of them
                            // could be seen (the slot keeps the latest), and those a snapshot is
                            // due in, for the first EMPTY_SNAPSHOTS_IN_FULL: a gap of hours in
                            // the recording is a few frames, not a million.
                            let f = config.frame_us;
                            let mut stop = boundary.saturating_add(events[end].t.saturating_sub(boundary) / f * f);
                            if let Some(due) =
                                next_snapshot.filter(|_| config.snapshot_us.is_some() && quiet_snapshots < EMPTY_SNAPSHOTS_IN_FULL)
                            {
                                stop = stop.min(boundary.saturating_add(due.saturating_sub(boundary).max(0).saturating_add(f - 1) / f * f));
                            }
                            let started = (stop - f).max(boundary);
                            frame.next_frame(started);
                            next_frame = Some(started + f);
                        }
                        start = end;
                    }
                    // Analysis: lossless.
                    collector.start(events[0].t);
                    match &mut sim {
                        Some(sim) => {
                            let heat_layer = config.heatmap_layer;
                            if heat_layer.is_some() {
                                // Decay by the chunk's span of event time; its spikes add below.
                                let span = events.last().map_or(0, |e| e.t) - events[0].t;
                                let decay = config.decay_us.map_or(0.0, |tau| (-(span as f64) / tau.max(1.0)).exp() as f32);
                                heat.iter_mut().for_each(|v| *v *= decay);
                            }
                            // The spikes as they come out: a gap in which a leak or a bias fires
                            // holds a slice of them at a time, not all.
                            let sunk = sim.process_sliced(&events, |made, samples| {
                                if let Some((l, HeatShape { channels, width: w, height: h })) = heat_layer {
                                    for s in made.iter().filter(|s| s.layer == l) {
                                        let (c, x, y) = (usize::from(s.c), usize::from(s.x), usize::from(s.y));
                                        if c < channels && x < w && y < h {
                                            heat[(c * h + y) * w + x] += 1.0;
                                        }
                                    }
                                }
                                spikes.extend(made.iter().filter(|s| s.layer == output_layer));
                                collect(&mut spikes, &mut collector, &mut collections, &mut stats);
                                results.extend(samples.iter().cloned().map(Analysis::Power));
                                Ok::<_, std::convert::Infallible>(())
                            });
                            let Ok(()) = sunk;
                        }
                        None => {
                            spikes.extend(events.iter().map(|e| Spike { t: e.t, layer: 0, c: u16::from(e.p), y: e.y, x: e.x }));
                            collect(&mut spikes, &mut collector, &mut collections, &mut stats);
                        }
                    }
                    if let Some(last) = events.last() {
                        collector.advance(last.t, &mut collections);
                    }
                    events.clear();
                    emit(&mut collections, &counter, config.readout.as_ref(), sim.as_ref(), &mut results, &mut stats);
                    if deliver(&tx, &mut results, &mut config.record_analysis).is_err() {
                        break; // the receiver is gone: the session was closed
                    }
                }
                // The frame the stream ended in: the last events show too (all of them, in a
                // stream shorter than a frame).
                if let (Some(arrived), Some(t_us)) = (unshown, next_frame) {
                    slot.publish(display_frame(&frame, &config, &heat, t_us, arrived, stats.events));
                }
                if let Some(sim) = &mut sim {
                    // The binned mode's last bin runs here: its spikes count as every other's.
                    sim.finish(&mut spikes);
                    spikes.retain(|s| s.layer == output_layer);
                    collect(&mut spikes, &mut collector, &mut collections, &mut stats);
                    results.extend(sim.take_power_samples().into_iter().map(Analysis::Power));
                }
                collector.finish(&mut collections);
                emit(&mut collections, &counter, config.readout.as_ref(), sim.as_ref(), &mut results, &mut stats);
                let _ = deliver(&tx, &mut results, &mut config.record_analysis);
                if let Some(r) = config.record_input.take() {
                    stats.recorded_events = r.finish().map_err(|e| format!("input recording: {e}"))?;
                }
                if let Some(r) = config.record_analysis.take() {
                    r.finish().map_err(|e| format!("analysis recording: {e}"))?;
                }
                Ok(stats)
            })
            .map_err(|e| format!("cannot start the session thread: {e}"))?;
        Ok(Self { display, analysis, stop, thread })
    }

    /// Waits for the end of the source; returns the totals.
    pub fn join(self) -> Result<Stats, String> {
        drop(self.analysis);
        self.thread.join().map_err(|_| "the session thread panicked".to_string())?
    }

    /// Stops the source at its next chunk, completes recordings and returns the totals (for a
    /// window that was closed while the source still ran).
    pub fn stop(self) -> Result<Stats, String> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        // Drain so a producer waiting on a full channel can see the flag.
        while self.analysis.try_recv().is_ok() {}
        let Session { analysis, thread, .. } = self;
        drop(analysis);
        thread.join().map_err(|_| "the session thread panicked".to_string())?
    }

    /// Whether the session thread has ended.
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// Waits for the end while draining analysis into `sink`.
    pub fn drain(self, mut sink: impl FnMut(Analysis)) -> Result<Stats, String> {
        for batch in self.analysis.iter() {
            batch.into_iter().for_each(&mut sink);
        }
        self.thread.join().map_err(|_| "the session thread panicked".to_string())?
    }
}

/// Records and sends a batch of results (lossless: waits while the channel is full).
fn deliver(
    tx: &SyncSender<Vec<Analysis>>,
    results: &mut Vec<Analysis>,
    recorder: &mut Option<crate::record::AnalysisRecorder>,
) -> Result<(), ()> {
    if results.is_empty() {
        return Ok(());
    }
    if let Some(r) = recorder
        && let Err(e) = results.iter().try_for_each(|a| r.record(a))
    {
        tracing::warn!("analysis recording stopped: {e}");
        *recorder = None;
    }
    tx.send(std::mem::take(results)).map_err(drop)
}

/// Adds the spikes to the open collection (completed ones go to `collections`) and to the
/// totals, and empties them.
fn collect(spikes: &mut Vec<Spike>, collector: &mut SpikeCollector, collections: &mut Vec<Collection>, stats: &mut Stats) {
    stats.output_spikes += spikes.len() as u64;
    collector.add(spikes, collections);
    spikes.clear();
}

/// Turns completed collections into results, and with a chip its counters at the end of the
/// last one.
fn emit(
    collections: &mut Vec<crate::nodes::readout::Collection>,
    counter: &SpikeCount,
    readout: Option<&MajorityReadout>,
    sim: Option<&Simulator>,
    out: &mut Vec<Analysis>,
    stats: &mut Stats,
) {
    let mut last = None;
    for c in collections.drain(..) {
        stats.collections += 1;
        last = Some(c.end_us);
        out.push(Analysis::Counts { t_us: c.end_us, counts: counter.count(&c) });
        if let Some(r) = readout {
            let prediction = r.predict(&c);
            out.push(Analysis::Readout {
                t_us: c.end_us,
                feature: prediction.unwrap_or(r.default_feature),
                predicted: prediction.is_some(),
            });
        }
    }
    // The chip's counters as of the last collection.
    if let (Some(sim), Some(t_us)) = (sim, last) {
        out.push(Analysis::Layers { t_us, counters: sim.counters().to_vec() });
    }
}
