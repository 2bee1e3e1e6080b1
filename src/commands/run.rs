//! `dynapviz run`: a recording through the simulated chip into the live dashboard (or, with
//! only `--input`, the DVS plot alone).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use dynapviz_chip::{Config, Mode, Monitors, Simulator};
use dynapviz_events::{Event, EventReader, Geometry};
use dynapviz_model::Network;
use dynapviz_streams::live::LiveSource;
use dynapviz_streams::nodes::readout::MajorityReadout;
use dynapviz_streams::session::{EventNode, HeatShape, Session, SessionConfig, Source};
use dynapviz_streams::source::{Controls, FileSource};
use dynapviz_viewer::dashboard::ChipLayerInfo;
use dynapviz_viewer::{Dashboard, VizOptions};

use super::model::{ChipArgs, ModelArgs, SimMode, ThreadsArg};
use super::viz::VizArgs;

/// Open the dashboard on a model and a recording (the DVS plot alone without --model).
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// The recording to play, or a live camera: `tcp://HOST:PORT` (or `unix://PATH`), the
    /// network output of DV (iniVation's software: its "Output to network" module) or of
    /// dv-processing's `NetworkWriter`, shown as it comes.
    #[arg(long)]
    input: PathBuf,
    /// Playback speed (1 = real time; 0 = as fast as possible).
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// Wait at most S seconds of recording time for the next event: a pause in the recording
    /// plays on after S. The events keep their times (the simulated chip still sees the whole
    /// pause); only the wait is cut. Default: every pause is waited out.
    #[arg(long, value_name = "S")]
    max_gap: Option<f64>,
    /// Start again at the end (timestamps keep increasing). With a window or --serve: headless
    /// pictures of an endless recording would fill the disk.
    #[arg(long = "loop", conflicts_with = "headless")]
    looped: bool,
    /// A live stream that ends or breaks ends the session, as a recording's end does, and a
    /// camera not up yet is an error. By default the stream is connected again every second
    /// (DV restarted, the camera plugged in again) and the session goes on, the status line
    /// saying meanwhile that it is down; and `run` waits for a camera that is not up yet.
    #[arg(long)]
    no_reconnect: bool,
    /// Simulator mode: event or binned.
    #[arg(long, value_enum, default_value_t = SimMode::Event)]
    mode: SimMode,
    #[command(flatten)]
    threads: ThreadsArg,
    #[command(flatten)]
    chip: ChipArgs,
    #[command(flatten)]
    viz: VizArgs,
}

impl Args {
    /// The simulation threads next to a window, or `None` when no window opens.
    pub fn window_sim_threads(&self) -> Option<usize> {
        self.viz.windowed().then(|| self.threads.or(1))
    }
}

pub fn run(args: Args, started: Instant) -> Result<()> {
    let net = match &args.model.model {
        Some(_) => Some(args.model.build()?),
        None => None,
    };
    let opts = args.viz.options()?;
    let sim = Sim { mode: args.mode.mode(1000), threads: args.threads.or(1), chip: args.chip.clone() };
    let max_gap = args
        .max_gap
        .map(|s| Duration::try_from_secs_f64(s).map_err(|_| anyhow::anyhow!("--max-gap {s}: expected seconds, 0 or more")))
        .transpose()?;
    if dynapviz_events::net::is_live(&args.input) {
        // A camera keeps its own time and does not end: nothing to pace, loop or render whole.
        anyhow::ensure!(args.speed == 1.0 && max_gap.is_none(), "--speed and --max-gap pace a recording: a live stream plays as it comes");
        anyhow::ensure!(!args.looped, "--loop: a live stream has no end to start again from (it is connected again when it ends)");
        anyhow::ensure!(
            args.viz.headless.is_none(),
            "--headless: pictures of a live stream would go on until the disk is full; keep the stream with --record-input and render that"
        );
    }
    let input = Input { path: &args.input, made: None, reconnect: !args.no_reconnect };
    launch(input, net, args.looped, Pace { speed: args.speed, max_gap }, sim, &args.viz, opts, started)
}

/// How fast `launch` plays the recording in a window.
pub struct Pace {
    /// 1 = real time; 0 = as fast as possible.
    pub speed: f64,
    /// The longest pause in the recording waited out (see `Controls::set_max_gap`).
    pub max_gap: Option<Duration>,
}

/// How `launch` simulates the chip.
pub struct Sim {
    pub mode: Mode,
    pub threads: usize,
    pub chip: ChipArgs,
}

/// What `launch` plays: a recording, read from its file or from a reader that makes it, or
/// a live stream (a path `tcp://HOST:PORT`).
pub struct Input<'a> {
    pub path: &'a Path,
    /// The first pass's events, when they do not come from the file (see
    /// `FileSource::with_reader`).
    pub made: Option<Box<dyn EventReader>>,
    /// A live stream that ends or breaks is connected again (see
    /// `dynapviz_events::reconnect`).
    pub reconnect: bool,
}

