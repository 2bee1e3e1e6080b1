//! Stream throughput and latency: `cargo bench -p dynapviz-streams --bench chain`.
//! 1. events/s through the node chain on one core (rescale -> decimate -> background-activity
//!    filter -> frame accumulation -> spike collection and count), batched;
//! 2. event-to-display latency: a session playing a synthetic recording in real time, a display
//!    taking frames at 60 Hz; p50 / p99 of the time from a chunk entering the pipeline to the
//!    frame holding it being taken.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use dynapviz_chip::Spike;
use dynapviz_events::{Event, EventWriter, Format, Geometry};
use dynapviz_streams::nodes::filter::{BackgroundActivityFilter, Decimate, Rescale};
use dynapviz_streams::nodes::frame::FrameAccumulator;
use dynapviz_streams::nodes::readout::{SpikeCollector, SpikeCount};
use dynapviz_streams::rng::Rng;
use dynapviz_streams::session::{Session, SessionConfig};
use dynapviz_streams::source::{Controls, FileSource};
use dynapviz_streams::synth::{DvsParams, Scene, SceneSource};

fn chain_throughput() {
    let vga = Geometry::new(640, 480);
    let mut rng = Rng::new(3);
    let n = 20_000_000usize;
    let all: Vec<Event> =
        (0..n).map(|i| Event::new(i as i64 / 20, rng.below(640) as u16, rng.below(480) as u16, rng.below(2) == 1)).collect();
    let rescale = Rescale::fit(vga, Geometry::DVS128).expect("rescale");
    let mut decimate = Decimate::new(4, 3).expect("decimate");
    let mut ba = BackgroundActivityFilter::new(Geometry::DVS128, 2000).expect("filter");
    let mut frame = FrameAccumulator::new(Geometry::DVS128, Some(30_000.0));
    let mut collector = SpikeCollector::new(500.0).expect("collector");
    let count = SpikeCount { feature_count: 2 };
    let mut collections = Vec::new();
    let mut spikes: Vec<Spike> = Vec::new();
    let mut chunk = Vec::with_capacity(65536);
    let mut kept = 0u64;
    let mut total = [0u64; 2];
    let t = Instant::now();
    for part in all.chunks(65536) {
        chunk.clear();
        chunk.extend_from_slice(part);
        rescale.apply(&mut chunk);
        decimate.apply(&mut chunk);
        ba.apply(&mut chunk);
        frame.add(&chunk);
        spikes.clear();
        spikes.extend(chunk.iter().map(|e| Spike { t: e.t, layer: 0, c: u16::from(e.p), y: e.y, x: e.x }));
        collector.add(&spikes, &mut collections);
        for c in collections.drain(..) {
            let k = count.count(&c);
            total[0] += k[0];
            total[1] += k[1];
        }
        kept += chunk.len() as u64;
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "node chain, one core: {:.1} M events/s in ({n} events, {kept} kept after decimation and filtering, {} counted)",
        n as f64 / secs / 1e6,
        total[0] + total[1]
    );
}

fn latency() {
    let dir = std::env::temp_dir().join(format!("dynapviz-latency-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("scene.aedat4");
    let g = Geometry::DVS128;
    let mut rng = Rng::new(5);
    let mut src = SceneSource::new(Scene::random(g, 4, &mut rng), g, DvsParams::default(), 1000, Some(4_000_000), 5);
    let mut w = EventWriter::create(&path, Format::Aedat4, g).expect("create");
    let mut ev = Vec::new();
    while src.next_step(&mut ev) {
        w.write(&ev).expect("write");
        ev.clear();
    }
    w.finish().expect("finish");
    let source = FileSource::open(&path, false, Controls::new(1.0)).expect("open");
    let config = SessionConfig {
        frame_us: 16_667,
        decay_us: Some(30_000.0),
        geometry: g,
        collection_ms: 500.0,
        feature_count: 2,
        readout: None,
        analysis_capacity: 64,
        heatmap_layer: None,
        snapshot_us: None,
        record_input: None,
        record_analysis: None,
    };
    let session = Session::start(Box::new(source), Vec::new(), None, config).expect("session");
    let display = Arc::clone(&session.display);
    let done = Arc::new(AtomicBool::new(false));
    let stop = Arc::clone(&done);
    let viewer = std::thread::spawn(move || {
        let mut lat = Vec::new();
        let mut next = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            if let Some(f) = display.take() {
                lat.push(f.newest_input.elapsed().as_secs_f64() * 1e3);
            }
            next += Duration::from_micros(16_667);
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
        lat
    });
    let stats = session.drain(|_| {}).expect("session");
    done.store(true, Ordering::Relaxed);
    let mut lat = viewer.join().expect("viewer");
    lat.sort_by(f64::total_cmp);
    let q = |p: f64| lat.get(((lat.len().saturating_sub(1)) as f64 * p) as usize).copied().unwrap_or(f64::NAN);
    println!(
        "event-to-display latency, real-time playback, display at 60 Hz: p50 {:.2} ms, p99 {:.2} ms over {} frames ({} events)",
        q(0.5),
        q(0.99),
        lat.len(),
        stats.events
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    chain_throughput();
    latency();
}
