//! Properties of the event-driven chip model on small networks built here.

use dynapviz_chip::{Config, MAX_TIME_US, Mode, Monitors, OutputDecimator, SimError, Simulator, Spike};
use dynapviz_events::Event;
use dynapviz_model::convert::{DvsOptions, convert};
use dynapviz_model::discretize::discretize;
use dynapviz_model::network::QuantParams;
use dynapviz_model::{Ann, AnnLayer, Network, Source, Tensor};
use proptest::prelude::*;

/// A one-layer network with integer weights set directly: `weights` is [out][in][k][k].
fn net(in_ch: usize, out_ch: usize, k: usize, size: usize, weights: Vec<i8>, threshold: i32, min_v: i32) -> Network {
    let mut ann = Ann::default();
    ann.push(
        "0",
        AnnLayer::Conv {
            weight: Tensor::new(vec![out_ch, in_ch, k, k], vec![0.1; out_ch * in_ch * k * k]).expect("t"),
            bias: None,
            stride: [1, 1],
            padding: [k / 2, k / 2],
        },
    );
    ann.push("1", AnnLayer::Relu);
    let mut n = convert(&ann, [in_ch, size, size], &DvsOptions::default()).expect("convert");
    n.layers[0].quant = Some(QuantParams { weights, bias: None, threshold, min_v_mem: min_v, scale: 1.0, initial_v_mem: None });
    n
}

fn run(network: &Network, mode: Mode, events: &[Event]) -> (Vec<Spike>, Simulator) {
    let monitors = Monitors::of(1..=network.layers.len());
    let mut sim = Simulator::new(network, Config { mode, monitors, ..Config::default() }).expect("sim");
    let mut out = Vec::new();
    sim.process(events, &mut out);
    sim.finish(&mut out);
    (out, sim)
}

/// The network of [`a_single_event_gives_the_hand_computed_spikes`]: one event at the centre
/// makes ten spikes, in raster order (row, column, channel).
fn ten_spikes() -> (Network, Vec<(u16, u16, u16)>) {
    let mut w = vec![5i8; 9];
    w[4] = 10;
    w.extend(vec![12i8; 9]);
    let order =
        (1..=3).flat_map(|y| (1..=3).flat_map(move |x| if (y, x) == (2, 2) { vec![(y, x, 0), (y, x, 1)] } else { vec![(y, x, 1)] }));
    (net(1, 2, 3, 5, w, 10, -10), order.collect())
}

#[test]
fn an_output_decimator_passes_the_last_spike_of_each_group() {
    let (n, order) = ten_spikes();
    for (interval, passed) in [(0u8, vec![1, 3, 5, 7, 9]), (1, vec![3, 7]), (3, vec![])] {
        let decimators = vec![OutputDecimator { layer: 1, interval }];
        let config = Config { monitors: Monitors::of([1]), decimators, ..Config::default() };
        let mut sim = Simulator::new(&n, config).expect("sim");
        let mut out = Vec::new();
        sim.process(&[Event::new(100, 2, 2, true)], &mut out);
        sim.finish(&mut out);
        let got: Vec<(u16, u16, u16)> = out.iter().map(|s| (s.y, s.x, s.c)).collect();
        let want: Vec<(u16, u16, u16)> = passed.iter().map(|&i| order[i]).collect();
        assert_eq!(got, want, "interval {interval}");
        let c = sim.counters()[1];
        assert_eq!((c.spikes, c.spikes_after_pool, c.decimated), (10, want.len() as u64, 10 - want.len() as u64), "interval {interval}");
    }
}

