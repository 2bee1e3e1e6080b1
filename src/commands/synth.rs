//! `dynapviz synth`: a labelled dataset of synthetic gestures in the DVS128 Gesture layout
//! (AEDAT 3.1 files with `*_labels.csv` beside them), so every tool that reads DVS128 Gesture
//! reads it. Each recording is one subject under one sensor setting performing all 11 classes
//! once, in a random order, with pauses between; `--icons DIR` draws the readout pictures.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use dynapviz_events::{CHUNK, Event, EventReader, EventWriter, Format, GESTURE_CLASSES, Geometry, Segment, write_labels};
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
const MAX_SEGMENT_SECONDS: f64 = 3600.0;

/// `--segment-seconds` in µs, checked: from `least_us` to [`MAX_SEGMENT_SECONDS`].
pub(crate) fn segment_us(seconds: f64, least_us: i64) -> Result<i64> {
    let least = least_us as f64 / 1e6;
    anyhow::ensure!(
        (least..=MAX_SEGMENT_SECONDS).contains(&seconds),
        "--segment-seconds must be {least} to {MAX_SEGMENT_SECONDS} (the gestures of DVS128 Gesture last about 6 s)"
    );
    Ok(((seconds * 1e6) as i64).max(least_us))
}

/// Emulator steps a read makes at most (see `Synthesis::read_chunk`): 16 ms of recording,
/// about a millisecond of work.
const STEPS_PER_READ: usize = 16;

/// Emulator time step, µs.
const STEP_US: i64 = 1000;

