//! The optimised event mode against a plain reference written from DESIGN.md §5 alone: the
//! whole spike stream (order, timestamps, addresses) and the counters must be identical, on
//! random networks of every geometry the chip allows and on the sinabs gesture network.

use dynapviz_chip::dvs;
use dynapviz_chip::{BusyModel, Config, Kernel, LayerCounters, Mode, Monitors, OutputDecimator, PowerSample, Simulator, Spike};
use dynapviz_events::Event;
use dynapviz_model::convert::{DvsOptions, convert};
use dynapviz_model::discretize::discretize;
use dynapviz_model::network::{DvsLayer, Reset};
use dynapviz_model::{Ann, AnnLayer, Network, Pipeline, Tensor};
use proptest::prelude::*;

const LATENCY_NS: i64 = 370;

/// Spikes past which the reference gives up on a run: a few of the random networks fire so much
/// that each sensor event makes millions of spikes, gigabytes over an input (one was killed at
/// 24 GB), and such a case is rejected, not run.
const MOST_SPIKES: usize = 1 << 22;

/// The chip, event by event, with nothing clever: for every input event, every neuron under the
/// kernel in raster order (output row, column, channel); int16 saturation, `min_v_mem`, one spike per
/// neuron per event; spikes go through sum pooling and the output decimator to the destinations'
/// queues.
struct Reference {
    dvs: DvsLayer,
    layers: Vec<RefLayer>,
    destinations: Vec<Vec<usize>>,
    /// The chip's leak: every `leak_tick_us`, each layer's bias added to every neuron.
    leak_tick_us: Option<i64>,
}

/// Settings of the chip beyond the network's.
#[derive(Clone, Debug, Default)]
struct Chip {
    leak_tick_us: Option<i64>,
    decimators: Vec<OutputDecimator>,
}

struct RefLayer {
    in_shape: [usize; 3],
    o: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    pool: [usize; 2],
    conv_out: [usize; 2],
    out_shape: [usize; 3],
    weights: Vec<i8>,
    bias: Option<Vec<i16>>,
    threshold: i32,
    min: i32,
    reset: Reset,
    v: Vec<i32>,
    /// The output decimator: one spike of every `group` passes; spikes since the last passed.
    decimator: Option<(u32, u32)>,
    synops: u64,
    /// Synaptic operations per millisecond of their input's arrival.
    synops_per_ms: std::collections::BTreeMap<i64, u64>,
    spikes: u64,
    /// Sums the int16 saturation cut at the top.
    saturated: u64,
}

impl Reference {
    fn new(n: &Network) -> Self {
        let layers = n
            .layers
            .iter()
            .map(|l| {
                let q = l.quant.as_ref().expect("discretized");
                RefLayer {
                    in_shape: l.in_shape,
                    o: l.out_channels,
                    kernel: l.kernel,
                    stride: l.stride,
                    padding: l.padding,
                    pool: l.pool,
                    conv_out: l.conv_out,
                    out_shape: l.out_shape,
                    weights: q.weights.clone(),
                    bias: q.bias.clone(),
                    threshold: q.threshold,
                    min: q.min_v_mem.clamp(-32768, 32767),
                    reset: l.reset,
                    v: vec![0; l.out_channels * l.conv_out[0] * l.conv_out[1]],
                    decimator: None,
                    synops: 0,
                    synops_per_ms: Default::default(),
                    spikes: 0,
                    saturated: 0,
                }
            })
            .collect();
        let destinations = n.layers.iter().map(|l| l.destinations.iter().map(|d| d - 1).collect()).collect();
        Self { dvs: n.dvs.clone(), layers, destinations, leak_tick_us: None }
    }

    fn with(n: &Network, chip: &Chip) -> Self {
        let mut r = Self::new(n);
        r.leak_tick_us = chip.leak_tick_us;
        for d in &chip.decimators {
            r.layers[d.layer - 1].decimator = Some((2 << d.interval, 0));
        }
        r
    }

    /// Every layer's spikes (the DVS layer's too), in the order the chip would send them;
    /// `None` past [`MOST_SPIKES`].
    fn run(&mut self, events: &[Event]) -> Option<Vec<Spike>> {
        let mut out = Vec::new();
        // The first tick: the first multiple of the tick after the first event.
        let mut next_tick = events.first().zip(self.leak_tick_us).map(|(e, tick)| e.t - e.t.rem_euclid(tick) + tick);
        for e in events {
            while let (Some(at), Some(tick)) = (next_tick, self.leak_tick_us)
                && at <= e.t
            {
                self.tick(at, &mut out);
                next_tick = Some(at + tick);
            }
            // The DVS layer's own mapping is tested on its own; inputs here are in range.
            let (c, y, x) = dvs::map(&self.dvs, e).expect("in range");
            out.push(Spike { t: e.t, layer: 0, c: c as u16, y: y as u16, x: x as u16 });
            let mut queues: Vec<Vec<(i64, usize, usize, usize)>> = vec![Vec::new(); self.layers.len()];
            for &d in &self.dvs.destinations {
                queues[d - 1].push((e.t * 1000, c, y, x));
            }
            self.propagate(queues, &mut out);
            if out.len() > MOST_SPIKES {
                return None;
            }
        }
        Some(out)
    }

