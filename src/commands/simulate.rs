//! `dynapviz simulate`: run a recording through the simulated chip; print per-layer spikes and
//! per-class output counts.

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Instant;

use anyhow::Result;
use dynapviz_chip::{Config, Kernel, Mode, Monitors, PowerMean, RAILS, Simulator};
use dynapviz_events::{Event, EventReader, Geometry};
use dynapviz_model::network::Reset;
use serde::Serialize;

use super::class_bins::ClassBins;
use super::model::{ChipArgs, ModelArgs, SimMode, ThreadsArg};

/// Sensor events per chunk of the recording once it runs (1 MB): the simulator runs through
/// the chunks as one stream, so their size only sets the memory held and how often the
/// decoder hands over.
const CHUNK: usize = 1 << 16;

/// The recording's first chunk, each next one twice as large up to [`CHUNK`]: the simulation
/// starts as soon as a few events are decoded.
const FIRST_CHUNK: usize = 1 << 13;

/// Chunks of the recording the reader decodes ahead of the simulator.
const READ_AHEAD: usize = 2;

/// A recording, decoded chunk by chunk. With a second core, on a thread of its own from the
/// moment it is opened (while the model loads), ahead of the simulator: decoding CSV or LZ4
/// costs as much as simulating a light recording, and the decoder works in the gaps of the
/// simulator's pipeline even when that uses every core.
enum Recording {
    /// Decoded when asked.
    Here(Chunked),
    /// Decoded ahead: full chunks (or the first error) come in, used ones go back.
    Ahead { full: mpsc::Receiver<dynapviz_events::Result<Vec<Event>>>, used: mpsc::Sender<Vec<Event>> },
}

/// A reader and the size of its next chunk: [`FIRST_CHUNK`], then twice as large each time up
/// to [`CHUNK`].
struct Chunked {
    reader: Box<dyn EventReader>,
    len: usize,
}

impl Chunked {
    /// Replaces `chunk` with the next chunk (never empty); false at the end.
    fn read(&mut self, chunk: &mut Vec<Event>) -> dynapviz_events::Result<bool> {
        chunk.clear();
        let n = self.reader.read_chunk(chunk, self.len)?;
        self.len = (2 * self.len).min(CHUNK);
        Ok(n > 0)
    }
}

impl Recording {
    fn open(reader: Box<dyn EventReader>, ahead: bool) -> Self {
        let mut chunked = Chunked { reader, len: FIRST_CHUNK };
        if !ahead {
            return Recording::Here(chunked);
        }
        let (full_tx, full) = mpsc::sync_channel(READ_AHEAD);
        let (used, used_rx) = mpsc::channel::<Vec<Event>>();
        // Not joined: it stops at the end of the recording, at its first error, or when the
        // simulator is gone (its sends fail).
        std::thread::spawn(move || {
            loop {
                // A chunk the simulator is done with, or a new one: at most READ_AHEAD + 2
                // are ever in use.
                let mut next = used_rx.try_recv().unwrap_or_else(|_| Vec::with_capacity(chunked.len));
                match chunked.read(&mut next) {
                    Ok(false) => break,
                    Ok(true) if full_tx.send(Ok(next)).is_ok() => {}
                    Ok(true) => break,
                    Err(e) => {
                        let _ = full_tx.send(Err(e));
                        break;
                    }
                }
            }
        });
        Recording::Ahead { full, used }
    }

    /// Replaces `chunk` with the recording's next chunk (never empty); false at its end.
    fn next(&mut self, chunk: &mut Vec<Event>) -> Result<bool> {
        match self {
            Recording::Here(chunked) => Ok(chunked.read(chunk)?),
            Recording::Ahead { full, used } => match full.recv() {
                Ok(next) => {
                    let _ = used.send(std::mem::replace(chunk, next?));
                    Ok(true)
                }
                // The reader is done.
                Err(mpsc::RecvError) => Ok(false),
            },
        }
    }
}

