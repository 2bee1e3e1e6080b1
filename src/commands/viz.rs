//! The visualizer's options as command-line flags (the original's parameter names in
//! kebab-case) over an optional TOML file with the same names, and the loop that feeds a
//! session into the window or into headless PNG frames.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use dynapviz_streams::session::{Analysis, Session};
use dynapviz_streams::source::Controls;
use dynapviz_viewer::headless::write_svg;
use dynapviz_viewer::{Dashboard, GifWriter, Headless, VizOptions};

/// Visualizer options; each overrides the same name in `--config`.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct VizArgs {
    /// TOML file with the visualizer's options under the original's names.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Window size as fractions of the screen: W,H means W/16 x H/9.
    #[arg(long, value_delimiter = ',')]
    pub window_scale: Option<Vec<f32>>,
    /// Size of the DVS plot: W,H.
    #[arg(long, value_delimiter = ',')]
    pub dvs_shape: Option<Vec<u16>>,
    /// Show the readout picture (needs --readout-images).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub add_readout_plot: Option<bool>,
    /// Show the spike-count plot (default true with a model).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub add_spike_count_plot: Option<bool>,
    /// Show the power plot.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub add_power_monitor_plot: Option<bool>,
    /// Spike collection interval, ms (default 500).
    #[arg(long)]
    pub spike_collection_interval: Option<f64>,
    /// Spikes the winning class must exceed (default 10).
    #[arg(long)]
    pub readout_prediction_threshold: Option<u64>,
    /// Class shown when nothing is predicted (default: the last).
    #[arg(long)]
    pub readout_default_return_value: Option<usize>,
    /// Fewest spikes per collection for a decision (default 0).
    #[arg(long)]
    pub readout_default_threshold_low: Option<u64>,
    /// Most spikes per collection for a decision (default 32000).
    #[arg(long)]
    pub readout_default_threshold_high: Option<u64>,
    /// Power rails shown: 3 or 5.
    #[arg(long)]
    pub power_monitor_number_of_items: Option<usize>,
    /// Class names, comma-separated (default: from the image names).
    #[arg(long, value_delimiter = ',')]
    pub feature_names: Option<Vec<String>>,
    /// Class pictures in output order, or one directory of {idx}_{name}.png.
    #[arg(long, num_args = 1..)]
    pub readout_images: Option<Vec<PathBuf>>,
    /// Number of classes (default: the model's outputs).
    #[arg(long)]
    pub feature_count: Option<usize>,
    /// Record the input events (after rescaling) to FILE (format from its extension).
    #[arg(long, value_name = "FILE")]
    pub record_input: Option<PathBuf>,
    /// Record spike counts, readouts and power as JSON lines to FILE.
    #[arg(long, value_name = "FILE")]
    pub record_analysis: Option<PathBuf>,
    /// Show the spikes of this layer (1..N) as a heat map beside the DVS plot.
    #[arg(long, value_name = "LAYER")]
    pub heatmap_layer: Option<usize>,
    /// Open paused (space resumes): the window shows and idles until asked to play.
    #[arg(long)]
    pub paused: bool,
    /// Show the chip panel (per-layer rates, each core's busiest millisecond, cores, memory,
    /// drops) from the start (key c).
    #[arg(long)]
    pub show_chip_panel: bool,
    /// Render the dashboard into PNG files in DIR instead of opening a window.
    #[arg(long, value_name = "DIR")]
    pub headless: Option<PathBuf>,
    /// Headless: also write the frames as an animated GIF (each frame shown for --frame-every).
    #[arg(long, value_name = "FILE", requires = "headless")]
    pub gif: Option<PathBuf>,
    /// Headless: also write every picture as SVG (frame-NNNNN.svg, dashboard.svg): lines,
    /// text and rectangles as vector elements that stay sharp at any size and can be edited,
    /// the DVS and readout pictures embedded as PNG. For papers and slides.
    #[arg(long, requires = "headless")]
    pub svg: bool,
    /// Headless: seconds of event time between frames.
    #[arg(long, default_value_t = 1.0)]
    pub frame_every: f64,
    /// Serve the dashboard to web browsers at ADDR instead of opening a window: 127.0.0.1:8080
    /// for this machine (or through `ssh -L 8080:127.0.0.1:8080`), 0.0.0.0:8080 for every
    /// machine that reaches this one, which then needs the token printed with the address.
    #[arg(long, value_name = "ADDR", conflicts_with = "headless")]
    pub serve: Option<String>,
    /// With --serve: the token viewers must present (16-128 letters, digits, `-` or `_`), so
    /// that an address stays the same from run to run. Default: a random one when ADDR is not
    /// a loopback address, none on a loopback address.
    #[arg(long, value_name = "TOKEN", requires = "serve")]
    pub serve_token: Option<String>,
    /// With --serve: pictures per second made while a browser watches.
    #[arg(long, default_value_t = 10.0, value_name = "N")]
    pub serve_fps: f64,
    /// Headless and --serve: image size W,H in pixels.
    #[arg(long, value_delimiter = ',', default_value = "1280,720")]
    pub image_size: Vec<usize>,
}

impl VizArgs {
    /// Headless: event time between frames, µs (at least 10 ms).
    pub fn frame_every_us(&self) -> i64 {
        (self.frame_every.max(0.01) * 1e6) as i64
    }

    /// Headless and --serve: the image size, each side at least 64 pixels.
    pub fn image_size(&self) -> Result<(usize, usize)> {
        let [w, h] = self.image_size[..] else { anyhow::bail!("--image-size expects W,H") };
        Ok((w.max(64), h.max(64)))
    }

