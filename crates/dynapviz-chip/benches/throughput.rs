//! Simulator throughput: `cargo bench -p dynapviz-chip --bench throughput`.
//! The sinabs gesture network on the golden DVS input (2.5 M events/s, dense) and on the same
//! input decimated to DVS-gesture-like rates (830, 313 and 104 k events/s); prints input
//! events/s, synaptic operations/s per core and the real-time factor, for the event-driven mode
//! on one thread (with the fastest kernel this CPU has, and with AVX2 when that is not it) and
//! on one per core, at least two (`eventN`, N threads), for the binned mode on one thread and
//! on two (`binned2`), and for the event mode with the chip's leak on a copy of the network
//! with a bias (`leak 1 ms`), on one thread and on one per core.
//! Last, per rate, the `floor`: the event mode's synaptic adds alone (see `common/floor.rs`),
//! and how fast the event mode on one thread is against it.
//! `DYNAPVIZ_BENCH_ONLY=binned` runs only the modes whose name starts with that;
//! `DYNAPVIZ_BENCH_ONLY=event,floor` those that start with either.

#[path = "common/floor.rs"]
mod floor;

use std::time::Instant;

use dynapviz_chip::{Config, Kernel, Mode, Monitors, Simulator};
use dynapviz_events::Event;
use dynapviz_model::Pipeline;

fn main() {
    // `RUST_LOG=dynapviz_chip=debug` shows the pipeline's segments: cuts, busy time per layer.
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).with_writer(std::io::stderr).init();
    let Some(shared) = dynapviz_testkit::shared("fixtures/golden/gesture_r50") else { return };
    let t0 = Instant::now();
    let net = Pipeline::new(&shared.join("model.onnx")).input_shape([2, 128, 128]).device("speck2e").build().expect("model");
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;
    let mut r = dynapviz_events::open(&shared.join("input.csv")).expect("input");
    let dense = dynapviz_events::read_all(r.as_mut()).expect("events");
    let span_us = (dense.last().map_or(0, |e| e.t) - dense[0].t + 1) as f64;
    println!("model load + convert + map: {load_ms:.1} ms");
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get().max(2));
    let many = format!("event{cores}");
    let binned_many = format!("binned{}", cores.min(2));
    let only = std::env::var("DYNAPVIZ_BENCH_ONLY").unwrap_or_default();
    let runs_mode = |name: &str| only.split(',').any(|prefix| name.starts_with(prefix));
    // The same network with a small bias on every layer, run with the chip's leak (a tick per
    // millisecond adds it to every neuron): the leak acts on every neuron of every layer.
    let mut leaky = net.clone();
    for l in &mut leaky.layers {
        if let Some(q) = l.quant.as_mut() {
            q.bias = Some((0..l.out_channels).map(|c| [1, -2, 0, 3][c % 4]).collect());
        }
    }
    for keep_every in [1usize, 3, 8, 24] {
        // Decimate and stretch time so the rate drops while the scene stays the same; repeat
        // to get a few seconds of input.
        let mut input: Vec<Event> = Vec::new();
        for rep in 0..(keep_every * 4) as i64 {
            input.extend(dense.iter().step_by(keep_every).map(|e| Event::new(e.t + rep * span_us as i64, e.x, e.y, e.p)));
        }
        let sim_secs = (input.last().map_or(0, |e| e.t) - input[0].t) as f64 * 1e-6;
        let rate = input.len() as f64 / sim_secs;
        let binned = Mode::Binned { bin_us: 1000 };
        let runs = [
            ("event", Mode::Event, 1, Kernel::Avx512),
            ("event", Mode::Event, 1, Kernel::Avx2),
            (many.as_str(), Mode::Event, cores, Kernel::Avx512),
            ("binned", binned, 1, Kernel::Avx512),
            (binned_many.as_str(), binned, 2, Kernel::Avx512),
            ("leak 1 ms", Mode::Event, 1, Kernel::Avx512),
            ("leak 1 ms", Mode::Event, cores, Kernel::Avx512),
        ];
        // The wall time of the event mode on one thread with the fastest kernel.
        let mut event_wall = None;
        for (name, mode, threads, kernel) in runs.into_iter().filter(|run| runs_mode(run.0)) {
            let (net, leak_tick_us) = if name.starts_with("leak") { (&leaky, Some(1000)) } else { (&net, None) };
            if kernel != Kernel::Avx512 && kernel.on_this_cpu() == Kernel::Avx512.on_this_cpu() {
                // This CPU has nothing faster than `kernel`: the run above was this one.
                continue;
            }
            let config = Config { mode, monitors: Monitors::of([net.layers.len()]), threads, kernel, leak_tick_us, ..Config::default() };
            let mut sim = Simulator::new(net, config).expect("sim");
            let name = if mode == Mode::Event && leak_tick_us.is_none() { format!("{name} {:?}", sim.kernel()) } else { name.to_string() };
            let mut out = Vec::new();
            let t = Instant::now();
            // One call, as `simulate` streams a recording: the pipeline of two threads runs
            // through the input without draining in between.
            sim.process(&input, &mut out);
            sim.finish(&mut out);
            let wall = t.elapsed().as_secs_f64();
            if name.starts_with("event Avx512") {
                event_wall = Some(wall);
            }
            let c = sim.counters();
            let synops: u64 = c.iter().map(|l| l.synaptic_ops).sum();
            let busiest = c.iter().map(|l| l.synaptic_ops).max().unwrap_or(0);
            println!(
                "{name:>13} mode, input {:>6.0} k ev/s: {:>6.2} M input ev/s, {:>6.3} G synops/s on {threads} CPU thread(s) ({:.3} G/s of it in the busiest chip core), {:>7.1}x real time",
                rate / 1e3,
                input.len() as f64 / wall / 1e6,
                synops as f64 / wall / 1e9,
                busiest as f64 / wall / 1e9,
                sim_secs / wall
            );
        }
        if runs_mode("floor") {
            run_floor(&net, &input, rate, event_wall);
        }
    }
}