#[test]
fn output_decimators_that_cannot_be_are_refused() {
    let (n, _) = ten_spikes();
    let refused = |mode, decimators: Vec<OutputDecimator>| match Simulator::new(&n, Config { mode, decimators, ..Config::default() }) {
        Err(SimError::Config(why)) => why,
        other => panic!("expected a configuration error, got {:?}", other.map(|_| "a simulator")),
    };
    let d = |layer, interval| OutputDecimator { layer, interval };
    assert!(refused(Mode::Binned { bin_us: 1000 }, vec![d(1, 0)]).contains("binned mode"));
    assert!(refused(Mode::Event, vec![d(2, 0)]).contains("layers 1..1"));
    assert!(refused(Mode::Event, vec![d(0, 0)]).contains("layers 1..1"));
    assert!(refused(Mode::Event, vec![d(1, 8)]).contains("0..=7"));
    assert!(refused(Mode::Event, vec![d(1, 0), d(1, 2)]).contains("two output decimators"));
}

#[test]
fn a_single_event_gives_the_hand_computed_spikes() {
    // 1 input channel -> 2 output channels, 3x3 kernel, threshold 10.
    // Channel 0: centre weight 10 fires, the rest 5 do not. Channel 1: all 12, every neighbour fires.
    let mut w = vec![5i8; 9];
    w[4] = 10;
    w.extend(vec![12i8; 9]);
    let n = net(1, 2, 3, 5, w, 10, -10);
    let (out, sim) = run(&n, Mode::Event, &[Event::new(100, 2, 2, true)]);
    let mut got: Vec<(u16, u16, u16)> = out.iter().map(|s| (s.c, s.y, s.x)).collect();
    got.sort_unstable();
    let mut want = vec![(0, 2, 2)];
    for y in 1..=3 {
        for x in 1..=3 {
            want.push((1, y, x));
        }
    }
    assert_eq!(got, want);
    assert_eq!(sim.counters()[1].synaptic_ops, 18, "3x3 positions x 2 channels");
    assert!(out.iter().all(|s| s.t == 100), "latency below 1 µs keeps the µs timestamp");
}

#[test]
fn event_mode_fires_once_per_input_where_binned_fires_many() {
    // Weight 35 with threshold 10: the chip fires one spike and keeps 25; sinabs fires 3.
    let n = net(1, 1, 1, 1, vec![35], 10, -10);
    let (ev, _) = run(&n, Mode::Event, &[Event::new(0, 0, 0, true)]);
    let (bin, _) = run(&n, Mode::Binned { bin_us: 1000 }, &[Event::new(0, 0, 0, true)]);
    assert_eq!((ev.len(), bin.len()), (1, 3));
    // The chip's remaining potential (25) makes the next event fire again: 2 spikes total for 2
    // events, where sinabs gives 7 (3 + floor((5 + 35) / 10)).
    let two = [Event::new(0, 0, 0, true), Event::new(2000, 0, 0, true)];
    assert_eq!(run(&n, Mode::Event, &two).0.len(), 2);
    assert_eq!(run(&n, Mode::Binned { bin_us: 1000 }, &two).0.len(), 7);
}

#[test]
fn binned_counts_the_synaptic_operations_of_every_spike_a_neuron_fires_in_a_bin() {
    // Two 1x1 layers: the first fires 3 spikes for one input (35 / 10) in one bin, which the
    // second takes as one input with a count of 3: the chip would have added its weight 3 times.
    let mut ann = Ann::default();
    for i in 0..2 {
        let weight = Tensor::new(vec![1, 1, 1, 1], vec![0.1]).expect("t");
        ann.push(format!("{}", 2 * i), AnnLayer::Conv { weight, bias: None, stride: [1, 1], padding: [0, 0] });
        ann.push(format!("{}", 2 * i + 1), AnnLayer::Relu);
    }
    let mut n = convert(&ann, [1, 1, 1], &DvsOptions::default()).expect("convert");
    for (l, w) in n.layers.iter_mut().zip([35, 1]) {
        l.quant = Some(QuantParams { weights: vec![w], bias: None, threshold: 10, min_v_mem: -10, scale: 1.0, initial_v_mem: None });
    }
    let (out, sim) = run(&n, Mode::Binned { bin_us: 1000 }, &[Event::new(0, 0, 0, true)]);
    assert_eq!(out.iter().filter(|s| s.layer == 1).count(), 3);
    let c = sim.counters();
    assert_eq!((c[1].synaptic_ops, c[2].input_events, c[2].synaptic_ops), (1, 3, 3));
}

