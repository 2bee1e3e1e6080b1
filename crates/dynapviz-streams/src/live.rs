//! A live event stream (a camera over the network, see `dynapviz_events::net`) as a session's
//! source. A camera does not wait: the stream is read on a thread of its own, and what the
//! session has not taken when too much has piled up is let go and counted, so that memory
//! stays bounded and the picture stays current. A stream that ends or breaks can be connected
//! again (DV restarted, the camera plugged in again): the session goes on where it was.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use dynapviz_events::{CHUNK, Event, EventReader, Geometry};

use crate::source::{Controls, LinkDown};

/// Packets read and not yet taken by the session, at most: a few seconds of a busy camera
/// (DV sends a packet every few milliseconds), a bounded memory (a packet is at most
/// [`CHUNK`] events).
const PACKETS_WAITING: usize = 256;

/// How long [`LiveSource::next_chunk`] waits for a packet before it returns none, so that
/// the session can see it is asked to stop.
const POLL: Duration = Duration::from_millis(50);

/// How long a lost stream waits between two tries to connect again: DV takes a few seconds
/// to restart, and a try costs the server next to nothing.
pub const RETRY: Duration = Duration::from_secs(1);

/// Connects to the stream again (see [`LiveSource::start_reconnecting`]).
pub type Connect = Box<dyn FnMut() -> dynapviz_events::Result<Box<dyn EventReader>> + Send>;

/// The events of a live stream, as they come.
pub struct LiveSource {
    packets: Receiver<Result<Vec<Event>, String>>,
    controls: Controls,
    geometry: Option<Geometry>,
    /// The stream's error, once the events before it are handed out.
    failed: Option<String>,
    /// Set when this source is dropped: the reading thread stops trying to connect again.
    closed: Arc<AtomicBool>,
}

impl LiveSource {
    /// Starts reading `reader` (a live stream: each read returns what has come) on a thread
    /// of its own. `controls` (see [`Controls::live`]) pause it and count what it lets go.
    /// The thread ends with the stream, or at its next packet once this source is dropped.
    pub fn start(reader: Box<dyn EventReader>, controls: Controls) -> std::io::Result<Self> {
        Self::spawn(reader, None, controls, RETRY)
    }

    /// [`Self::start`], and when the stream ends or breaks, `connect` again every [`RETRY`]
    /// until it answers, for as long as this source lives; `controls` say meanwhile that the
    /// stream is down and why ([`Controls::link_down`]). A stream that comes back with another
    /// sensor size is an error. Times stay monotonic: a stream that comes back with earlier
    /// times (a camera that restarted its clock) is shifted to go on after the last event,
    /// the outage included.
    /// `name` (the stream's address) names it in what is said of it.
    pub fn start_reconnecting(reader: Box<dyn EventReader>, name: &str, connect: Connect, controls: Controls) -> std::io::Result<Self> {
        Self::spawn(reader, Some((name.to_string(), connect)), controls, RETRY)
    }

    fn spawn(
        reader: Box<dyn EventReader>,
        connect: Option<(String, Connect)>,
        controls: Controls,
        retry: Duration,
    ) -> std::io::Result<Self> {
        let geometry = reader.geometry();
        let (to_session, packets) = sync_channel(PACKETS_WAITING);
        let closed = Arc::new(AtomicBool::new(false));
        let reading = Reading {
            reader,
            connect,
            to_session,
            controls: controls.clone(),
            closed: Arc::clone(&closed),
            geometry,
            clock: Clock::default(),
            retry,
        };
        std::thread::Builder::new().name("dynapviz-live".into()).spawn(move || reading.run())?;
        Ok(Self { packets, controls, geometry, failed: None, closed })
    }

    /// The sensor size the stream states.
    pub fn geometry(&self) -> Option<Geometry> {
        self.geometry
    }

    /// Appends the events that came since the last call (none after a short wait if none
    /// did); `Ok(false)` once the stream has ended, an error if reading it failed. While
    /// paused, what comes is let go and counted.
    pub fn next_chunk(&mut self, out: &mut Vec<Event>) -> Result<bool, String> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        let mut next = match self.packets.recv_timeout(POLL) {
            Ok(packet) => Some(packet),
            Err(RecvTimeoutError::Timeout) => return Ok(true),
            Err(RecvTimeoutError::Disconnected) => return Ok(false),
        };
        // Whatever else has come goes in the same chunk: fewer, larger steps when behind.
        while let Some(packet) = next {
            let events = match packet {
                Ok(events) => events,
                // The events before the error first: the session runs them, then stops.
                Err(e) if !out.is_empty() => {
                    self.failed = Some(e);
                    break;
                }
                Err(e) => return Err(e),
            };
            if self.controls.paused() {
                self.controls.add_dropped(events.len());
            } else {
                out.extend_from_slice(&events);
            }
            if out.len() >= CHUNK {
                break;
            }
            next = self.packets.try_recv().ok();
        }
        Ok(true)
    }
}

