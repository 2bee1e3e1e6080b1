//! `dynapviz synth`: a labelled synthetic dataset in the DVS128 Gesture layout (AEDAT 3.1 files
//! with `*_labels.csv` beside them), so every tool that reads DVS128 Gesture reads it. The
//! classes are the demo's four bar orientations (labels 1..4); each recording holds every class
//! once, in a random order, with pauses between.

use std::path::PathBuf;

use anyhow::{Context, Result};
use dynapviz_events::{Event, EventWriter, Format, Geometry, Segment, write_labels};
use dynapviz_streams::rng::Rng;
use dynapviz_streams::synth::{DvsParams, SceneSource};

use super::demo::{CLASSES, scene};

/// Write a labelled synthetic dataset (AEDAT 3.1 + label CSVs, the DVS128 Gesture layout).
#[derive(clap::Args)]
pub struct Args {
    /// Seed: the same seed gives the same files.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Number of recordings.
    #[arg(long, default_value_t = 4)]
    samples: usize,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
    /// Seconds per labelled segment.
    #[arg(long, default_value_t = 1.5)]
    segment_seconds: f64,
}

pub fn run(args: Args) -> Result<()> {
    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    let g = Geometry::DVS128;
    let seg_us = (args.segment_seconds * 1e6) as i64;
    anyhow::ensure!(seg_us > 0, "--segment-seconds must be positive");
    let gap_us = 200_000;
    for k in 0..args.samples {
        let mut rng = Rng::new(args.seed.wrapping_mul(1_000_003).wrapping_add(k as u64));
        let mut order: Vec<usize> = (0..CLASSES.len()).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let name = format!("user{:02}_synthetic{k:02}", args.seed % 100);
        let path = args.out.join(format!("{name}.aedat"));
        let mut w = EventWriter::create(&path, Format::Aedat31, g)?;
        let mut segments = Vec::new();
        let mut t0 = 0i64;
        let mut events: Vec<Event> = Vec::new();
        for &class in &order {
            let params = DvsParams { contrast: rng.range(0.15, 0.3) as f32, noise_hz: rng.range(0.05, 0.5), ..DvsParams::default() };
            let mut src = SceneSource::new(scene(class, &mut rng), g, params, 1000, Some(seg_us), rng.next_u64());
            while src.next_step(&mut events) {
                events.iter_mut().for_each(|e| e.t += t0);
                w.write(&events)?;
                events.clear();
            }
            segments.push(Segment { class: class as u32 + 1, start_us: t0, end_us: t0 + seg_us });
            t0 += seg_us + gap_us;
        }
        w.finish()?;
        write_labels(&args.out.join(format!("{name}_labels.csv")), &segments)?;
    }
    println!(
        "wrote {} recordings with {} labelled segments each to {} (classes 1..4: {})",
        args.samples,
        CLASSES.len(),
        args.out.display(),
        CLASSES.join(", ")
    );
    Ok(())
}