#[test]
fn min_v_mem_clamps_and_state_saturates_at_int16() {
    let n = net(1, 1, 1, 1, vec![-128], 30000, -200);
    let events: Vec<Event> = (0..10).map(|i| Event::new(i, 0, 0, true)).collect();
    let (_, sim) = run(&n, Mode::Event, &events);
    assert_eq!(sim.counters()[1].spikes, 0);
    // 300 events of +127 reach the int16 ceiling, fire once per event above the threshold.
    let n = net(1, 1, 1, 1, vec![127], 32767, -200);
    let events: Vec<Event> = (0..300).map(|i| Event::new(i, 0, 0, true)).collect();
    let (out, _) = run(&n, Mode::Event, &events);
    assert_eq!(out.len(), 1, "saturated at 32767, fired once, restarted from 0");
}

fn random_net(seed: u64) -> Network {
    let mut ann = Ann::default();
    let mut uniform = dynapviz_testkit::uniform(seed);
    let mut rnd = move || uniform() - 0.3;
    ann.push(
        "0",
        AnnLayer::Conv {
            weight: Tensor::new(vec![4, 2, 3, 3], (0..72).map(|_| rnd()).collect()).expect("t"),
            bias: None,
            stride: [1, 1],
            padding: [1, 1],
        },
    );
    ann.push("1", AnnLayer::Relu);
    ann.push("2", AnnLayer::AvgPool { kernel: [2, 2], stride: [2, 2] });
    ann.push(
        "3",
        AnnLayer::Conv {
            weight: Tensor::new(vec![3, 4, 3, 3], (0..108).map(|_| rnd()).collect()).expect("t"),
            bias: None,
            stride: [2, 2],
            padding: [1, 1],
        },
    );
    ann.push("4", AnnLayer::Relu);
    let mut n = convert(&ann, [2, 16, 16], &DvsOptions::default()).expect("convert");
    discretize(&mut n);
    n
}