pub fn run(args: Args) -> Result<()> {
    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    let seg_us = segment_us(args.segment_seconds, STEP_US)?;
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
                        events += Synthesis::start(&args.out, args.seed, k, seg_us)?.with_progress(bar.clone()).make_all()?;
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

/// A recording made as it is read: an `EventReader` that performs the gestures one after
/// another, writes their events to the AEDAT file as it hands them out and completes the file at
/// the end. The demo plays it at once, where making the whole recording first took seconds (25 s
/// of gestures, 3 s here) before the window showed anything. The labels are written at the
/// start: the gestures' order and times are drawn first.
pub(crate) struct Synthesis {
    pub path: PathBuf,
    pub segments: Vec<Segment>,
    /// Events handed out so far.
    pub events: u64,
    geometry: Geometry,
    subject: Subject,
    params: DvsParams,
    rng: Rng,
    /// The gesture being performed and its segment's start, µs.
    current: Option<(i64, SceneSource<Gesture>)>,
    /// The segment to perform next.
    next: usize,
    /// `None` once the file is complete.
    writer: Option<EventWriter>,
    step: Vec<Event>,
    bar: indicatif::ProgressBar,
}

impl Synthesis {
    /// Draws subject `k` of `seed` and its gestures' order, writes the labels and opens the file.
    pub fn start(dir: &Path, seed: u64, k: usize, seg_us: i64) -> Result<Self> {
        let geometry = Geometry::DVS128;
        let mut rng = Rng::new(seed.wrapping_mul(1_000_003).wrapping_add(k as u64));
        let subject = Subject::random(geometry, &mut rng);
        let params = DvsParams { contrast: rng.range(0.15, 0.3) as f32, noise_hz: rng.range(0.02, 0.2), ..DvsParams::default() };
        let mut order: Vec<usize> = (0..GESTURE_CLASSES.len()).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let segments: Vec<Segment> = order
            .iter()
            .zip(0..)
            .map(|(&class, i): (&usize, i64)| {
                let start_us = i * (seg_us + GAP_US);
                Segment { class: class as u32 + 1, start_us, end_us: start_us + seg_us }
            })
            .collect();
        let name = format!("user{seed:02}_synthetic{k:02}");
        write_labels(&dir.join(format!("{name}_labels.csv")), &segments)?;
        let path = dir.join(format!("{name}.aedat"));
        let writer = EventWriter::create(&path, Format::Aedat31, geometry)?;
        let bar = indicatif::ProgressBar::hidden();
        Ok(Self {
            path,
            segments,
            events: 0,
            geometry,
            subject,
            params,
            rng,
            current: None,
            next: 0,
            writer: Some(writer),
            step: Vec::new(),
            bar,
        })
    }

    /// Counts each gesture made on `bar`.
    pub fn with_progress(mut self, bar: indicatif::ProgressBar) -> Self {
        self.bar = bar;
        self
    }

    /// Makes the rest of the recording and completes its file; returns how many events it holds.
    pub fn make_all(&mut self) -> Result<u64> {
        let mut buf = Vec::new();
        while self.read_chunk(&mut buf, CHUNK)? > 0 {
            buf.clear();
        }
        Ok(self.events)
    }

    /// Starts the next segment's gesture when none is under way; false at the end.
    fn gesture_under_way(&mut self) -> bool {
        if self.current.is_none() {
            let Some(segment) = self.segments.get(self.next) else { return false };
            let gesture = Gesture::random(self.subject.clone(), segment.class as usize - 1, 0, &mut self.rng);
            let duration = segment.end_us - segment.start_us;
            let source = SceneSource::new(gesture, self.geometry, self.params, STEP_US, Some(duration), self.rng.next_u64());
            self.current = Some((segment.start_us, source));
            self.next += 1;
        }
        true
    }
}

impl EventReader for Synthesis {
    fn format(&self) -> Format {
        Format::Aedat31
    }

    fn geometry(&self) -> Option<Geometry> {
        Some(self.geometry)
    }

    /// At most [`STEPS_PER_READ`] steps of the emulator a call: a player that asks for a
    /// chunk of 64 k events would otherwise wait a third of a second for it, and the picture
    /// would stop that long every few seconds.
    fn read_chunk(&mut self, out: &mut Vec<Event>, max: usize) -> dynapviz_events::Result<usize> {
        let before = out.len();
        let mut steps = 0;
        // Past the cap while nothing came: no events is the end.
        while out.len() - before < max && (steps < STEPS_PER_READ || out.len() == before) {
            steps += 1;
            if !self.gesture_under_way() {
                break;
            }
            let Some((t0, source)) = self.current.as_mut() else { break };
            self.step.clear();
            if !source.next_step(&mut self.step) {
                self.current = None;
                self.bar.inc(1);
                continue;
            }
            let t0 = *t0;
            self.step.iter_mut().for_each(|e| e.t += t0);
            if let Some(w) = self.writer.as_mut() {
                w.write(&self.step)?;
            }
            out.extend_from_slice(&self.step);
        }
        let n = out.len() - before;
        self.events += n as u64;
        if n == 0
            && let Some(w) = self.writer.take()
        {
            w.finish()?;
        }
        Ok(n)
    }
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

/// A recording left before its end (the demo's window closed): the file keeps what was played.
impl Drop for Synthesis {
    fn drop(&mut self) {
        if let Some(w) = self.writer.take()
            && let Err(e) = w.finish()
        {
            tracing::warn!("{}: {e}", self.path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use dynapviz_events::{EventReader, read_all};

    use super::Synthesis;

    /// What the demo plays as it is made is what the file holds at the end, and the labels are
    /// there before the first event.
    #[test]
    fn a_recording_made_as_it_is_read_is_its_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut made = Synthesis::start(dir.path(), 5, 0, 40_000).expect("start");
        assert!(dir.path().join("user05_synthetic00_labels.csv").exists());
        assert_eq!(made.segments.len(), 11);
        let mut played = Vec::new();
        let mut reads = 0;
        while made.read_chunk(&mut played, usize::MAX).expect("read") > 0 {
            reads += 1;
        }
        assert!(played.len() > 1000, "{} events", played.len());
        // A read makes at most 16 ms of gestures (more only while nothing comes; the pauses
        // between gestures are not stepped), and the last gesture is made: no quiet stretch
        // ended it early.
        let gesture_ms: i64 = made.segments.iter().map(|s| (s.end_us - s.start_us) / 1000).sum();
        assert!(reads as i64 >= gesture_ms / 16, "{reads} reads");
        let last = made.segments.last().expect("segments");
        assert!(played.last().is_some_and(|e| e.t >= last.start_us), "{:?}", played.last());
        assert_eq!(made.events, played.len() as u64);
        assert!(played.windows(2).all(|w| w[0].t <= w[1].t), "in time order");
        let mut file = dynapviz_events::open(&made.path).expect("open");
        assert_eq!(read_all(file.as_mut()).expect("read back"), played);
        // Read again, it stays at its end.
        assert_eq!(made.read_chunk(&mut played, 777).expect("read"), 0);
        // Left halfway, the file holds what was handed out.
        let mut part = Vec::new();
        let mut left = Synthesis::start(dir.path(), 6, 0, 40_000).expect("start");
        left.read_chunk(&mut part, 3000).expect("read");
        let path = left.path.clone();
        drop(left);
        let mut file = dynapviz_events::open(&path).expect("open");
        assert_eq!(read_all(file.as_mut()).expect("read back"), part);
    }
}
