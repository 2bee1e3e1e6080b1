//! A live stream (see [`crate::net`]) that outlives its connections: when the stream ends or
//! breaks (DV restarted, the camera unplugged, its host gone), it is connected again every
//! [`RETRY`] until it answers or the reader is told to stop, and reading goes on. Times stay
//! monotonic across connections; the stream must come back with its sensor size. Whoever
//! shows the stream learns whether it is down, and why, from its [`Link`].

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::{Error, Event, EventReader, Format, Geometry, Result, Skipped};

/// How long a lost stream waits between two tries to connect again: DV takes a few seconds
/// to restart, and a try costs the server next to nothing.
pub const RETRY: Duration = Duration::from_secs(1);

/// How often a wait between tries looks whether it is to stop.
const POLL: Duration = Duration::from_millis(50);

/// Connects to the stream (again).
pub type Connect = Box<dyn FnMut() -> Result<Box<dyn EventReader>> + Send>;

/// A live stream read across its connections (see the module's doc).
pub struct Reconnecting {
    name: PathBuf,
    reader: Box<dyn EventReader>,
    connect: Connect,
    /// The sensor size of the first connection, which every later one must have.
    geometry: Option<Geometry>,
    clock: Clock,
    link: Link,
    stop: Box<dyn Fn() -> bool + Send>,
    retry: Duration,
    /// What the connections before the current one skipped.
    skipped_before: Skipped,
    /// That and what the current one skipped, as of its last read.
    skipped: Skipped,
}

/// A stream that ended or broke, while it is being connected again.
#[derive(Clone, Debug)]
pub struct LinkDown {
    /// When it was lost.
    pub since: Instant,
    /// Tries to connect again so far.
    pub tries: u32,
    /// How it was lost, or why the last try failed.
    pub why: String,
}

/// What a [`Reconnecting`] stream says of itself, readable from any thread.
#[derive(Clone, Debug, Default)]
pub struct Link(Arc<LinkState>);

#[derive(Debug, Default)]
struct LinkState {
    down: Mutex<Option<LinkDown>>,
    reconnects: AtomicU64,
}

impl Link {
    /// Whether the stream is down and being connected again, since when and why.
    pub fn down(&self) -> Option<LinkDown> {
        self.0.down.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Times the stream came back after it ended or broke.
    pub fn reconnects(&self) -> u64 {
        self.0.reconnects.load(Ordering::Relaxed)
    }

    fn set_down(&self, down: Option<LinkDown>) {
        *self.0.down.lock().unwrap_or_else(PoisonError::into_inner) = down;
    }
}

impl Reconnecting {
    /// The live stream at `path` (`tcp://...`, `unix://...`), read from `first`, its first
    /// connection, and connected again with [`crate::open`].
    pub fn new(path: &Path, first: Box<dyn EventReader>) -> Self {
        let again = path.to_path_buf();
        Self::with_connect(path, first, Box::new(move || crate::open(&again)))
    }

    /// [`Self::new`] with `connect` to connect again.
    pub fn with_connect(path: &Path, first: Box<dyn EventReader>, connect: Connect) -> Self {
        Self {
            name: path.to_path_buf(),
            geometry: first.geometry(),
            reader: first,
            connect,
            clock: Clock::default(),
            link: Link::default(),
            stop: Box::new(|| false),
            retry: RETRY,
            skipped_before: Skipped::default(),
            skipped: Skipped::default(),
        }
    }

    /// Gives up connecting again once `stop` says so (checked between tries): the stream
    /// then ends, as if the server had closed it.
    pub fn stop_when(mut self, stop: impl Fn() -> bool + Send + 'static) -> Self {
        self.stop = Box::new(stop);
        self
    }

    /// Waits `retry` between tries instead of [`RETRY`].
    pub fn retry_every(mut self, retry: Duration) -> Self {
        self.retry = retry;
        self
    }

    /// The stream's state, for whoever shows it.
    pub fn link(&self) -> Link {
        self.link.clone()
    }

