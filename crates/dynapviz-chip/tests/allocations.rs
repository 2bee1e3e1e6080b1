//! The simulator's hot path allocates nothing per event: once warm, a call of thousands of
//! events allocates a handful of times (a buffer that grows, a thread and its channels), not in
//! proportion to the events. One test in this binary, so that no other test's allocations are
//! counted.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use dynapviz_chip::{Config, Mode, Monitors, Simulator};
use dynapviz_events::Event;
use dynapviz_model::convert::{DvsOptions, convert};
use dynapviz_model::discretize::discretize;
use dynapviz_model::{Ann, AnnLayer, Network, Tensor};

/// The system allocator, counting allocations and reallocations.
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's promise.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's promise.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's promise.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// Two conv layers (the second of 16 channels, so the window kernel runs, the first the
/// general one) with weights that keep them firing.
fn network() -> Network {
    let mut uniform = dynapviz_testkit::uniform(7);
    let mut weights = |n: usize| (0..n).map(|_| uniform() - 0.2).collect::<Vec<f32>>();
    let mut ann = Ann::default();
    let conv = |o: usize, i: usize, stride: usize, w: Vec<f32>| AnnLayer::Conv {
        weight: Tensor::new(vec![o, i, 3, 3], w).expect("tensor"),
        bias: None,
        stride: [stride, stride],
        padding: [1, 1],
    };
    ann.push("0", conv(8, 2, 2, weights(8 * 2 * 9)));
    ann.push("1", AnnLayer::Relu);
    ann.push("2", conv(16, 8, 1, weights(16 * 8 * 9)));
    ann.push("3", AnnLayer::Relu);
    let mut n = convert(&ann, [2, 64, 64], &DvsOptions::default()).expect("convert");
    discretize(&mut n);
    n
}

/// `n` events spread over the sensor, 2 µs apart from `t0`.
fn events(t0: i64, n: usize) -> Vec<Event> {
    let mut uniform = dynapviz_testkit::uniform(t0 as u64 + 1);
    (0..n)
        .map(|i| {
            let (x, y) = ((uniform() * 64.0) as u16 % 64, (uniform() * 64.0) as u16 % 64);
            Event::new(t0 + 2 * i as i64, x, y, uniform() < 0.5)
        })
        .collect()
}

#[test]
fn a_warm_simulator_allocates_nothing_per_event() {
    let net = network();
    // With the chip's leak: a bias on both layers, ticking every millisecond (80 ticks a call,
    // each ending a piece of the pipeline).
    let mut biased = net.clone();
    for l in &mut biased.layers {
        l.quant.as_mut().expect("discretized").bias = Some((0..l.out_channels as i16).map(|c| c % 3 - 1).collect());
    }
    const CALL: usize = 40_000;
    let (event, binned) = (Mode::Event, Mode::Binned { bin_us: 1000 });
    for (mode, threads, leak) in
        [(event, 1, None), (event, 2, None), (binned, 1, None), (binned, 2, None), (event, 1, Some(1000)), (event, 2, Some(1000))]
    {
        let config = Config { mode, monitors: Monitors::of([0, 1, 2]), threads, leak_tick_us: leak, ..Config::default() };
        let mut sim = Simulator::new(if leak.is_some() { &biased } else { &net }, config).expect("sim");
        let mut out = Vec::new();
        // Warm: buffers grow to what a call needs, the pipeline measures its layers.
        for call in 0..8 {
            sim.process(&events(call * 2 * CALL as i64, CALL), &mut out);
            out.clear();
        }
        let spikes_before: u64 = sim.counters().iter().map(|c| c.spikes).sum();
        let mut counted = Vec::new();
        for call in 8..12 {
            let input = events(call * 2 * CALL as i64, CALL);
            let before = ALLOCATIONS.load(Ordering::Relaxed);
            sim.process(&input, &mut out);
            counted.push(ALLOCATIONS.load(Ordering::Relaxed) - before);
            out.clear();
        }
        let spikes: u64 = sim.counters().iter().map(|c| c.spikes).sum::<u64>() - spikes_before;
        let mode = format!("{mode:?}{}", if leak.is_some() { " with a leak" } else { "" });
        assert!(spikes > CALL as u64, "{mode}, {threads} thread(s): the layers fire ({spikes} spikes in 4 calls)");
        // A per-event allocation would count 40 000 per call; the pipeline starts its threads
        // and channels once per call.
        let bound = if threads == 1 { 8 } else { 64 };
        assert!(counted.iter().all(|&n| n <= bound), "{mode}, {threads} thread(s): allocations per call of {CALL} events: {counted:?}");
        println!("{mode}, {threads} thread(s): allocations per warm call of {CALL} events: {counted:?}");
    }
}
