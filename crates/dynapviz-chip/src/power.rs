//! Power estimate per supply rail, sampled at a fixed rate in simulated time.
//!
//! **This is an estimate**, not a measurement: static power per rail is the idle power measured
//! on a Speck devkit (sinabs power-monitoring notebook, DESIGN.md §6); dynamic power is counted
//! work times an energy per operation. The energies are chosen so that DVS-Gesture-like load
//! (about 100 k sensor events/s) lands on the load figures of DESIGN.md §6 (pixel-analog
//! ~0.73 mW, logic up to ~0.4 mW, io peaks near 0.4 mW); they are not chip data.

use serde::Serialize;

/// Supply rails in the order (and with the channel numbers) of the devkit's power monitor.
pub const RAILS: [&str; 5] = ["io", "ram", "logic", "pixel-digital", "pixel-analog"];

/// Every coefficient of the model, with its source.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Coefficients {
    /// Idle power per rail, W. Source: DESIGN.md §6 (measured idle, Speck devkit).
    pub static_w: [f64; 5],
    /// Energy per sensor event on the pixel-analog rail, J. Estimate: +0.12 mW at 100 k ev/s.
    pub pixel_analog_per_event_j: f64,
    /// Energy per sensor event on the pixel-digital rail, J. Estimate.
    pub pixel_digital_per_event_j: f64,
    /// Energy per synaptic operation on the logic rail, J. Estimate.
    pub logic_per_synop_j: f64,
    /// Energy per neuron spike on the logic rail, J. Estimate.
    pub logic_per_spike_j: f64,
    /// Energy per synaptic operation on the ram rail (weight and state reads), J. Estimate.
    pub ram_per_synop_j: f64,
    /// Energy per event leaving the chip (monitored spikes, readout) on the io rail, J. Estimate.
    pub io_per_output_event_j: f64,
}

impl Default for Coefficients {
    fn default() -> Self {
        Self {
            static_w: [61.7e-6, 51.7e-6, 367.0e-6, 78.9e-6, 610.9e-6],
            pixel_analog_per_event_j: 1.2e-9,
            pixel_digital_per_event_j: 0.2e-9,
            logic_per_synop_j: 0.5e-12,
            logic_per_spike_j: 5e-12,
            ram_per_synop_j: 0.2e-12,
            io_per_output_event_j: 20e-9,
        }
    }
}

/// One reading, as the devkit's monitor reports it: rail channel, watts, µs. A rail's samples
/// come a period apart, except after an idle stretch longer than [`IDLE_PERIODS_IN_FULL`]:
/// its first period has a sample, then one sample covers the rest (see [`PowerMonitor`]).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct PowerSample {
    /// 0 io, 1 ram, 2 logic, 3 pixel-digital, 4 pixel-analog.
    pub channel: u8,
    /// Mean power since the rail's previous sample (a period, for its first), W.
    pub value: f64,
    /// End of the time the sample covers, µs.
    pub timestamp: i64,
}

/// The longest idle stretch (periods without work) that gets a sample per period: 10 s at
/// the default 50 Hz. A recording's pause of minutes, or a corrupt timestamp days ahead,
/// would otherwise emit millions of identical samples at once.
pub const IDLE_PERIODS_IN_FULL: i64 = 500;

/// The mean power per rail over a run, from its samples, each weighted by the time it covers:
/// a long idle stretch comes as one sample.
#[derive(Clone, Debug)]
pub struct PowerMean {
    period_us: i64,
    /// Per rail: the last sample's timestamp, and the sums of energy (J) and time (s).
    rails: [(Option<i64>, f64, f64); 5],
}

impl PowerMean {
    /// For samples at `rate_hz`, the rate the [`PowerMonitor`] was given.
    pub fn new(rate_hz: f64) -> Self {
        Self { period_us: period_us(rate_hz), rails: [(None, 0.0, 0.0); 5] }
    }

    /// Adds one sample; samples of channels beyond the five rails are ignored.
    pub fn add(&mut self, sample: &PowerSample) {
        if let Some((last, joules, secs)) = self.rails.get_mut(usize::from(sample.channel)) {
            let covered = last.map_or(self.period_us, |t| sample.timestamp - t) as f64 * 1e-6;
            *last = Some(sample.timestamp);
            *joules += sample.value * covered;
            *secs += covered;
        }
    }

    /// Mean watts per rail, `None` for a rail without samples.
    pub fn watts(&self) -> [Option<f64>; 5] {
        self.rails.map(|(_, joules, secs)| (secs > 0.0).then(|| joules / secs))
    }
}

/// Work counted since the last sample.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Work {
    /// Sensor events.
    pub sensor_events: u64,
    /// Synaptic operations of all cores.
    pub synops: u64,
    /// Spikes of all cores.
    pub spikes: u64,
    /// Events sent off-chip.
    pub output_events: u64,
}