/// Plays `input` through `net` (None: the DVS plot alone) into the window or headless frames.
#[allow(clippy::too_many_arguments)]
pub fn launch(
    input: Input<'_>,
    net: Option<Network>,
    looped: bool,
    pace: Pace,
    sim: Sim,
    viz: &VizArgs,
    mut opts: VizOptions,
    started: Instant,
) -> Result<()> {
    let Input { path: input, made, reconnect } = input;
    let live = made.is_none() && dynapviz_events::net::is_live(input);
    let controls = if live { Controls::live() } else { Controls::new(if viz.headless.is_some() { 0.0 } else { pace.speed }) };
    controls.set_max_gap(pace.max_gap);
    controls.set_paused(viz.paused && viz.headless.is_none());
    let (source, stated): (Box<dyn Source>, _) = if live {
        let reader: Box<dyn EventReader> = if reconnect {
            let closed = controls.clone();
            let again = super::interrupt::open_reconnecting(input, move || closed.closed())?;
            controls.watch_link(again.link());
            Box::new(again)
        } else {
            dynapviz_events::open(input)?
        };
        let source = LiveSource::start(reader, controls.clone()).context("cannot start the thread that reads the live stream")?;
        let stated = source.geometry();
        (Box::new(source), stated)
    } else {
        let source = match made {
            Some(reader) => FileSource::with_reader(input, reader, looped, controls.clone()),
            None => FileSource::open(input, looped, controls.clone())?,
        };
        let stated = source.geometry();
        (Box::new(source), stated)
    };
    let mut nodes: Vec<EventNode> = Vec::new();
    let mut chip_info = Vec::new();
    let mut heat = None;
    let (sim, classes, display) = match net {
        Some(net) => {
            let profile = net.device.as_deref().and_then(|d| dynapviz_model::ChipProfile::by_name(d).ok());
            chip_info = dynapviz_model::report::layers(&net)
                .into_iter()
                .map(|l| {
                    let cap = l.core.and_then(|c| profile.as_ref().and_then(|p| p.cores.get(c).copied()));
                    ChipLayerInfo {
                        index: l.index,
                        core: l.core,
                        kernel_memory: (l.memory.kernel, cap.map_or(0, |c| c.kernel)),
                        neuron_memory: (l.memory.neuron, cap.map_or(0, |c| c.neuron)),
                    }
                })
                .collect();
            let [_, h, w] = net.dvs.input_shape;
            let shape = Geometry::new(w as u16, h as u16);
            if let Some((_, rescale)) = super::fit::input_rescale(input, stated, shape)? {
                nodes.push(Box::new(move |e: &mut Vec<Event>| rescale.apply(e)));
            }
            let mut monitored = vec![net.layers.len()];
            if let Some(l) = viz.heatmap_layer {
                let layer = net
                    .layers
                    .get(l.wrapping_sub(1))
                    .with_context(|| format!("--heatmap-layer {l}: the network has layers 1..{}", net.layers.len()))?;
                let [channels, height, width] = layer.out_shape;
                heat = Some((l as u16, HeatShape { channels, width, height }));
                monitored.push(l);
            }
            let config = Config {
                mode: sim.mode,
                monitors: Monitors::of(monitored),
                power_rails: opts.power_monitor_number_of_items,
                threads: sim.threads,
                ..Config::default()
            };
            let config = sim.chip.apply(config, net.device.as_deref());
            (Some(Simulator::new(&net, config)?), Some(net.classes()), shape)
        }
        None => {
            // No network: the DVS plot alone.
            opts.add_spike_count_plot = false;
            opts.add_readout_plot = false;
            opts.add_power_monitor_plot = false;
            (None, None, super::fit::sensor_size(input, stated)?)
        }
    };
    if viz.dvs_shape.is_none() {
        opts.dvs_shape = [display.width, display.height];
    }
    let resolved = opts.resolve(classes)?;
    let feature_count = resolved.feature_names.len();
    let readout = match feature_count {
        0 => None,
        n => Some(MajorityReadout::new(
            resolved.options.readout_default_threshold_low,
            resolved.options.readout_default_threshold_high,
            resolved.options.readout_prediction_threshold,
            resolved.default_feature,
            n,
        )?),
    };
    // Before the recorders: their files may go into the pictures' directory.
    if let Some(dir) = &viz.headless {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let config = SessionConfig {
        frame_us: 16_667,
        decay_us: Some(30_000.0),
        geometry: display,
        collection_ms: resolved.options.spike_collection_interval,
        feature_count,
        readout,
        analysis_capacity: 64,
        heatmap_layer: heat,
        snapshot_us: viz.headless.as_ref().map(|_| viz.frame_every_us()),
        record_input: viz
            .record_input
            .as_deref()
            .map(|p| dynapviz_streams::record::EventRecorder::create(p, display))
            .transpose()
            .map_err(anyhow::Error::msg)?,
        record_analysis: viz
            .record_analysis
            .as_deref()
            .map(dynapviz_streams::record::AnalysisRecorder::create)
            .transpose()
            .map_err(anyhow::Error::msg)?,
    };
    let mut dashboard = Dashboard::new(resolved)?;
    dashboard.show_chip = viz.show_chip_panel;
    dashboard.set_chip(chip_info);
    let session = Session::start(source, nodes, sim, config).map_err(anyhow::Error::msg)?;
    super::viz::show(viz, dashboard, session, Some(controls), started)
}
