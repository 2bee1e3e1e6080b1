//! `dynapviz demo`: the whole system on built-in data, no hardware, no download. A synthetic DVS
//! scene of moving bars is recorded to a file, inspected, and played through a built-in
//! orientation network on the simulated chip; the readout and power are printed as they come.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use dynapviz_chip::{Config, Mode, Monitors, RAILS, Simulator};
use dynapviz_events::{Event, EventWriter, Format, Geometry};
use dynapviz_model::convert::{DvsOptions, convert};
use dynapviz_model::discretize::discretize;
use dynapviz_model::{Ann, AnnLayer, ChipProfile, Network, Tensor, chip, mapping, report};
use dynapviz_streams::nodes::readout::MajorityReadout;
use dynapviz_streams::rng::Rng;
use dynapviz_streams::session::{Analysis, Session, SessionConfig};
use dynapviz_streams::source::{Controls, FileSource};
use dynapviz_streams::synth::{DvsParams, Scene, SceneSource, Shape};

use super::viz::VizArgs;

/// Run the built-in demo (synthetic scene -> simulated chip -> readout), printed as text.
#[derive(clap::Args)]
pub struct Args {
    /// Seconds of synthetic scene.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Seed of the scene.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Where to keep the generated recording (default: a temporary file).
    #[arg(long)]
    keep: Option<PathBuf>,
    /// Print the readout as a table instead of opening the window.
    #[arg(long)]
    text: bool,
    /// Playback speed in the window (1 = real time).
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    #[command(flatten)]
    viz: VizArgs,
}

pub(crate) const CLASSES: [&str; 4] = ["horizontal", "vertical", "diagonal", "anti-diagonal"];

/// A hand-made orientation detector: 4 oriented 4x4 edge kernels (stride 2, sum pool 4), then a
/// linear layer where each class collects its own feature map and is inhibited by the others.
pub(crate) fn orientation_network() -> Result<Network> {
    let mut k = Vec::new();
    for class in 0..4 {
        for _polarity in 0..2 {
            for y in 0..4i32 {
                for x in 0..4i32 {
                    let on = match class {
                        0 => y == 1 || y == 2,
                        1 => x == 1 || x == 2,
                        2 => (x - y).abs() <= 1,
                        _ => (x + y - 3).abs() <= 1,
                    };
                    k.push(if on { 0.5 } else { -0.4 });
                }
            }
        }
    }
    let mut ann = Ann::default();
    ann.push(
        "orient",
        AnnLayer::Conv { weight: Tensor::new(vec![4, 2, 4, 4], k).context("kernel")?, bias: None, stride: [2, 2], padding: [1, 1] },
    );
    ann.push("relu1", AnnLayer::Relu);
    ann.push("pool", AnnLayer::AvgPool { kernel: [4, 4], stride: [4, 4] });
    ann.push("flatten", AnnLayer::Flatten);
    let mut w = Vec::new();
    for class in 0..4 {
        for ch in 0..4 {
            w.extend(std::iter::repeat_n(if ch == class { 1.0 } else { -0.5 }, 16 * 16));
        }
    }
    ann.push("classify", AnnLayer::Linear { weight: Tensor::new(vec![4, 4 * 16 * 16], w).context("weights")?, bias: None });
    let mut net = convert(&ann, [2, 128, 128], &DvsOptions::default())?;
    discretize(&mut net);
    let profile = ChipProfile::by_name("speck2e")?;
    chip::validate(&net, &profile)?;
    mapping::map_auto(&mut net, &profile)?;
    Ok(net)
}

/// One bar of each orientation in turn, sweeping across the sensor perpendicular to itself.
pub(crate) fn scene(orientation: usize, rng: &mut Rng) -> Scene {
    let angle = [0.0, std::f64::consts::FRAC_PI_2, std::f64::consts::FRAC_PI_4, -std::f64::consts::FRAC_PI_4][orientation];
    let speed = rng.range(60.0, 90.0);
    let (s, c) = (angle + std::f64::consts::FRAC_PI_2).sin_cos();
    let bar = Shape::Bar {
        center: [rng.range(50.0, 78.0), rng.range(50.0, 78.0)],
        size: [90.0, 6.0],
        angle,
        spin: 0.0,
        velocity: [c * speed, s * speed],
    };
    Scene { background: 0.2, foreground: 0.9, shapes: vec![bar] }
}