impl std::ops::AddAssign for Work {
    fn add_assign(&mut self, other: Work) {
        self.sensor_events += other.sensor_events;
        self.synops += other.synops;
        self.spikes += other.spikes;
        self.output_events += other.output_events;
    }
}

/// A batch's work by the power periods its sensor events fall in (see [`PeriodClock`]), which
/// is all the power estimate needs of it: each layer sums its work per period as it runs,
/// where it added to an array of every sensor event's work. That array (32 bytes a sensor
/// event) was written by the layers of both threads of the pipeline, and its cache lines went
/// back and forth between the cores: the admission, which cleared it, took a third longer.
#[derive(Default)]
pub(crate) struct PeriodWork {
    parts: Vec<Part>,
}

/// The admitted sensor events of a batch from one on, up to the next part's first, and their
/// work: within one period.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Part {
    /// Its first sensor event, by position in the batch.
    pub first: u32,
    /// The time of that event, µs.
    pub t_us: i64,
    pub work: Work,
}

impl PeriodWork {
    pub fn clear(&mut self) {
        self.parts.clear();
    }

    /// Notes admitted sensor event `index` of the batch, at `t_us` (none before the last):
    /// the batch's first, or one past the end of a period by `clock`, begins a part.
    #[inline(always)]
    pub fn admit(&mut self, index: u32, t_us: i64, clock: &mut PeriodClock) {
        if clock.passes(t_us) || self.parts.is_empty() {
            self.parts.push(Part { first: index, t_us, work: Work::default() });
        }
        if let Some(part) = self.parts.last_mut() {
            part.work.sensor_events += 1;
        }
    }

    /// Begins a part of no sensor events at `t_us`, for the work of ticks of the leak alone
    /// (see [`crate::batch::Batch::ticks_alone`]).
    pub fn ticks_at(&mut self, t_us: i64) {
        self.parts.push(Part { first: 0, t_us, work: Work::default() });
    }

    /// The parts, in order.
    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// Adds a layer's work by sensor event, see [`Tally`]; `output`: whether the layer's
    /// spikes leave the chip.
    pub fn tally(&mut self, output: bool) -> Tally<'_> {
        Tally { parts: &mut self.parts, at: 0, output, mark: [0; 3] }
    }
}

/// Adds a layer's work to the parts of a [`PeriodWork`]. A layer's runs come in the order of
/// their sensor events, so the part changes seldom: the layer keeps the end of the part it is
/// in, and when a run passes it, the work its counters counted since it entered the part is
/// added to it ([`Self::seek`]). A run costs a comparison, no sum.
pub(crate) struct Tally<'a> {
    parts: &'a mut [Part],
    /// The part being added to.
    at: usize,
    output: bool,
    /// The layer's [`Counts`] when it entered the part.
    mark: Counts,
}

/// A layer's synaptic operations, spikes and spikes after pooling, counted from its first run.
pub(crate) type Counts = [u64; 3];

impl Tally<'_> {
    /// Adds the work counted since the last move to the part (`counted`: the layer's counts so
    /// far), then moves to the part of sensor event `index`, one of the batch's admitted ones
    /// and none before the last move's; returns the end of that part's sensor events.
    #[cold]
    pub fn seek(&mut self, index: u32, counted: Counts) -> u32 {
        self.add(counted);
        self.at = self.parts.partition_point(|p| p.first <= index).saturating_sub(1);
        self.parts.get(self.at + 1).map_or(u32::MAX, |p| p.first)
    }

    /// Adds the work counted since the last move to the part: at the end of a layer's runs.
    #[inline]
    pub fn add(&mut self, counted: Counts) {
        let [synops, spikes, after_pool] = std::array::from_fn(|i| counted[i] - self.mark[i]);
        if let Some(part) = self.parts.get_mut(self.at) {
            part.work += Work { sensor_events: 0, synops, spikes, output_events: if self.output { after_pool } else { 0 } };
        }
        self.mark = counted;
    }
}

/// Where the periods of the power samples end, in simulated time: the first a period after
/// the first event, the others a period apart. The monitor emits its samples there, and the
/// event mode's admission splits each batch of sensor events there (see [`PeriodWork`]): each
/// follows a clock of its own, fed the same times.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PeriodClock {
    period_us: i64,
    /// The end of the period the last event is in; `None` before the first event.
    next_us: Option<i64>,
}

/// A sample period at `rate_hz`, µs: at least 1.
fn period_us(rate_hz: f64) -> i64 {
    (1e6 / rate_hz.max(1e-3)).round().max(1.0) as i64
}

/// The ends of the periods an event passed: `count`, a period apart from `first`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Ends {
    pub first: i64,
    pub count: i64,
}

