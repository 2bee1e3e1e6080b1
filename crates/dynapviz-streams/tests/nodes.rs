//! Each node against hand-computed expectations, edge cases included.

use dynapviz_chip::Spike;
use dynapviz_events::{Event, Geometry};
use dynapviz_streams::nodes::filter::{BackgroundActivityFilter, Crop, Decimate, HotPixelFilter, LayerSelect, PolarityFilter, Rescale};
use dynapviz_streams::nodes::frame::FrameAccumulator;
use dynapviz_streams::nodes::readout::{Collection, EMPTY_COLLECTIONS_IN_FULL, MajorityReadout, SpikeCollector, SpikeCount};

fn ev(t: i64, x: u16, y: u16, p: bool) -> Event {
    Event::new(t, x, y, p)
}

fn spike(t: i64, c: u16) -> Spike {
    Spike { t, layer: 9, c, y: 0, x: 0 }
}

#[test]
fn decimate_keeps_l_of_every_m_across_chunks() {
    let mut d = Decimate::new(3, 2).expect("valid");
    let mut a: Vec<Event> = (0..4).map(|t| ev(t, 0, 0, true)).collect();
    let mut b: Vec<Event> = (4..9).map(|t| ev(t, 0, 0, true)).collect();
    d.apply(&mut a);
    d.apply(&mut b);
    let kept: Vec<i64> = a.iter().chain(&b).map(|e| e.t).collect();
    assert_eq!(kept, [0, 1, 3, 4, 6, 7]);
    let mut all = Decimate::new(5, 5).expect("L = M");
    let mut v: Vec<Event> = (0..7).map(|t| ev(t, 0, 0, true)).collect();
    all.apply(&mut v);
    assert_eq!(v.len(), 7, "L = M keeps everything");
    assert!(Decimate::new(2, 3).is_err() && Decimate::new(2, 0).is_err());
}

#[test]
fn rescale_fits_a_vga_camera_to_128() {
    let r = Rescale::fit(Geometry::new(640, 480), Geometry::DVS128).expect("fit");
    let mut v = vec![ev(0, 639, 479, true), ev(0, 5, 4, true), ev(0, 4, 3, false)];
    r.apply(&mut v);
    assert_eq!(v.iter().map(|e| (e.x, e.y)).collect::<Vec<_>>(), [(127, 127), (1, 1), (0, 0)]);
    assert!(Rescale::new(0.0, 1.0).is_err());
}

#[test]
fn crop_polarity_and_layer_select() {
    let mut v = vec![ev(0, 9, 9, true), ev(0, 10, 10, false), ev(0, 19, 19, true), ev(0, 20, 5, true)];
    Crop::new(10, 10, 20, 20, true).expect("roi").apply(&mut v);
    assert_eq!(v.iter().map(|e| (e.x, e.y)).collect::<Vec<_>>(), [(0, 0), (9, 9)]);
    PolarityFilter { on: true }.apply(&mut v);
    assert_eq!(v.len(), 1);
    let mut s = vec![Spike { t: 0, layer: 0, c: 0, y: 0, x: 0 }, spike(1, 2)];
    LayerSelect::new(&[9]).apply(&mut s);
    assert_eq!(s, [spike(1, 2)]);
    assert!(Crop::new(5, 5, 5, 9, false).is_err());
}

#[test]
fn spike_collection_by_event_time_with_empty_intervals() {
    let mut c = SpikeCollector::new(10.0).expect("10 ms");
    let mut out = Vec::new();
    c.add(&[spike(1000, 1), spike(5000, 2), spike(35_000, 1)], &mut out);
    c.finish(&mut out);
    let shape: Vec<(i64, i64, u64)> = out.iter().map(|k| (k.start_us, k.end_us, k.total)).collect();
    assert_eq!(shape, [(1000, 11_000, 2), (11_000, 21_000, 0), (21_000, 31_000, 0), (31_000, 41_000, 1)]);
    // A spike exactly at an interval end belongs to the next interval.
    let mut c = SpikeCollector::new(1.0).expect("1 ms");
    let mut out = Vec::new();
    c.add(&[spike(0, 0), spike(1000, 0)], &mut out);
    assert_eq!(out.len(), 1);
    assert!(SpikeCollector::new(0.0).is_err());
}

#[test]
fn a_gap_of_days_yields_a_bounded_number_of_empty_collections() {
    let mut c = SpikeCollector::new(500.0).expect("500 ms");
    let mut out = Vec::new();
    let days = 12 * 86_400_000_000;
    c.add(&[spike(0, 1), spike(days + 250_000, 2)], &mut out);
    c.finish(&mut out);
    assert_eq!(out.len(), 1 + EMPTY_COLLECTIONS_IN_FULL + 1, "the busy one, the empty ones in full, the one of the next spike");
    assert_eq!(out.iter().map(|k| k.total).sum::<u64>(), 2);
    // The intervals stay on the grid: the last one is the interval of the spike.
    let last = out.last().expect("collections");
    assert_eq!((last.start_us, last.end_us, last.total), (days, days + 500_000, 1));
    assert!(out.windows(2).all(|w| w[0].end_us <= w[1].start_us), "in order, not overlapping");
    // A shorter gap is still sampled in full.
    let mut out = Vec::new();
    let mut c = SpikeCollector::new(500.0).expect("500 ms");
    c.add(&[spike(0, 1), spike(30_000_000, 2)], &mut out);
    assert_eq!(out.len(), 60);
}