/// Simulate the chip on a recording.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// The recording to play (any format `inspect` reads), or a live camera (`tcp://HOST:PORT`,
    /// `unix://PATH`: see `run`), simulated until its server ends the stream or Ctrl-C does.
    #[arg(long)]
    input: PathBuf,
    /// For a live camera: wait for it if it is not up yet, and when its stream ends or breaks,
    /// connect again every second (until Ctrl-C) and go on, its times kept monotonic (see
    /// `run`).
    #[arg(long)]
    reconnect: bool,
    /// event: the chip's event-driven model; binned: sinabs' simulation in time bins.
    #[arg(long, value_enum, default_value_t = SimMode::Event)]
    mode: SimMode,
    /// Bin width in µs (binned mode; also the bins of class_counts_per_bin).
    #[arg(long, default_value_t = 1000)]
    bin_us: i64,
    /// Layers whose spikes are reported: dvs, 1..N, -1 (the output layer). Repeatable or comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "-1", allow_hyphen_values = true)]
    monitor: Vec<String>,
    /// Keep the recording's coordinates even when its sensor is not the input's size (events
    /// outside the input are counted and dropped); by default they are rescaled to fit.
    #[arg(long)]
    no_rescale: bool,
    #[command(flatten)]
    chip: ChipArgs,
    /// Power samples per second of simulated time (more than 0, at most 10000).
    #[arg(long, default_value_t = 50.0)]
    power_rate: f64,
    #[command(flatten)]
    threads: ThreadsArg,
    /// The fastest kernel the event mode may use (default: the fastest this CPU has). Results
    /// are identical; this is for comparing speeds.
    #[arg(long, value_enum)]
    kernel: Option<KernelArg>,
    /// Print JSON (the layout of the golden fixtures' expected.json).
    #[arg(long)]
    json: bool,
}

/// `--kernel`: see [`Kernel`].
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum KernelArg {
    Avx512,
    Avx2,
    Portable,
}

impl From<KernelArg> for Kernel {
    fn from(k: KernelArg) -> Kernel {
        match k {
            KernelArg::Avx512 => Kernel::Avx512,
            KernelArg::Avx2 => Kernel::Avx2,
            KernelArg::Portable => Kernel::Portable,
        }
    }
}

#[derive(Serialize)]
struct LayerOut {
    index: usize,
    core: Option<usize>,
    /// Whether its neurons reset to zero after a spike (else they subtract the threshold).
    return_to_zero: bool,
    input_events: u64,
    synaptic_ops: u64,
    spikes: u64,
    spikes_after_pool: u64,
    dropped_busy: u64,
    /// Spikes the output decimator held back.
    decimated: u64,
    /// The most synaptic operations in one millisecond of simulated time.
    peak_synops_per_ms: u64,
    monitored_spikes: u64,
    state_bytes: usize,
}

#[derive(Serialize)]
struct Output {
    mode: String,
    /// The event mode's kernel on this CPU.
    kernel: String,
    device: String,
    input: String,
    input_events: u64,
    bin_us: i64,
    bins: usize,
    layers: Vec<LayerOut>,
    dvs: dynapviz_chip::LayerCounters,
    rejected_input: dynapviz_chip::InputCounters,
    /// The sensor size the input was rescaled from, if it was.
    rescaled_from: Option<String>,
    /// The output layer's spikes per neuron, its (C, H, W) flattened as sinabs' output is:
    /// one per class when the output is C x 1 x 1.
    class_counts: Vec<u64>,
    class_counts_per_bin: Vec<Vec<u64>>,
    /// The output layer's (C, H, W) after its pooling.
    output_shape: [usize; 3],
    /// The output layer's spikes per channel (what the dashboard counts): `class_counts`
    /// summed over each channel's neurons.
    channel_counts: Vec<u64>,
    /// Why `class_counts_per_bin` is empty although there are output spikes, if it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    class_counts_per_bin_left_out: Option<String>,
    power_mean_mw: Vec<(String, f64)>,
    wall_seconds: f64,
    events_per_second: f64,
}