fn events_strategy() -> impl Strategy<Value = Vec<Event>> {
    prop::collection::vec((0i64..5000, 0u16..16, 0u16..16, any::<bool>()), 1..400).prop_map(|mut v| {
        v.sort_by_key(|e| e.0);
        v.into_iter().map(|(t, x, y, p)| Event::new(t, x, y, p)).collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn deterministic_and_one_spike_per_neuron_per_event(events in events_strategy(), seed in 0u64..1000, w in prop::collection::vec(-40i8..=127, 36), thr in 1i32..200) {
        let n = random_net(seed);
        let (a, _) = run(&n, Mode::Event, &events);
        let (b, _) = run(&n, Mode::Event, &events);
        prop_assert_eq!(&a, &b);
        // Unique timestamps: the spikes stamped t came from the one event at t. Without pooling,
        // no (channel, y, x) may appear twice among them.
        let n = net(2, 2, 3, 16, w, thr, -thr);
        let unique: Vec<Event> = events.iter().enumerate().map(|(i, e)| Event::new(i as i64 * 10, e.x, e.y, e.p)).collect();
        let (out, _) = run(&n, Mode::Event, &unique);
        let mut keys: Vec<_> = out.iter().map(|s| (s.t, s.c, s.y, s.x)).collect();
        let before = keys.len();
        keys.sort_unstable();
        keys.dedup();
        prop_assert_eq!(before, keys.len());
    }

    #[test]
    fn events_with_disjoint_receptive_fields_commute(cells in prop::collection::btree_set((0u16..5, 0u16..5), 1..20), p in any::<bool>(), w in prop::collection::vec(-40i8..=127, 18), thr in 1i32..200) {
        // A 3x3 kernel reaches one pixel around its input: inputs 3 pixels apart touch disjoint
        // neurons, so the chip guarantees their order does not matter.
        let n = net(2, 1, 3, 16, w, thr, -thr);
        let events: Vec<Event> = cells.iter().map(|&(y, x)| Event::new(0, x * 3, y * 3, p)).collect();
        let mut rev = events.clone();
        rev.reverse();
        let sorted = |v: Vec<Spike>| { let mut c: Vec<_> = v.iter().map(|s| (s.c, s.y, s.x)).collect(); c.sort_unstable(); c };
        prop_assert_eq!(sorted(run(&n, Mode::Event, &events).0), sorted(run(&n, Mode::Event, &rev).0));
    }

    #[test]
    fn binned_input_order_within_a_bin_never_matters(events in events_strategy(), seed in 0u64..1000) {
        let n = random_net(seed);
        let same_t: Vec<Event> = events.iter().map(|e| Event::new(0, e.x, e.y, e.p)).collect();
        let mut rev = same_t.clone();
        rev.reverse();
        let count = |v: Vec<Spike>| { let mut c: Vec<_> = v.iter().map(|s| (s.layer, s.c, s.y, s.x)).collect(); c.sort_unstable(); c };
        prop_assert_eq!(count(run(&n, Mode::Binned { bin_us: 1000 }, &same_t).0), count(run(&n, Mode::Binned { bin_us: 1000 }, &rev).0));
    }

    #[test]
    fn state_never_leaves_int16(events in events_strategy(), w in -128i8..=127, thr in 1i32..32767) {
        let n = net(2, 1, 1, 16, vec![w, w], thr, -32768);
        let many: Vec<Event> = events.iter().cycle().take(2000).enumerate().map(|(i, e)| Event::new(i as i64, e.x, e.y, e.p)).collect();
        let monitors = Monitors::of([1]);
        let mut sim = Simulator::new(&n, Config { mode: Mode::Event, monitors, ..Config::default() }).expect("sim");
        let mut out = Vec::new();
        sim.process(&many, &mut out);
        // If the state had wrapped, a large negative weight stream would produce spikes.
        if w <= 0 { prop_assert!(out.is_empty()); }
    }
}

#[test]
fn bad_input_is_counted_not_fatal() {
    let n = net(2, 1, 1, 4, vec![1, 1], 1000, -1000);
    // A corrupt time near the end of i64 is dropped: it does not overflow the event mode's ns,
    // nor become the time of the events after it.
    let events = [
        Event::new(10, 1, 1, true),
        Event::new(5, 1, 1, true),
        Event::new(20, 9, 1, true),
        Event::new(i64::MAX - 5, 1, 1, true),
        Event::new(MAX_TIME_US + 1, 1, 1, true),
        Event::new(30, 1, 1, true),
    ];
    // The event at 5 is run at 10 in event mode, dropped in binned mode (its bin is done).
    for (mode, admitted) in [(Mode::Event, 3), (Mode::Binned { bin_us: 1 }, 2)] {
        let (_, sim) = run(&n, mode, &events);
        let c = sim.input_counters();
        assert_eq!((c.time_backwards, c.out_of_range, c.time_out_of_range), (1, 1, 2), "{mode:?}");
        assert_eq!(sim.counters()[0].input_events, admitted, "{mode:?}");
    }
    let mut unmapped = n.clone();
    unmapped.layers[0].quant = None;
    assert!(Simulator::new(&unmapped, Config::default()).is_err());
    // Connections the simulator cannot run are refused with a reason, not a panic.
    let two = random_net(1);
    let mut backward = two.clone();
    backward.layers[1].destinations = vec![1];
    let mut past_end = two.clone();
    past_end.layers[1].destinations = vec![3];
    let mut mismatched = two.clone();
    mismatched.layers[1].in_shape[1] -= 1;
    let mut short_weights = two.clone();
    if let Some(q) = short_weights.layers[0].quant.as_mut() {
        q.weights.pop();
    }
    for (bad, why) in [(backward, "feed-forward"), (past_end, "feed-forward"), (mismatched, "takes"), (short_weights, "weights")] {
        let err = Simulator::new(&bad, Config::default()).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains(why), "{why}: {err}");
    }
    assert!(Simulator::new(&two, Config { threads: 0, ..Config::default() }).is_err());
    for rate in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e6] {
        let err = Simulator::new(&two, Config { power_rate_hz: rate, ..Config::default() }).err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("power sample rate")), "{rate} Hz");
    }
    assert!(Monitors::resolve(&["7".into()], 1).is_err());
    let names = vec!["-1".to_string(), "dvs".to_string()];
    let m = Monitors::resolve(&names, 3).expect("monitors");
    assert!(m.contains(3) && m.contains(0) && !m.contains(1));
    assert_eq!(names, ["-1", "dvs"], "the caller's list is not mutated");
}

