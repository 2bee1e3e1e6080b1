//! `dynapviz demo`: the whole system on built-in data, no hardware, no download. A synthetic
//! subject performs the 11 DVS128 Gesture classes in front of a simulated DVS; the recording is
//! played through the built-in gesture network (trained on other synthetic subjects by
//! `tools/train-gesture`) on the simulated chip, into the dashboard with all four plots, looping.
//! Without a display (or with `--text`) the readout is printed beside the true gesture.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use dynapviz_chip::{Config, Mode, Monitors, PowerMean, RAILS, Simulator};
use dynapviz_events::{EventReader, GESTURE_CLASSES, Geometry};
use dynapviz_model::report;
use dynapviz_streams::nodes::readout::MajorityReadout;
use dynapviz_streams::session::{Analysis, Session, SessionConfig};
use dynapviz_streams::source::{Controls, FileSource};
use dynapviz_viewer::VizOptions;

use super::viz::VizArgs;

/// Run the built-in demo: synthetic gestures -> simulated chip -> dashboard (or a printed readout).
#[derive(clap::Args)]
pub struct Args {
    /// Seconds per gesture.
    #[arg(long, default_value_t = 2.0)]
    segment_seconds: f64,
    /// Seed of the subject (the built-in model was trained on seeds 100 and validated on 900).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Keep the generated recording and its labels in this directory (default: a temporary one).
    #[arg(long)]
    keep: Option<PathBuf>,
    /// Print the readout as text instead of opening the window.
    #[arg(long)]
    text: bool,
    #[command(flatten)]
    threads: super::model::ThreadsArg,
    /// Playback speed in the window (1 = real time).
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    #[command(flatten)]
    viz: VizArgs,
}

/// The text form's readout interval.
const COLLECTION_US: i64 = 500_000;

impl Args {
    /// The simulation threads next to a window, or `None` when no window opens.
    pub fn window_sim_threads(&self) -> Option<usize> {
        (!self.text && self.viz.windowed()).then(|| self.threads.or(1))
    }
}

pub fn run(args: Args, started: Instant) -> Result<()> {
    let seg_us = super::synth::segment_us(args.segment_seconds, 100_000)?;
    // Removed when the demo ends, however it ends.
    let scratch = scratch_dir("demo")?;
    let tmp = scratch.path();
    let dir = args.keep.clone().unwrap_or_else(|| tmp.to_path_buf());
    std::fs::create_dir_all(&dir).with_context(|| format!("--keep {}: cannot create the directory", dir.display()))?;
    // Printed as it comes, and kept for the headless report.
    let mut report = Vec::new();
    let mut say = |line: String| {
        println!("{line}");
        report.push(line);
    };
    let windowed = !args.text && (!args.viz.windowed() || dynapviz_viewer::has_display());
    // A window or a browser plays the recording as it is made: the first picture comes at once.
    let live = windowed && args.viz.headless.is_none();
    // 1. A synthetic subject performing every gesture once, in the DVS128 Gesture layout.
    let mut synthesis = super::synth::Synthesis::start(&dir, args.seed, 0, seg_us)?;
    let (path, segments) = (synthesis.path.clone(), synthesis.segments.clone());
    let seconds = segments.last().map_or(0.0, |s| s.end_us as f64 * 1e-6);
    let made =
        if live { format!("{seconds:.1} s, made as it plays") } else { format!("{} events in {seconds:.1} s", synthesis.make_all()?) };
    say(format!("1. synthetic subject {} performing the 11 gestures -> {} (AEDAT 3.1 + labels, {made})", args.seed, path.display()));
    // 2. The built-in network, converted, discretized and mapped.
    let net = crate::builtin::network()?;
    say(format!("2. built-in gesture network (sinabs architecture, trained on synthetic subjects) on the {}:", crate::builtin::DEVICE));
    for l in report::layers(&net) {
        say(format!(
            "   layer {} on core {}: {:>3}->{:<3} channels, kernel {}x{}, threshold {:>5}, output {:?}",
            l.index,
            l.core.unwrap_or(0),
            l.in_channels,
            l.out_channels,
            l.kernel[0],
            l.kernel[1],
            l.threshold,
            l.output_shape
        ));
    }
    if windowed {
        let icons = crate::builtin::write_icons(&tmp.join("icons"))?;
        let opts = options(&args.viz, icons)?;
        let made: Option<Box<dyn EventReader>> = if live { Some(Box::new(synthesis)) } else { None };
        let result = super::run::launch(
            super::run::Input { path: &path, made, reconnect: false },
            Some(net.clone()),
            args.viz.headless.is_none(),
            super::run::Pace { speed: args.speed, max_gap: None },
            super::run::Sim { mode: Mode::Event, threads: args.threads.or(1), chip: Default::default() },
            &args.viz,
            opts,
            started,
        );
        // A Ctrl-C that stopped the pictures stops the demo.
        if args.viz.headless.is_none() || result.is_err() || super::interrupt::asked() {
            return result;
        }
        // Headless: the pictures are written; the report below goes beside them.
    }
    // 3. Play the recording through the simulated chip and print the readout.
    let config = Config {
        mode: Mode::Event,
        monitors: Monitors::of([net.layers.len()]),
        threads: args.threads.or(super::cores()),
        ..Config::default()
    };
    let power_rate = config.power_rate_hz;
    let sim = Simulator::new(&net, config)?;
    let source = FileSource::open(&path, false, Controls::new(0.0))?;
    let config = SessionConfig {
        frame_us: 16_667,
        decay_us: Some(50_000.0),
        geometry: Geometry::DVS128,
        collection_ms: COLLECTION_US as f64 * 1e-3,
        feature_count: GESTURE_CLASSES.len(),
        readout: Some(MajorityReadout::new(0, u64::MAX, 3, 0, GESTURE_CLASSES.len())?),
        analysis_capacity: 16,
        heatmap_layer: None,
        snapshot_us: None,
        record_input: None,
        record_analysis: None,
    };
    let session = Session::start(Box::new(source), Vec::new(), Some(sim), config).map_err(anyhow::Error::msg)?;
    say("3. simulated chip: the readout every 500 ms (majority of output spikes) beside the gesture performed".into());
    say(format!("   {:>6}  {:<28} {:<28} {:>7}", "t (s)", "performed", "readout", "spikes"));
    // The gesture a readout judges: the one its whole collection window lies in (windows that
    // span a change of gesture or a pause judge nothing).
    let truth = |t_us: i64| segments.iter().find(|g| g.start_us <= t_us - COLLECTION_US && t_us <= g.end_us).map(|g| g.class as usize - 1);
    let mut counts: Option<Vec<u64>> = None;
    let (mut power, mut right, mut judged) = (PowerMean::new(power_rate), 0u64, 0u64);
    let stats = session
        .drain(|a| match a {
            Analysis::Counts { counts: c, .. } => counts = Some(c),
            Analysis::Readout { t_us, feature, predicted } => {
                let total: u64 = counts.take().unwrap_or_default().iter().sum();
                let performed = truth(t_us);
                if let Some(p) = performed {
                    judged += 1;
                    right += u64::from(predicted && feature == p);
                }
                say(format!(
                    "   {:>6.1}  {:<28} {:<28} {:>7}",
                    t_us as f64 * 1e-6,
                    performed.map_or("(change)", |p| GESTURE_CLASSES[p]),
                    if predicted { GESTURE_CLASSES[feature] } else { "-" },
                    total
                ));
            }
            Analysis::Layers { .. } | Analysis::Snapshot(_) => {}
            Analysis::Power(p) => power.add(&p),
        })
        .map_err(anyhow::Error::msg)?;
    let rails: Vec<String> = RAILS.iter().zip(power.watts()).filter_map(|(r, w)| Some(format!("{r} {:.3}", w? * 1e3))).collect();
    say(format!(
        "4. {right} of {judged} readouts within one gesture were right; {} input events, {} output spikes",
        stats.events, stats.output_spikes
    ));
    say(format!("   mean power (mW, estimate): {}", rails.join(", ")));
    match &args.viz.headless {
        Some(dir) => {
            let file = dir.join("report.txt");
            std::fs::write(&file, report.join("\n") + "\n").with_context(|| format!("cannot write {}", file.display()))?;
            println!("   report written to {} beside the dashboard pictures", file.display());
        }
        None => println!(
            "   (the text form: with a display the demo opens the dashboard; --headless DIR renders it to PNG; --serve ADDR shows it in a browser)"
        ),
    }
    Ok(())
}