impl PeriodClock {
    /// A clock of periods at `rate_hz`, before its first event.
    pub fn new(rate_hz: f64) -> Self {
        Self { period_us: period_us(rate_hz), next_us: None }
    }

    /// Moves the clock to an event at `t_us` (none before the last): the ends of the periods
    /// that end at or before it. None for the first event, which starts the first period.
    /// Saturates rather than overflow on times near the ends of `i64`.
    #[inline]
    pub fn advance(&mut self, t_us: i64) -> Ends {
        let next = *self.next_us.get_or_insert(t_us.saturating_add(self.period_us));
        let count = if t_us < next { 0 } else { t_us.saturating_sub(next) / self.period_us + 1 };
        self.next_us = Some(next.saturating_add(count.saturating_mul(self.period_us)));
        Ends { first: next, count }
    }

    /// Whether a period ends at or before an event at `t_us`, moving the clock to it.
    #[inline(always)]
    fn passes(&mut self, t_us: i64) -> bool {
        match self.next_us {
            Some(next) if t_us < next => false,
            _ => self.advance(t_us).count > 0,
        }
    }
}

/// Turns counted work into samples at `rate_hz` of simulated time.
#[derive(Clone, Debug)]
pub struct PowerMonitor {
    coefficients: Coefficients,
    clock: PeriodClock,
    rails: usize,
    work: Work,
}

impl PowerMonitor {
    /// A monitor with `rails` = 5 (chip with sensor) or 3 (io, ram, logic).
    pub fn new(rate_hz: f64, rails: usize, coefficients: Coefficients) -> Self {
        Self { coefficients, clock: PeriodClock::new(rate_hz), rails: rails.clamp(1, 5), work: Work::default() }
    }

    /// Adds work done at time `t_us`; emits the samples of every period that ended before it.
    /// The first work starts the clock: the binned mode runs an empty bin 0 before a recording
    /// timed from a few seconds after 0 (sinabs' frames start there), and those seconds are not
    /// the recording's: they get no samples, as the event mode's samples start at its first event.
    #[inline]
    pub fn add(&mut self, t_us: i64, work: Work, out: &mut Vec<PowerSample>) {
        if self.clock.next_us.is_none() && work == Work::default() {
            return;
        }
        self.advance(t_us, out);
        self.work += work;
    }

    /// Emits the samples of every period ending at or before `t_us`. Only the first of them
    /// holds work (the work of later periods is added after); an idle stretch after it longer
    /// than [`IDLE_PERIODS_IN_FULL`] gets a sample for its first period and one for the rest.
    #[inline]
    pub fn advance(&mut self, t_us: i64, out: &mut Vec<PowerSample>) {
        let Ends { first, count } = self.clock.advance(t_us);
        let period = self.clock.period_us;
        let full = if count - 1 > IDLE_PERIODS_IN_FULL { 2 } else { count };
        for k in 0..full {
            self.emit(first + k * period, period, out);
        }
        if full < count {
            let last = first + (count - 1) * period;
            self.emit(last, last - (first + period), out);
        }
    }

