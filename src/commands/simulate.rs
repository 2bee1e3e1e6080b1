//! `dynapviz simulate`: run a recording through the simulated chip; print per-layer spikes and
//! per-class output counts.

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Instant;

use anyhow::{Context, Result};
use dynapviz_chip::{BusyModel, Config, Kernel, Mode, Monitors, RAILS, Simulator};
use dynapviz_events::{Event, EventReader, Geometry};
use serde::Serialize;

use super::model::{ModelArgs, SimMode, ThreadsArg};

/// Sensor events per call of the simulator (4 MB): several threads fill and drain their
/// pipeline once per call.
const SIM_CHUNK: usize = 1 << 18;

/// Chunks of the recording the reader decodes ahead of the simulator.
const READ_AHEAD: usize = 2;

/// Feeds `reader`'s events to `simulate` in chunks of [`SIM_CHUNK`]. With `ahead`, they are
/// decoded on a thread of their own while the simulator runs the chunk before (decoding CSV or
/// LZ4 costs as much as simulating a light recording). That pays whenever there is a second
/// core, even one the simulator's pipeline uses: the decoder works in the pipeline's gaps
/// (on 2 cores, 2 simulation threads and the busiest synthetic gesture recording, about 3 %
/// less wall time). Stops at the first error of either side.
fn feed(mut reader: Box<dyn EventReader>, ahead: bool, mut simulate: impl FnMut(&mut Vec<Event>) -> Result<()>) -> Result<()> {
    if !ahead {
        let mut chunk = Vec::with_capacity(SIM_CHUNK);
        loop {
            chunk.clear();
            if reader.read_chunk(&mut chunk, SIM_CHUNK)? == 0 {
                return Ok(());
            }
            simulate(&mut chunk)?;
        }
    }
    let (full_tx, full_rx) = mpsc::sync_channel::<dynapviz_events::Result<Vec<Event>>>(READ_AHEAD);
    let (empty_tx, empty_rx) = mpsc::channel::<Vec<Event>>();
    std::thread::scope(|scope| {
        scope.spawn(move || {
            let mut next = Vec::with_capacity(SIM_CHUNK);
            loop {
                next.clear();
                match reader.read_chunk(&mut next, SIM_CHUNK) {
                    Ok(0) => break,
                    // The simulator is gone (an error there): stop reading.
                    Ok(_) if full_tx.send(Ok(next)).is_err() => break,
                    Ok(_) => {}
                    Err(e) => {
                        let _ = full_tx.send(Err(e));
                        break;
                    }
                }
                // A buffer the simulator is done with, or a new one: at most READ_AHEAD + 2
                // are ever in use.
                next = empty_rx.try_recv().unwrap_or_else(|_| Vec::with_capacity(SIM_CHUNK));
            }
        });
        // Moved in, so that both ends close when this returns, even early.
        let (full_rx, empty_tx) = (full_rx, empty_tx);
        for chunk in full_rx.iter() {
            let mut chunk = chunk?;
            simulate(&mut chunk)?;
            let _ = empty_tx.send(chunk);
        }
        Ok(())
    })
}

/// Simulate the chip on a recording.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// The recording to play (any format `inspect` reads).
    #[arg(long)]
    input: PathBuf,
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
    /// Model busy cores that drop input (event mode; estimated core speed).
    #[arg(long)]
    busy_model: bool,
    /// Add each layer's bias every N µs (the chip's leak; event mode).
    #[arg(long)]
    leak_tick_us: Option<i64>,
    /// Power samples per second of simulated time.
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
    input_events: u64,
    synaptic_ops: u64,
    spikes: u64,
    spikes_after_pool: u64,
    dropped_busy: u64,
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
    class_counts: Vec<u64>,
    class_counts_per_bin: Vec<Vec<u64>>,
    power_mean_mw: Vec<(String, f64)>,
    wall_seconds: f64,
    events_per_second: f64,
}

