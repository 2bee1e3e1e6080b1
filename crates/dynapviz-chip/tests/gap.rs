//! Neurons that fire all through a long gap in the input, by the leak (event mode) or by a bias
//! in every empty bin (binned mode), hand their spikes to the sink of `process_stream` or
//! `process_sliced` as they go, a bounded number at a time, and hold bounded memory however
//! long the gap (before: every spike of a gap was held until the event after it; an hour at
//! 1 ms ticks took 24 GB). One test in this binary, so that no other test's memory is counted.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use dynapviz_chip::{Config, GAP_SLICE_SPIKES, Mode, Monitors, PowerSample, Simulator, Spike};
use dynapviz_events::Event;
use dynapviz_model::convert::{DvsOptions, convert};
use dynapviz_model::network::QuantParams;
use dynapviz_model::{Ann, AnnLayer, Network, Tensor};

/// The system allocator, keeping the bytes allocated and their most since [`reset_peak`].
struct Peak;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grow(by: usize) {
    let live = LIVE.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

/// Starts a new peak at the bytes allocated now; returns them.
fn reset_peak() -> usize {
    let live = LIVE.load(Ordering::Relaxed);
    PEAK.store(live, Ordering::Relaxed);
    live
}

// SAFETY: forwards to the system allocator unchanged.
unsafe impl GlobalAlloc for Peak {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grow(layout.size());
        // SAFETY: the caller's promise.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's promise.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Counted as the new block allocated before the old is freed, as it may be.
        grow(new_size);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's promise.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static PEAK_ALLOCATOR: Peak = Peak;

/// Neurons a layer of [`biased_pair`]: spikes a firing layer makes per tick or bin.
const NEURONS: usize = 16 * 16;

/// Two layers of one channel on a 16x16 map, 1x1 kernels of weight 0 and threshold 10, charged
/// only by their biases (`None`: no bias; 10: every neuron fires at every tick or bin).
fn biased_pair(biases: [Option<i16>; 2]) -> Network {
    let mut ann = Ann::default();
    for i in 0..2 {
        let weight = Tensor::new(vec![1, 1, 1, 1], vec![0.1]).expect("tensor");
        ann.push(format!("{i}c"), AnnLayer::Conv { weight, bias: None, stride: [1, 1], padding: [0, 0] });
        ann.push(format!("{i}r"), AnnLayer::Relu);
    }
    let mut n = convert(&ann, [1, 16, 16], &DvsOptions::default()).expect("convert");
    for (l, bias) in n.layers.iter_mut().zip(biases) {
        let bias = bias.map(|b| vec![b]);
        l.quant = Some(QuantParams { weights: vec![0], bias, threshold: 10, min_v_mem: -10, scale: 1.0, initial_v_mem: None });
    }
    n
}

/// How the events reach the simulator.
#[derive(Clone, Copy, Debug)]
enum Feed {
    /// `process_stream`, all in one chunk.
    Stream,
    /// `process_sliced`, one call per event.
    Sliced,
}

/// What `feed` made of one event at 0 and one at `gap_us`: the spikes (kept with `keep`,
/// counted otherwise), the most given to the sink at once, the sink's calls, and the most
/// bytes allocated during the run beyond those before it (the spikes kept here not counted).
fn stream(n: &Network, config: &Config, feed: Feed, gap_us: i64, keep: bool) -> (Vec<Spike>, usize, usize, usize, usize) {
    let events = [Event::new(0, 0, 0, true), Event::new(gap_us, 0, 0, true)];
    let mut sim = Simulator::new(n, config.clone()).expect("sim");
    // Room for every spike before the run, so that only the simulator's memory grows in it.
    let mut streamed = Vec::with_capacity(if keep { 2 * NEURONS * (gap_us as usize / 1000 + 2) } else { 0 });
    let (mut count, mut largest, mut calls) = (0, 0, 0);
    let mut sink = |spikes: &[Spike], _: &[PowerSample]| {
        (count, largest, calls) = (count + spikes.len(), largest.max(spikes.len()), calls + 1);
        if keep {
            streamed.extend_from_slice(spikes);
        }
        Ok::<_, ()>(())
    };
    let before = reset_peak();
    match feed {
        Feed::Stream => {
            let mut given = false;
            let next = |chunk: &mut Vec<Event>| {
                chunk.clear();
                chunk.extend(events.iter().filter(|_| !given));
                given = true;
                Ok(!chunk.is_empty())
            };
            sim.process_stream(next, sink).expect("stream");
        }
        Feed::Sliced => events.chunks(1).for_each(|e| sim.process_sliced(e, &mut sink).expect("sliced")),
    }
    let peak = PEAK.load(Ordering::Relaxed) - before;
    (streamed, count, largest, calls, peak)
}

#[test]
fn neurons_firing_through_a_long_gap_leave_in_bounded_slices_and_memory() {
    let binned = |threads| Config {
        mode: Mode::Binned { bin_us: 1000 },
        threads,
        // The two threads take the first layer and the second, whatever was measured.
        thread_gain: 0.0,
        parallel_min_events: 0,
        ..Config::default()
    };
    // The event mode's leak: on two threads, the pipeline's stages ticking their layers.
    let leak = |threads| Config { mode: Mode::Event, leak_tick_us: Some(1000), ..binned(threads) };
    let cases = [
        ("leak", [Some(10), None], leak(1)),
        ("leak on two threads, the second layer firing", [None, Some(10)], leak(2)),
        ("leak on two threads, both layers firing", [Some(10), Some(10)], leak(2)),
        ("binned", [Some(10), None], binned(1)),
        ("binned, the worker firing", [None, Some(10)], binned(2)),
        ("binned, both parts firing", [Some(10), Some(10)], binned(2)),
    ];
    for ((case, biases, config), feed) in cases.into_iter().flat_map(|c| [(c.clone(), Feed::Stream), (c, Feed::Sliced)]) {
        let case = format!("{case}, {feed:?}");
        let n = biased_pair(biases);
        let config = Config { monitors: Monitors::of([1, 2]), ..config };
        // 256 spikes a firing layer in each of the 2000 ticks or bins of a 2 s gap.
        let mut whole = Vec::new();
        Simulator::new(&n, config.clone())
            .expect("sim")
            .process(&[Event::new(0, 0, 0, true), Event::new(2_000_000, 0, 0, true)], &mut whole);
        let firing = biases.iter().flatten().count();
        assert!(whole.len() >= 2000 * NEURONS * firing, "{case}: {} spikes", whole.len());
        let (streamed, _, largest, calls, short_peak) = stream(&n, &config, feed, 2_000_000, true);
        assert_eq!(streamed, whole, "{case}");
        assert!(calls >= 3 && largest <= GAP_SLICE_SPIKES + 2 * NEURONS, "{case}: {calls} calls, the largest of {largest} spikes");
        // Ten times the gap: ten times the spikes (80-160 MB of them), not ten times the memory.
        // Besides, a few slices on their way between two threads, as many as the scheduler lets
        // pile up before a thread waits (the channels bound them): 1.6-4.7 MB on two threads
        // from run to run, where holding the long gap's spikes would take 80 MB and more.
        let (_, count, _, _, long_peak) = stream(&n, &config, feed, 20_000_000, false);
        assert!(count >= 20_000 * NEURONS * firing, "{case}: {count} spikes");
        let slices = 8 * GAP_SLICE_SPIKES * std::mem::size_of::<Spike>();
        assert!(long_peak < 2 * short_peak + slices, "{case}: {long_peak} bytes at most in a gap of 20 s, {short_peak} in one of 2 s");
        println!("{case}: {short_peak} bytes at most in a gap of 2 s, {long_peak} in one of 20 s");
    }
}