#[test]
fn power_samples_at_the_configured_rate() {
    let n = net(2, 1, 1, 4, vec![1, 1], 1000, -1000);
    let events: Vec<Event> = (0..1000).map(|i| Event::new(i * 1000, 1, 1, true)).collect();
    let mut sim = Simulator::new(&n, Config { power_rate_hz: 100.0, ..Config::default() }).expect("sim");
    let mut out = Vec::new();
    sim.process(&events, &mut out);
    sim.finish(&mut out);
    let p = sim.take_power_samples();
    // 0.999 s of input at 100 Hz: 99 complete periods, 5 rails each.
    assert_eq!(p.len(), 99 * 5);
    let idle_total: f64 = dynapviz_chip::Coefficients::default().static_w.iter().sum();
    let first: f64 = p[..5].iter().map(|s| s.value).sum();
    assert!(first > idle_total && first < idle_total * 1.5, "{first}");
}

/// A recording timed from 1.3 s: both modes sample the power over its 0.5 s, not over the
/// 1.3 s before it (the binned mode's bins, as sinabs' frames, start at 0).
#[test]
fn power_samples_span_the_input_in_both_modes() {
    let n = net(2, 1, 1, 4, vec![1, 1], 1000, -1000);
    let events: Vec<Event> = (0..500).map(|i| Event::new(1_300_000 + i * 1000, 1, 1, true)).collect();
    for mode in [Mode::Event, Mode::Binned { bin_us: 1000 }] {
        let mut sim = Simulator::new(&n, Config { mode, power_rate_hz: 100.0, ..Config::default() }).expect("sim");
        let mut out = Vec::new();
        sim.process(&events, &mut out);
        sim.finish(&mut out);
        let p = sim.take_power_samples();
        // 0.499 s at 100 Hz: 49 complete periods of 5 rails, the first ending 10 ms in.
        assert_eq!(p.len(), 49 * 5, "{mode:?}");
        assert!(p.iter().all(|s| s.timestamp >= 1_310_000), "{mode:?}: {:?}", p.first());
    }
}

#[test]
fn the_leak_charges_the_chip_neurons_without_input() {
    // Weight 0: input changes nothing. Bias 5 per 1 ms tick, threshold 10: every neuron fires
    // at every second tick, 5 times in 10 ms, at the tick's time. The one channel is stored
    // as 16: the 15 lanes past it get no bias and never fire.
    let mut n = net(1, 1, 1, 2, vec![0], 10, -10);
    if let Some(q) = n.layers[0].quant.as_mut() {
        q.bias = Some(vec![5]);
    }
    let config = Config { leak_tick_us: Some(1000), monitors: Monitors::of([1]), ..Config::default() };
    let mut sim = Simulator::new(&n, config).expect("sim");
    let mut out = Vec::new();
    sim.process(&[Event::new(0, 0, 0, true), Event::new(10_000, 0, 0, true)], &mut out);
    assert_eq!(out.len(), 4 * 5, "4 neurons x 5 spikes: {out:?}");
    assert!(out.iter().all(|s| s.t % 2000 == 0 && s.t > 0), "{out:?}");
}