    /// Tries to connect again every `retry`, saying meanwhile why the stream is down (`why`,
    /// or that it ended); the new connection, or none once told to stop.
    fn reconnect(&mut self, why: Option<String>) -> Result<Option<Box<dyn EventReader>>> {
        let why = why.unwrap_or_else(|| format!("{}: the stream ended", self.name.display()));
        tracing::warn!("{why}: connecting again every {} s", self.retry.as_secs_f64());
        let mut down = LinkDown { since: Instant::now(), tries: 0, why };
        self.link.set_down(Some(down.clone()));
        loop {
            let waited = Instant::now();
            while waited.elapsed() < self.retry {
                if (self.stop)() {
                    return Ok(None);
                }
                std::thread::sleep(POLL.min(self.retry));
            }
            down.tries += 1;
            match (self.connect)() {
                Ok(reader) if reader.geometry() != self.geometry => {
                    let size = |g: Option<Geometry>| g.map_or("none stated".to_string(), |g| g.to_string());
                    return Err(Error::Format {
                        path: self.name.clone(),
                        offset: 0,
                        message: format!(
                            "the stream came back with another sensor size ({}; it was {}): start again to read it",
                            size(reader.geometry()),
                            size(self.geometry)
                        ),
                    });
                }
                Ok(reader) => {
                    tracing::info!("{}: the stream is back after {:.1} s", self.name.display(), down.since.elapsed().as_secs_f64());
                    self.clock.outage(down.since.elapsed());
                    self.link.set_down(None);
                    self.link.0.reconnects.fetch_add(1, Ordering::Relaxed);
                    return Ok(Some(reader));
                }
                Err(e) => {
                    tracing::debug!("{}: try {} to connect again: {e}", self.name.display(), down.tries);
                    down.why = e.to_string();
                    self.link.set_down(Some(down.clone()));
                }
            }
        }
    }
}

impl EventReader for Reconnecting {
    fn format(&self) -> Format {
        self.reader.format()
    }

    fn geometry(&self) -> Option<Geometry> {
        self.geometry
    }

    fn read_chunk(&mut self, out: &mut Vec<Event>, max: usize) -> Result<usize> {
        loop {
            let start = out.len();
            let read = self.reader.read_chunk(out, max);
            // What came before an error is kept, in the stream's time.
            self.clock.keep(&mut out[start..]);
            self.skipped = self.skipped_before.plus(self.reader.skipped());
            let why = match read {
                Ok(0) => None,
                Ok(n) => return Ok(n),
                // Reading errors name the stream already.
                Err(e) => Some(e.to_string()),
            };
            match self.reconnect(why)? {
                Some(reader) => {
                    self.skipped_before = self.skipped.clone();
                    self.reader = reader;
                }
                None => return Ok(out.len() - start),
            }
        }
    }

    fn skipped(&self) -> &Skipped {
        &self.skipped
    }
}

/// Keeps a stream's times monotonic across connections.
#[derive(Debug, Default)]
struct Clock {
    /// The latest time handed out, µs.
    last: Option<i64>,
    /// Added to the current connection's times.
    shift: i64,
    /// How long the stream was down before the current connection, µs, while its first
    /// events have not come.
    outage_us: Option<i64>,
}

impl Clock {
    /// A new connection after `outage`: its first events set its shift.
    fn outage(&mut self, outage: Duration) {
        self.outage_us = Some(i64::try_from(outage.as_micros()).unwrap_or(i64::MAX).max(1));
    }

    fn keep(&mut self, events: &mut [Event]) {
        let Some(first) = events.first() else { return };
        if let (Some(outage), Some(last)) = (self.outage_us.take(), self.last) {
            // A clock that went on (DV's times are µs since 1970) needs nothing; one that
            // started again goes on after the last event, the outage later.
            self.shift = if first.t > last { 0 } else { last.saturating_add(outage).saturating_sub(first.t) };
        }
        if self.shift != 0 {
            for e in events.iter_mut() {
                e.t = e.t.saturating_add(self.shift);
            }
        }
        let latest = events.iter().map(|e| e.t).max().unwrap_or(i64::MIN);
        self.last = Some(self.last.map_or(latest, |l| l.max(latest)));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// A stream of `packets` packets of `size` events, its clock from 0.
    struct Camera {
        geometry: Geometry,
        packets: usize,
        size: usize,
        sent: usize,
    }

    impl EventReader for Camera {
        fn format(&self) -> Format {
            Format::Aedat4
        }

        fn geometry(&self) -> Option<Geometry> {
            Some(self.geometry)
        }

        fn read_chunk(&mut self, out: &mut Vec<Event>, _max: usize) -> Result<usize> {
            if self.sent == self.packets {
                return Ok(0);
            }
            let t = self.sent as i64 * 1000;
            out.extend((0..self.size).map(|i| Event::new(t + i as i64, 1, 2, true)));
            self.sent += 1;
            Ok(self.size)
        }
    }

    fn camera(packets: usize, size: usize) -> Camera {
        Camera { geometry: Geometry::new(4, 4), packets, size, sent: 0 }
    }

    /// A [`Connect`] that hands out `cameras` one per call, then fails; counts its calls.
    fn connections(cameras: Vec<Camera>) -> (Connect, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&calls);
        let mut cameras = cameras.into_iter();
        let connect: Connect = Box::new(move || {
            counted.fetch_add(1, Ordering::Relaxed);
            match cameras.next() {
                Some(camera) => Ok(Box::new(camera) as Box<dyn EventReader>),
                None => Err(Error::Format { path: "tcp://camera".into(), offset: 0, message: "refused".into() }),
            }
        });
        (connect, calls)
    }