impl Drop for LiveSource {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::Relaxed);
    }
}

impl crate::session::Source for LiveSource {
    fn next_chunk(&mut self, out: &mut Vec<Event>) -> Result<bool, String> {
        LiveSource::next_chunk(self, out)
    }
}

/// The reading thread of a [`LiveSource`].
struct Reading {
    reader: Box<dyn EventReader>,
    /// The stream's address and how to connect to it again, if it is to be.
    connect: Option<(String, Connect)>,
    to_session: SyncSender<Result<Vec<Event>, String>>,
    controls: Controls,
    closed: Arc<AtomicBool>,
    /// The sensor size of the first connection, which every later one must have.
    geometry: Option<Geometry>,
    clock: Clock,
    /// The wait between two tries to connect again ([`RETRY`]; shorter in tests).
    retry: Duration,
}

/// How a connection ended.
enum Lost {
    /// The server closed it.
    Ended,
    /// Reading it failed.
    Broken(String),
    /// The session is gone.
    Unheard,
}

impl Reading {
    fn run(mut self) {
        loop {
            let why = match self.read_all() {
                Lost::Unheard => return,
                Lost::Ended if self.connect.is_none() => return,
                Lost::Broken(e) if self.connect.is_none() => {
                    let _ = self.to_session.send(Err(e));
                    return;
                }
                // Reading errors name the stream already.
                Lost::Ended => None,
                Lost::Broken(e) => Some(e),
            };
            match self.reconnect(why) {
                Some(reader) => self.reader = reader,
                None => return,
            }
        }
    }

    /// Hands the session every packet of the connection, until it ends.
    fn read_all(&mut self) -> Lost {
        loop {
            let mut packet = Vec::new();
            match self.reader.read_chunk(&mut packet, CHUNK) {
                Ok(0) => return Lost::Ended,
                Ok(_) => self.clock.keep(&mut packet),
                Err(e) => return Lost::Broken(e.to_string()),
            }
            match self.to_session.try_send(Ok(packet)) {
                Ok(()) => {}
                Err(TrySendError::Full(packet)) => self.controls.add_dropped(packet.map_or(0, |p| p.len())),
                Err(TrySendError::Disconnected(_)) => return Lost::Unheard,
            }
        }
    }

    /// Tries to connect again every [`RETRY`], saying meanwhile why the stream is down (`why`,
    /// or that it ended); the new connection, or none once the session is gone or the stream
    /// came back changed.
    fn reconnect(&mut self, why: Option<String>) -> Option<Box<dyn EventReader>> {
        let (name, connect) = self.connect.as_mut()?;
        let why = why.unwrap_or_else(|| format!("{name}: the stream ended"));
        tracing::warn!("{why}: connecting again every {} s", self.retry.as_secs_f64());
        let mut down = LinkDown { since: Instant::now(), tries: 0, why };
        self.controls.set_link_down(Some(down.clone()));
        loop {
            let waited = Instant::now();
            while waited.elapsed() < self.retry {
                if self.closed.load(Ordering::Relaxed) {
                    return None;
                }
                std::thread::sleep(POLL.min(self.retry));
            }
            down.tries += 1;
            match connect() {
                Ok(reader) if reader.geometry() != self.geometry => {
                    let was = self.geometry.map_or("none stated".to_string(), |g| g.to_string());
                    let now = reader.geometry().map_or("none stated".to_string(), |g| g.to_string());
                    let _ = self.to_session.send(Err(format!(
                        "{name}: the stream came back with another sensor size ({now}; it was {was}): start again to show it"
                    )));
                    return None;
                }
                Ok(reader) => {
                    tracing::info!("{name}: the stream is back after {:.1} s", down.since.elapsed().as_secs_f64());
                    self.clock.outage(down.since.elapsed());
                    self.controls.set_link_down(None);
                    self.controls.add_reconnect();
                    return Some(reader);
                }
                Err(e) => {
                    tracing::debug!("{name}: try {} to connect again: {e}", down.tries);
                    down.why = e.to_string();
                    self.controls.set_link_down(Some(down.clone()));
                }
            }
        }
    }
}