/// How [`the_leak_runs_on_every_thread_as_on_one`] feeds the simulator.
#[derive(Clone, Copy, Debug)]
enum Feed {
    /// `process` per 3000 sensor events, every call pipelined.
    Calls,
    /// `process_stream` in chunks of 700.
    Stream,
    /// `process` per 500 and 3000 sensor events in turn, the short calls on one thread and the
    /// long ones pipelined, sharing the leak's clock and the layers' quiet.
    Mixed,
}

/// The leak on two and three threads gives one thread's spikes, counters and power samples:
/// each stage of the pipeline ticks its layers as one thread does (here across a merge of two
/// layers' spikes), the ticks of a long gap go through as pieces of their own (400 ms: 400
/// ticks that fire), and a gap of years, once every biased layer is quiet, costs no time.
#[test]
fn the_leak_runs_on_every_thread_as_on_one() {
    let mut uniform = dynapviz_testkit::uniform(9);
    let mut burst = |t0: i64| -> Vec<Event> {
        (0..4000).map(|i| Event::new(t0 + i * 5, (uniform() * 18.0) as u16 % 18, (uniform() * 18.0) as u16 % 18, uniform() < 0.5)).collect()
    };
    for (biases, gap) in [([3i16, 1, 2], 400_000i64), ([-2, -1, -3], 1_000_000_000_000_000)] {
        let mut n = pooled_per_destination();
        for (l, b) in n.layers.iter_mut().zip(biases) {
            l.quant.as_mut().expect("quant").bias = Some((0..l.out_channels as i16).map(|c| b + c % 2).collect());
        }
        let mut events = burst(0);
        events.extend(burst(gap));
        let run = |threads: usize, feed: Feed| {
            let config = Config {
                leak_tick_us: Some(1000),
                monitors: Monitors::of(0..=3),
                threads,
                thread_gain: 0.0,
                parallel_min_events: if matches!(feed, Feed::Mixed) { 1000 } else { 0 },
                ..Config::default()
            };
            let mut sim = Simulator::new(&n, config).expect("sim");
            let (mut out, mut samples) = (Vec::new(), Vec::new());
            match feed {
                Feed::Calls => events.chunks(3000).for_each(|chunk| sim.process(chunk, &mut out)),
                Feed::Stream => {
                    let mut chunks = events.chunks(700).map(<[Event]>::to_vec);
                    let next = |chunk: &mut Vec<Event>| -> Result<bool, ()> { Ok(chunks.next().map(|c| *chunk = c).is_some()) };
                    let sink = |spikes: &[Spike], power: &[dynapviz_chip::PowerSample]| -> Result<(), ()> {
                        out.extend_from_slice(spikes);
                        samples.extend(power.iter().map(|p| (p.timestamp, p.channel, p.value)));
                        Ok(())
                    };
                    sim.process_stream(next, sink).expect("no errors");
                }
                Feed::Mixed => {
                    let mut rest = &events[..];
                    for len in [500, 3000].into_iter().cycle() {
                        let (chunk, after) = rest.split_at(len.min(rest.len()));
                        sim.process(chunk, &mut out);
                        rest = after;
                        if rest.is_empty() {
                            break;
                        }
                    }
                }
            }
            sim.finish(&mut out);
            samples.extend(sim.take_power_samples().iter().map(|p| (p.timestamp, p.channel, p.value)));
            (out, sim.counters().to_vec(), samples)
        };
        let one = run(1, Feed::Calls);
        let in_gap = one.0.iter().filter(|s| s.t > 20_000 && s.t < gap).count();
        if gap < 1_000_000 {
            assert!(in_gap > 1000, "the leak fires through the gap: {in_gap} spikes");
        }
        assert!(one.0.iter().filter(|s| s.t >= gap).count() > 100, "the events after the gap make spikes");
        for (threads, feed) in [(2, Feed::Calls), (3, Feed::Calls), (2, Feed::Stream), (2, Feed::Mixed)] {
            let got = run(threads, feed);
            assert_eq!(got.0.len(), one.0.len(), "{threads} threads, {feed:?}: spikes");
            assert!(got.0 == one.0, "{threads} threads, {feed:?}: spikes differ");
            assert_eq!(got.1, one.1, "{threads} threads, {feed:?}: counters");
            assert!(got.2 == one.2, "{threads} threads, {feed:?}: power samples");
        }
    }
}

