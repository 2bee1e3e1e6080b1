//! Playing a recording: as fast as possible, in real time, at a speed factor, looped, paused.
//! Timestamps stay monotonic across loops: each pass is shifted past the previous one.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use dynapviz_events::reconnect::Link;
pub use dynapviz_events::reconnect::LinkDown;
use dynapviz_events::{CHUNK, Event, EventReader, Geometry};

/// Shared playback controls (pause, speed, longest wait for a pause in the recording),
/// settable from another thread (the viewer).
#[derive(Clone, Debug)]
pub struct Controls {
    paused: Arc<AtomicBool>,
    speed_bits: Arc<AtomicU64>,
    lag_us: Arc<AtomicU64>,
    /// Longest stretch of recording time between two events that paced playback waits out,
    /// µs; `u64::MAX`: every one.
    max_gap_us: Arc<AtomicU64>,
    /// Recording time not waited for, µs (the part of each longer gap past `max_gap_us`).
    skipped_us: Arc<AtomicU64>,
    /// Whether the events come live (see [`crate::live`]): no pace, no speed.
    live: bool,
    /// Events a live source let go unshown (see [`Self::dropped`]).
    dropped: Arc<AtomicU64>,
    /// The link of a live stream that is connected again when it ends (see
    /// [`Self::watch_link`]).
    link: Arc<OnceLock<Link>>,
    /// Set once the session stopped taking events (see [`Self::close`]).
    closed: Arc<AtomicBool>,
}

/// The fastest paced playback [`Controls::faster`] goes to (and its inverse the slowest).
pub const MAX_SPEED: f64 = 64.0;

impl Controls {
    /// Playing at `speed` (1.0 = real time; 0 or below = as fast as possible).
    pub fn new(speed: f64) -> Self {
        Self {
            paused: Arc::new(AtomicBool::new(false)),
            speed_bits: Arc::new(AtomicU64::new(speed.to_bits())),
            lag_us: Arc::new(AtomicU64::new(0)),
            max_gap_us: Arc::new(AtomicU64::new(u64::MAX)),
            skipped_us: Arc::new(AtomicU64::new(0)),
            live: false,
            dropped: Arc::new(AtomicU64::new(0)),
            link: Arc::new(OnceLock::new()),
            closed: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The controls of a live stream (see [`crate::live::LiveSource`]): it plays as the
    /// events come, so only pausing applies.
    pub fn live() -> Self {
        Self { live: true, ..Self::new(0.0) }
    }

    /// Whether the events come live.
    pub fn is_live(&self) -> bool {
        self.live
    }

    /// Events a live source let go unshown: they came while paused, or faster than the
    /// session took them (a camera does not wait).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub(crate) fn add_dropped(&self, events: usize) {
        self.dropped.fetch_add(events as u64, Ordering::Relaxed);
    }

    /// Shows the state of `link` (a live stream connected again when it ends, see
    /// `dynapviz_events::reconnect`) through [`Self::link_down`] and [`Self::reconnects`].
    /// The first link watched stays.
    pub fn watch_link(&self, link: Link) {
        let _ = self.link.set(link);
    }

    /// Whether a live stream is down and being connected again, since when and why: the
    /// viewers say so rather than show a still picture that looks like a quiet scene.
    pub fn link_down(&self) -> Option<LinkDown> {
        self.link.get().and_then(Link::down)
    }

    /// Times a live stream came back after it ended or broke.
    pub fn reconnects(&self) -> u64 {
        self.link.get().map_or(0, Link::reconnects)
    }

    /// Says that the session stopped taking events: whatever waits on their source (a stream
    /// that connects again) can give up.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
    }

    /// Whether [`Self::close`] was called.
    pub fn closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// Paced playback waits at most `max_gap` (of recording time; at speed 2 half as long on
    /// the wall clock) for the next event: a recording paused for minutes plays on after that.
    /// The events keep their times, so the simulated chip still sees the whole pause (a leak
    /// acts all through it); only the wait is cut. `None` waits out every gap.
    pub fn set_max_gap(&self, max_gap: Option<Duration>) {
        let us = max_gap.map_or(u64::MAX, |d| d.as_micros().min(u128::from(u64::MAX - 1)) as u64);
        self.max_gap_us.store(us, Ordering::Relaxed);
    }