    /// A leak tick at `at` µs: every layer's bias added to each of its neurons in raster order,
    /// as an input event would add a weight; then the spikes go through the layers.
    fn tick(&mut self, at: i64, out: &mut Vec<Spike>) {
        let mut queues: Vec<Vec<(i64, usize, usize, usize)>> = vec![Vec::new(); self.layers.len()];
        for (li, l) in self.layers.iter_mut().enumerate() {
            let Some(bias) = l.bias.clone() else { continue };
            let [fh, fw] = l.conv_out;
            for (oy, ox) in (0..fh).flat_map(|oy| (0..fw).map(move |ox| (oy, ox))) {
                for (oc, &b) in bias.iter().enumerate() {
                    if let Some((pc, py, px)) = l.add(oy, ox, oc, i32::from(b)) {
                        out.push(Spike { t: at, layer: (li + 1) as u16, c: pc as u16, y: py as u16, x: px as u16 });
                        for &d in &self.destinations[li] {
                            queues[d].push((at * 1000, pc, py, px));
                        }
                    }
                }
            }
        }
        self.propagate(queues, out);
    }

    /// Runs `queues` (events per layer: time in ns and address) through the layers in order.
    fn propagate(&mut self, mut queues: Vec<Vec<(i64, usize, usize, usize)>>, out: &mut Vec<Spike>) {
        for li in 0..self.layers.len() {
            for (t_ns, c, y, x) in std::mem::take(&mut queues[li]) {
                if out.len() > MOST_SPIKES {
                    return;
                }
                let t = t_ns + LATENCY_NS;
                let before = self.layers[li].synops;
                let fired = self.layers[li].event(c, y, x);
                let l = &mut self.layers[li];
                *l.synops_per_ms.entry(t_ns.div_euclid(1_000_000)).or_default() += l.synops - before;
                for (pc, py, px) in fired {
                    out.push(Spike { t: t.div_euclid(1000), layer: (li + 1) as u16, c: pc as u16, y: py as u16, x: px as u16 });
                    for &d in &self.destinations[li] {
                        queues[d].push((t, pc, py, px));
                    }
                }
            }
        }
    }
}

impl RefLayer {
    fn event(&mut self, c: usize, y: usize, x: usize) -> Vec<(usize, usize, usize)> {
        let [c_in, _, _] = self.in_shape;
        let [kh, kw] = self.kernel;
        let [fh, fw] = self.conv_out;
        let mut fired = Vec::new();
        // Raster order: output rows and columns ascend, so kernel rows and columns descend.
        for ky in (0..kh).rev() {
            for kx in (0..kw).rev() {
                let ny = (y + self.padding[0]) as i64 - ky as i64;
                let nx = (x + self.padding[1]) as i64 - kx as i64;
                if ny < 0 || nx < 0 || ny % self.stride[0] as i64 != 0 || nx % self.stride[1] as i64 != 0 {
                    continue;
                }
                let (oy, ox) = (ny as usize / self.stride[0], nx as usize / self.stride[1]);
                if oy >= fh || ox >= fw {
                    continue;
                }
                for oc in 0..self.o {
                    let w = i32::from(self.weights[((oc * c_in + c) * kh + ky) * kw + kx]);
                    self.synops += 1;
                    fired.extend(self.add(oy, ox, oc, w));
                }
            }
        }
        fired
    }

    /// Adds `w` to neuron `(oc, oy, ox)` with int16 saturation and `min_v_mem`; returns where
    /// its spike lands after pooling, if it fires and pooling keeps it.
    fn add(&mut self, oy: usize, ox: usize, oc: usize, w: i32) -> Option<(usize, usize, usize)> {
        let v = &mut self.v[(oy * self.conv_out[1] + ox) * self.o + oc];
        self.saturated += u64::from(*v + w > 32767);
        *v = (*v + w).clamp(-32768, 32767).max(self.min);
        if *v < self.threshold {
            return None;
        }
        *v = match self.reset {
            Reset::Subtract => (*v - self.threshold).max(self.min),
            Reset::Zero => 0.max(self.min),
        };
        self.spikes += 1;
        let (py, px) = (oy / self.pool[0], ox / self.pool[1]);
        if py >= self.out_shape[1] || px >= self.out_shape[2] {
            return None;
        }
        // The decimator passes the spike that completes each group.
        if let Some((group, seen)) = &mut self.decimator {
            *seen += 1;
            if *seen < *group {
                return None;
            }
            *seen = 0;
        }
        Some((oc, py, px))
    }
}

/// How the input reaches the simulator.
#[derive(Clone, Copy, Debug)]
enum Feed {
    /// [`Simulator::process`] per chunk of this many sensor events.
    Calls(usize),
    /// [`Simulator::process_stream`], in chunks of 1, 2 ... 16 times this many.
    Stream(usize),
}

fn simulate(n: &Network, events: &[Event], threads: usize, kernel: Kernel) -> (Vec<Spike>, Simulator) {
    // In several calls: the layers choose how to run from what they did before.
    simulate_fed(n, events, threads, kernel, Feed::Calls(300), &Chip::default())
}

