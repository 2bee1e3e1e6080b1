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

/// One reading, as the devkit's monitor reports it: rail channel, watts, µs.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct PowerSample {
    /// 0 io, 1 ram, 2 logic, 3 pixel-digital, 4 pixel-analog.
    pub channel: u8,
    /// Mean power over the sample period, W.
    pub value: f64,
    /// End of the sample period, µs.
    pub timestamp: i64,
}

/// Work counted since the last sample.
#[derive(Clone, Copy, Debug, Default)]
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

/// Turns counted work into samples at `rate_hz` of simulated time.
#[derive(Clone, Debug)]
pub struct PowerMonitor {
    coefficients: Coefficients,
    period_us: i64,
    rails: usize,
    next_us: Option<i64>,
    work: Work,
}

impl PowerMonitor {
    /// A monitor with `rails` = 5 (chip with sensor) or 3 (io, ram, logic).
    pub fn new(rate_hz: f64, rails: usize, coefficients: Coefficients) -> Self {
        let period_us = (1e6 / rate_hz.max(1e-3)).round().max(1.0) as i64;
        Self { coefficients, period_us, rails: rails.clamp(1, 5), next_us: None, work: Work::default() }
    }

    /// Adds work done at time `t_us`; emits the samples of every period that ended before it.
    #[inline]
    pub fn add(&mut self, t_us: i64, work: Work, out: &mut Vec<PowerSample>) {
        self.advance(t_us, out);
        self.work += work;
    }

    /// [`Self::add`] for each of `work` (time, work) in turn. The work is summed in locals
    /// between the ends of periods: this runs for every sensor event, where `add` kept the sum
    /// in memory.
    #[inline]
    pub fn add_all(&mut self, work: impl IntoIterator<Item = (i64, Work)>, out: &mut Vec<PowerSample>) {
        let (mut sum, mut next) = (std::mem::take(&mut self.work), self.next_us);
        for (t_us, w) in work {
            if next.is_none_or(|next| t_us >= next) {
                self.work = sum;
                self.advance(t_us, out);
                (sum, next) = (std::mem::take(&mut self.work), self.next_us);
            }
            sum += w;
        }
        self.work = sum;
    }

    /// Emits the samples of every period ending at or before `t_us`.
    #[inline]
    pub fn advance(&mut self, t_us: i64, out: &mut Vec<PowerSample>) {
        let next = *self.next_us.get_or_insert(t_us + self.period_us);
        if t_us < next {
            return;
        }
        let mut end = next;
        while end <= t_us {
            self.emit(end, out);
            end += self.period_us;
        }
        self.next_us = Some(end);
    }

    fn emit(&mut self, end_us: i64, out: &mut Vec<PowerSample>) {
        let c = &self.coefficients;
        let w = std::mem::take(&mut self.work);
        let secs = self.period_us as f64 * 1e-6;
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
    use super::{Coefficients, PowerMonitor, Work};

    /// A batch's work added at once gives the samples that adding it one sensor event at a time
    /// gives, and leaves the same work pending: with periods that end inside a batch, gaps
    /// longer than several periods, and the first event, which starts the first period.
    #[test]
    fn adding_a_batch_at_once_is_adding_it_event_by_event() {
        let mut uniform = dynapviz_testkit::uniform(5);
        let mut count = move |most: f32| (uniform() * most) as u64;
        let mut t = 1_000;
        let events: Vec<(i64, Work)> = (0..5000)
            .map(|i| {
                t += count(300.0) as i64 + if i % 997 == 0 { 70_000 } else { 0 };
                (t, Work { sensor_events: 1, synops: count(1000.0), spikes: count(20.0), output_events: count(3.0) })
            })
            .collect();
        let mut one = PowerMonitor::new(50.0, 5, Coefficients::default());
        let mut all = one.clone();
        let (mut by_one, mut by_all) = (Vec::new(), Vec::new());
        for batch in events.chunks(700) {
            batch.iter().for_each(|&(t, w)| one.add(t, w, &mut by_one));
            all.add_all(batch.iter().copied(), &mut by_all);
        }
        // The work after the last period's end comes out in the next.
        one.advance(t + 20_000, &mut by_one);
        all.advance(t + 20_000, &mut by_all);
        assert!(by_one.len() > 40 * 5, "{} samples", by_one.len());
        assert_eq!(by_one, by_all);
    }
}
