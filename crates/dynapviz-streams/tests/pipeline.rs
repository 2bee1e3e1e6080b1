//! The pipeline end to end: file -> rescale -> simulator -> collection -> count/readout equals the
//! same steps by hand and is deterministic; an overloaded display never stalls the source nor
//! loses analysis.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use dynapviz_chip::{Config, LayerCounters, Mode, Monitors, Simulator};
use dynapviz_events::{Event, EventWriter, Format, Geometry};
use dynapviz_model::convert::{DvsOptions, convert};
use dynapviz_model::discretize::discretize;
use dynapviz_model::{Ann, AnnLayer, Network, Tensor};
use dynapviz_streams::nodes::filter::Rescale;
use dynapviz_streams::nodes::readout::{EMPTY_COLLECTIONS_IN_FULL, MajorityReadout, SpikeCollector, SpikeCount};
use dynapviz_streams::session::{Analysis, EMPTY_SNAPSHOTS_IN_FULL, Session, SessionConfig, Source};
use dynapviz_streams::source::{Controls, FileSource};
use dynapviz_streams::synth::{DvsParams, Scene, SceneSource};

fn network() -> Network {
    let mut ann = Ann::default();
    let w1: Vec<f32> = (0..4 * 2 * 9).map(|i| ((i * 37 % 17) as f32 - 6.0) / 10.0).collect();
    ann.push("0", AnnLayer::Conv { weight: Tensor::new(vec![4, 2, 3, 3], w1).expect("t"), bias: None, stride: [2, 2], padding: [1, 1] });
    ann.push("1", AnnLayer::Relu);
    ann.push("2", AnnLayer::AvgPool { kernel: [4, 4], stride: [4, 4] });
    ann.push("3", AnnLayer::Flatten);
    let w2: Vec<f32> = (0..3 * 4 * 8 * 8).map(|i| ((i * 29 % 13) as f32 - 5.0) / 10.0).collect();
    ann.push("4", AnnLayer::Linear { weight: Tensor::new(vec![3, 256], w2).expect("t"), bias: None });
    let mut n = convert(&ann, [2, 64, 64], &DvsOptions::default()).expect("convert");
    discretize(&mut n);
    n
}

fn recording(dir: &std::path::Path) -> std::path::PathBuf {
    let g = Geometry::new(128, 128);
    let mut rng = dynapviz_streams::rng::Rng::new(7);
    let mut src = SceneSource::new(Scene::random(g, 3, &mut rng), g, DvsParams::default(), 1000, Some(400_000), 7);
    let mut events = Vec::new();
    while src.next_step(&mut events) {}
    assert!(events.len() > 10_000, "the scene makes events: {}", events.len());
    let path = dir.join("scene.aedat4");
    let mut w = EventWriter::create(&path, Format::Aedat4, g).expect("create");
    w.write(&events).expect("write");
    w.finish().expect("finish");
    path
}

fn sim(net: &Network) -> Simulator {
    sim_in(net, Mode::Event)
}

fn sim_in(net: &Network, mode: Mode) -> Simulator {
    Simulator::new(net, Config { mode, monitors: Monitors::of([net.layers.len()]), ..Config::default() }).expect("sim")
}

fn config() -> SessionConfig {
    SessionConfig {
        frame_us: 16_667,
        decay_us: Some(30_000.0),
        geometry: Geometry::new(64, 64),
        collection_ms: 50.0,
        feature_count: 3,
        readout: Some(MajorityReadout::new(0, 32000, 2, 2, 3).expect("readout")),
        analysis_capacity: 4,
        heatmap_layer: None,
        snapshot_us: None,
        record_input: None,
        record_analysis: None,
    }
}

/// What a session gave: its counts and readouts, its count of output spikes, and the layer
/// counters it reported last.
struct Run {
    analysis: Vec<Analysis>,
    output_spikes: u64,
    last_counters: Option<Vec<LayerCounters>>,
}

fn run_session(path: &std::path::Path, net: &Network, mode: Mode) -> Run {
    let source = FileSource::open(path, false, Controls::new(0.0)).expect("open");
    let rescale = Rescale::new(2.0, 2.0).expect("rescale");
    let session =
        Session::start(Box::new(source), vec![Box::new(move |e: &mut Vec<Event>| rescale.apply(e))], Some(sim_in(net, mode)), config())
            .expect("start");
    let mut analysis = Vec::new();
    let stats = session.drain(|a| analysis.push(a)).expect("session");
    let last_counters = analysis.iter().rev().find_map(|a| match a {
        Analysis::Layers { counters, .. } => Some(counters.clone()),
        _ => None,
    });
    analysis.retain(|a| matches!(a, Analysis::Counts { .. } | Analysis::Readout { .. }));
    Run { analysis, output_spikes: stats.output_spikes, last_counters }
}