/// Times the floor of the event mode on `input` (see `common/floor.rs`); prints it as the other
/// runs, and the event mode's speed against it.
fn run_floor(net: &dynapviz_model::Network, input: &[Event], rate: f64, event_wall: Option<f64>) {
    // Every layer's input: the spikes of the DVS layer and of every layer but the last.
    let config = Config { monitors: Monitors::of(0..net.layers.len()), ..Config::default() };
    let mut sim = Simulator::new(net, config).expect("sim");
    let mut spikes = Vec::new();
    sim.process(input, &mut spikes);
    sim.finish(&mut spikes);
    let Some(mut floor) = floor::Floor::new(net, &spikes) else {
        println!("floor: not measured (the network is not a chain of layers each feeding the next)");
        return;
    };
    drop(spikes);
    let out_channels: Vec<usize> = net.layers.iter().map(|l| l.out_channels).collect();
    let t = Instant::now();
    let (synops, per_layer) = floor.run(&out_channels);
    let wall = t.elapsed().as_secs_f64();
    // As the pipeline's segments print the event mode's (`RUST_LOG=dynapviz_chip=debug`).
    let ms: Vec<f64> = per_layer.iter().map(|s| (s * 1e4).round() / 10.0).collect();
    tracing::debug!("floor: ms per layer {ms:?}");
    let simulated: u64 = sim.counters().iter().map(|l| l.synaptic_ops).sum();
    assert_eq!(synops, simulated, "the floor adds what the simulator did");
    let against = event_wall.map_or(String::new(), |e| format!(", the event mode on one thread at {:.0} % of it", wall / e * 100.0));
    println!(
        "{:>13} mode, input {:>6.0} k ev/s: {:>6.2} M input ev/s, {:>6.3} G synops/s on 1 CPU thread(s){against}",
        "floor",
        rate / 1e3,
        input.len() as f64 / wall / 1e6,
        synops as f64 / wall / 1e9,
    );
}