    /// Recording time playback did not wait for (see [`Self::set_max_gap`]).
    pub fn skipped(&self) -> Duration {
        Duration::from_micros(self.skipped_us.load(Ordering::Relaxed))
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

    /// Pauses, or plays on: the viewers' space key and button.
    pub fn toggle_pause(&self) {
        self.paused.fetch_xor(true, Ordering::Relaxed);
    }

    /// Twice as fast, up to 64x (the viewers' `+`). Unpaced playback stays unpaced.
    pub fn faster(&self) {
        let speed = self.speed();
        if speed > 0.0 {
            self.set_speed((speed * 2.0).min(MAX_SPEED));
        }
    }

    /// Half as fast, down to 1/64x (the viewers' `-`). Unpaced playback stays unpaced.
    pub fn slower(&self) {
        let speed = self.speed();
        if speed > 0.0 {
            self.set_speed((speed / 2.0).max(1.0 / MAX_SPEED));
        }
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
    /// Time of the last event handed out in paced playback.
    last_out: Option<i64>,
    /// Completed passes over the file.
    pub loops: u64,
}

/// Longest stretch of event time handed out at once in real-time playback, µs: keeps the
/// display fluid.
const SLICE_US: i64 = 5_000;

impl FileSource {
    /// Opens `path` (any format the readers know).
    pub fn open(path: &Path, looped: bool, controls: Controls) -> dynapviz_events::Result<Self> {
        Ok(Self::with_reader(path, dynapviz_events::open(path)?, looped, controls))
    }

    /// Plays `reader`, whose events are those of `path`; a loop reads the next passes from
    /// `path`. For a recording still being made (the demo's), which `reader` completes in
    /// `path` by the end of the first pass.
    pub fn with_reader(path: &Path, reader: Box<dyn EventReader>, looped: bool, controls: Controls) -> Self {
        Self {
            path: path.to_path_buf(),
            reader,
            looped,
            controls,
            shift: 0,
            first_t: None,
            last_t: 0,
            pending: Vec::new(),
            pending_at: 0,
            origin: None,
            last_out: None,
            loops: 0,
        }
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
        // A pause in the recording longer than the longest wait: the origin moves on by the
        // rest of it, as if the events after it came that much earlier.
        let max_gap = i64::try_from(self.controls.max_gap_us.load(Ordering::Relaxed)).unwrap_or(i64::MAX);
        if let (Some(prev), Some((wall, ev, s))) = (self.last_out, self.origin)
            && t_first.saturating_sub(prev) > max_gap
        {
            let skip = t_first - prev - max_gap;
            self.origin = Some((wall, ev.saturating_add(skip), s));
            self.controls.skipped_us.fetch_add(skip as u64, Ordering::Relaxed);
            // Once: the calls that wait for the next event see a gap of `max_gap` from here.
            self.last_out = Some(t_first - max_gap);
        }
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
        self.last_out = Some(rest[end - 1].t);
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

    /// A recording paused for 10 s plays on after the longest wait set (20 ms here), its events
    /// at their own times; the rest of the pause is counted as skipped.
    #[test]
    fn a_long_pause_in_the_recording_is_cut_to_the_longest_wait() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("paused.aedat4");
        let mut w = EventWriter::create(&path, Format::Aedat4, Geometry::new(8, 8)).expect("create");
        let times: Vec<i64> = (0..10).map(|i| i * 1000).chain((0..10).map(|i| 10_000_000 + i * 1000)).collect();
        w.write(&times.iter().map(|&t| Event::new(t, 1, 1, true)).collect::<Vec<_>>()).expect("write");
        w.finish().expect("finish");
        let controls = Controls::new(1.0);
        controls.set_max_gap(Some(Duration::from_millis(20)));
        let mut source = FileSource::open(&path, false, controls.clone()).expect("open");
        let (started, mut out) = (Instant::now(), Vec::new());
        while source.next_chunk(&mut out).expect("chunk") {}
        let took = started.elapsed();
        assert_eq!(out.iter().map(|e| e.t).collect::<Vec<_>>(), times, "the events keep their times");
        // 9 ms of events, the 20 ms waited, 5 ms to the last slice: 34 ms; without the cut, 10 s.
        assert!(took >= Duration::from_millis(33) && took < Duration::from_secs(2), "played in {took:?}");
        // The pause, 9 991 ms from the last event before it, less the 20 ms waited.
        assert_eq!(controls.skipped(), Duration::from_micros(9_991_000 - 20_000));
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