fn simulate_fed(n: &Network, events: &[Event], threads: usize, kernel: Kernel, feed: Feed, chip: &Chip) -> (Vec<Spike>, Simulator) {
    // Threads for any input size, so that the short random inputs run pipelined too, and every
    // thread taken, so that three threads run three stages.
    let config = Config {
        mode: Mode::Event,
        monitors: Monitors::of(0..=n.layers.len()),
        threads,
        thread_gain: 0.0,
        parallel_min_events: 0,
        kernel,
        leak_tick_us: chip.leak_tick_us,
        decimators: chip.decimators.clone(),
        ..Config::default()
    };
    let mut sim = Simulator::new(n, config).expect("sim");
    let (out, _) = feed_all(&mut sim, events, Some(feed));
    (out, sim)
}

/// Feeds `events` to `sim` as `feed` says (`None`: in one call) and finishes it: the monitored
/// spikes and the power samples.
fn feed_all(sim: &mut Simulator, events: &[Event], feed: Option<Feed>) -> (Vec<Spike>, Vec<PowerSample>) {
    let (mut out, mut samples) = (Vec::new(), Vec::new());
    match feed {
        None => sim.process(events, &mut out),
        Some(Feed::Calls(len)) => events.chunks(len).for_each(|chunk| sim.process(chunk, &mut out)),
        Some(Feed::Stream(len)) => {
            let (mut rest, mut sizes) = (events, (1..=16).cycle());
            let next = |chunk: &mut Vec<Event>| -> Result<bool, ()> {
                let (now, after) = rest.split_at((len * sizes.next().unwrap_or(1)).min(rest.len()));
                (*chunk, rest) = (now.to_vec(), after);
                Ok(!chunk.is_empty())
            };
            let sink = |spikes: &[Spike], power: &[PowerSample]| -> Result<(), ()> {
                out.extend_from_slice(spikes);
                samples.extend_from_slice(power);
                Ok(())
            };
            sim.process_stream(next, sink).expect("no errors");
        }
    }
    sim.finish(&mut out);
    samples.extend(sim.take_power_samples());
    (out, samples)
}

/// The simulator on one, two and three threads against the reference, with the fastest kernel
/// this CPU has.
fn assert_same(n: &Network, events: &[Event]) -> Result<usize, TestCaseError> {
    assert_same_with(n, events, Kernel::Avx512)
}

/// [`assert_same`] with no kernel faster than `kernel`. Says when the CPU lacks it, since the
/// test then runs a slower one.
fn assert_same_with(n: &Network, events: &[Event], kernel: Kernel) -> Result<usize, TestCaseError> {
    assert_same_on(n, events, kernel, &Chip::default())
}

/// [`assert_same_with`] with the chip's leak or output decimators.
fn assert_same_on(n: &Network, events: &[Event], kernel: Kernel, chip: &Chip) -> Result<usize, TestCaseError> {
    let mut reference = Reference::with(n, chip);
    let Some(want) = reference.run(events) else {
        return Err(TestCaseError::reject(format!("the network makes more than {MOST_SPIKES} spikes")));
    };
    if kernel.on_this_cpu() != kernel {
        dynapviz_testkit::note(&format!("this CPU has no {kernel:?} kernel: testing {:?}", kernel.on_this_cpu()));
    }
    for (threads, feed) in
        [(1, Feed::Calls(300)), (2, Feed::Calls(300)), (3, Feed::Calls(300)), (1, Feed::Stream(50)), (2, Feed::Stream(50))]
    {
        let (got, sim) = simulate_fed(n, events, threads, kernel, feed, chip);
        check(&got, &sim, &want, &reference).map_err(|e| TestCaseError::fail(format!("{threads} thread(s), {feed:?}: {e}")))?;
    }
    Ok(want.len())
}

fn check(got: &[Spike], sim: &Simulator, want: &[Spike], reference: &Reference) -> Result<(), TestCaseError> {
    prop_assert_eq!(got.len(), want.len(), "spike count");
    if let Some(i) = (0..got.len()).find(|&i| got[i] != want[i]) {
        prop_assert!(false, "spike {i} differs: {:?} vs reference {:?}", got[i], want[i]);
    }
    for (i, l) in reference.layers.iter().enumerate() {
        let c = sim.counters()[i + 1];
        prop_assert_eq!((c.synaptic_ops, c.spikes), (l.synops, l.spikes), "layer {} counters", i + 1);
        let sent = got.iter().filter(|s| usize::from(s.layer) == i + 1).count() as u64;
        prop_assert_eq!(c.spikes_after_pool, sent, "layer {} spikes sent", i + 1);
        let peak = l.synops_per_ms.values().copied().max().unwrap_or(0);
        prop_assert_eq!(c.peak_synops_per_ms, peak, "layer {} busiest millisecond", i + 1);
    }
    Ok(())
}

/// A conv layer of the given geometry with random weights (some negative) and a pool after it.
#[derive(Clone, Debug)]
struct Geometry {
    out: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    pool: usize,
}