/// A leak (event mode) or a bias (binned mode) acts at every tick or bin of a gap in the input,
/// until the neurons settle (here at `min_v_mem`, the biases being negative; a positive one
/// fires all along, and is run tick by tick). A gap of 30 years
/// (10^12 ticks or bins, which would take hours one by one) gives the spikes of a gap of 100,
/// which the neurons settle in: the ticks and bins after a quiet one are skipped.
#[test]
fn a_gap_of_years_with_a_leak_costs_no_time_and_changes_nothing() {
    let mut n = net(1, 2, 1, 3, vec![25, 8], 10, -10);
    if let Some(q) = n.layers[0].quant.as_mut() {
        q.bias = Some(vec![-3, -1]);
    }
    let at = |gap: i64| {
        let events =
            [Event::new(0, 1, 1, true), Event::new(500, 1, 2, true), Event::new(gap, 1, 1, true), Event::new(gap + 1500, 0, 1, true)];
        let mut runs = Vec::new();
        for (mode, leak) in [(Mode::Event, Some(1000)), (Mode::Binned { bin_us: 1000 }, None)] {
            let config = Config { mode, leak_tick_us: leak, monitors: Monitors::of([1]), ..Config::default() };
            let mut sim = Simulator::new(&n, config).expect("sim");
            let mut out = Vec::new();
            sim.process(&events, &mut out);
            sim.finish(&mut out);
            runs.push(out.iter().map(|s| (if s.t >= gap { s.t - gap } else { s.t }, s.c, s.y, s.x)).collect::<Vec<_>>());
        }
        runs
    };
    let short = at(100_000);
    assert!(short.iter().all(|spikes| spikes.len() >= 2), "{short:?}");
    assert_eq!(at(1_000_000_000_000_000), short);
}

/// Neurons that start charged (sinabs' initial potentials of a biased network, see
/// `dynapviz_model::zero_step`) need less input to fire, in both modes, and start there again
/// after a reset.
#[test]
fn initial_potentials_are_where_the_neurons_start() {
    // 1 -> 1 channel, 3x3 kernel of 5s on a 5x5 map, threshold 10: one event alone fires none.
    let mut n = net(1, 1, 3, 5, vec![5; 9], 10, -10);
    let event = [Event::new(100, 2, 2, true)];
    for mode in [Mode::Event, Mode::Binned { bin_us: 1000 }] {
        assert!(run(&n, mode, &event).0.is_empty(), "{mode:?}");
    }
    // Row 1 starts at 5 (its three neurons under the kernel fire), (3, 3) at -10 (the floor).
    let mut start = vec![0i16; 25];
    start[5..10].fill(5);
    start[3 * 5 + 3] = -10;
    n.layers[0].quant.as_mut().expect("quant").initial_v_mem = Some(start);
    for mode in [Mode::Event, Mode::Binned { bin_us: 1000 }] {
        let (out, mut sim) = run(&n, mode, &event);
        let fired: Vec<(u16, u16)> = out.iter().map(|s| (s.y, s.x)).collect();
        assert_eq!(fired, [(1, 1), (1, 2), (1, 3)], "{mode:?}");
        sim.reset();
        let mut again = Vec::new();
        sim.process(&[Event::new(5000, 2, 2, true)], &mut again);
        sim.finish(&mut again);
        assert_eq!(again.iter().map(|s| (s.y, s.x)).collect::<Vec<_>>(), fired, "{mode:?} after a reset");
    }
    // One potential too many is a clear error.
    n.layers[0].quant.as_mut().expect("quant").initial_v_mem = Some(vec![0; 26]);
    let err = Simulator::new(&n, Config::default()).err().expect("refused").to_string();
    assert!(err.contains("26 initial potentials"), "{err}");
}

