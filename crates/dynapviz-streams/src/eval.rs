//! Evaluation on labelled recordings (the DVS128 Gesture layout: `NAME.aedat` with
//! `NAME_labels.csv` of `class,startTime_usec,endTime_usec`): each labelled segment runs through
//! the simulated chip from a reset state; the prediction is the class with the most output
//! spikes over the segment, and the readout latency is the time from the segment's start to the
//! end of the first collection interval whose majority readout is correct.

use std::path::{Path, PathBuf};

use dynapviz_chip::{Simulator, Spike};
use dynapviz_events::{CHUNK, Segment};
use serde::Serialize;

use crate::nodes::readout::{Collection, MajorityReadout, SpikeCollector};

/// One evaluated segment.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct SampleResult {
    /// The recording.
    pub file: String,
    /// True class (output channel).
    pub label: usize,
    /// Predicted class: most output spikes over the segment (ties: lowest channel), `None`
    /// without any output spike.
    pub predicted: Option<usize>,
    /// Output spikes per class.
    pub counts: Vec<u64>,
    /// µs from the segment start to the first correct readout.
    pub latency_us: Option<i64>,
}

/// Aggregated results.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Report {
    /// Fraction of samples predicted right.
    pub accuracy: f64,
    /// Recall per class (None for a class without samples).
    pub per_class_recall: Vec<Option<f64>>,
    /// `confusion[true][predicted]`; a last column counts samples without any output spike.
    pub confusion: Vec<Vec<u64>>,
    /// Number of samples.
    pub samples: usize,
    /// Median latency to the first correct readout, ms (over samples that got one).
    pub median_latency_ms: Option<f64>,
    /// Every sample.
    pub results: Vec<SampleResult>,
}

/// The label file beside a recording: `NAME_labels.csv` for `NAME.ext`.
pub fn labels_for(recording: &Path) -> PathBuf {
    let stem = recording.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    recording.with_file_name(format!("{stem}_labels.csv"))
}

/// How segments are scored.
pub struct EvalSettings<'a> {
    /// Maps a file label to an output channel (None: skip the segment).
    pub class_of: &'a (dyn Fn(u32) -> Option<usize> + Sync),
    /// Output classes.
    pub classes: usize,
    /// Collection interval of the readout, ms.
    pub collection_ms: f64,
    /// The readout rules.
    pub readout: &'a MajorityReadout,
}