/// In both modes; the binned mode's last bin runs when the recording ends, and its spikes and
/// work count as the others'.
#[test]
fn session_equals_the_same_steps_by_hand_and_is_deterministic() {
    for mode in [Mode::Event, Mode::Binned { bin_us: 1000 }] {
        session_equals_the_same_steps_by_hand(mode);
    }
}

fn session_equals_the_same_steps_by_hand(mode: Mode) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = recording(dir.path());
    let net = network();
    let run = run_session(&path, &net, mode);
    assert_eq!(run.analysis, run_session(&path, &net, mode).analysis, "deterministic");

    // By hand.
    let mut r = dynapviz_events::open(&path).expect("open");
    let mut events = dynapviz_events::read_all(r.as_mut()).expect("read");
    Rescale::new(2.0, 2.0).expect("rescale").apply(&mut events);
    let mut s = sim_in(&net, mode);
    let mut spikes = Vec::new();
    s.process(&events, &mut spikes);
    s.finish(&mut spikes);
    assert_eq!(run.output_spikes, spikes.len() as u64, "{mode:?}");
    assert_eq!(run.last_counters.as_deref(), Some(s.counters()), "{mode:?}");
    let mut collector = SpikeCollector::new(50.0).expect("collector");
    let mut collections = Vec::new();
    collector.start(events[0].t);
    collector.add(&spikes, &mut collections);
    collector.advance(events.last().expect("events").t, &mut collections);
    collector.finish(&mut collections);
    let readout = MajorityReadout::new(0, 32000, 2, 2, 3).expect("readout");
    let mut want = Vec::new();
    for c in &collections {
        want.push(Analysis::Counts { t_us: c.end_us, counts: SpikeCount { feature_count: 3 }.count(c) });
        want.push(Analysis::Readout { t_us: c.end_us, feature: readout.decide(c), predicted: readout.predict(c).is_some() });
    }
    assert!(spikes.len() > 10, "the network answers: {} output spikes", spikes.len());
    assert_eq!(run.analysis, want, "{mode:?}");
}

/// A source of `rate` events per second of event time, as fast as possible, for `seconds`.
struct Flood {
    t: i64,
    end: i64,
    per_chunk: usize,
    step_ns: f64,
    n: u64,
}