/// A new directory under the system's temporary one (`dynapviz-WHAT-` and a random name, made
/// so that no other process can have it), removed with everything in it when dropped: the
/// demo's recording and pictures, on every way out.
pub(super) fn scratch_dir(what: &str) -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(&format!("dynapviz-{what}-"))
        .tempdir()
        .with_context(|| format!("cannot create a directory under {}", std::env::temp_dir().display()))
}

/// The dashboard's options: the demo's own defaults (every plot, the built-in icons, a window
/// of 3/4 x 7/9 of the screen), under a `--config` file and the flags, which have the last word.
fn options(viz: &VizArgs, icons: PathBuf) -> Result<VizOptions> {
    let mut base = VizOptions {
        add_readout_plot: true,
        add_power_monitor_plot: true,
        power_monitor_number_of_items: 5,
        spike_collection_interval: 250.0,
        readout_prediction_threshold: 3,
        window_scale: [12.0, 7.0],
        ..VizOptions::default()
    };
    base.spike_count.x_span = 10.0;
    let mut opts = viz.options_over(base)?;
    if opts.readout_images.is_none() {
        opts.readout_images = Some(vec![icons]);
    }
    Ok(opts)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{VizArgs, options};

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        viz: VizArgs,
    }

    fn options_of(flags: &[&str]) -> dynapviz_viewer::VizOptions {
        let viz = Flags::try_parse_from([&["demo"], flags].concat()).expect("flags").viz;
        options(&viz, "icons".into()).expect("options")
    }

    #[test]
    fn the_demo_has_defaults_of_its_own_and_flags_override_them() {
        let plain = options_of(&[]);
        assert!(plain.add_readout_plot && plain.add_power_monitor_plot);
        assert_eq!(plain.window_scale, [12.0, 7.0]);
        assert_eq!(plain.readout_images, Some(vec!["icons".into()]));
        assert_eq!(plain.spike_count.x_span, 10.0);
        let flagged = options_of(&[
            "--window-scale",
            "8,4.5",
            "--add-power-monitor-plot",
            "false",
            "--power-monitor-number-of-items",
            "3",
            "--spike-collection-interval",
            "100",
            "--readout-images",
            "mine",
        ]);
        assert_eq!(flagged.window_scale, [8.0, 4.5]);
        assert!(!flagged.add_power_monitor_plot && flagged.add_readout_plot);
        assert_eq!(flagged.power_monitor_number_of_items, 3);
        assert_eq!(flagged.spike_collection_interval, 100.0);
        assert_eq!(flagged.readout_images, Some(vec!["mine".into()]));
    }
}