pub fn run(args: Args) -> Result<()> {
    let started = Instant::now();
    // Decoding starts while the model loads.
    let reader = super::interrupt::open_input(&args.input, args.reconnect)?;
    let stated = reader.geometry();
    // A live camera has no end: Ctrl-C ends its stream, and the results are printed.
    let interrupted = super::interrupt::ends_live_stream(&args.input);
    let mut recording = Recording::open(reader, super::cores() >= 2);
    let net = args.model.build()?;
    let n = net.layers.len();
    anyhow::ensure!(args.bin_us > 0, "--bin-us must be positive");
    let monitors = Monitors::resolve(&args.monitor, n)?;
    let profile = dynapviz_model::ChipProfile::by_name(&args.model.device)?;
    let mode = args.mode.mode(args.bin_us);
    let config = Config {
        mode,
        monitors,
        power_rate_hz: args.power_rate,
        power_rails: if profile.has_sensor { 5 } else { 3 },
        threads: args.threads.or(super::cores()),
        kernel: args.kernel.map_or(Kernel::Avx512, Kernel::from),
        ..Config::default()
    };
    let config = args.chip.apply(config, Some(profile.name));
    let mut sim = Simulator::new(&net, config)?;
    let [_, h, w] = net.dvs.input_shape;
    let shape = Geometry::new(w as u16, h as u16);
    let rescale = if args.no_rescale { None } else { super::fit::input_rescale(&args.input, stated, shape)? };
    let len = std::fs::metadata(&args.input).map(|m| m.len()).unwrap_or(0);
    let bar = super::byte_progress(len, "simulating");
    // sinabs' output is the last layer's spikes per neuron, (C, H, W) flattened.
    let output_shape = net.output_shape();
    let [_, oh, ow] = output_shape;
    let neuron = |s: &dynapviz_chip::Spike| net.output_index(usize::from(s.c), usize::from(s.y), usize::from(s.x));
    let mut class_counts = vec![0u64; output_shape.iter().product()];
    let mut per_bin = ClassBins::new(args.bin_us, class_counts.len());
    let mut monitored = vec![0u64; n + 1];
    // The input's time, for the bins: its first event's and its latest.
    let mut input_us: Option<(i64, i64)> = None;
    let mut total = 0u64;
    let mut power = PowerMean::new(args.power_rate);
    let mut tally = |spikes: &[dynapviz_chip::Spike], samples: &[dynapviz_chip::PowerSample]| -> Result<()> {
        for s in spikes {
            monitored[usize::from(s.layer)] += 1;
            if usize::from(s.layer) == n {
                // The layer's pooling keeps its spikes inside its output.
                let i = neuron(s);
                debug_assert!(i < class_counts.len(), "an output spike outside the output {output_shape:?}");
                if let Some(count) = class_counts.get_mut(i) {
                    *count += 1;
                    per_bin.add(s.t, i);
                }
            }
        }
        samples.iter().for_each(|p| power.add(p));
        Ok(())
    };
    let next = |chunk: &mut Vec<Event>| -> Result<bool> {
        if interrupted() || !recording.next(chunk)? {
            return Ok(false);
        }
        if let Some(latest) = chunk.iter().map(|e| e.t).max() {
            input_us = Some(match input_us {
                Some((first, last)) => (first, last.max(latest)),
                None => (chunk[0].t, latest),
            });
        }
        total += chunk.len() as u64;
        if let Some((_, r)) = &rescale {
            r.apply(chunk);
        }
        bar.set_position((total * 8).min(len));
        Ok(true)
    };
    sim.process_stream(next, &mut tally)?;
    let mut spikes = Vec::new();
    sim.finish(&mut spikes);
    tally(&spikes, &sim.take_power_samples())?;
    bar.finish_and_clear();
    let wall = started.elapsed().as_secs_f64();
    let counters = sim.counters();
    let state = sim.state_bytes();
    let layers: Vec<LayerOut> = net
        .layers
        .iter()
        .map(|l| {
            let c = counters[l.index];
            LayerOut {
                index: l.index,
                core: l.core,
                return_to_zero: l.reset == Reset::Zero,
                input_events: c.input_events,
                synaptic_ops: c.synaptic_ops,
                spikes: c.spikes,
                spikes_after_pool: c.spikes_after_pool,
                dropped_busy: c.dropped_busy,
                decimated: c.decimated,
                peak_synops_per_ms: c.peak_synops_per_ms,
                monitored_spikes: monitored[l.index],
                state_bytes: state[l.index - 1],
            }
        })
        .collect();
    // Only the JSON has the table.
    let table = if args.json { per_bin.dense(input_us) } else { Ok(Vec::new()) };
    let (class_counts_per_bin, class_counts_per_bin_left_out) = match table {
        Ok(table) => (table, None),
        Err(why) => {
            tracing::warn!("class_counts_per_bin left out: {why}");
            (Vec::new(), Some(why))
        }
    };
    let out = Output {
        mode: format!("{:?}", args.mode).to_lowercase(),
        kernel: format!("{:?}", sim.kernel()).to_lowercase(),
        device: profile.name.to_string(),
        input: args.input.display().to_string(),
        input_events: total,
        bin_us: args.bin_us,
        bins: class_counts_per_bin.len(),
        layers,
        dvs: counters[0],
        rejected_input: sim.input_counters(),
        rescaled_from: rescale.map(|(sensor, _)| sensor.to_string()),
        channel_counts: class_counts.chunks((oh * ow).max(1)).map(|c| c.iter().sum()).collect(),
        class_counts,
        class_counts_per_bin,
        class_counts_per_bin_left_out,
        output_shape,
        power_mean_mw: RAILS.iter().zip(power.watts()).filter_map(|(r, w)| Some((r.to_string(), w? * 1e3))).collect(),
        wall_seconds: wall,
        events_per_second: total as f64 / wall.max(1e-9),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    let kernel = if mode == Mode::Event { format!(", {} kernel", out.kernel) } else { String::new() };
    println!(
        "{} mode on {}{kernel} ({} input events, {:.3} s wall, {:.2} M events/s)",
        out.mode,
        out.device,
        total,
        wall,
        out.events_per_second / 1e6
    );
    if let Some(sensor) = &out.rescaled_from {
        println!("input rescaled from the {sensor} sensor to {shape}");
    }
    let r = out.rejected_input;
    if r.out_of_range + r.cropped + r.time_out_of_range > 0 {
        println!(
            "dropped input: {} outside the input shape, {} cropped, {} with a time past ±{} years",
            r.out_of_range,
            r.cropped,
            r.time_out_of_range,
            dynapviz_chip::MAX_TIME_US / 31_557_600_000_000
        );
    }
    if r.time_backwards > 0 {
        // The event mode runs them at the time of the event before; a bin already run takes none.
        let fate = if mode == Mode::Event { "run at the time of the event before" } else { "dropped: their bin had run" };
        println!("{} input events earlier than the event before them: {fate}", r.time_backwards);
    }
    println!(
        "{:>5} {:>4} {:>12} {:>14} {:>12} {:>10} {:>12} {:>8} {:>10}",
        "layer", "core", "input ev", "synaptic ops", "peak ops/ms", "spikes", "after pool", "dropped", "state B"
    );
    for l in &out.layers {
        println!(
            "{:>5} {:>4} {:>12} {:>14} {:>12} {:>10} {:>12} {:>8} {:>10}",
            l.index,
            l.core.map_or("-".into(), |c| c.to_string()),
            l.input_events,
            l.synaptic_ops,
            l.peak_synops_per_ms,
            l.spikes,
            l.spikes_after_pool,
            l.dropped_busy,
            l.state_bytes
        );
    }
    for d in &args.chip.output_decimator {
        let held = d.layer.checked_sub(1).and_then(|i| out.layers.get(i)).map_or(0, |l| l.decimated);
        println!("output decimator of {d}: {held} spikes held back");
    }
    if oh * ow == 1 {
        println!("class counts: {:?}", out.class_counts);
    } else {
        println!(
            "output counts per channel: {:?} (the output is {}x{}x{}: JSON's class_counts has one per neuron, as sinabs' output)",
            out.channel_counts, output_shape[0], oh, ow
        );
    }
    if !out.power_mean_mw.is_empty() {
        let p: Vec<String> = out.power_mean_mw.iter().map(|(r, v)| format!("{r} {v:.3}")).collect();
        println!("mean power (mW, estimate): {}", p.join(", "));
    }
    Ok(())
}