fn geometry() -> impl Strategy<Value = Geometry> {
    // Channel counts around the SIMD widths (8, 16, 32), odd ones, and 64 (four vectors, which
    // the window kernel compiles separately).
    (prop::sample::select(vec![1usize, 3, 8, 15, 16, 17, 32, 33, 64]), 1usize..=5, 1usize..=3, 0usize..=2, 1usize..=2)
        .prop_map(|(out, kernel, stride, padding, pool)| Geometry { out, kernel, stride, padding: padding.min(kernel - 1), pool })
}

fn network(layers: &[Geometry], size: usize, seed: u64) -> Option<Network> {
    let mut uniform = dynapviz_testkit::uniform(seed);
    let mut rnd = move || uniform() - 0.35;
    let mut ann = Ann::default();
    let mut c = 2;
    for (i, g) in layers.iter().enumerate() {
        let k = g.kernel;
        let weight = Tensor::new(vec![g.out, c, k, k], (0..g.out * c * k * k).map(|_| rnd()).collect())?;
        ann.push(format!("{i}c"), AnnLayer::Conv { weight, bias: None, stride: [g.stride; 2], padding: [g.padding; 2] });
        ann.push(format!("{i}r"), AnnLayer::Relu);
        if g.pool > 1 {
            ann.push(format!("{i}p"), AnnLayer::AvgPool { kernel: [g.pool; 2], stride: [g.pool; 2] });
        }
        c = g.out;
    }
    // Geometries whose maps shrink to nothing are not networks: skip them.
    let mut n = convert(&ann, [2, size, size], &DvsOptions::default()).ok()?;
    discretize(&mut n);
    Some(n)
}

