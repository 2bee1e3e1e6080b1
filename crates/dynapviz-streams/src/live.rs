//! A live event stream (a camera over the network, see `dynapviz_events::net`) as a session's
//! source. A camera does not wait: the stream is read on a thread of its own, and what the
//! session has not taken when too much has piled up is let go and counted, so that memory
//! stays bounded and the picture stays current. A stream that is connected again when it ends
//! (`dynapviz_events::reconnect`) is read the same way; its link's state shows through the
//! [`Controls`] ([`Controls::watch_link`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TrySendError, sync_channel};
use std::time::Duration;

use dynapviz_events::{CHUNK, Event, EventReader, Geometry};

use crate::source::Controls;

/// Packets read and not yet taken by the session, at most: a few seconds of a busy camera
/// (DV sends a packet every few milliseconds).
const PACKETS_WAITING: usize = 256;

/// Events read and not yet taken by the session, at most (16 MB): a packet may hold up to
/// [`CHUNK`] events, and 256 such would be 256 MB. At 10 M ev/s this is a tenth of a second.
const EVENTS_WAITING: usize = 1 << 20;

/// How long [`LiveSource::next_chunk`] waits for a packet before it returns none, so that
/// the session can see it is asked to stop.
const POLL: Duration = Duration::from_millis(50);

/// The events of a live stream, as they come.
pub struct LiveSource {
    packets: Receiver<Result<Vec<Event>, String>>,
    /// Events in `packets` (see [`EVENTS_WAITING`]).
    waiting: Arc<AtomicUsize>,
    controls: Controls,
    geometry: Option<Geometry>,
    /// The stream's error, once the events before it are handed out.
    failed: Option<String>,
}

impl LiveSource {
    /// Starts reading `reader` (a live stream: each read returns what has come) on a thread
    /// of its own. `controls` (see [`Controls::live`]) pause it and count what it lets go.
    /// The thread ends with the stream, or at its next packet once this source is dropped
    /// (which also [closes](Controls::close) `controls`: a reader that connects again stops
    /// trying when told so).
    pub fn start(mut reader: Box<dyn EventReader>, controls: Controls) -> std::io::Result<Self> {
        let geometry = reader.geometry();
        let (to_session, packets) = sync_channel(PACKETS_WAITING);
        let (counts, waiting) = (controls.clone(), Arc::new(AtomicUsize::new(0)));
        let queued = Arc::clone(&waiting);
        std::thread::Builder::new().name("dynapviz-live".into()).spawn(move || {
            loop {
                let mut packet = Vec::new();
                let n = match reader.read_chunk(&mut packet, CHUNK) {
                    Ok(0) => return,
                    Ok(n) => n,
                    Err(e) => {
                        let _ = to_session.send(Err(e.to_string()));
                        return;
                    }
                };
                if queued.load(Ordering::Acquire) + n > EVENTS_WAITING {
                    counts.add_dropped(n);
                    continue;
                }
                queued.fetch_add(n, Ordering::AcqRel);
                match to_session.try_send(Ok(packet)) {
                    Ok(()) => {}
                    Err(TrySendError::Full(_)) => {
                        queued.fetch_sub(n, Ordering::AcqRel);
                        counts.add_dropped(n);
                    }
                    Err(TrySendError::Disconnected(_)) => return,
                }
            }
        })?;
        Ok(Self { packets, waiting, controls, geometry, failed: None })
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
                Ok(events) => {
                    self.waiting.fetch_sub(events.len(), Ordering::AcqRel);
                    events
                }
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
        self.controls.close();
    }
}

impl crate::session::Source for LiveSource {
    fn next_chunk(&mut self, out: &mut Vec<Event>) -> Result<bool, String> {
        LiveSource::next_chunk(self, out)
    }
}

#[cfg(test)]
mod tests {
    use dynapviz_events::{Format, Result};

    use super::*;

    /// A stream of `packets` packets of `size` events, each after `every`.
    struct Camera {
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
            Some(Geometry::new(4, 4))
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
        Box::new(Camera { packets, size, every, fail_at: None, sent: 0 })
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

    /// Large packets are bounded by their events, not their count: 30 of 100 000 events
    /// would be 48 MB waiting.
    #[test]
    fn what_waits_is_bounded_by_events_however_large_the_packets() {
        let controls = Controls::live();
        let mut source = LiveSource::start(camera(30, 100_000, Duration::ZERO), controls.clone()).expect("start");
        std::thread::sleep(Duration::from_millis(500));
        let (events, _) = drain(&mut source);
        assert_eq!(events.len() + controls.dropped() as usize, 3_000_000, "every event taken or counted");
        assert!(events.len() <= EVENTS_WAITING, "{} events waited", events.len());
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

    /// A stream that connects again shows its link through the controls, and stops trying
    /// once the source is dropped.
    #[test]
    fn a_reconnecting_stream_shows_its_link_and_stops_with_the_source() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};

        use dynapviz_events::reconnect::Reconnecting;

        let controls = Controls::live();
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&calls);
        let connect = Box::new(move || {
            counted.fetch_add(1, Ordering::Relaxed);
            Err(dynapviz_events::Error::Format { path: "tcp://camera".into(), offset: 0, message: "refused".into() })
        });
        let closed = controls.clone();
        let reader = Reconnecting::with_connect(std::path::Path::new("tcp://camera"), camera(1, 5, Duration::ZERO), connect)
            .retry_every(Duration::from_millis(10))
            .stop_when(move || closed.closed());
        controls.watch_link(reader.link());
        let mut source = LiveSource::start(Box::new(reader), controls.clone()).expect("start");
        let mut events = Vec::new();
        let started = std::time::Instant::now();
        while calls.load(Ordering::Relaxed) < 2 {
            assert!(started.elapsed() < Duration::from_secs(10), "no tries");
            assert!(source.next_chunk(&mut events).expect("read"));
        }
        assert_eq!(events.len(), 5);
        let down = controls.link_down().expect("down");
        assert!(down.why.contains("refused"), "{down:?}");
        drop(source);
        std::thread::sleep(Duration::from_millis(200));
        let then = calls.load(Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(calls.load(Ordering::Relaxed), then, "no try after the drop");
    }
}