    /// Emits the samples of the `span_us` up to `end_us`, the pending work's.
    fn emit(&mut self, end_us: i64, span_us: i64, out: &mut Vec<PowerSample>) {
        let c = &self.coefficients;
        let w = std::mem::take(&mut self.work);
        let secs = span_us as f64 * 1e-6;
        let dynamic = [
            w.output_events as f64 * c.io_per_output_event_j,
            w.synops as f64 * c.ram_per_synop_j,
            w.synops as f64 * c.logic_per_synop_j + w.spikes as f64 * c.logic_per_spike_j,
            w.sensor_events as f64 * c.pixel_digital_per_event_j,
            w.sensor_events as f64 * c.pixel_analog_per_event_j,
        ];
        for (ch, (idle, work)) in c.static_w.iter().zip(dynamic).take(self.rails).enumerate() {
            out.push(PowerSample { channel: ch as u8, value: idle + work / secs, timestamp: end_us });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Coefficients, Ends, IDLE_PERIODS_IN_FULL, PeriodClock, PeriodWork, PowerMean, PowerMonitor, Work};

    /// 5000 sensor events' times and work, a few hundred µs apart and now and then 70 ms.
    fn events(seed: u64) -> Vec<(i64, Work)> {
        let mut uniform = dynapviz_testkit::uniform(seed);
        let mut count = move |most: f32| (uniform() * most) as u64;
        let mut t = 1_000;
        (0..5000)
            .map(|i| {
                t += count(300.0) as i64 + if i % 997 == 0 { 70_000 } else { 0 };
                (t, Work { sensor_events: 1, synops: count(1000.0), spikes: count(20.0), output_events: count(3.0) })
            })
            .collect()
    }

    #[test]
    fn a_clock_ends_every_period_an_event_passes() {
        let mut clock = PeriodClock::new(50.0);
        let none = Ends { first: 21_000, count: 0 };
        // The first event starts the first period; an event at its end ends it.
        assert_eq!(clock.advance(1_000), none);
        assert_eq!(clock.advance(20_999), none);
        assert_eq!(clock.advance(21_000), Ends { first: 21_000, count: 1 });
        // A gap passes several.
        assert_eq!(clock.advance(100_000), Ends { first: 41_000, count: 3 });
        assert_eq!(clock.advance(100_001).count, 0);
        assert!(clock.passes(101_000));
        assert!(!clock.passes(101_000));
        // Times at the ends of i64 do not overflow (the period end saturates there).
        let mut from_min = PeriodClock::new(50.0);
        assert_eq!(from_min.advance(i64::MIN).count, 0);
        assert!(from_min.advance(i64::MAX).count > 0);
        assert!(clock.advance(i64::MAX).count > 0);
        assert!(clock.advance(i64::MAX).count <= 1);
    }

    /// An idle stretch longer than [`IDLE_PERIODS_IN_FULL`] costs three samples per rail
    /// (the period with work, the first idle one, the rest), not one per period, and the
    /// time-weighted mean is that of a sample per period.
    #[test]
    fn a_long_idle_stretch_is_one_sample_and_keeps_the_mean() {
        let work = Work { sensor_events: 400, synops: 90_000, spikes: 500, output_events: 30 };
        let run = |idle: i64| {
            let mut monitor = PowerMonitor::new(50.0, 5, Coefficients::default());
            let mut samples = Vec::new();
            monitor.add(0, work, &mut samples);
            monitor.add((idle + 1) * 20_000, Work::default(), &mut samples);
            let mut mean = PowerMean::new(50.0);
            samples.iter().for_each(|s| mean.add(s));
            (samples, mean.watts())
        };
        let (busy, _) = run(0);
        for idle in [IDLE_PERIODS_IN_FULL, IDLE_PERIODS_IN_FULL + 1, 10_i64.pow(9)] {
            let (samples, watts) = run(idle);
            let per_rail = if idle > IDLE_PERIODS_IN_FULL { 3 } else { idle + 1 };
            assert_eq!(samples.len() as i64, 5 * per_rail, "{idle} idle periods");
            assert_eq!(samples.last().map(|s| s.timestamp), Some((idle + 1) * 20_000));
            for (ch, w) in watts.iter().enumerate() {
                let static_w = Coefficients::default().static_w[ch];
                let want = (busy[ch].value + static_w * idle as f64) / (idle + 1) as f64;
                let got = w.unwrap_or(f64::NAN);
                assert!((got - want).abs() <= 1e-12 * want, "rail {ch}, {idle} idle: {got} against {want}");
            }
        }
    }

    /// The event mode's way: each batch split by the periods as it is admitted, each layer
    /// adding its work to the parts in the order of its sensor events, gives the samples of
    /// adding every admitted sensor event's work at its time. Some events are not admitted;
    /// periods end inside batches and gaps span several.
    #[test]
    fn work_summed_by_period_gives_the_samples_of_work_by_sensor_event() {
        let events = events(7);
        let t = events.last().map_or(0, |e| e.0);
        let admitted = |i: usize| i % 3 != 1;
        let mut by_event = PowerMonitor::new(50.0, 5, Coefficients::default());
        let mut by_period = by_event.clone();
        let (mut clock, mut work) = (PeriodClock::new(50.0), PeriodWork::default());
        let (mut expected, mut got, mut parts) = (Vec::new(), Vec::new(), 0);
        for batch in events.chunks(700) {
            let batch: Vec<(u32, i64, Work)> =
                batch.iter().enumerate().filter(|&(i, _)| admitted(i)).map(|(i, &(t, w))| (i as u32, t, w)).collect();
            batch.iter().for_each(|&(_, t, w)| by_event.add(t, w, &mut expected));
            work.clear();
            batch.iter().for_each(|&(i, t, _)| work.admit(i, t, &mut clock));
            // A layer whose spikes stay on the chip (its spikes after pooling are not output
            // events), then one whose spikes leave it.
            for output in [false, true] {
                let (mut tally, mut counted, mut end) = (work.tally(output), [0; 3], 0);
                for &(i, _, w) in &batch {
                    if i >= end {
                        end = tally.seek(i, counted);
                    }
                    let done = if output { [0, w.spikes, w.output_events] } else { [w.synops, 0, 99] };
                    counted = std::array::from_fn(|k| counted[k] + done[k]);
                }
                tally.add(counted);
            }
            parts += work.parts().len();
            work.parts().iter().for_each(|p| by_period.add(p.t_us, p.work, &mut got));
        }
        by_event.advance(t + 20_000, &mut expected);
        by_period.advance(t + 20_000, &mut got);
        assert!(parts > 40, "{parts} parts");
        assert_eq!(expected, got);
    }
}