pub fn run(args: Args, started: Instant) -> Result<()> {
    let g = Geometry::DVS128;
    let duration_us = (args.seconds * 1e6) as i64;
    anyhow::ensure!(duration_us > 0, "--seconds must be positive");
    let dir = tempdir()?;
    let path = args.keep.clone().unwrap_or_else(|| dir.join("demo.aedat4"));
    // 1. A synthetic DVS recording: the four orientations in turn, a quarter of the time each.
    let mut rng = Rng::new(args.seed);
    let mut writer = EventWriter::create(&path, Format::Aedat4, g)?;
    let mut events: Vec<Event> = Vec::new();
    let segment_us = duration_us / 4;
    for orientation in 0..4 {
        let start = orientation as i64 * segment_us;
        let mut src =
            SceneSource::new(scene(orientation, &mut rng), g, DvsParams::default(), 1000, Some(segment_us), args.seed + orientation as u64);
        while src.next_step(&mut events) {
            events.iter_mut().for_each(|e| e.t += start);
            writer.write(&events)?;
            events.clear();
        }
    }
    writer.finish()?;
    let ins = dynapviz_events::inspect(&path)?;
    let s = &ins.summary;
    println!(
        "1. synthetic DVS scene -> {} ({}, {} events, {} ON / {} OFF, {:.0} ev/s)",
        path.display(),
        ins.format,
        s.events,
        s.on,
        s.off,
        s.mean_rate_hz()
    );
    // 2. The network, converted, discretized and mapped.
    let net = orientation_network()?;
    println!("2. built-in orientation network on the speck2e:");
    for l in report::layers(&net) {
        println!(
            "   layer {} on core {}: {}->{} channels, kernel {}x{}, threshold {}, output {:?}",
            l.index,
            l.core.unwrap_or(0),
            l.in_channels,
            l.out_channels,
            l.kernel[0],
            l.kernel[1],
            l.threshold,
            l.output_shape
        );
    }
    let windowed = !args.text
        && (args.viz.headless.is_some() || std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some());
    if windowed {
        let icons = dir.join("icons");
        draw_icons(&icons)?;
        let mut opts = args.viz.options()?;
        opts.add_readout_plot = true;
        opts.add_power_monitor_plot = true;
        opts.power_monitor_number_of_items = 5;
        opts.readout_images = Some(vec![icons]);
        opts.spike_collection_interval = args.viz.spike_collection_interval.unwrap_or(250.0);
        opts.readout_prediction_threshold = args.viz.readout_prediction_threshold.unwrap_or(2);
        opts.spike_count.x_span = 10.0;
        opts.window_scale = [12.0, 7.0];
        let result = super::run::launch(&path, Some(net), args.viz.headless.is_none(), args.speed, Mode::Event, &args.viz, opts, started);
        // The directory holds only temporary files: a kept recording lives at its own path.
        let _ = std::fs::remove_dir_all(&dir);
        return result;
    }
    // 3. Play the recording through the simulated chip.
    let sim = Simulator::new(&net, Config { mode: Mode::Event, monitors: Monitors::of([net.layers.len()]), ..Config::default() })?;
    let source = FileSource::open(&path, false, Controls::new(0.0))?;
    let config = SessionConfig {
        frame_us: 16_667,
        decay_us: Some(50_000.0),
        geometry: g,
        collection_ms: 250.0,
        feature_count: CLASSES.len(),
        readout: Some(MajorityReadout::new(0, 32000, 2, 0, CLASSES.len())?),
        analysis_capacity: 16,
        heatmap_layer: None,
        record_input: None,
        record_analysis: None,
    };
    let session = Session::start(Box::new(source), Vec::new(), Some(sim), config).map_err(anyhow::Error::msg)?;
    println!("3. simulated chip, spikes per class every 250 ms and the readout:");
    println!("   {:>8}  {:>10} {:>10} {:>10} {:>13}  readout", "t (s)", CLASSES[0], CLASSES[1], CLASSES[2], CLASSES[3]);
    let t0 = s.t_first_us.unwrap_or(0);
    let mut counts: Option<Vec<u64>> = None;
    let mut power = [0f64; 5];
    let mut power_n = 0u64;
    let stats = session
        .drain(|a| match a {
            Analysis::Counts { counts: c, .. } => counts = Some(c),
            Analysis::Readout { t_us, feature, .. } => {
                let c = counts.take().unwrap_or_default();
                let cell = |i: usize| c.get(i).copied().unwrap_or(0);
                println!(
                    "   {:>8.2}  {:>10} {:>10} {:>10} {:>13}  {}",
                    (t_us - t0) as f64 * 1e-6,
                    cell(0),
                    cell(1),
                    cell(2),
                    cell(3),
                    CLASSES[feature]
                );
            }
            Analysis::Layers { .. } => {}
            Analysis::Power(p) => {
                power[usize::from(p.channel)] += p.value;
                if p.channel == 0 {
                    power_n += 1;
                }
            }
        })
        .map_err(anyhow::Error::msg)?;
    let rails: Vec<String> = RAILS.iter().zip(power).map(|(r, p)| format!("{r} {:.3}", p / power_n.max(1) as f64 * 1e3)).collect();
    println!("4. {} input events, {} output spikes; mean power (mW, estimate): {}", stats.events, stats.output_spikes, rails.join(", "));
    println!("   (the text form: with a display the demo opens the dashboard; --headless DIR renders it to PNG)");
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn tempdir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("dynapviz-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// Draws one picture per class (`{idx}_{name}.png`): the oriented bar the class stands for.
fn draw_icons(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let size = 192u32;
    for (i, name) in CLASSES.iter().enumerate() {
        let angle = [0.0f32, std::f32::consts::FRAC_PI_2, std::f32::consts::FRAC_PI_4, -std::f32::consts::FRAC_PI_4][i];
        let (s, c) = angle.sin_cos();
        let img = image::RgbaImage::from_fn(size, size, |x, y| {
            let (dx, dy) = (x as f32 - size as f32 / 2.0, y as f32 - size as f32 / 2.0);
            let (u, v) = (dx * c + dy * s, -dx * s + dy * c);
            if u.abs() < 70.0 && v.abs() < 12.0 { image::Rgba([240, 200, 90, 255]) } else { image::Rgba([36, 40, 52, 255]) }
        });
        let path = dir.join(format!("{:02}_{name}.png", i + 1));
        img.save(&path).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}