    const SOON: Duration = Duration::from_millis(20);

    fn stream(first: Camera, connect: Connect) -> Reconnecting {
        Reconnecting::with_connect(Path::new("tcp://camera"), Box::new(first), connect).retry_every(SOON)
    }

    #[test]
    fn a_lost_stream_is_connected_again_and_its_times_go_on_after_the_outage() {
        let (connect, calls) = connections(vec![camera(2, 10)]);
        let stop_after = Arc::clone(&calls);
        // Gives up once the third try (after the second connection ended) failed.
        let mut s = stream(camera(3, 10), connect).stop_when(move || stop_after.load(Ordering::Relaxed) >= 3);
        let link = s.link();
        let mut events = Vec::new();
        while s.read_chunk(&mut events, 100).expect("read") > 0 {}
        assert_eq!(events.len(), 50, "both connections' events");
        assert_eq!(link.reconnects(), 1);
        assert!(events.windows(2).all(|w| w[0].t < w[1].t), "times only go forward");
        let gap = events[30].t - events[29].t;
        assert!(gap >= SOON.as_micros() as i64, "the outage is kept: {gap} µs");
        assert_eq!(events[31].t - events[30].t, 1, "the new connection keeps its own spacing");
        let down = link.down().expect("down when it stopped");
        assert!(down.tries >= 2 && down.why.contains("refused"), "{down:?}");
    }

    #[test]
    fn a_clock_that_went_on_is_left_as_it_is() {
        let mut clock = Clock::default();
        let mut first = [Event::new(100, 0, 0, true), Event::new(200, 0, 0, true)];
        clock.keep(&mut first);
        clock.outage(Duration::from_millis(5));
        let mut later = [Event::new(9_000, 0, 0, true)];
        clock.keep(&mut later);
        assert_eq!(later[0].t, 9_000);
        clock.outage(Duration::from_millis(5));
        let mut restarted = [Event::new(3, 0, 0, true), Event::new(4, 0, 0, true)];
        clock.keep(&mut restarted);
        assert_eq!([restarted[0].t, restarted[1].t], [14_000, 14_001], "after the last event, the outage later");
    }

    #[test]
    fn a_stream_that_comes_back_with_another_sensor_size_is_an_error() {
        let (connect, _) = connections(vec![Camera { geometry: Geometry::new(8, 4), ..camera(1, 1) }]);
        let mut s = stream(camera(1, 10), connect);
        let mut events = Vec::new();
        let error = loop {
            match s.read_chunk(&mut events, 100) {
                Ok(n) => assert!(n > 0, "ended without the error"),
                Err(e) => break e,
            }
        };
        assert_eq!(events.len(), 10);
        let error = error.to_string();
        assert!(error.contains("tcp://camera: at byte 0: the stream came back with another sensor size (8x4; it was 4x4)"), "{error}");
    }

    #[test]
    fn told_to_stop_it_ends_as_the_stream_does() {
        let (connect, calls) = connections(Vec::new());
        let stop_after = Arc::clone(&calls);
        let mut s = stream(camera(1, 5), connect).stop_when(move || stop_after.load(Ordering::Relaxed) >= 2);
        let mut events = Vec::new();
        assert_eq!(s.read_chunk(&mut events, 100).expect("read"), 5);
        assert_eq!(s.read_chunk(&mut events, 100).expect("read"), 0, "the end, once told to stop");
        assert_eq!(calls.load(Ordering::Relaxed), 2, "no try after");
    }
}