/// Layer 1 (18x18 neurons, pooled 2x2 to 9x9) sends to layer 2 pooled 2x2 and, through a merge
/// with layer 2's spikes, to layer 3 pooled 4x4 (4x4: rows and columns 16 and 17 cut off).
fn pooled_per_destination() -> Network {
    let mut ann = Ann::default();
    let mut uniform = dynapviz_testkit::uniform(7);
    let mut conv = |o: usize, i: usize| AnnLayer::Conv {
        weight: Tensor::new(vec![o, i, 3, 3], (0..o * i * 9).map(|_| uniform() - 0.25).collect()).expect("t"),
        bias: None,
        stride: [1, 1],
        padding: [1, 1],
    };
    let sum_pool = |k: usize| AnnLayer::SumPool { kernel: [k, k], stride: [k, k] };
    ann.push("c1", conv(4, 2));
    ann.push("r1", AnnLayer::Relu);
    ann.push("p1a", sum_pool(2));
    ann.push("c2", conv(4, 4));
    ann.push("r2", AnnLayer::Relu);
    ann.push("p2", sum_pool(2));
    ann.push_from("p1b", sum_pool(4), vec![Source::Layer(1)]);
    ann.push_from("m", AnnLayer::Merge, vec![Source::Layer(6), Source::Layer(5)]);
    ann.push("c3", conv(3, 4));
    let mut n = convert(&ann, [2, 18, 18], &DvsOptions::default()).expect("convert");
    discretize(&mut n);
    n
}

#[test]
fn a_destination_pooled_coarser_gets_the_layers_spikes_pooled_again() {
    let n = pooled_per_destination();
    assert_eq!((n.layers[0].pool, &n.layers[0].destination_pools[..]), ([2, 2], &[[2, 2], [4, 4]][..]));
    let mut uniform = dynapviz_testkit::uniform(8);
    let events: Vec<Event> =
        (0..30000).map(|i| Event::new(i * 3, (uniform() * 18.0) as u16 % 18, (uniform() * 18.0) as u16 % 18, uniform() < 0.5)).collect();
    for mode in [Mode::Event, Mode::Binned { bin_us: 200 }] {
        let (out, sim) = run(&n, mode, &events);
        let c = sim.counters();
        // Layer 1's spikes in the 8x8 of its 9x9 map that the 4x4 pooling keeps, and layer 2's.
        let kept = out.iter().filter(|s| s.layer == 1 && s.y < 8 && s.x < 8).count() as u64;
        assert!(kept > 0 && kept < c[1].spikes_after_pool, "{mode:?}: some are cut, some kept: {kept} of {}", c[1].spikes_after_pool);
        assert_eq!(c[3].input_events, kept + c[2].spikes_after_pool, "{mode:?}");
        assert_eq!(c[2].input_events, c[1].spikes_after_pool, "{mode:?}: layer 2 takes them as they are");
    }
    // Two threads (layers split across them, spikes handed on between) run the same.
    let (one, _) = run(&n, Mode::Event, &events);
    let monitors = Monitors::of(1..=3);
    let mut sim = Simulator::new(&n, Config { threads: 2, monitors, ..Config::default() }).expect("sim");
    let mut two = Vec::new();
    sim.process(&events, &mut two);
    sim.finish(&mut two);
    assert_eq!(one, two);
}