/// Runs every labelled segment of `recording`.
pub fn evaluate_file(
    sim: &mut Simulator,
    recording: &Path,
    segments: &[Segment],
    settings: &EvalSettings<'_>,
    mut progress: impl FnMut(u64),
) -> Result<Vec<SampleResult>, String> {
    let EvalSettings { class_of, classes, collection_ms, readout } = *settings;
    let mut segs: Vec<&Segment> = segments.iter().collect();
    segs.sort_by_key(|s| s.start_us);
    let output = sim.layer_count() as u16;
    let mut reader = dynapviz_events::open(recording).map_err(|e| e.to_string())?;
    let mut chunk = Vec::with_capacity(CHUNK);
    let mut spikes: Vec<Spike> = Vec::new();
    let mut out = Vec::new();
    let mut current: Option<(usize, Vec<u64>, SpikeCollector, Option<i64>)> = None;
    let mut next = 0;
    let file = recording.display().to_string();
    let finish = |sim: &mut Simulator,
                  cur: (usize, Vec<u64>, SpikeCollector, Option<i64>),
                  seg: &Segment,
                  spikes: &mut Vec<Spike>,
                  out: &mut Vec<SampleResult>| {
        let (label, mut counts, mut collector, mut latency) = cur;
        spikes.clear();
        sim.finish(spikes);
        spikes.retain(|s| s.layer == output);
        let mut collections = Vec::new();
        collector.add(spikes, &mut collections);
        collector.finish(&mut collections);
        score(spikes, &collections, &mut counts, &mut latency, label, seg.start_us, readout);
        let best = counts.iter().copied().max().unwrap_or(0);
        let predicted = (best > 0).then(|| counts.iter().position(|&c| c == best)).flatten();
        out.push(SampleResult { file: file.clone(), label, predicted, counts, latency_us: latency });
    };
    loop {
        chunk.clear();
        let n = reader.read_chunk(&mut chunk, CHUNK).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        progress(n as u64);
        let mut i = 0;
        while i < chunk.len() {
            let t = chunk[i].t;
            // Close the running segment once time passes its end.
            if let Some(cur) = current.take() {
                let seg = segs[next - 1];
                if t >= seg.end_us {
                    finish(sim, cur, seg, &mut spikes, &mut out);
                } else {
                    current = Some(cur);
                }
            }
            // Open the next segment when its start is reached.
            while current.is_none() && next < segs.len() && t >= segs[next].end_us {
                next += 1; // a segment with no events at all: nothing to run
            }
            if current.is_none() && next < segs.len() && t >= segs[next].start_us {
                let seg = segs[next];
                next += 1;
                if let Some(label) = class_of(seg.class) {
                    sim.reset();
                    let mut collector = SpikeCollector::new(collection_ms).map_err(|e| e.to_string())?;
                    collector.start(seg.start_us);
                    current = Some((label, vec![0; classes], collector, None));
                } else {
                    current = None;
                }
            }
            // Feed the events of the running segment up to its end.
            let end = match (&current, next.checked_sub(1).map(|k| segs[k])) {
                (Some(_), Some(seg)) => i + chunk[i..].partition_point(|e| e.t < seg.end_us),
                _ => {
                    let upto = segs.get(next).map_or(i64::MAX, |s| s.start_us);
                    i + chunk[i..].partition_point(|e| e.t < upto).max(1)
                }
            };
            if let Some((label, counts, collector, latency)) = &mut current {
                let seg = segs[next - 1];
                spikes.clear();
                sim.process(&chunk[i..end], &mut spikes);
                spikes.retain(|s| s.layer == output);
                let mut collections = Vec::new();
                collector.add(&spikes, &mut collections);
                if let Some(last) = chunk[i..end].last() {
                    collector.advance(last.t, &mut collections);
                }
                score(&spikes, &collections, counts, latency, *label, seg.start_us, readout);
            }
            i = end.max(i + 1);
        }
    }
    if let Some(cur) = current.take() {
        finish(sim, cur, segs[next - 1], &mut spikes, &mut out);
    }
    Ok(out)
}

/// Calls `window(segment_index, frame)` with the event counts of every consecutive window of
/// `window_us` of every labelled segment of `recording`, in time order; `frame` is `[c, h, w]`
/// row-major (`c` = polarity, or one channel when `shape[0]` is 1; events outside the shape are
/// left out). The input on which the float ANN is scored, to compare with the chip. One frame
/// per open segment is held, so memory stays bounded however long the segments; an event that
/// arrives late (time going backwards) counts in its segment's current window.
pub fn for_each_window(
    recording: &Path,
    segments: &[Segment],
    shape: [usize; 3],
    window_us: i64,
    mut window: impl FnMut(usize, &[f32]) -> Result<(), String>,
) -> Result<(), String> {
    let [c, h, w] = shape;
    let window_us = window_us.max(1);
    // Per segment: the window being filled and its counts (allocated on the segment's first event).
    let mut open: Vec<Option<(i64, Vec<f32>)>> = vec![None; segments.len()];
    let mut reader = dynapviz_events::open(recording).map_err(|e| e.to_string())?;
    let mut chunk = Vec::with_capacity(CHUNK);
    loop {
        chunk.clear();
        if reader.read_chunk(&mut chunk, CHUNK).map_err(|e| e.to_string())? == 0 {
            break;
        }
        for e in &chunk {
            let (x, y, ch) = (usize::from(e.x), usize::from(e.y), if c == 1 { 0 } else { usize::from(e.p) });
            for (k, seg) in segments.iter().enumerate() {
                if !(seg.start_us..seg.end_us).contains(&e.t) {
                    continue;
                }
                let index = (e.t - seg.start_us) / window_us;
                let slot = open[k].get_or_insert_with(|| (index, vec![0f32; c * h * w]));
                if index > slot.0 {
                    window(k, &slot.1)?;
                    slot.1.fill(0.0);
                    slot.0 = index;
                }
                if x < w && y < h && ch < c {
                    slot.1[(ch * h + y) * w + x] += 1.0;
                }
            }
        }
    }
    for (k, slot) in open.into_iter().enumerate() {
        if let Some((_, frame)) = slot {
            window(k, &frame)?;
        }
    }
    Ok(())
}