pub fn run(args: Args) -> Result<()> {
    let started = Instant::now();
    let net = args.model.build()?;
    let n = net.layers.len();
    anyhow::ensure!(args.bin_us > 0, "--bin-us must be positive");
    let monitors = Monitors::resolve(&args.monitor, n)?;
    let profile = dynapviz_model::ChipProfile::by_name(&args.model.device)?;
    let mode = args.mode.mode(args.bin_us);
    let config = Config {
        mode,
        monitors,
        busy: args.busy_model.then(BusyModel::default),
        leak_tick_us: args.leak_tick_us,
        power_rate_hz: args.power_rate,
        power_rails: if profile.has_sensor { 5 } else { 3 },
        threads: args.threads.or(super::cores()),
        kernel: args.kernel.map_or(Kernel::Avx512, Kernel::from),
        ..Config::default()
    };
    let mut sim = Simulator::new(&net, config)?;
    let reader = dynapviz_events::open(&args.input)?;
    let [_, h, w] = net.dvs.input_shape;
    let shape = Geometry::new(w as u16, h as u16);
    let rescale = if args.no_rescale { None } else { super::fit::input_rescale(&args.input, reader.geometry(), shape)? };
    let len = std::fs::metadata(&args.input).map(|m| m.len()).unwrap_or(0);
    let bar = super::byte_progress(len, "simulating");
    let classes = net.classes();
    let mut class_counts = vec![0u64; classes];
    let mut per_bin: Vec<Vec<u64>> = Vec::new();
    let mut monitored = vec![0u64; n + 1];
    let mut first_bin = None;
    let mut spikes = Vec::new();
    let mut total = 0u64;
    let mut power_sum = [0f64; 5];
    let mut power_n = [0u64; 5];
    let mut tally = |spikes: &mut Vec<dynapviz_chip::Spike>, first_bin: &mut Option<i64>| -> Result<()> {
        for s in spikes.iter() {
            monitored[usize::from(s.layer)] += 1;
            if usize::from(s.layer) == n {
                class_counts[usize::from(s.c)] += 1;
                let b0 = *first_bin.get_or_insert(s.t.div_euclid(args.bin_us));
                let b = usize::try_from(s.t.div_euclid(args.bin_us) - b0).context("output spike before the first bin")?;
                if per_bin.len() <= b {
                    per_bin.resize(b + 1, vec![0; classes]);
                }
                per_bin[b][usize::from(s.c)] += 1;
            }
        }
        spikes.clear();
        Ok(())
    };
    feed(reader, super::cores() >= 2, |chunk| {
        // Bins count from the first input event's bin.
        if first_bin.is_none() {
            first_bin = Some(chunk[0].t.div_euclid(args.bin_us));
        }
        total += chunk.len() as u64;
        if let Some((_, r)) = &rescale {
            r.apply(chunk);
        }
        sim.process(chunk, &mut spikes);
        tally(&mut spikes, &mut first_bin)?;
        for p in sim.take_power_samples() {
            power_sum[usize::from(p.channel)] += p.value;
            power_n[usize::from(p.channel)] += 1;
        }
        bar.set_position((total * 8).min(len));
        Ok(())
    })?;
    sim.finish(&mut spikes);
    tally(&mut spikes, &mut first_bin)?;
    for p in sim.take_power_samples() {
        power_sum[usize::from(p.channel)] += p.value;
        power_n[usize::from(p.channel)] += 1;
    }
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
                input_events: c.input_events,
                synaptic_ops: c.synaptic_ops,
                spikes: c.spikes,
                spikes_after_pool: c.spikes_after_pool,
                dropped_busy: c.dropped_busy,
                monitored_spikes: monitored[l.index],
                state_bytes: state[l.index - 1],
            }
        })
        .collect();
    let out = Output {
        mode: format!("{:?}", args.mode).to_lowercase(),
        kernel: format!("{:?}", sim.kernel()).to_lowercase(),
        device: profile.name.to_string(),
        input: args.input.display().to_string(),
        input_events: total,
        bin_us: args.bin_us,
        bins: per_bin.len(),
        layers,
        dvs: counters[0],
        rejected_input: sim.input_counters(),
        rescaled_from: rescale.map(|(sensor, _)| sensor.to_string()),
        class_counts,
        class_counts_per_bin: per_bin,
        power_mean_mw: RAILS
            .iter()
            .enumerate()
            .filter(|(i, _)| power_n[*i] > 0)
            .map(|(i, r)| (r.to_string(), power_sum[i] / power_n[i] as f64 * 1e3))
            .collect(),
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
    if r.out_of_range + r.cropped + r.time_backwards > 0 {
        println!(
            "rejected input: {} outside the input shape, {} cropped, {} with time going backwards",
            r.out_of_range, r.cropped, r.time_backwards
        );
    }
    println!(
        "{:>5} {:>4} {:>12} {:>14} {:>10} {:>12} {:>8} {:>10}",
        "layer", "core", "input ev", "synaptic ops", "spikes", "after pool", "dropped", "state B"
    );
    for l in &out.layers {
        println!(
            "{:>5} {:>4} {:>12} {:>14} {:>10} {:>12} {:>8} {:>10}",
            l.index,
            l.core.map_or("-".into(), |c| c.to_string()),
            l.input_events,
            l.synaptic_ops,
            l.spikes,
            l.spikes_after_pool,
            l.dropped_busy,
            l.state_bytes
        );
    }
    println!("class counts: {:?}", out.class_counts);
    if !out.power_mean_mw.is_empty() {
        let p: Vec<String> = out.power_mean_mw.iter().map(|(r, v)| format!("{r} {v:.3}")).collect();
        println!("mean power (mW, estimate): {}", p.join(", "));
    }
    Ok(())
}