impl Source for Flood {
    fn next_chunk(&mut self, out: &mut Vec<Event>) -> Result<bool, String> {
        if self.t >= self.end {
            return Ok(false);
        }
        for _ in 0..self.per_chunk {
            self.n += 1;
            let t = (self.n as f64 * self.step_ns / 1000.0) as i64;
            out.push(Event::new(t, (self.n % 128) as u16, ((self.n / 128) % 128) as u16, self.n.is_multiple_of(3)));
            self.t = t;
        }
        Ok(true)
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}

#[test]
fn overload_keeps_memory_flat_counts_skips_and_loses_no_analysis() {
    // 20 M events/s of event time; DYNAPVIZ_OVERLOAD_SECONDS=30 for the full run.
    let seconds: i64 = std::env::var("DYNAPVIZ_OVERLOAD_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(2);
    let flood = Flood { t: 0, end: seconds * 1_000_000, per_chunk: 65536, step_ns: 50.0, n: 0 };
    let mut cfg = config();
    cfg.geometry = Geometry::DVS128;
    cfg.feature_count = 2;
    cfg.collection_ms = 100.0;
    let session = Session::start(Box::new(flood), Vec::new(), None, cfg).expect("start");
    let display = Arc::clone(&session.display);
    let done = Arc::new(AtomicBool::new(false));
    let stop = Arc::clone(&done);
    // A slow display: takes a frame every 30 ms.
    let viewer = std::thread::spawn(move || {
        let mut taken = 0u64;
        while !stop.load(Ordering::Relaxed) {
            if display.take().is_some() {
                taken += 1;
            }
            std::thread::sleep(Duration::from_millis(30));
        }
        taken + u64::from(display.take().is_some())
    });
    let before = rss_kib();
    let mut peak = before;
    let mut collections = 0u64;
    let mut events_counted = 0u64;
    let display = Arc::clone(&session.display);
    let stats = session
        .drain(|a| {
            if let Analysis::Counts { counts, .. } = a {
                collections += 1;
                events_counted += counts.iter().sum::<u64>();
                peak = peak.max(rss_kib());
            }
        })
        .expect("session");
    done.store(true, Ordering::Relaxed);
    let taken = viewer.join().expect("viewer");
    assert_eq!(events_counted, stats.events, "the analysis sink received every event");
    assert_eq!(collections, stats.collections);
    assert_eq!(collections as i64, seconds * 10 + 1, "one collection per 100 ms (+ the last open one)");
    assert_eq!(display.published(), taken + display.skipped(), "every frame was shown or counted as skipped");
    assert!(display.skipped() > 0, "the display was too slow: frames must have been skipped");
    assert!(peak - before < 200_000, "memory grew by {} KiB", peak - before);
}

/// Chunks of events, handed out in turn.
struct Chunks(Vec<Vec<Event>>);

impl Source for Chunks {
    fn next_chunk(&mut self, out: &mut Vec<Event>) -> Result<bool, String> {
        if self.0.is_empty() {
            return Ok(false);
        }
        out.append(&mut self.0.remove(0));
        Ok(true)
    }
}

#[test]
fn a_gap_of_days_costs_a_few_frames_and_collections_not_millions() {
    // 100 ms of events, a gap (a pause in the recording, or a corrupt timestamp days ahead),
    // 100 ms more; in one chunk and split at the gap. With the simulated chip, so that its power
    // samples cross the gap too, and a snapshot due every second, as `--headless` asks.
    let burst =
        |t0: i64| (0..1000).map(|i| Event::new(t0 + i * 100, (i % 64) as u16, (i / 64 % 64) as u16, i % 2 == 0)).collect::<Vec<_>>();
    let net = network();
    for gap in [5_000_000, 12 * 86_400_000_000] {
        let (before, after) = (burst(0), burst(gap));
        for chunks in [vec![[before.clone(), after.clone()].concat()], vec![before.clone(), after.clone()]] {
            let mut cfg = config();
            cfg.snapshot_us = Some(1_000_000);
            let session = Session::start(Box::new(Chunks(chunks)), Vec::new(), Some(sim(&net)), cfg).expect("start");
            let display = Arc::clone(&session.display);
            let (mut collections, mut snapshots, mut power) = (0u64, 0u64, 0u64);
            let stats = session
                .drain(|a| match a {
                    Analysis::Counts { .. } => collections += 1,
                    Analysis::Snapshot(_) => snapshots += 1,
                    Analysis::Power(_) => power += 1,
                    _ => {}
                })
                .expect("session");
            assert_eq!(stats.events, 2000);
            if gap == 5_000_000 {
                // A short pause keeps its snapshots: one per second of it.
                assert_eq!(snapshots, 5, "{gap} µs");
                continue;
            }
            // 6 frames per burst (16.7 ms each); snapshots: of the first two minutes of the gap,
            // of the empty frame before the second burst, and the one due at the 12 days.
            assert_eq!(snapshots as usize, EMPTY_SNAPSHOTS_IN_FULL + 2);
            assert!(display.published() <= 16 + snapshots, "{} frames", display.published());
            // 2 collections per burst (50 ms each) and the empty ones in full.
            assert!(collections <= 8 + EMPTY_COLLECTIONS_IN_FULL as u64, "{collections} collections");
            assert!(power <= 5 * 20, "{power} power samples");
        }
    }
}

/// A leak that fires all through a gap: the session takes the simulator's spikes as they come
/// out (a slice at a time, so that a long gap does not hold them all, see
/// `Simulator::process_sliced`), for the heat map of layer 1 and the output's counts, and they
/// are the counts of the same events run by hand.
#[test]
fn a_leak_firing_through_a_gap_gives_the_counts_of_the_events_run_by_hand() {
    let mut net = network();
    let first = &mut net.layers[0];
    let q = first.quant.as_mut().expect("discretized");
    // Every neuron of layer 1 (4 x 32 x 32) reaches its threshold at every 1 ms tick.
    q.bias = Some(vec![q.threshold as i16; first.out_channels]);
    let output = net.layers.len();
    let sim = || {
        let config = Config { leak_tick_us: Some(1000), monitors: Monitors::of([1, output]), ..Config::default() };
        Simulator::new(&net, config).expect("sim")
    };
    let burst = |t0: i64| (0..500).map(|i| Event::new(t0 + i * 100, (i % 64) as u16, (i / 64 % 64) as u16, i % 2 == 0)).collect::<Vec<_>>();
    let (before, after) = (burst(0), burst(2_000_000));
    let mut cfg = config();
    cfg.heatmap_layer = Some((1, dynapviz_streams::session::HeatShape { channels: 4, width: 8, height: 8 }));
    let session = Session::start(Box::new(Chunks(vec![before.clone(), after.clone()])), Vec::new(), Some(sim()), cfg).expect("start");
    let mut counts = Vec::new();
    let stats = session
        .drain(|a| {
            if let Analysis::Counts { t_us, counts: c } = a {
                counts.push((t_us, c));
            }
        })
        .expect("session");

    // By hand, keeping the output's spikes only.
    let (mut s, mut spikes) = (sim(), Vec::new());
    let mut chunks = vec![before, after].into_iter();
    let next = |chunk: &mut Vec<Event>| {
        *chunk = chunks.next().unwrap_or_default();
        Ok::<_, ()>(!chunk.is_empty())
    };
    s.process_stream(next, |made, _| {
        spikes.extend(made.iter().filter(|s| usize::from(s.layer) == output));
        Ok(())
    })
    .expect("stream");
    let mut rest = Vec::new();
    s.finish(&mut rest);
    spikes.extend(rest.iter().filter(|s| usize::from(s.layer) == output));
    let fired: u64 = s.counters()[1].spikes;
    assert!(fired >= 2000 * 4096, "layer 1 fires at every tick of the gap: {fired} spikes");
    assert_eq!(stats.output_spikes, spikes.len() as u64);
    let mut collector = SpikeCollector::new(50.0).expect("collector");
    let mut collections = Vec::new();
    collector.start(0);
    collector.add(&spikes, &mut collections);
    collector.advance(2_000_000 + 499 * 100, &mut collections);
    collector.finish(&mut collections);
    let want: Vec<_> = collections.iter().map(|c| (c.end_us, SpikeCount { feature_count: 3 }.count(c))).collect();
    assert_eq!(counts, want);
}

/// A live stream that goes quiet (its source returns empty chunks) shows the frame it was
/// making, without waiting for an event past the frame's end: a camera that stops sending
/// (DV restarting, a still scene) leaves its last events on the screen, not an empty plot.
#[test]
fn a_quiet_stream_shows_the_frame_it_was_making() {
    /// One chunk of `events`, then nothing (but not the end) until `stop`.
    struct QuietAfter(Option<Vec<Event>>, Arc<AtomicBool>);
    impl Source for QuietAfter {
        fn next_chunk(&mut self, out: &mut Vec<Event>) -> Result<bool, String> {
            if let Some(mut events) = self.0.take() {
                out.append(&mut events);
            } else {
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(!self.1.load(Ordering::Relaxed))
        }
    }
    let events: Vec<Event> = (0..20).map(|i| Event::new(1_000 + i * 100, (i % 8) as u16, 3, true)).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let session = Session::start(Box::new(QuietAfter(Some(events), Arc::clone(&stop))), Vec::new(), None, config()).expect("start");
    let display = Arc::clone(&session.display);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let shown = loop {
        if let Some(frame) = display.take() {
            break frame;
        }
        assert!(std::time::Instant::now() < deadline, "no frame while the stream is quiet");
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(!session.is_finished(), "shown while the stream goes on");
    assert_eq!(shown.events_total, 20);
    assert!(shown.on.iter().sum::<f32>() > 0.0, "the events are in the picture");
    // Shown once: the quiet that follows publishes nothing new.
    std::thread::sleep(Duration::from_millis(50));
    assert!(display.take().is_none());
    stop.store(true, Ordering::Relaxed);
    session.join().expect("session");
}

/// The events after the last frame boundary show when the stream ends: a stream shorter than
/// a frame (a camera switched off at once) shows all its events, not an empty plot.
#[test]
fn the_frame_a_stream_ends_in_is_shown() {
    for span_us in [5_000i64, 40_000] {
        let events: Vec<Event> = (0..50).map(|i| Event::new(1_000 + i * span_us / 50, (i % 8) as u16, 3, i % 2 == 0)).collect();
        let session = Session::start(Box::new(Chunks(vec![events])), Vec::new(), None, config()).expect("start");
        let display = Arc::clone(&session.display);
        session.join().expect("session");
        let last = display.take().expect("a frame");
        assert_eq!(last.events_total, 50, "{span_us} µs");
        let shown: f32 = last.on.iter().chain(&last.off).sum();
        assert!(shown > 0.0, "{span_us} µs: the last events are in the picture");
        assert!(last.t_us > 1_000 + span_us - span_us / 50, "{span_us} µs: the frame after the last event");
    }
}