/// Keeps a stream's times monotonic across connections (see
/// [`LiveSource::start_reconnecting`]).
#[derive(Debug, Default)]
struct Clock {
    /// The latest time handed out, µs.
    last: Option<i64>,
    /// Added to the current connection's times.
    shift: i64,
    /// How long the stream was down before the current connection, µs, while its first
    /// packet has not come.
    outage_us: Option<i64>,
}

impl Clock {
    /// A new connection after `outage`: its first packet sets its shift.
    fn outage(&mut self, outage: Duration) {
        self.outage_us = Some(i64::try_from(outage.as_micros()).unwrap_or(i64::MAX).max(1));
    }

    fn keep(&mut self, packet: &mut [Event]) {
        let Some(first) = packet.first() else { return };
        if let (Some(outage), Some(last)) = (self.outage_us.take(), self.last) {
            // A clock that went on (DV's times are µs since 1970) needs nothing; one that
            // started again goes on after the last event, the outage later.
            self.shift = if first.t > last { 0 } else { last.saturating_add(outage).saturating_sub(first.t) };
        }
        if self.shift != 0 {
            for e in packet.iter_mut() {
                e.t = e.t.saturating_add(self.shift);
            }
        }
        let latest = packet.iter().map(|e| e.t).max().unwrap_or(i64::MIN);
        self.last = Some(self.last.map_or(latest, |l| l.max(latest)));
    }
}

#[cfg(test)]
mod tests {
    use dynapviz_events::{Format, Result};

    use super::*;

