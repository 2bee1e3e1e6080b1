//! Playing a recording: as fast as possible, in real time, at a speed factor, looped, paused.
//! Timestamps stay monotonic across loops: each pass is shifted past the previous one.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dynapviz_events::{CHUNK, Event, EventReader, Geometry};

/// Shared playback controls (pause, speed), settable from another thread (the viewer).
#[derive(Clone, Debug)]
pub struct Controls {
    paused: Arc<AtomicBool>,
    speed_bits: Arc<AtomicU64>,
    lag_us: Arc<AtomicU64>,
}

impl Controls {
    /// Playing at `speed` (1.0 = real time; 0 or below = as fast as possible).
    pub fn new(speed: f64) -> Self {
        Self {
            paused: Arc::new(AtomicBool::new(false)),
            speed_bits: Arc::new(AtomicU64::new(speed.to_bits())),
            lag_us: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Pauses or resumes.
    pub fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::Relaxed);
    }

    /// Whether playback is paused.
    pub fn paused(&self) -> bool {
        self.paused.load(Ordering::Relaxed)
    }

    /// Changes the speed factor.
    pub fn set_speed(&self, speed: f64) {
        self.speed_bits.store(speed.to_bits(), Ordering::Relaxed);
    }

    /// The speed factor (<= 0: as fast as possible).
    pub fn speed(&self) -> f64 {
        f64::from_bits(self.speed_bits.load(Ordering::Relaxed))
    }

    /// How far paced playback was behind the wall clock when it last handed out events: the
    /// speed asked is not the speed reached when whatever takes the events (the simulator,
    /// the display) cannot keep up. Zero when on time, paused or unpaced.
    pub fn lag(&self) -> Duration {
        Duration::from_micros(self.lag_us.load(Ordering::Relaxed))
    }

    fn set_lag(&self, lag: Duration) {
        self.lag_us.store(lag.as_micros().min(u128::from(u64::MAX)) as u64, Ordering::Relaxed);
    }
}

/// A recording played as a stream.
pub struct FileSource {
    path: PathBuf,
    reader: Box<dyn EventReader>,
    looped: bool,
    controls: Controls,
    /// Added to file timestamps (grows by one recording length per loop).
    shift: i64,
    first_t: Option<i64>,
    last_t: i64,
    pending: Vec<Event>,
    pending_at: usize,
    /// Wall clock and event time of the playback origin (reset on speed change and resume).
    origin: Option<(Instant, i64, f64)>,
    /// Completed passes over the file.
    pub loops: u64,
}

/// Longest stretch of event time handed out at once in real-time playback, µs: keeps the
/// display fluid.
const SLICE_US: i64 = 5_000;

impl FileSource {
    /// Opens `path` (any format the readers know).
    pub fn open(path: &Path, looped: bool, controls: Controls) -> dynapviz_events::Result<Self> {
        Ok(Self {
            path: path.to_path_buf(),
            reader: dynapviz_events::open(path)?,
            looped,
            controls,
            shift: 0,
            first_t: None,
            last_t: 0,
            pending: Vec::new(),
            pending_at: 0,
            origin: None,
            loops: 0,
        })
    }

    /// The sensor size the file states.
    pub fn geometry(&self) -> Option<Geometry> {
        self.reader.geometry()
    }

    fn refill(&mut self) -> dynapviz_events::Result<bool> {
        self.pending.clear();
        self.pending_at = 0;
        loop {
            if self.reader.read_chunk(&mut self.pending, CHUNK)? > 0 {
                self.first_t.get_or_insert(self.pending[0].t);
                for e in &mut self.pending {
                    e.t += self.shift;
                }
                if let Some(last) = self.pending.last() {
                    self.last_t = self.last_t.max(last.t);
                }
                return Ok(true);
            }
            if !self.looped || self.first_t.is_none() {
                return Ok(false);
            }
            // Next pass starts 1 µs after this one ended.
            self.loops += 1;
            let first = self.first_t.unwrap_or(0);
            self.shift = self.last_t + 1 - first;
            self.reader = dynapviz_events::open(&self.path)?;
        }
    }