fn collection(channels: &[u16]) -> Collection {
    let mut c = Collection::new(0, 1);
    channels.iter().for_each(|&ch| c.add(ch));
    c
}

#[test]
fn spike_count_ignores_channels_beyond_the_feature_count() {
    let n = SpikeCount { feature_count: 3 }.count(&collection(&[0, 2, 2, 5]));
    assert_eq!(n, [1, 0, 2]);
    assert_eq!(SpikeCount { feature_count: 2 }.count(&collection(&[])), [0, 0]);
}

#[test]
fn majority_readout_rules() {
    let r = MajorityReadout::new(2, 5, 1, 4, 5).expect("valid");
    assert_eq!(r.decide(&collection(&[1, 1, 3])), 1, "2 > prediction threshold 1, unique");
    assert_eq!(r.decide(&collection(&[1, 3])), 4, "1 does not exceed the prediction threshold: default");
    assert_eq!(r.decide(&collection(&[1, 1, 3, 3])), 4, "a tie gives the default");
    assert_eq!(r.decide(&collection(&[1])), 4, "below threshold low");
    assert_eq!(r.decide(&collection(&[2, 2])), 2, "exactly threshold low counts");
    assert_eq!(r.decide(&collection(&[2, 2, 2, 0, 0])), 2, "exactly threshold high counts");
    assert_eq!(r.decide(&collection(&[2, 2, 2, 0, 0, 0])), 4, "above threshold high");
    assert!(MajorityReadout::new(5, 2, 1, 0, 3).is_err());
    assert!(MajorityReadout::new(0, 2, 1, 3, 3).is_err());
}

#[test]
fn hot_pixels_are_masked_after_a_window() {
    let g = Geometry::new(4, 4);
    let mut f = HotPixelFilter::new(g, 1000, 3.0, 5).expect("valid");
    let mut w1: Vec<Event> = (0..50).map(|i| ev(i, 1, 1, true)).chain((0..4).map(|i| ev(i, 2, (i % 4) as u16, true))).collect();
    w1.sort_by_key(|e| e.t);
    f.apply(&mut w1);
    assert_eq!(w1.len(), 54, "nothing is known before the first window closes");
    let mut w2 = vec![ev(1500, 1, 1, true), ev(1501, 2, 0, true)];
    f.apply(&mut w2);
    assert_eq!(w2, [ev(1501, 2, 0, true)]);
    assert_eq!(f.removed, 1);
}

#[test]
fn background_activity_filter_keeps_supported_events() {
    let mut f = BackgroundActivityFilter::new(Geometry::new(8, 8), 100).expect("valid");
    let mut v = vec![ev(0, 3, 3, true), ev(50, 4, 4, true), ev(500, 0, 0, true), ev(700, 4, 3, false)];
    f.apply(&mut v);
    // (3,3) has no support; (4,4) is next to (3,3) within 100 µs; (0,0) isolated; (4,3) is 650 µs
    // after its neighbours.
    assert_eq!(v, [ev(50, 4, 4, true)]);
    assert_eq!(f.removed, 3);
}

#[test]
fn frame_accumulation_decays() {
    let mut f = FrameAccumulator::new(Geometry::new(2, 1), Some(1000.0));
    f.add(&[ev(0, 0, 0, true), ev(1, 0, 0, true), ev(2, 1, 0, false), ev(3, 5, 5, true)]);
    assert_eq!((f.on[0], f.off[1], f.outside), (2.0, 1.0, 1));
    f.next_frame(0);
    assert_eq!(f.on[0], 0.0, "first frame: nothing to decay from, cleared");
    f.add(&[ev(10, 0, 0, true)]);
    f.next_frame(1000);
    assert!((f.on[0] - (-1.0f32).exp()).abs() < 1e-6);
}

#[test]
fn wall_clock_collection_closes_by_real_time() {
    use dynapviz_streams::nodes::readout::WallClockCollector;
    use std::time::{Duration, Instant};
    let mut c = WallClockCollector::new(50.0).expect("valid");
    let t0 = Instant::now();
    let mut out = Vec::new();
    c.add(&[spike(999_999, 1), spike(5, 2)], t0, &mut out);
    c.poll(t0 + Duration::from_millis(20), &mut out);
    assert!(out.is_empty());
    c.poll(t0 + Duration::from_millis(60), &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].total, out[0].per_channel.clone()), (2, vec![0, 1, 1]), "timestamps do not matter, arrival does");
    c.poll(t0 + Duration::from_millis(120), &mut out);
    assert_eq!(out.len(), 2, "an empty interval is reported too");
    assert!(WallClockCollector::new(-1.0).is_err());
}