    /// A stream of `packets` packets of `size` events, each after `every`.
    struct Camera {
        geometry: Geometry,
        packets: usize,
        size: usize,
        every: Duration,
        fail_at: Option<usize>,
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
            if self.fail_at == Some(self.sent) {
                return Err(dynapviz_events::Error::Format { path: "tcp://camera".into(), offset: 7, message: "broken".into() });
            }
            std::thread::sleep(self.every);
            let t = self.sent as i64 * 1000;
            out.extend((0..self.size).map(|i| Event::new(t + i as i64, 1, 2, true)));
            self.sent += 1;
            Ok(self.size)
        }
    }

    fn camera(packets: usize, size: usize, every: Duration) -> Box<Camera> {
        Box::new(Camera { geometry: Geometry::new(4, 4), packets, size, every, fail_at: None, sent: 0 })
    }

    /// Everything until the end, and how many calls returned nothing.
    fn drain(source: &mut LiveSource) -> (Vec<Event>, usize) {
        let (mut out, mut empty) = (Vec::new(), 0);
        loop {
            let before = out.len();
            if !source.next_chunk(&mut out).expect("read") {
                return (out, empty);
            }
            empty += usize::from(out.len() == before);
        }
    }

    #[test]
    fn a_quiet_stream_returns_empty_chunks_until_its_packets_come() {
        let controls = Controls::live();
        let mut source = LiveSource::start(camera(3, 10, Duration::from_millis(120)), controls.clone()).expect("start");
        assert_eq!(source.geometry(), Some(Geometry::new(4, 4)));
        let (events, empty) = drain(&mut source);
        assert_eq!(events.len(), 30);
        assert!(events.windows(2).all(|w| w[0].t < w[1].t), "in order");
        // 120 ms between packets, 50 ms polls: the session saw it was quiet, and could stop.
        assert!(empty >= 3, "{empty} empty chunks");
        assert_eq!(controls.dropped(), 0);
    }

    #[test]
    fn a_session_that_falls_behind_loses_the_excess_and_counts_it() {
        let controls = Controls::live();
        let packets = PACKETS_WAITING + 100;
        let mut source = LiveSource::start(camera(packets, 5, Duration::ZERO), controls.clone()).expect("start");
        // The session is busy while the camera sends everything.
        std::thread::sleep(Duration::from_millis(300));
        let (events, _) = drain(&mut source);
        assert_eq!(events.len() + controls.dropped() as usize, packets * 5, "every event taken or counted");
        assert!(controls.dropped() >= 100 * 5, "dropped {}", controls.dropped());
        assert!(events.len() <= PACKETS_WAITING * 5, "bounded: {}", events.len());
    }

    #[test]
    fn while_paused_the_stream_is_let_go_and_counted() {
        let controls = Controls::live();
        controls.set_paused(true);
        let mut source = LiveSource::start(camera(4, 10, Duration::from_millis(5)), controls.clone()).expect("start");
        let (events, _) = drain(&mut source);
        assert!(events.is_empty());
        assert_eq!(controls.dropped(), 40);
    }

    #[test]
    fn a_broken_stream_is_an_error_after_what_came_before() {
        let controls = Controls::live();
        let cam = Box::new(Camera { fail_at: Some(2), ..*camera(5, 10, Duration::ZERO) });
        let mut source = LiveSource::start(cam, controls).expect("start");
        let (mut out, mut taken) = (Vec::new(), 0);
        let error = loop {
            match source.next_chunk(&mut out) {
                Ok(true) => taken = out.len(),
                Ok(false) => panic!("ended without the error"),
                Err(e) => break e,
            }
        };
        assert_eq!(taken, 20, "the events before the error were handed out");
        assert!(error.contains("tcp://camera: at byte 7: broken"), "{error}");
    }

    /// A [`Connect`] that hands out `cameras` one per call, then fails; counts its calls.
    fn connections(cameras: Vec<Camera>) -> (Connect, Arc<std::sync::atomic::AtomicUsize>) {
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = Arc::clone(&calls);
        let mut cameras = cameras.into_iter();
        let connect: Connect = Box::new(move || {
            counted.fetch_add(1, Ordering::Relaxed);
            match cameras.next() {
                Some(camera) => Ok(Box::new(camera) as Box<dyn EventReader>),
                None => Err(dynapviz_events::Error::Format { path: "tcp://camera".into(), offset: 0, message: "refused".into() }),
            }
        });
        (connect, calls)
    }

    /// Takes events until `n` came, for at most 10 s.
    fn take(source: &mut LiveSource, n: usize) -> Vec<Event> {
        let (mut out, started) = (Vec::new(), Instant::now());
        while out.len() < n && started.elapsed() < Duration::from_secs(10) {
            assert!(source.next_chunk(&mut out).expect("read"), "a reconnecting source does not end");
        }
        out
    }

    const SOON: Duration = Duration::from_millis(20);

    #[test]
    fn a_lost_stream_is_connected_again_and_its_times_go_on_after_the_outage() {
        let controls = Controls::live();
        // The camera sends 3 packets and closes; it comes back with its clock started again.
        let (connect, calls) = connections(vec![*camera(2, 10, Duration::ZERO)]);
        let connect = Some(("tcp://camera".to_string(), connect));
        let mut source = LiveSource::spawn(camera(3, 10, Duration::ZERO), connect, controls.clone(), SOON).expect("start");
        let events = take(&mut source, 50);
        assert_eq!(events.len(), 50, "both connections' events");
        assert_eq!(controls.reconnects(), 1);
        assert!(events.windows(2).all(|w| w[0].t < w[1].t), "times only go forward");
        let gap = events[30].t - events[29].t;
        assert!(gap >= SOON.as_micros() as i64, "the outage is kept: {gap} µs");
        assert_eq!(events[31].t - events[30].t, 1, "the new connection keeps its own spacing");
        // The second connection ends too: the source says why it is down and tries again.
        let started = Instant::now();
        while calls.load(Ordering::Relaxed) < 4 && started.elapsed() < Duration::from_secs(10) {
            assert!(source.next_chunk(&mut Vec::new()).expect("read"));
        }
        let down = controls.link_down().expect("down");
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
        let controls = Controls::live();
        let other = Camera { geometry: Geometry::new(8, 4), ..*camera(1, 1, Duration::ZERO) };
        let (connect, _) = connections(vec![other]);
        let connect = Some(("tcp://camera".to_string(), connect));
        let mut source = LiveSource::spawn(camera(1, 10, Duration::ZERO), connect, controls, SOON).expect("start");
        let (mut out, started) = (Vec::new(), Instant::now());
        let error = loop {
            assert!(started.elapsed() < Duration::from_secs(10), "no error");
            match source.next_chunk(&mut out) {
                Ok(more) => assert!(more, "ended without the error"),
                Err(e) => break e,
            }
        };
        assert_eq!(out.len(), 10);
        assert!(error.contains("tcp://camera: the stream came back with another sensor size (8x4; it was 4x4)"), "{error}");
    }

    #[test]
    fn a_dropped_source_stops_trying_to_connect() {
        let (connect, calls) = connections(Vec::new());
        let connect = Some(("tcp://camera".to_string(), connect));
        let source = LiveSource::spawn(camera(0, 0, Duration::ZERO), connect, Controls::live(), SOON).expect("start");
        let started = Instant::now();
        while calls.load(Ordering::Relaxed) < 2 && started.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(SOON);
        }
        drop(source);
        std::thread::sleep(SOON * 3);
        let then = calls.load(Ordering::Relaxed);
        std::thread::sleep(SOON * 10);
        assert_eq!(calls.load(Ordering::Relaxed), then, "no try after the drop");
    }
}