    /// Appends the next events to `out`, waiting as the pace requires; `Ok(false)` at the end.
    /// While paused it waits (in short sleeps, so a viewer stays responsive) and returns `true`
    /// with nothing appended.
    pub fn next_chunk(&mut self, out: &mut Vec<Event>) -> dynapviz_events::Result<bool> {
        if self.controls.paused() {
            self.origin = None;
            self.controls.set_lag(Duration::ZERO);
            std::thread::sleep(Duration::from_millis(10));
            return Ok(true);
        }
        if self.pending_at >= self.pending.len() && !self.refill()? {
            return Ok(false);
        }
        let speed = self.controls.speed();
        let rest = &self.pending[self.pending_at..];
        if speed <= 0.0 {
            self.controls.set_lag(Duration::ZERO);
            out.extend_from_slice(rest);
            self.pending_at = self.pending.len();
            return Ok(true);
        }
        let t_first = rest[0].t;
        let (wall0, ev0) = match self.origin {
            Some((wall, ev, s)) if s == speed => (wall, ev),
            _ => {
                let now = Instant::now();
                self.origin = Some((now, t_first, speed));
                (now, t_first)
            }
        };
        // Hand out one slice of event time when the wall clock reaches its start.
        let due = wall0 + Duration::from_secs_f64(((t_first - ev0).max(0) as f64 * 1e-6) / speed);
        let now = Instant::now();
        self.controls.set_lag(now.saturating_duration_since(due));
        if due > now {
            std::thread::sleep((due - now).min(Duration::from_millis(20)));
            if Instant::now() < due {
                return Ok(true);
            }
        }
        let end = rest.partition_point(|e| e.t < t_first + SLICE_US).max(1);
        out.extend_from_slice(&rest[..end]);
        self.pending_at += end;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use dynapviz_events::{EventWriter, Format};

    use super::*;

    /// A recording of an event every millisecond for `ms` milliseconds in `dir`, opened for
    /// playback at `speed`, with its controls.
    fn steady(dir: &Path, ms: i64, speed: f64) -> (Controls, FileSource) {
        let path = dir.join("steady.aedat4");
        let mut w = EventWriter::create(&path, Format::Aedat4, Geometry::new(8, 8)).expect("create");
        w.write(&(0..ms).map(|i| Event::new(i * 1000, (i % 8) as u16, 0, true)).collect::<Vec<_>>()).expect("write");
        w.finish().expect("finish");
        let controls = Controls::new(speed);
        let source = FileSource::open(&path, false, controls.clone()).expect("open");
        (controls, source)
    }

    #[test]
    fn a_consumer_that_stalls_shows_as_lag_and_pausing_clears_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (controls, mut source) = steady(dir.path(), 2000, 1.0);
        let mut out = Vec::new();
        assert!(source.next_chunk(&mut out).expect("chunk") && !out.is_empty(), "the first slice is due at once");
        // The next slice was due 5 ms after the first: handed out 400 ms late.
        std::thread::sleep(Duration::from_millis(400));
        while out.len() < 10 {
            source.next_chunk(&mut out).expect("chunk");
        }
        assert!(controls.lag() >= Duration::from_millis(350), "lag {:?}", controls.lag());
        controls.set_paused(true);
        source.next_chunk(&mut out).expect("chunk");
        assert_eq!(controls.lag(), Duration::ZERO, "paused: no lag");
    }

    #[test]
    fn unpaced_playback_has_no_lag() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (controls, mut source) = steady(dir.path(), 100, 0.0);
        let mut out = Vec::new();
        std::thread::sleep(Duration::from_millis(50));
        while source.next_chunk(&mut out).expect("chunk") {}
        assert_eq!(out.len(), 100);
        assert_eq!(controls.lag(), Duration::ZERO);
    }
}