/// Adds output spikes to the per-class counts, and records the latency of the first completed
/// collection whose readout is the true class.
fn score(
    spikes: &[Spike],
    collections: &[Collection],
    counts: &mut [u64],
    latency: &mut Option<i64>,
    label: usize,
    start_us: i64,
    readout: &MajorityReadout,
) {
    for s in spikes {
        if let Some(c) = counts.get_mut(usize::from(s.c)) {
            *c += 1;
        }
    }
    for c in collections {
        if latency.is_none() && readout.predict(c) == Some(label) {
            *latency = Some(c.end_us - start_us);
        }
    }
}

/// Aggregates sample results over `classes` classes.
pub fn report(results: Vec<SampleResult>, classes: usize) -> Report {
    let mut confusion = vec![vec![0u64; classes + 1]; classes];
    for r in &results {
        if let Some(row) = confusion.get_mut(r.label) {
            row[r.predicted.unwrap_or(classes).min(classes)] += 1;
        }
    }
    let correct: u64 = (0..classes).map(|c| confusion[c][c]).sum();
    let per_class_recall = confusion
        .iter()
        .enumerate()
        .map(|(c, row)| {
            let n: u64 = row.iter().sum();
            (n > 0).then(|| row[c] as f64 / n as f64)
        })
        .collect();
    let mut lat: Vec<f64> = results.iter().filter_map(|r| r.latency_us).map(|l| l as f64 / 1e3).collect();
    lat.sort_by(f64::total_cmp);
    Report {
        accuracy: if results.is_empty() { 0.0 } else { correct as f64 / results.len() as f64 },
        per_class_recall,
        confusion,
        samples: results.len(),
        median_latency_ms: lat.get(lat.len() / 2).copied(),
        results,
    }
}

#[cfg(test)]
mod tests {
    use dynapviz_events::{Event, EventWriter, Format, Geometry};

    use super::*;

    #[test]
    fn windows_count_each_segment_s_events_in_order_with_bounded_frames() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("rec.csv");
        let mut w = EventWriter::create(&path, Format::Csv, Geometry::new(4, 2)).expect("writer");
        // Segment 0: 0..300 µs; segment 1: 400..500 µs. Windows of 100 µs.
        let events = [(10, 0, 0, true), (20, 0, 0, true), (150, 3, 1, false), (250, 1, 0, true), (350, 2, 0, true), (420, 1, 1, false)];
        w.write(&events.map(|(t, x, y, p)| Event::new(t, x, y, p))).expect("write");
        w.finish().expect("finish");
        let segments = [Segment { class: 1, start_us: 0, end_us: 300 }, Segment { class: 2, start_us: 400, end_us: 500 }];
        let mut seen = Vec::new();
        for_each_window(&path, &segments, [2, 2, 4], 100, |k, frame| {
            let hot: Vec<usize> = frame.iter().enumerate().filter(|(_, v)| **v > 0.0).map(|(i, _)| i).collect();
            seen.push((k, frame.iter().sum::<f32>(), hot));
            Ok(())
        })
        .expect("windows");
        // ON at (0,0) is channel 1 -> index 8; OFF at (3,1) -> 7; ON at (1,0) -> 9; OFF at (1,1) -> 5.
        // The event at 350 µs lies in no segment. Empty windows are not reported.
        assert_eq!(seen, vec![(0, 2.0, vec![8]), (0, 1.0, vec![7]), (0, 1.0, vec![9]), (1, 1.0, vec![5])]);
    }
}
