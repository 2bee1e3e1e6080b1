//! `dynapviz synth`: a labelled dataset of synthetic gestures in the DVS128 Gesture layout
//! (AEDAT 3.1 files with `*_labels.csv` beside them), so every tool that reads DVS128 Gesture
//! reads it. Each recording is one subject under one sensor setting performing all 11 classes
//! once, in a random order, with pauses between; `--icons DIR` draws the readout pictures.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use dynapviz_events::{Event, EventWriter, Format, GESTURE_CLASSES, Geometry, Segment, write_labels};
use dynapviz_streams::gesture::{Gesture, Subject, icon_rgb};
use dynapviz_streams::rng::Rng;
use dynapviz_streams::synth::{DvsParams, SceneSource};

/// Write a labelled synthetic gesture dataset (AEDAT 3.1 + label CSVs, the DVS128 Gesture layout).
#[derive(clap::Args)]
pub struct Args {
    /// Seed: the same seed gives the same files; different seeds give different subjects.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Number of recordings (subjects), each with every class once.
    #[arg(long, default_value_t = 4)]
    samples: usize,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
    /// Seconds per labelled gesture.
    #[arg(long, default_value_t = 2.0)]
    segment_seconds: f64,
    /// Also draw one readout picture per class, `{idx}_{name}.png`, into this directory.
    #[arg(long)]
    icons: Option<PathBuf>,
}

/// Pause between two gestures, µs.
const GAP_US: i64 = 300_000;

/// The longest gesture, s: an hour of events per gesture is already gigabytes.
pub const MAX_SEGMENT_SECONDS: f64 = 3600.0;

/// Emulator time step, µs.
const STEP_US: i64 = 1000;

pub fn run(args: Args) -> Result<()> {
    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    anyhow::ensure!(
        (0.001..=MAX_SEGMENT_SECONDS).contains(&args.segment_seconds),
        "--segment-seconds must be 0.001 to {MAX_SEGMENT_SECONDS} (the gestures of DVS128 Gesture last about 6 s)"
    );
    let seg_us = ((args.segment_seconds * 1e6) as i64).max(STEP_US);
    let bar = indicatif::ProgressBar::new((args.samples * GESTURE_CLASSES.len()) as u64)
        .with_style(indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} gestures ({eta})")?)
        .with_message("synthesising");
    // Recordings are independent: one per thread at a time, each deterministic by its own seed.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let threads = super::cores().min(args.samples.max(1));
    let events: u64 = std::thread::scope(|scope| -> Result<u64> {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| -> Result<u64> {
                    let mut events = 0;
                    loop {
                        let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if k >= args.samples {
                            return Ok(events);
                        }
                        events += write_recording(&args.out, args.seed, k, seg_us, &bar)?.events;
                    }
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().map_err(|_| anyhow::anyhow!("a synthesis thread panicked"))?).sum()
    })?;
    bar.finish_and_clear();
    if let Some(dir) = &args.icons {
        write_icons(dir)?;
    }
    println!(
        "wrote {} recordings ({} events) with {} labelled gestures each to {} (labels 1..11: {})",
        args.samples,
        events,
        GESTURE_CLASSES.len(),
        args.out.display(),
        GESTURE_CLASSES.join(", ")
    );
    Ok(())
}

/// A written recording.
pub(crate) struct Recording {
    pub path: PathBuf,
    pub segments: Vec<Segment>,
    pub events: u64,
}

/// One subject performing every class once: `user{seed}_synthetic{k}.aedat` and its labels.
pub(crate) fn write_recording(dir: &Path, seed: u64, k: usize, seg_us: i64, bar: &indicatif::ProgressBar) -> Result<Recording> {
    let g = Geometry::DVS128;
    let mut rng = Rng::new(seed.wrapping_mul(1_000_003).wrapping_add(k as u64));
    let subject = Subject::random(g, &mut rng);
    let params = DvsParams { contrast: rng.range(0.15, 0.3) as f32, noise_hz: rng.range(0.02, 0.2), ..DvsParams::default() };
    let mut order: Vec<usize> = (0..GESTURE_CLASSES.len()).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let name = format!("user{seed:02}_synthetic{k:02}");
    let path = dir.join(format!("{name}.aedat"));
    let mut w = EventWriter::create(&path, Format::Aedat31, g)?;
    let mut segments = Vec::new();
    let mut t0 = 0i64;
    let mut buf: Vec<Event> = Vec::new();
    let mut events = 0u64;
    for &class in &order {
        let gesture = Gesture::random(subject.clone(), class, 0, &mut rng);
        let mut src = SceneSource::new(gesture, g, params, STEP_US, Some(seg_us), rng.next_u64());
        while src.next_step(&mut buf) {
            buf.iter_mut().for_each(|e| e.t += t0);
            w.write(&buf)?;
            events += buf.len() as u64;
            buf.clear();
        }
        segments.push(Segment { class: class as u32 + 1, start_us: t0, end_us: t0 + seg_us });
        t0 += seg_us + GAP_US;
        bar.inc(1);
    }
    w.finish()?;
    write_labels(&dir.join(format!("{name}_labels.csv")), &segments)?;
    Ok(Recording { path, segments, events })
}

/// Draws the readout pictures, `{idx}_{name}.png` with idx = label (01..11).
pub(crate) fn write_icons(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let size = 160u16;
    for (i, name) in GESTURE_CLASSES.iter().enumerate() {
        let img = image::RgbImage::from_raw(u32::from(size), u32::from(size), icon_rgb(i, size)).context("icon size")?;
        let path = dir.join(format!("{:02}_{name}.png", i + 1));
        img.save(&path).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}