fn events(size: u16) -> impl Strategy<Value = Vec<Event>> {
    prop::collection::vec((0i64..3000, 0..size, 0..size, any::<bool>()), 1..2500).prop_map(|mut v| {
        v.sort_by_key(|e| e.0);
        v.into_iter().map(|(t, x, y, p)| Event::new(t, x, y, p)).collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn portable_kernel_equals_the_reference(layers in prop::collection::vec(geometry(), 1..=2), seed in 0u64..10_000, input in events(24)) {
        if let Some(n) = network(&layers, 24, seed) {
            assert_same_with(&n, &input, Kernel::Portable)?;
        }
    }

    #[test]
    fn avx2_kernel_equals_the_reference(layers in prop::collection::vec(geometry(), 1..=2), seed in 0u64..10_000, input in events(24)) {
        if let Some(n) = network(&layers, 24, seed) {
            assert_same_with(&n, &input, Kernel::Avx2)?;
        }
    }

    #[test]
    fn event_mode_equals_the_reference(layers in prop::collection::vec(geometry(), 1..=3), seed in 0u64..10_000, zero in any::<bool>(), input in events(24)) {
        if let Some(mut n) = network(&layers, 24, seed) {
            if zero {
                n.layers.iter_mut().for_each(|l| l.reset = Reset::Zero);
            }
            assert_same(&n, &input)?;
        }
    }
}

/// Gives the layers of `n` in `layers` (a bit per layer, the first the lowest) a bias per
/// channel, from `-threshold / 16` to `threshold / 6`.
fn bias(n: &mut Network, seed: u64, layers: u8) {
    let mut uniform = dynapviz_testkit::uniform(seed);
    for (_, l) in n.layers.iter_mut().enumerate().filter(|&(i, _)| i < 8 && layers >> i & 1 != 0) {
        let q = l.quant.as_mut().expect("discretized");
        let (low, high) = (-(q.threshold / 16) as f32, (q.threshold / 6) as f32);
        q.bias = Some((0..l.out_channels).map(|_| (low + uniform() * (high - low)) as i16).collect());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// The leak, every kernel: ticks between the events of a batch, ticks that fire, negative
    /// biases that settle at `min_v_mem`, layers stored padded; the ticks' spikes before the
    /// sensor events after them. A bias on some layers only (`biased`, a bit per layer), or
    /// none: then the ticks change nothing. A gap of `gap` µs halfway: with the short tick, more
    /// ticks than a piece of the pipeline carries, which go as pieces of their own.
    #[test]
    fn the_leak_equals_the_reference(
        layers in prop::collection::vec(geometry(), 1..=3),
        seed in 0u64..10_000,
        tick in prop::sample::select(vec![20i64, 100, 400]),
        zero in any::<bool>(),
        biased in prop::sample::select(vec![0b111u8, 0b111, 0b101, 0b010, 0]),
        gap in prop::sample::select(vec![0i64, 4000]),
        mut input in events(24),
    ) {
        let half = input.len() / 2;
        input[half..].iter_mut().for_each(|e| e.t += gap);
        if let Some(mut n) = network(&layers, 24, seed) {
            bias(&mut n, seed + 1, biased);
            if zero {
                n.layers.iter_mut().for_each(|l| l.reset = Reset::Zero);
            }
            for kernel in [Kernel::Portable, Kernel::Avx2, Kernel::Avx512] {
                assert_same_on(&n, &input, kernel, &Chip { leak_tick_us: Some(tick), ..Chip::default() })?;
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Output decimators on some layers, with and without the leak (whose spikes pass the
    /// decimator too), on one to three threads: the decimators count across runs, calls and
    /// pipeline stages.
    #[test]
    fn output_decimators_equal_the_reference(
        layers in prop::collection::vec(geometry(), 1..=3),
        seed in 0u64..10_000,
        intervals in prop::collection::vec(prop::option::of(0u8..=2), 3),
        tick in prop::option::of(prop::sample::select(vec![50i64, 300])),
        input in events(24),
    ) {
        if let Some(mut n) = network(&layers, 24, seed) {
            if tick.is_some() {
                bias(&mut n, seed + 1, u8::MAX);
            }
            let decimators = intervals
                .iter()
                .take(n.layers.len())
                .enumerate()
                .filter_map(|(i, interval)| interval.map(|interval| OutputDecimator { layer: i + 1, interval }))
                .collect();
            assert_same_on(&n, &input, Kernel::Avx512, &Chip { leak_tick_us: tick, decimators })?;
        }
    }
}

/// Firing rules far from sinabs' usual ones, where biased potentials would not be exact: the
/// layers store them plain and clamp at each add.
#[derive(Clone, Copy, Debug)]
enum Rule {
    /// A threshold below the largest weight: a neuron can stay above it after a spike.
    LowThreshold,
    /// A positive `min_v_mem`: the potentials' floor is above their start.
    PositiveFloor,
    /// A threshold near int16's top: sums can reach the chip's saturation.
    HighThreshold,
}

fn apply(n: &mut Network, rule: Rule, zero: bool) {
    for l in &mut n.layers {
        let q = l.quant.as_mut().expect("discretized");
        (q.threshold, q.min_v_mem) = match rule {
            Rule::LowThreshold => (q.threshold / 8 + 1, -(q.threshold / 8 + 1)),
            Rule::PositiveFloor => (q.threshold, 3),
            Rule::HighThreshold => (32_700, -300),
        };
        if zero {
            l.reset = Reset::Zero;
        }
    }
}

/// The most spikes one input event can cause in `layers`: every neuron a kernel reaches fires
/// once, and each spike is an event for the next layer.
fn most_spikes_per_event(layers: &[Geometry]) -> usize {
    layers
        .iter()
        .scan(1usize, |reach, g| {
            *reach = reach.saturating_mul(g.out * g.kernel * g.kernel);
            Some(*reach)
        })
        .fold(0, usize::saturating_add)
}

/// Spikes a low threshold may make at most in one case: near it every neuron a kernel reaches
/// fires, and two wide layers of 5x5 kernels made up to 2.5 M spikes per input event. Cases of
/// 2500 such events held 24 GB of spikes (two copies each way a case is run) until the
/// machine killed the test, about one run in twenty.
const SPIKE_BUDGET: usize = 2_000_000;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn unusual_firing_rules_equal_the_reference(
        layers in prop::collection::vec(geometry(), 1..=2),
        seed in 0u64..10_000,
        rule in prop::sample::select(vec![Rule::LowThreshold, Rule::PositiveFloor, Rule::HighThreshold]),
        zero in any::<bool>(),
        mut input in events(24),
    ) {
        if let Some(mut n) = network(&layers, 24, seed) {
            input.truncate((SPIKE_BUDGET / most_spikes_per_event(&layers)).max(1));
            apply(&mut n, rule, zero);
            assert_same(&n, &input)?;
        }
    }
}

#[test]
fn sums_that_saturate_equal_the_reference() {
    // Excitatory weights on a small map charge the neurons up to int16's top, where the
    // chip saturates, just before they reach the threshold.
    let layer = Geometry { out: 16, kernel: 3, stride: 1, padding: 1, pool: 1 };
    let mut n = network(&[layer], 8, 3).expect("network");
    apply(&mut n, Rule::HighThreshold, false);
    let q = n.layers[0].quant.as_mut().expect("discretized");
    q.weights.iter_mut().for_each(|w| *w = w.unsigned_abs().clamp(40, 127) as i8);
    let mut uniform = dynapviz_testkit::uniform(5);
    let events: Vec<Event> =
        (0..20_000i64).map(|i| Event::new(i, (uniform() * 8.0) as u16 % 8, (uniform() * 8.0) as u16 % 8, uniform() > 0.5)).collect();
    assert_same(&n, &events).unwrap_or_else(|e| panic!("{e}"));
    let mut reference = Reference::new(&n);
    let spikes = reference.run(&events).expect("spikes").iter().filter(|s| s.layer == 1).count();
    assert!(reference.layers[0].saturated > 0 && spikes > 0, "saturated {} times, {spikes} spikes", reference.layers[0].saturated);
}

#[test]
fn layers_stored_padded_or_wider_than_a_window_equal_the_reference() {
    // The event mode stores 11 channels as 16 and 100 as 128 (lanes that never fire), runs 256
    // as its widest window and 272 without one; the classes of a network's last layer (1x1 on
    // one pixel) are the usual odd count. (The leak on a padded layer: see `event_mode.rs`.)
    let first = Geometry { out: 16, kernel: 3, stride: 1, padding: 1, pool: 2 };
    let mut uniform = dynapviz_testkit::uniform(17);
    let events: Vec<Event> =
        (0..1500i64).map(|i| Event::new(i, (uniform() * 16.0) as u16 % 16, (uniform() * 16.0) as u16 % 16, uniform() > 0.5)).collect();
    for (i, (out, kernel, padding)) in [(11, 3, 1), (100, 3, 1), (256, 2, 0), (272, 3, 1), (11, 8, 0)].into_iter().enumerate() {
        let wide = Geometry { out, kernel, stride: 1, padding, pool: 1 };
        let n = network(&[first.clone(), wide], 16, 40 + i as u64).expect("network");
        for kernel in [Kernel::Portable, Kernel::Avx2, Kernel::Avx512] {
            assert_same_with(&n, &events, kernel).unwrap_or_else(|e| panic!("{out} channels, {kernel:?}: {e}"));
        }
        let mut reference = Reference::new(&n);
        reference.run(&events).expect("spikes");
        assert!(reference.layers[1].spikes > 100, "{out} channels: layer 2 is active ({} spikes)", reference.layers[1].spikes);
    }
}

#[test]
fn a_layer_with_two_destinations_equals_the_reference() {
    // Layer 1 feeds layer 2 and, past it, layer 3: layer 3's queue takes spikes of two layers.
    let same = Geometry { out: 8, kernel: 3, stride: 1, padding: 1, pool: 1 };
    let mut n = network(&[same.clone(), same.clone(), Geometry { out: 4, ..same }], 24, 7).expect("network");
    n.layers[0].destinations = vec![2, 3];
    let mut uniform = dynapviz_testkit::uniform(11);
    let events: Vec<Event> =
        (0..3000i64).map(|i| Event::new(i / 3, (uniform() * 24.0) as u16 % 24, (uniform() * 24.0) as u16 % 24, uniform() > 0.5)).collect();
    let spikes = assert_same(&n, &events).unwrap_or_else(|e| panic!("{e}"));
    let reference = Reference::new(&n);
    assert_eq!(reference.destinations[0], vec![1, 2]);
    assert!(spikes > 2 * events.len(), "the layers are active ({spikes} spikes)");
}

#[test]
fn an_input_sent_to_two_layers_equals_the_reference() {
    // The DVS layer feeds layer 1 and also layer 2 or 3, whose queue takes its events and a
    // layer's spikes (or two layers': a merge of a merge): on three threads, across stages too.
    let same = Geometry { out: 8, kernel: 3, stride: 1, padding: 1, pool: 1 };
    for (also, first_to) in [(2, vec![2]), (3, vec![2]), (3, vec![2, 3])] {
        let mut n = network(&[same.clone(), same.clone(), Geometry { out: 4, ..same.clone() }], 24, 8).expect("network");
        n.dvs.destinations = vec![1, also];
        n.layers[0].destinations = first_to;
        let mut uniform = dynapviz_testkit::uniform(12);
        let events: Vec<Event> = (0..3000i64)
            .map(|i| Event::new(i / 3, (uniform() * 24.0) as u16 % 24, (uniform() * 24.0) as u16 % 24, uniform() > 0.5))
            .collect();
        let spikes = assert_same(&n, &events).unwrap_or_else(|e| panic!("DVS to 1 and {also}: {e}"));
        assert!(spikes > 2 * events.len(), "DVS to 1 and {also}: the layers are active ({spikes} spikes)");
        // Layer `also` takes the sensor events besides its source layer's spikes.
        let synops = |dvs: Vec<usize>| {
            let mut r = Reference::new(&Network { dvs: DvsLayer { destinations: dvs, ..n.dvs.clone() }, ..n.clone() });
            r.run(&events).expect("spikes");
            r.layers[also - 1].synops
        };
        assert!(synops(vec![1, also]) > synops(vec![1]), "DVS to 1 and {also}: layer {also} gets its events");
    }
}

/// The sinabs gesture network and its golden input (`None`, printed, without the fixtures).
fn gesture_case() -> Option<(Network, Vec<Event>)> {
    let case = dynapviz_testkit::shared("fixtures/golden/gesture_r50")?;
    let net = Pipeline::new(&case.join("model.onnx")).input_shape([2, 128, 128]).device("speck2e").build().expect("model");
    let mut reader = dynapviz_events::open(&case.join("input.csv")).expect("input");
    Some((net, dynapviz_events::read_all(reader.as_mut()).expect("events")))
}

#[test]
fn gesture_network_equals_the_reference() {
    let Some((net, events)) = gesture_case() else { return };
    // A quarter of the recording keeps the plain reference quick in debug builds.
    let spikes = assert_same(&net, &events[..events.len() / 4]).unwrap_or_else(|e| panic!("{e}"));
    assert!(spikes > 10_000, "the network is active on this input ({spikes} spikes)");
}

#[test]
fn two_threads_give_the_same_counters_drops_decimation_and_power() {
    let Some((net, events)) = gesture_case() else { return };
    let run = |threads| {
        // The busy model drops input, so it must see every layer's input in the same order,
        // and layer 2's decimator every spike it makes. Threads for any call size, so that the
        // chunks below run pipelined.
        let config = Config {
            busy: Some(BusyModel::default()),
            decimators: vec![OutputDecimator { layer: 2, interval: 0 }],
            monitors: Monitors::of([0, 3, net.layers.len()]),
            threads,
            parallel_min_events: 0,
            ..Config::default()
        };
        let mut sim = Simulator::new(&net, config).expect("sim");
        let mut out = Vec::new();
        for chunk in events.chunks(5000) {
            sim.process(chunk, &mut out);
        }
        sim.finish(&mut out);
        (out, sim.counters().to_vec(), sim.take_power_samples())
    };
    let (one, two) = (run(1), run(2));
    assert!(one.1.iter().any(|c| c.dropped_busy > 0), "the busy model dropped input");
    assert!(one.1[2].decimated > 0, "layer 2's decimator held spikes back");
    assert_eq!(one.1, two.1, "counters");
    assert_eq!(one.0, two.0, "spikes");
    assert_eq!(one.2.len(), two.2.len(), "power samples");
    assert!(one.2.iter().zip(&two.2).all(|(a, b)| a.value == b.value && a.timestamp == b.timestamp && a.channel == b.channel), "power");
}

/// samna turns the congestion balancer on per layer: the busy model on layers 2 and 3 drops
/// their input only, the same on one and two threads.
#[test]
fn a_busy_model_on_some_layers_drops_only_there() {
    let Some((net, events)) = gesture_case() else { return };
    let config = |threads| Config {
        busy: Some(BusyModel::default()),
        busy_layers: vec![2, 3],
        threads,
        parallel_min_events: 0,
        ..Config::default()
    };
    let run = |threads| {
        let mut sim = Simulator::new(&net, config(threads)).expect("sim");
        sim.process(&events, &mut Vec::new());
        sim.counters().to_vec()
    };
    let one = run(1);
    assert_eq!(one, run(2));
    let dropped: Vec<u64> = one.iter().map(|c| c.dropped_busy).collect();
    assert!(dropped[2] > 0 && dropped.iter().enumerate().all(|(i, &d)| d == 0 || i == 2 || i == 3), "dropped per layer: {dropped:?}");
    let beyond = Config { busy_layers: vec![2, 10], ..config(1) };
    assert!(Simulator::new(&net, beyond).is_err_and(|e| e.to_string().contains("layer 10")));
}

#[test]
fn a_long_call_cut_into_segments_equals_one_thread() {
    let Some((net, events)) = gesture_case() else { return };
    // One call of the whole recording, and a stream of chunks of 3 k to 48 k sensor events:
    // the pipeline looks at the cuts after 8 k, 8 k, 16 k ... sensor events, and drains to
    // change them (at least once here: the first cuts count every layer the same), across the
    // chunks of a stream.
    assert!(events.len() > 100_000, "long enough for five looks at the cuts");
    let (one, one_sim) = simulate(&net, &events, 1, Kernel::Avx512);
    for feed in [Feed::Calls(events.len()), Feed::Stream(3000)] {
        let (two, two_sim) = simulate_fed(&net, &events, 2, Kernel::Avx512, feed, &Chip::default());
        assert_eq!(one_sim.counters(), two_sim.counters(), "counters, {feed:?}");
        assert!(one == two, "spikes differ ({} against {}), {feed:?}", one.len(), two.len());
    }
}

#[test]
fn a_stream_gives_the_same_power_samples_and_stops_at_the_first_error() {
    let geometry = Geometry { out: 8, kernel: 3, stride: 1, padding: 1, pool: 1 };
    let net = network(&[geometry.clone(), geometry], 24, 7).expect("network");
    // 120 ms of input (6 power samples per rail), in chunks of 1 000 sensor events.
    let events: Vec<Event> = (0..40_000).map(|i: i64| Event::new(3 * i, (i * 7 % 24) as u16, (i * 5 % 24) as u16, i % 3 == 0)).collect();
    let config = |threads| Config { threads, parallel_min_events: 0, monitors: Monitors::of([2]), ..Config::default() };
    // Per call, one thread.
    let mut sim = Simulator::new(&net, config(1)).expect("sim");
    let mut want = Vec::new();
    events.chunks(1000).for_each(|chunk| sim.process(chunk, &mut want));
    let want_power = sim.take_power_samples();
    assert!(
        !want.is_empty() && want_power.len() > 2,
        "the network is active ({} spikes) and sampled ({} power samples)",
        want.len(),
        want_power.len()
    );
    for threads in [1, 2] {
        // A stream of the same chunks, with an error from the source or the sink after `fail`
        // chunks (never, when None).
        let run = |source_fails: Option<usize>, sink_fails: Option<usize>| {
            let mut sim = Simulator::new(&net, config(threads)).expect("sim");
            let (mut chunks, mut asked, mut sunk) = (events.chunks(1000), 0, 0);
            let (mut spikes, mut power) = (Vec::new(), Vec::new());
            let next = |chunk: &mut Vec<Event>| {
                asked += 1;
                if source_fails == Some(asked - 1) {
                    return Err("source");
                }
                *chunk = chunks.next().map(<[Event]>::to_vec).unwrap_or_default();
                Ok(!chunk.is_empty())
            };
            let sink = |s: &[Spike], p: &[_]| {
                sunk += 1;
                spikes.extend_from_slice(s);
                power.extend_from_slice(p);
                if sink_fails == Some(sunk) { Err("sink") } else { Ok(()) }
            };
            let result = sim.process_stream(next, sink);
            (result, spikes, power, asked)
        };
        let (result, spikes, power, asked) = run(None, None);
        assert_eq!(result, Ok(()));
        assert!(spikes == want, "{threads} thread(s): spikes differ");
        assert_eq!(power.len(), want_power.len(), "{threads} thread(s): power samples");
        assert!(power.iter().zip(&want_power).all(|(a, b)| (a.timestamp, a.channel, a.value) == (b.timestamp, b.channel, b.value)));
        assert_eq!(asked, 41, "every chunk, then the end");
        let (result, spikes, _, asked) = run(Some(5), None);
        assert_eq!(result, Err("source"), "{threads} thread(s)");
        assert_eq!(asked, 6, "nothing asked after the error");
        assert!(spikes.len() < want.len());
        let (result, _, _, asked) = run(None, Some(1));
        assert_eq!(result, Err("sink"), "{threads} thread(s)");
        assert!(asked < 20, "{threads} thread(s): no more input admitted once the sink failed ({asked} chunks asked)");
    }
}

/// The binned mode on `threads`, fed `events` whole, in calls of 300, or as a stream in chunks
/// of 50 to 800: every layer monitored; the spikes, the counters and the power samples.
fn binned(
    n: &Network,
    events: &[Event],
    bin_us: i64,
    threads: usize,
    feed: Option<Feed>,
) -> (Vec<Spike>, Vec<LayerCounters>, Vec<PowerSample>) {
    // Two threads from the first event (nothing measured yet: the cut after the first layer,
    // later where the measured times say), as `simulate_fed` does for the event mode.
    let config = Config {
        mode: Mode::Binned { bin_us },
        monitors: Monitors::of(0..=n.layers.len()),
        threads,
        thread_gain: 0.0,
        parallel_min_events: 0,
        power_rate_hz: 5000.0,
        ..Config::default()
    };
    let mut sim = Simulator::new(n, config).expect("sim");
    let (out, samples) = feed_all(&mut sim, events, feed);
    (out, sim.counters().to_vec(), samples)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// The binned mode on two threads gives what it gives on one: the same spikes in the same
    /// order, counters and power samples, with biases that charge the neurons through empty
    /// bins (on some layers, or none), however the input is fed.
    #[test]
    fn binned_mode_on_two_threads_equals_one(
        layers in prop::collection::vec(geometry(), 2..=3),
        seed in 0u64..10_000,
        bin_us in prop::sample::select(vec![7i64, 50, 400]),
        biased in prop::sample::select(vec![0b111u8, 0b001, 0b110, 0]),
        input in events(24),
    ) {
        if let Some(mut n) = network(&layers, 24, seed) {
            bias(&mut n, seed + 1, biased);
            let one = binned(&n, &input, bin_us, 1, None);
            for feed in [None, Some(Feed::Calls(300)), Some(Feed::Stream(50))] {
                let two = binned(&n, &input, bin_us, 2, feed);
                prop_assert_eq!(two.0.len(), one.0.len(), "spikes, {:?}", feed);
                prop_assert!(two.0 == one.0, "spikes differ, {:?}", feed);
                prop_assert_eq!(&two.1, &one.1, "counters, {:?}", feed);
                prop_assert_eq!(&two.2, &one.2, "power samples, {:?}", feed);
            }
        }
    }
}

/// A long input on two threads: measured on one thread first, then cut, run, measured and cut
/// again every 256 k sensor events; the result is one thread's.
#[test]
fn binned_mode_on_two_threads_cuts_again_on_a_long_input() {
    let layers = [
        Geometry { out: 8, kernel: 3, stride: 1, padding: 1, pool: 1 },
        Geometry { out: 16, kernel: 3, stride: 1, padding: 1, pool: 2 },
        Geometry { out: 4, kernel: 2, stride: 1, padding: 0, pool: 1 },
    ];
    let Some(mut n) = network(&layers, 24, 7) else { panic!("the network maps") };
    bias(&mut n, 8, u8::MAX);
    let mut uniform = dynapviz_testkit::uniform(9);
    let events: Vec<Event> = (0..400_000i64)
        .map(|i| Event::new(i * 3 + (i / 50_000) * 20_000, (uniform() * 24.0) as u16 % 24, (uniform() * 24.0) as u16 % 24, uniform() < 0.5))
        .collect();
    let run = |threads| {
        let config = Config {
            mode: Mode::Binned { bin_us: 1000 },
            monitors: Monitors::of(0..=n.layers.len()),
            threads,
            thread_gain: 0.0,
            ..Config::default()
        };
        let mut sim = Simulator::new(&n, config).expect("sim");
        let (spikes, samples) = feed_all(&mut sim, &events, Some(Feed::Stream(4096)));
        (spikes, sim.counters().to_vec(), samples)
    };
    let (one, two) = (run(1), run(2));
    assert!(one.0.len() > 100_000, "the layers fire: {} spikes", one.0.len());
    assert!(one.0 == two.0, "spikes differ");
    assert_eq!((&one.1, &one.2), (&two.1, &two.2), "counters and power samples");
}