    /// Whether a window opens (neither --headless nor --serve).
    pub fn windowed(&self) -> bool {
        self.headless.is_none() && self.serve.is_none()
    }

    /// The options: defaults, then the TOML file, then the flags.
    pub fn options(&self) -> Result<VizOptions> {
        self.options_over(VizOptions::default())
    }

    /// The options: `base` (a command's own defaults; the original's under a TOML file, which
    /// says every option it wants), then the TOML file, then the flags.
    pub fn options_over(&self, base: VizOptions) -> Result<VizOptions> {
        let mut o = match &self.config {
            Some(p) => VizOptions::from_toml(p)?,
            None => base,
        };
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = self.$f.clone() { o.$f = v; } )* };
        }
        set!(
            add_readout_plot,
            add_spike_count_plot,
            add_power_monitor_plot,
            spike_collection_interval,
            readout_prediction_threshold,
            readout_default_threshold_low,
            readout_default_threshold_high,
            power_monitor_number_of_items
        );
        if let Some(v) = &self.window_scale {
            let [w, h] = v[..] else { anyhow::bail!("--window-scale expects W,H") };
            o.window_scale = [w, h];
        }
        if let Some(v) = &self.dvs_shape {
            let [w, h] = v[..] else { anyhow::bail!("--dvs-shape expects W,H") };
            o.dvs_shape = [w, h];
        }
        if self.readout_default_return_value.is_some() {
            o.readout_default_return_value = self.readout_default_return_value;
        }
        if self.feature_names.is_some() {
            o.feature_names = self.feature_names.clone();
        }
        if self.readout_images.is_some() {
            o.readout_images = self.readout_images.clone();
        }
        if self.feature_count.is_some() {
            o.feature_count = self.feature_count;
        }
        Ok(o)
    }
}

/// Shows a running session: in the window, as PNG frames with `--headless`, or to browsers
/// with `--serve`. Ctrl-C ends each as its own end would (the window closed, the pictures cut
/// short, the serving stopped), so that recordings are completed and scratch files removed; a
/// second Ctrl-C ends the process at once.
pub fn show(args: &VizArgs, mut dashboard: Dashboard, session: Session, controls: Option<Controls>, started: Instant) -> Result<()> {
    super::interrupt::catch();
    if let Some(addr) = &args.serve {
        return super::live::serve(args, addr, dashboard, session, controls);
    }
    let Some(dir) = &args.headless else {
        let display = std::sync::Arc::clone(&session.display);
        let shown = dynapviz_viewer::run_window(dashboard, display, &session.analysis, controls, started, super::interrupt::asked);
        // The window is closed: stop the source and complete any recording.
        let stats = session.stop().map_err(anyhow::Error::msg)?;
        if args.record_input.is_some() {
            println!("recorded {} input events", stats.recorded_events);
        }
        return Ok(shown?);
    };
    headless(args, &mut dashboard, session, dir)
}

fn headless(args: &VizArgs, dashboard: &mut Dashboard, session: Session, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let (w, h) = args.image_size()?;
    let mut renderer = Headless::new(w, h);
    let display = std::sync::Arc::clone(&session.display);
    let mut frames = 0;
    let mut gif = match &args.gif {
        Some(p) => Some(GifWriter::create(p, (args.frame_every_us() / 1000) as u32).map_err(anyhow::Error::msg)?),
        None => None,
    };
    let mut save = |dashboard: &mut Dashboard, name: &str| -> Result<()> {
        let rgba = if args.svg {
            let (rgba, svg) = renderer.render_and_svg(dashboard);
            write_svg(&svg, &dir.join(format!("{name}.svg"))).map_err(anyhow::Error::msg)?;
            rgba
        } else {
            renderer.render(dashboard)
        };
        renderer.write_png(&rgba, &dir.join(format!("{name}.png"))).map_err(anyhow::Error::msg)?;
        if let Some(g) = gif.as_mut() {
            g.push(rgba, w, h).map_err(anyhow::Error::msg)?;
        }
        frames += 1;
        Ok(())
    };
    // Frames come as snapshots through the lossless analysis channel, in order with the plots'
    // data: every --frame-every of event time gets its frame, however fast the source runs.
    let mut n = 0u64;
    // Ctrl-C (see `show`) ends the pictures where they are, as the end of the recording would.
    loop {
        if super::interrupt::asked() {
            break;
        }
        // Checked first: everything sent before the end is drained below.
        let finished = session.is_finished();
        while let Ok(batch) = session.analysis.recv_timeout(Duration::from_millis(20)) {
            for a in &batch {
                dashboard.on_analysis(a);
                if matches!(a, Analysis::Snapshot(_)) {
                    dashboard.stats.skipped_frames = display.skipped();
                    n += 1;
                    save(dashboard, &format!("frame-{n:05}"))?;
                }
            }
        }
        if finished {
            break;
        }
    }
    if let Some(f) = display.take() {
        dashboard.on_frame(&f);
    }
    let stopped = super::interrupt::asked();
    let stats = if stopped { session.stop() } else { session.join() }.map_err(anyhow::Error::msg)?;
    save(dashboard, "dashboard")?;
    let kinds = if args.svg { "PNG and SVG" } else { "PNG" };
    println!(
        "wrote {frames} {kinds} frames to {} ({} input events, {} output spikes){}",
        dir.display(),
        stats.events,
        stats.output_spikes,
        if stopped { "; stopped by Ctrl-C" } else { "" }
    );
    if let (Some(g), Some(p)) = (gif, &args.gif) {
        println!("wrote {} GIF frames to {}", g.frames(), p.display());
    }
    Ok(())
}
