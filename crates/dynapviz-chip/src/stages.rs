//! Event mode on several threads, as a pipeline. The layers are cut into runs of consecutive
//! layers (stages). The caller's thread admits a piece of sensor events (the DVS layer), runs
//! the first stage on it and sends it on; each other thread runs one stage and hands the piece
//! on (the spikes for later layers, the work and the monitored spikes of each sensor event),
//! then goes on with the next piece; the caller's thread runs the last stage and hands the
//! results out. Doing the work at both ends, the caller's thread lets the cuts balance the
//! threads better than one stage per thread could (with the gesture network on two threads:
//! layers 2-3 on one, layers 1 and 4-9 with the DVS layer on the other). The results are those
//! of one thread:
//! - a layer's state depends only on the order of its own input; every layer runs on one
//!   stage and gets its input in the one-thread order (see [`crate::cascade`]);
//! - the monitored spikes are tagged in the same order as on one thread (the DVS layer, then
//!   layer after layer), and handed out by the same [`Batch::hand_out`];
//! - with the chip's leak, a piece ends before the next tick, and carries the ticks before its
//!   sensor events: each stage runs them on its own layers as one thread runs them on all
//!   (see [`Stage::tick`]), and the ticks of a long gap go as pieces of their own (see
//!   [`Admission::next`]).
//!
//! A spike crosses threads once per stage boundary, in a piece's buffer, and no thread waits
//! for another within a piece. The cuts follow the time each layer took per sensor event before.
//! The first 8 k sensor events, cut as if every layer took the same, measure it; then the cuts
//! are looked at again after as many sensor events as measured before (8 k, 16 k ... 128 k),
//! since what a few events (of a network whose neurons have only begun to charge) measure is
//! far from what follows, and after that every 256 k, so that the cuts follow the input when it
//! changes and recover from a measurement that a busy neighbour swayed. A look drains the
//! pipeline only when it changes the cuts, by enough to be worth it: what runs with one set of
//! cuts is a segment. The early looks come after smaller pieces, so that a short segment does
//! not run mostly while the pipeline fills and drains. The admission's cost is measured apart
//! for cuts that keep layer 1 on the caller's thread and for those that do not (and the
//! hand-out's by where the last layer runs): it is three times as much when its pieces'
//! buffers go to another thread's cache. A call's events, or a stream of chunks ([`Chunks`],
//! which runs through the chunks without draining between them), are cut into segments.

use std::cell::Cell;
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::time::{Duration, Instant};

use dynapviz_events::Event;

use crate::batch::Batch;
use crate::cascade::{Cascade, Flight, Padded, Queue, Room, TickRuns, Wiring, hold};
use crate::dvs::Front;
use crate::layer::{LayerRt, Site};
use crate::leak::{self, LeakClock, TICKS_PER_PIECE, Ticks};
use crate::power::PeriodClock;
use crate::sim::LayerCounters;

/// Sensor events per piece: small enough that filling and draining the pipeline is a small
/// part of a call, large enough that handing a piece on costs nothing next to running it.
pub(crate) const PIECE_EVENTS: usize = 4096;

/// Pieces per stage that may be on their way at once: this bounds the memory and lets a fast
/// stage run ahead of a slow one by a little.
const PIECES_PER_STAGE: usize = 2;

/// The simulator's parts a pipelined call uses.
pub(crate) struct Call<'a> {
    pub layers: &'a mut [LayerRt],
    pub threads: usize,
    /// See [`crate::Config::thread_gain`].
    pub thread_gain: f64,
    pub front: &'a mut Front,
    /// The power periods, as the admission splits the batches by them.
    pub clock: &'a mut PeriodClock,
    pub dvs_counters: &'a mut LayerCounters,
    /// The layers' counters (layer 1 first).
    pub counters: &'a mut [LayerCounters],
    /// When each core's backlog clears (busy model), ns (layer 1 first).
    pub busy_until_ns: &'a mut [f64],
    pub wiring: &'a Wiring,
    /// The leak's clock, with a leak.
    pub leak: Option<&'a mut LeakClock>,
}

/// Memory kept between calls: once warm, a call allocates only its threads and channels.
#[derive(Default)]
pub(crate) struct Buffers {
    /// Pieces not in use.
    pieces: Vec<Piece>,
    /// Per layer: input queue, kept with its allocation.
    queues: Vec<Queue>,
    /// Per stage: room for one input event's spikes.
    fired: Vec<Padded<Vec<Site>>>,
    balance: Balance,
    /// A piece admitted while the pieces of the leak's ticks before it go first (see
    /// [`Admission::next`]).
    held: Piece,
    /// Gaps whose ticks went as pieces of their own, counted (see [`Piece::gap`]).
    gaps: u64,
}

impl Buffers {
    /// Gives every queue and flight the room of the largest, and every stage's room for one
    /// event's spikes that of the largest. Spikes move from one buffer to another (a flight is
    /// swapped in as a queue) and new cuts give buffers new roles: levelled, a buffer grows only
    /// where the work needs more than any did before, and a warm call allocates nothing when
    /// the cuts change.
    fn level(&mut self) {
        // Between segments no piece is on its way: what they hold is spent, and emptied, their
        // buffers grow without copying it.
        for piece in self.pieces.iter_mut().chain([&mut self.held]) {
            piece.flight.clear();
            piece.arrived.clear();
            piece.admitted.clear();
        }
        let pieces = || self.pieces.iter().chain([&self.held]);
        let flights = pieces().flat_map(|p| [&p.flight, &p.arrived]);
        let queues = self.queues.iter().chain(pieces().map(|p| &p.admitted));
        let room = flights.map(Flight::room).chain(queues.map(Queue::room)).fold(Room::default(), Room::max);
        for piece in self.pieces.iter_mut().chain([&mut self.held]) {
            piece.flight.make_room(room);
            piece.arrived.make_room(room);
            piece.admitted.make_room(room);
        }
        self.queues.iter_mut().for_each(|q| q.make_room(room));
        let fired = self.fired.iter().map(|f| f.capacity()).max().unwrap_or(0);
        self.fired.iter_mut().for_each(|f| {
            f.clear();
            hold(f, fired);
        });
    }
}

/// A piece of sensor events on its way through the stages.
#[derive(Default)]
struct Piece {
    batch: Batch,
    /// The first layer's input, admitted into the piece by the caller's thread and swapped
    /// into the first layer's queue by the stage that runs it.
    admitted: Queue,
    /// Spikes for layers of later stages.
    flight: Flight,
    /// The previous stage's `flight`, while a stage queues it.
    arrived: Flight,
    /// Nanoseconds each layer spent on this piece (0 for the layers of other stages), then the
    /// admission and the hand-out.
    spent_ns: Vec<u64>,
    /// The ticks of the leak to run before the sensor events (none without a leak), for the
    /// sensor event `tick_index` of the batch (the first admitted).
    ticks: Ticks,
    tick_index: u32,
    /// For a piece of ticks alone: the gap they are in (counted from 1 in [`Buffers::gaps`]),
    /// and whether every biased layer was quiet after them; the rest of the gap's ticks need
    /// not run then.
    gap: Option<u64>,
    quiet: bool,
}

/// Where to cut the layers: the time each layer took, from the calls before.
#[derive(Default)]
struct Balance {
    /// Per layer: nanoseconds per sensor event, averaged over the segments run so far.
    cost: Vec<f64>,
    /// The admission's cost, by where layer 1 runs.
    admission: EndCost,
    /// The hand-out's cost, by where the last layer runs.
    hand_out: EndCost,
    /// Sensor events measured so far.
    events: usize,
}

impl Balance {
    /// Where the stages over `layers` layers begin, on at most `threads` threads: the caller's
    /// thread runs a first stage (with the admission) and the last one (with the hand-out),
    /// each other thread one stage of at least one layer in between. The first and the last may
    /// hold no layer. Stage `i + 1` begins at `cuts[i]`. A thread is added only if it makes the
    /// slowest stage faster by the fraction `gain` (see [`crate::Config::thread_gain`]). Until
    /// a call has measured the layers, each counts the same.
    fn cuts(&mut self, layers: usize, threads: usize, gain: f64) -> Vec<usize> {
        if self.cost.len() != layers {
            self.cost = vec![1.0; layers];
        }
        let prefix = prefix_sums(&self.cost);
        let ends = |first, last| self.ends(first, last);
        let most = (threads.max(2) - 1).min(layers.max(1));
        let mut best = caller_at_both_ends(&self.cost, &prefix, ends, 1);
        for middle in 2..=most {
            let more = caller_at_both_ends(&self.cost, &prefix, ends, middle);
            if more.0 <= best.0 * (1.0 - gain) {
                best = more;
            }
        }
        best.1
    }

    /// Nanoseconds per sensor event of the slowest stage with `cuts` (as [`Self::cuts`] makes
    /// them), by the measurements so far.
    fn pace(&self, cuts: &[usize]) -> f64 {
        pace(&prefix_sums(&self.cost), |first, last| self.ends(first, last), cuts)
    }

    /// The cost of the admission and the hand-out with the caller's stages ending at `first`
    /// and beginning at `last`.
    fn ends(&self, first: usize, last: usize) -> f64 {
        self.admission.cost(first > 0) + self.hand_out.cost(last < self.cost.len())
    }

    /// Adds the measurements (per layer, then admission and hand-out) over `events` sensor
    /// events, run with `cuts` in pieces of `piece_events`. A measurement weighs as much as
    /// its events against at most [`LOOK_EVENTS`] of those before: each early look counts as
    /// much as all before it, a later one as much as the last, and the few sensor events of a
    /// drain after a look little. The admission and the hand-out count only in whole pieces
    /// ([`PIECE_EVENTS`]): before, the pieces' buffers grow, and the admission, which touches
    /// their new memory first, measured 19-24 ns per sensor event next to layer 1, against
    /// 10-14 once they had grown.
    fn update(&mut self, spent_ns: &[u64], events: usize, cuts: &[usize], piece_events: usize) {
        let layers = spent_ns.len().saturating_sub(2);
        let mut per_event = spent_ns.iter().map(|&ns| ns as f64 / events.max(1) as f64);
        if self.cost.len() != layers {
            self.events = 0;
        }
        let weight = weight(events, self.events);
        self.cost.resize(layers, 0.0);
        for (c, ns) in self.cost.iter_mut().zip(per_event.by_ref()) {
            *c = (1.0 - weight) * *c + weight * ns;
        }
        if piece_events >= PIECE_EVENTS {
            let near = (cuts.first().is_some_and(|&c| c > 0), cuts.last().is_some_and(|&c| c < layers));
            self.admission.update(near.0, per_event.next().unwrap_or(0.0), events);
            self.hand_out.update(near.1, per_event.next().unwrap_or(0.0), events);
        }
        self.events += events;
    }
}

/// Nanoseconds per sensor event of one of the caller's jobs at an end of the pipeline, by
/// whether the caller's thread also runs the layer at that end (layer 1 next to the admission,
/// the last layer next to the hand-out). Apart from it, the pieces' buffers the job writes or
/// reads move between the threads' caches: on the gesture network the admission took 8.5 ns per
/// sensor event next to layer 1 and 31 ns apart from it, which, counted for both, kept layer 1
/// off the caller's thread for good.
///
/// A cost measured on fewer than [`TRUST_EVENTS`] sensor events counts as none, so that cuts
/// it would favour are tried, and measured well. Taken from the other one, or from the first
/// few thousand sensor events (caches cold, the pieces smaller), it kept layer 1 away too: on
/// `synth02`, 13.8 k sensor events with layer 1 near measured 30 ns, and the cuts stayed on
/// layer 1 apart for the whole recording (271 ms, against 220-240).
#[derive(Default, Clone, Copy)]
struct EndCost {
    near: Measured,
    apart: Measured,
}

/// Nanoseconds per sensor event, over how many.
#[derive(Default, Clone, Copy)]
struct Measured {
    ns: f64,
    events: usize,
}

/// Sensor events a cost must be measured on to count (see [`EndCost`]).
const TRUST_EVENTS: usize = 16 * PIECE_EVENTS;

impl EndCost {
    fn cost(self, near: bool) -> f64 {
        let m = if near { self.near } else { self.apart };
        if m.events >= TRUST_EVENTS { m.ns } else { 0.0 }
    }

    /// Adds `ns` measured on `events` sensor events where it was measured, weighed as
    /// [`Balance::update`] weighs a measurement.
    fn update(&mut self, near: bool, ns: f64, events: usize) {
        let m = if near { &mut self.near } else { &mut self.apart };
        let weight = weight(events, m.events);
        *m = Measured { ns: (1.0 - weight) * m.ns + weight * ns, events: m.events + events };
    }
}

/// The weight of a measurement on `events` sensor events next to `before` measured before
/// (see [`Balance::update`]).
fn weight(events: usize, before: usize) -> f64 {
    events as f64 / (events + before.min(LOOK_EVENTS)).max(1) as f64
}

/// The best cuts with `middle` threads between the caller's first and last stage (see
/// [`Balance::cuts`]), and the cost of their slowest stage. `prefix`: the prefix sums of
/// `cost`; `ends(first, last)`: the cost of the admission and the hand-out with the caller's
/// stages ending at `first` and beginning at `last`.
fn caller_at_both_ends(cost: &[f64], prefix: &[f64], ends: impl Fn(usize, usize) -> f64, middle: usize) -> (f64, Vec<usize>) {
    let layers = cost.len();
    let mut best = (f64::INFINITY, Vec::new());
    for first in 0..=layers {
        for last in first + middle..=layers {
            let inner = best_cuts(&cost[first..last], middle).into_iter().map(|c| first + c);
            let cuts: Vec<usize> = std::iter::once(first).chain(inner).chain([last]).collect();
            let slowest = pace(prefix, &ends, &cuts);
            if slowest < best.0 {
                best = (slowest, cuts);
            }
        }
    }
    best
}

/// The cost of the slowest stage with `cuts` (see [`Balance::cuts`]); `prefix` and `ends` as
/// for [`caller_at_both_ends`].
fn pace(prefix: &[f64], ends: impl Fn(usize, usize) -> f64, cuts: &[usize]) -> f64 {
    let layers = prefix.len() - 1;
    let (first, last) = (cuts.first().copied().unwrap_or(0), cuts.last().copied().unwrap_or(layers));
    let caller = prefix[first] + prefix[layers] - prefix[last] + ends(first, last);
    cuts.windows(2).map(|w| prefix[w[1]] - prefix[w[0]]).fold(caller, f64::max)
}

/// Cuts `cost` (per layer) into `stages` runs of consecutive layers whose largest sum is as
/// small as can be: the pipeline runs at the pace of its slowest stage.
fn best_cuts(cost: &[f64], stages: usize) -> Vec<usize> {
    let n = cost.len();
    let stages = stages.clamp(1, n.max(1));
    let prefix = prefix_sums(cost);
    let span = |a: usize, b: usize| prefix[b] - prefix[a];
    // best[s][i]: the slowest of s + 1 stages over layers ..i; from[s][i]: where the last starts.
    let mut best = vec![vec![f64::INFINITY; n + 1]; stages];
    let mut from = vec![vec![0; n + 1]; stages];
    best[0].copy_from_slice(&prefix);
    for s in 1..stages {
        for i in s + 1..=n {
            for j in s..i {
                let slowest = best[s - 1][j].max(span(j, i));
                if slowest < best[s][i] {
                    (best[s][i], from[s][i]) = (slowest, j);
                }
            }
        }
    }
    let mut cuts = vec![0; stages - 1];
    let mut end = n;
    for s in (1..stages).rev() {
        end = from[s][end];
        cuts[s - 1] = end;
    }
    cuts
}

/// `0, cost[0], cost[0] + cost[1], ...`: the cost of layers `a..b` is `prefix[b] - prefix[a]`.
fn prefix_sums(cost: &[f64]) -> Vec<f64> {
    std::iter::once(0.0)
        .chain(cost.iter().scan(0.0, |sum, &c| {
            *sum += c;
            Some(*sum)
        }))
        .collect()
}

/// Sensor events for the pipeline, taken a piece at a time: a slice, or a stream of chunks.
pub(crate) trait Events {
    /// The next at most `max` sensor events (with a leak ticking every `tick_us`, none past its
    /// next tick: see [`leak::batch_len`]); empty once there are no more.
    fn next_piece(&mut self, max: usize, tick_us: Option<i64>) -> &[Event];
    /// Whether there are no more sensor events (a stream waits for its next chunk to know).
    fn is_done(&mut self) -> bool;
}

impl Events for &[Event] {
    fn next_piece(&mut self, max: usize, tick_us: Option<i64>) -> &[Event] {
        let (piece, rest) = self.split_at(leak::batch_len(self, max, tick_us));
        *self = rest;
        piece
    }

    fn is_done(&mut self) -> bool {
        self.is_empty()
    }
}

/// A stream of chunks of sensor events: `refill` replaces the chunk with the next one and says
/// false when there is none (an empty chunk is skipped).
pub(crate) struct Chunks<F> {
    chunk: Vec<Event>,
    /// Sensor events of `chunk` taken so far.
    taken: usize,
    refill: F,
    done: bool,
}

impl<F: FnMut(&mut Vec<Event>) -> bool> Chunks<F> {
    pub fn new(refill: F) -> Self {
        Self { chunk: Vec::new(), taken: 0, refill, done: false }
    }
}

impl<F: FnMut(&mut Vec<Event>) -> bool> Events for Chunks<F> {
    fn next_piece(&mut self, max: usize, tick_us: Option<i64>) -> &[Event] {
        if self.is_done() {
            return &[];
        }
        let end = self.taken + leak::batch_len(&self.chunk[self.taken..], max, tick_us);
        let piece = &self.chunk[self.taken..end];
        self.taken = end;
        piece
    }

    fn is_done(&mut self) -> bool {
        while !self.done && self.taken == self.chunk.len() {
            self.taken = 0;
            self.done = !(self.refill)(&mut self.chunk);
        }
        self.done
    }
}

/// Runs `events` through the pipeline (the caller's thread runs the first and the last stage,
/// each other thread one in between) and calls `deliver` with each piece's batch in order, to
/// hand out its monitored spikes and work (see [`Batch::hand_out`]). Once `deliver` says false,
/// no more sensor events are admitted.
pub(crate) fn run(call: Call<'_>, events: &mut dyn Events, buffers: &mut Buffers, mut deliver: impl FnMut(&mut Batch) -> bool) {
    let Call { layers, threads, thread_gain, front, clock, dvs_counters, counters, busy_until_ns, wiring, mut leak } = call;
    while !events.is_done() {
        let call = Call {
            layers: &mut *layers,
            threads,
            thread_gain,
            front: &mut *front,
            clock: &mut *clock,
            dvs_counters: &mut *dvs_counters,
            counters: &mut *counters,
            busy_until_ns: &mut *busy_until_ns,
            wiring,
            leak: leak.as_deref_mut(),
        };
        if !run_segment(call, events, buffers, &mut deliver) {
            break;
        }
    }
}

/// Sensor events before the first look at the cuts, which measures the layers to cut them well.
const MEASURE_EVENTS: usize = 2 * PIECE_EVENTS;

/// Sensor events between two looks at the cuts once the layers are measured (see
/// [`run_segment`]); before, as many as measured so far, so that cuts made on a few events (of
/// a network whose neurons have only begun to charge) are soon made again on more. Enough for
/// a measurement that a few milliseconds of a busy neighbour do not sway, few enough that the
/// cuts follow the input when it changes (a busier scene, other layers busier) and recover
/// from a bad measurement. On `synth02` with the gesture network, the first 262 k sensor
/// events once measured layer 3 half as slow again as it then ran (its thread was slowed for a
/// while), and the cuts made on them (layers 1-2 and 4-9 on one thread) ran the other 906 k in
/// 227 ms, against 182-194 with the usual ones.
const LOOK_EVENTS: usize = 64 * PIECE_EVENTS;

/// How much faster (a fraction of the slowest stage) new cuts must make the pipeline for a
/// look at the cuts to drain it and change them: not for every flicker of the measurements.
const RECUT_GAIN: f64 = 0.03;

/// [`run`] with the cuts of the time measured so far, until the input ends or the cuts are to
/// change; false once `deliver` said false. The measurements are added at each look at the
/// cuts (see [`look_every`]), and the pipeline drains only when they would change them: a
/// drain costs about a millisecond, and most looks change nothing.
fn run_segment(call: Call<'_>, events: &mut dyn Events, buffers: &mut Buffers, deliver: &mut impl FnMut(&mut Batch) -> bool) -> bool {
    let Call { layers, threads, thread_gain, front, clock, dvs_counters, counters, busy_until_ns, wiring, leak } = call;
    let n = layers.len();
    if n == 0 {
        return false;
    }
    let cuts = buffers.balance.cuts(n, threads, thread_gain);
    let Buffers { pieces, queues, fired, balance, held, gaps } = buffers;
    queues.resize_with(n, Queue::default);
    fired.resize_with(cuts.len() + 1, Padded::default);
    let mut spent_ns = vec![0; n + 2];
    // Disjoint layers, counters, backlogs and queues per stage.
    let mut stages = Vec::with_capacity(cuts.len() + 1);
    let (mut layers, mut counters, mut busy, mut queues, mut fired) =
        (layers, counters, busy_until_ns, queues.as_mut_slice(), fired.iter_mut());
    let mut start = 0;
    for end in cuts.iter().copied().chain([n]) {
        let (l, l_rest) = std::mem::take(&mut layers).split_at_mut(end - start);
        let (c, c_rest) = std::mem::take(&mut counters).split_at_mut(end - start);
        let (b, b_rest) = std::mem::take(&mut busy).split_at_mut(end - start);
        let (q, q_rest) = std::mem::take(&mut queues).split_at_mut(end - start);
        let Some(f) = fired.next() else { break };
        stages.push(Stage { first: start, layers: l, counters: c, busy_until_ns: b, queues: q, fired: f, wiring });
        (layers, counters, busy, queues, start) = (l_rest, c_rest, b_rest, q_rest, end);
    }
    let watch =
        Watch { recut: Cell::new(false), piece_events: Cell::new(piece_events(look_every(balance.events))), quiet_gap: Cell::new(None) };
    let mut admission = Admission {
        front,
        clock,
        dvs_counters,
        monitor_dvs: wiring.monitored[0],
        events,
        admitted: 0,
        watch: &watch,
        leak,
        held,
        gap: None,
        gaps,
    };
    let mut go_on = true;
    // Measurements not yet added to the balance, and over how many sensor events: in pieces
    // of `watch.piece_events` (a look that changes the cuts leaves it as the pieces still on
    // their way were admitted).
    let (mut unseen, mut unseen_events) = (vec![0; n + 2], 0);
    let hand_out = |piece: &mut Piece| {
        if piece.quiet {
            watch.quiet_gap.set(piece.gap);
        }
        let t0 = Instant::now();
        go_on &= deliver(&mut piece.batch);
        piece.spent_ns[n + 1] += t0.elapsed().as_nanos() as u64;
        for ((total, unseen), &ns) in spent_ns.iter_mut().zip(&mut unseen).zip(&piece.spent_ns) {
            *total += ns;
            *unseen += ns;
        }
        unseen_events += piece.batch.len;
        if unseen_events >= look_every(balance.events) && !watch.recut.get() {
            balance.update(&unseen, unseen_events, &cuts, watch.piece_events.get());
            unseen.fill(0);
            unseen_events = 0;
            let better = balance.cuts(n, threads, thread_gain);
            watch.recut.set(balance.pace(&better) < balance.pace(&cuts) * (1.0 - RECUT_GAIN));
            if !watch.recut.get() {
                watch.piece_events.set(piece_events(look_every(balance.events)));
            }
        }
        go_on
    };
    let started = Instant::now();
    pipeline(stages, &mut admission, pieces, n, hand_out);
    let admitted = admission.admitted;
    tracing::debug!(
        events = admitted,
        wall_ms = started.elapsed().as_secs_f64() * 1e3,
        ?cuts,
        "pipeline segment; busy ms per layer, then admission and hand-out: {:?}",
        spent_ns.iter().map(|&ns| (ns / 100_000) as f64 / 10.0).collect::<Vec<_>>()
    );
    if unseen_events > 0 {
        balance.update(&unseen, unseen_events, &cuts, watch.piece_events.get());
    }
    buffers.level();
    go_on
}

/// Sensor events between two looks at the cuts with `measured` so far: see [`LOOK_EVENTS`].
fn look_every(measured: usize) -> usize {
    measured.clamp(MEASURE_EVENTS, LOOK_EVENTS)
}

/// Sensor events per piece between looks `every` sensor events apart: [`PIECE_EVENTS`], or
/// fewer between the early looks, so that [`LOOK_PIECES`] pieces come between two. Of a few
/// pieces, a segment that ends at the next look runs mostly while the pipeline fills and
/// drains, its threads one after the other (the first two, of two pieces each, took as long
/// as their busy time on both threads added up).
fn piece_events(every: usize) -> usize {
    (every / LOOK_PIECES).clamp(MIN_PIECE_EVENTS, PIECE_EVENTS)
}

/// Pieces between two looks at the cuts at the least, if they are far enough apart for
/// pieces of [`MIN_PIECE_EVENTS`].
const LOOK_PIECES: usize = 16;

/// Sensor events of the smallest piece: handing a piece on (a channel and the timing of each
/// layer) stays small next to running it.
const MIN_PIECE_EVENTS: usize = 512;

/// The stages on their threads, pieces passed on by channels and back to the caller's by the
/// last. A stage that panics drops its channels, so the others stop instead of waiting. Once
/// `hand_out` says false, no more pieces start.
fn pipeline(
    mut stages: Vec<Stage<'_, '_>>,
    admission: &mut Admission<'_, '_>,
    pieces: &mut Vec<Piece>,
    n: usize,
    mut hand_out: impl FnMut(&mut Piece) -> bool,
) {
    let in_flight = PIECES_PER_STAGE * stages.len();
    let Some(mut last) = stages.pop() else { return };
    let mut stages = stages.into_iter();
    let Some(mut first) = stages.next() else { return };
    pieces.resize_with(in_flight.max(pieces.len()), Piece::default);
    let mut spare = Vec::new();
    // The caller's part at the start of a piece: admission and the first stage.
    let mut start = |piece: &mut Piece| {
        let admitted = admission.next(piece, n);
        if admitted {
            first.run(piece);
        }
        admitted
    };
    std::thread::scope(|scope| {
        let (to_middle, mut rx) = mpsc::channel::<Piece>();
        let middle: Vec<_> = stages
            .map(|mut stage| {
                let (tx, next_rx) = mpsc::channel::<Piece>();
                let from = std::mem::replace(&mut rx, next_rx);
                scope.spawn(move || {
                    while let Some(mut piece) = receive(&from) {
                        stage.run(&mut piece);
                        if tx.send(piece).is_err() {
                            break;
                        }
                    }
                })
            })
            .collect();
        // Starts `piece` and sends it to the middle stages, or keeps it once the input has run
        // out or `more` is false (and closes the channel, so that they see the end); false if
        // they are gone.
        let (mut to_middle, spare) = (Some(to_middle), &mut spare);
        let mut pass_on = move |mut piece: Piece, more: bool| match &to_middle {
            Some(tx) if more && start(&mut piece) => tx.send(piece).is_ok(),
            _ => {
                to_middle = None;
                spare.push(piece);
                true
            }
        };
        for piece in pieces.drain(..) {
            pass_on(piece, true);
        }
        // Ends once the middle stages have seen the end of the input and every piece in flight
        // came through.
        while let Some(mut piece) = receive(&rx) {
            last.run(&mut piece);
            let more = hand_out(&mut piece);
            if !pass_on(piece, more) {
                break;
            }
        }
        drop(pass_on);
        for h in middle {
            h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        }
    });
    pieces.extend(spare);
}

/// Starting pieces: the caller's thread's extra job.
struct Admission<'a, 'e> {
    front: &'a mut Front,
    clock: &'a mut PeriodClock,
    dvs_counters: &'a mut LayerCounters,
    monitor_dvs: bool,
    events: &'e mut dyn Events,
    /// Sensor events admitted so far.
    admitted: usize,
    watch: &'a Watch,
    leak: Option<&'a mut LeakClock>,
    /// The piece held while the ticks of the gap before it go as pieces of their own.
    held: &'a mut Piece,
    /// While a piece is held: its gap, and the ticks of it still to go.
    gap: Option<(u64, Ticks)>,
    /// Gaps so far (see [`Piece::gap`]).
    gaps: &'a mut u64,
}

/// What the looks at the cuts tell the admission, on the caller's thread (see [`run_segment`]).
struct Watch {
    /// Set when the cuts are to change: no more sensor events are admitted.
    recut: Cell<bool>,
    /// Sensor events per piece (see [`piece_events`]).
    piece_events: Cell<usize>,
    /// The last gap a piece of ticks alone came back quiet from (see [`Piece::gap`]).
    quiet_gap: Cell<Option<u64>>,
}

impl Admission<'_, '_> {
    /// Admits the next piece of sensor events into `piece`, with the leak's ticks before them;
    /// false when there is none. When the ticks are more than a piece carries
    /// ([`TICKS_PER_PIECE`]), the piece is held and pieces of its ticks alone go first; a piece
    /// of them that comes back with every biased layer quiet ends them (the others would
    /// repeat its last tick), so that a gap of years costs no more than a few pieces.
    fn next(&mut self, piece: &mut Piece, layers: usize) -> bool {
        if let Some((gap, ticks)) = &mut self.gap {
            if self.watch.quiet_gap.get() == Some(*gap) {
                ticks.count = 0;
            }
            if ticks.count > TICKS_PER_PIECE {
                let (gap, alone) = (*gap, ticks.take(TICKS_PER_PIECE));
                let t_us = self.held.batch.work.parts().first().map_or(0, |p| p.t_us);
                Self::start(piece, layers);
                piece.batch.ticks_alone(t_us);
                (piece.ticks, piece.gap, piece.quiet) = (alone, Some(gap), true);
                return true;
            }
            std::mem::swap(piece, self.held);
            piece.ticks = *ticks;
            self.gap = None;
            return true;
        }
        if self.watch.recut.get() {
            return false;
        }
        let events = self.events.next_piece(self.watch.piece_events.get(), self.leak.as_ref().map(|l| l.tick_us));
        if events.is_empty() {
            return false;
        }
        self.admitted += events.len();
        let t0 = Instant::now();
        Self::start(piece, layers);
        piece.batch.admit(events, self.front, self.dvs_counters, self.monitor_dvs, &mut piece.admitted, self.clock);
        if let Some(leak) = self.leak.as_deref_mut()
            && let Some(part) = piece.batch.work.parts().first()
        {
            (piece.ticks, piece.tick_index) = (leak.until(part.t_us), part.first);
        }
        piece.spent_ns[layers] = t0.elapsed().as_nanos() as u64;
        if piece.ticks.count > TICKS_PER_PIECE {
            *self.gaps += 1;
            self.gap = Some((*self.gaps, piece.ticks));
            std::mem::swap(piece, self.held);
            return self.next(piece, layers);
        }
        true
    }

    /// Empties `piece` for the next sensor events or ticks.
    fn start(piece: &mut Piece, layers: usize) {
        piece.flight.clear();
        piece.spent_ns.clear();
        piece.spent_ns.resize(layers + 2, 0);
        piece.admitted.clear();
        (piece.ticks, piece.tick_index, piece.gap, piece.quiet) = (Ticks::default(), 0, None, false);
    }
}

/// A run of consecutive layers on one thread.
struct Stage<'a, 'w> {
    /// Index of `layers[0]` in the network.
    first: usize,
    layers: &'a mut [LayerRt],
    counters: &'a mut [LayerCounters],
    busy_until_ns: &'a mut [f64],
    queues: &'a mut [Queue],
    fired: &'a mut Padded<Vec<Site>>,
    wiring: &'w Wiring,
}

impl Stage<'_, '_> {
    /// Runs the piece's ticks of the leak on this stage's layers, then queues the piece's
    /// spikes for them (passing on those for later stages first, as they come from earlier
    /// layers) and runs the layers.
    fn run(&mut self, piece: &mut Piece) {
        let Piece { batch, admitted, flight, arrived, spent_ns, ticks, tick_index, quiet, .. } = piece;
        std::mem::swap(flight, arrived);
        flight.clear();
        let taken = self.tick(*ticks, *tick_index, arrived, flight, batch, spent_ns);
        *quiet &= leak::all_quiet(self.layers);
        let mut cascade = self.cascade(flight, spent_ns);
        if cascade.first == 0
            && let Some(queue) = cascade.queues.first_mut()
        {
            // Empty since the last piece: it ran through.
            std::mem::swap(queue, admitted);
            cascade.wiring.send_dvs_on(cascade.queues, cascade.flight.as_deref_mut());
        }
        if let Some(queue) = (taken == 0).then(|| sole_destination(&mut cascade, arrived)).flatten() {
            // The whole flight is one layer's input: it becomes the queue, with no copy.
            std::mem::swap(queue, &mut arrived.spikes);
        } else {
            for (&source, (run, sites)) in arrived.sources.iter().zip(arrived.spikes.iter()).skip(taken) {
                cascade.take(source, run, sites);
            }
        }
        arrived.clear();
        cascade.run(&mut batch.work, &mut batch.tagged);
    }

    /// This stage's layers, with `flight` for the spikes to later stages.
    fn cascade<'s>(&'s mut self, flight: &'s mut Flight, spent_ns: &'s mut [u64]) -> Cascade<'s> {
        let end = self.first + self.layers.len();
        Cascade {
            first: self.first,
            layers: self.layers,
            counters: self.counters,
            queues: self.queues,
            busy_until_ns: self.busy_until_ns,
            wiring: self.wiring,
            fired: &mut self.fired.0,
            flight: Some(flight),
            spent_ns: Some(&mut spent_ns[self.first..end]),
        }
    }

    /// Runs `ticks` of the leak on this stage's layers as one thread would: per tick, the
    /// earlier stages' tick spikes for these layers (from `arrived`, see [`TickRuns`]), then
    /// these layers' ticks, then the spikes the earlier stages' layers made of the tick, then
    /// these layers run. The monitored spikes go to the batch's `ticked`, keyed so that the
    /// hand-out puts every stage's tick spikes before any stage's run after it, as one thread
    /// does. A tick nothing arrives for, once every biased layer here is quiet, is skipped.
    /// Returns the runs of `arrived` taken.
    fn tick(&mut self, ticks: Ticks, index: u32, arrived: &Flight, flight: &mut Flight, batch: &mut Batch, spent_ns: &mut [u64]) -> usize {
        let (mut taken, mut marks) = (0, arrived.ticks.iter().peekable());
        let mut runs = arrived.sources.iter().zip(arrived.spikes.iter());
        let mut k = 0;
        while k < ticks.count {
            let mark = marks.next_if(|m| m.k == k);
            if mark.is_none() && leak::all_quiet(self.layers) {
                // Nothing happens here before the next tick something arrives for.
                match marks.peek() {
                    Some(m) => k = m.k,
                    None => break,
                }
                continue;
            }
            let mut cascade = self.cascade(flight, spent_ns);
            let mut take = |cascade: &mut Cascade<'_>, up_to: usize| {
                for (&source, (run, sites)) in runs.by_ref().take(up_to - taken) {
                    cascade.take(source, run, sites);
                }
                taken = up_to;
            };
            let before = cascade.flight.as_ref().map_or(0, |f| f.spikes.len());
            if let Some(m) = mark {
                take(&mut cascade, m.ticked);
            }
            let key = u32::try_from(2 * k).unwrap_or(u32::MAX - 1);
            cascade.tick(ticks.at(k), index, &mut batch.ticked, key);
            let ticked = cascade.flight.as_ref().map_or(0, |f| f.spikes.len());
            if let Some(m) = mark {
                take(&mut cascade, m.end);
            }
            let ran = batch.ticked.len();
            cascade.run(&mut batch.work, &mut batch.ticked);
            batch.ticked[ran..].iter_mut().for_each(|(tag, _)| *tag = key + 1);
            let end = cascade.flight.as_ref().map_or(0, |f| f.spikes.len());
            if end > before {
                flight.ticks.push(TickRuns { k, ticked, end });
            }
            k += 1;
        }
        taken
    }
}

/// The queue of the one layer of `cascade` that every spike of `arrived` goes to, if it is
/// empty and they go nowhere else.
fn sole_destination<'c>(cascade: &'c mut Cascade<'_>, arrived: &Flight) -> Option<&'c mut Queue> {
    let &source = arrived.sources.first()?;
    let wiring = cascade.wiring;
    let (&[d], [None]) = (wiring.destinations[source].as_slice(), wiring.repools[source].as_slice()) else { return None };
    let queue = cascade.queues.get_mut(d.checked_sub(cascade.first)?)?;
    (queue.is_empty() && arrived.sources.iter().all(|&s| s == source)).then_some(queue)
}

/// The next piece from `rx`, spinning before it yields: on a virtual machine a sleeping thread
/// takes far longer to wake than a piece takes to run. No `spin_loop` (PAUSE): a hypervisor
/// takes a PAUSE loop for a vCPU waiting on a lock and deschedules it. After [`YIELD_FOR`] of
/// yielding it sleeps until a piece comes: the input itself is waiting (a live stream, a
/// paced recording), and yielding on would keep a core busy in the kernel (a live camera at
/// 190 k events/s took 1.4 s of system time in 2.1 s on two threads). `None` once the sender
/// is gone and everything sent was received.
fn receive<T>(rx: &Receiver<T>) -> Option<T> {
    let mut spins = 0u32;
    let mut yielding: Option<Instant> = None;
    loop {
        match rx.try_recv() {
            Ok(piece) => return Some(piece),
            Err(TryRecvError::Disconnected) => return None,
            Err(TryRecvError::Empty) if spins < 2_000 => spins += 1,
            Err(TryRecvError::Empty) if yielding.get_or_insert_with(Instant::now).elapsed() < YIELD_FOR => std::thread::yield_now(),
            Err(TryRecvError::Empty) => return rx.recv().ok(),
        }
    }
}

/// How long [`receive`] yields before it sleeps: far longer than a piece takes to come when
/// the input is ready (tens of microseconds).
const YIELD_FOR: Duration = Duration::from_micros(250);

#[cfg(test)]
mod tests {
    use super::{Balance, Buffers, EndCost, LOOK_EVENTS, Measured, PIECE_EVENTS, Piece, RECUT_GAIN, TRUST_EVENTS, best_cuts};
    use crate::cascade::{Padded, Queue, Room};
    use crate::layer::Site;

    #[test]
    fn levelled_buffers_all_have_the_largest_room() {
        let site = Site { c: 0, y: 0, x: 0 };
        let mut buffers =
            Buffers { pieces: vec![Piece::default(), Piece::default()], queues: vec![Queue::default(); 3], ..Buffers::default() };
        buffers.fired = vec![Padded(vec![site; 3]), Padded(Vec::new())];
        // The most runs in one buffer, the most sites in another, each a different role.
        buffers.queues[1].push(0, 0, &vec![site; 700]);
        (0..40).for_each(|i| buffers.pieces[1].flight.push(2, i, 0, &[site]));
        let expected = buffers.queues[1].room().max(buffers.pieces[1].flight.room());
        buffers.level();
        let flights = buffers.pieces.iter().flat_map(|p| [p.flight.room(), p.arrived.room()]);
        let rooms: Vec<Room> =
            buffers.queues.iter().chain(buffers.pieces.iter().map(|p| &p.admitted)).map(Queue::room).chain(flights).collect();
        let largest = rooms.iter().copied().fold(Room::default(), Room::max);
        assert_ne!(largest, Room::default());
        assert!(rooms.iter().all(|&r| r == largest), "{rooms:?}");
        // No more than the largest.
        assert_eq!(largest, expected);
        assert!(buffers.fired.iter().all(|f| f.capacity() >= 3));
        // Levelled again, nothing grows.
        buffers.level();
        assert_eq!(buffers.queues[0].room(), largest);
    }

    const GAIN: f64 = 0.05;

    #[test]
    fn the_callers_thread_takes_both_ends() {
        // The gesture network's layers as measured, then admission and hand-out.
        let mut balance = measured(&GESTURE, 2.5, 0.9);
        // The caller: layer 1, layers 4-9, admission, hand-out (58.4); the other thread 69.
        assert_eq!(balance.cuts(9, 2, GAIN), vec![1, 3]);
        // Three threads: layers 1-2 on one, layer 3 (the slowest stage, 49) on another, the
        // caller layers 4-9 with admission and hand-out.
        assert_eq!(balance.cuts(9, 3, GAIN), vec![0, 2, 3]);
        // Layer 3 alone is the slowest stage from three threads on: eight take no more.
        assert_eq!(balance.cuts(9, 8, GAIN), vec![0, 2, 3]);
        // Nine layers that cost the same: four threads cut them 3 + 3 + 3 at best, which three
        // threads do too; sixteen cut them one per thread on nine threads.
        let mut even = measured(&[10.0; 9], 0.0, 0.0);
        assert_eq!(even.cuts(9, 4, GAIN).len(), 3, "cuts of three threads");
        assert_eq!(even.cuts(9, 16, GAIN).len(), 9, "cuts of nine threads");
        // With no gain asked, a thread that is no slower is taken: every one that has a layer.
        assert_eq!(even.cuts(9, 16, 0.0).len(), 10, "cuts of ten threads");
        assert_eq!(balance.cuts(9, 8, 0.0).len(), 8, "cuts of eight threads");
        // A single layer runs in the middle, the ends empty.
        let mut one = Balance::default();
        assert_eq!(one.cuts(1, 2, GAIN), vec![0, 1]);
    }

    /// The gesture network's layers as measured (ns per sensor event).
    const GESTURE: [f64; 9] = [9.0, 20.0, 49.0, 24.0, 11.0, 4.0, 2.0, 1.0, 2.0];

    /// A balance that measured `cost` per layer, and the admission and hand-out wherever.
    fn measured(cost: &[f64], admission: f64, hand_out: f64) -> Balance {
        let end = |ns| EndCost { near: Measured { ns, events: TRUST_EVENTS }, apart: Measured { ns, events: TRUST_EVENTS } };
        Balance { cost: cost.to_vec(), admission: end(admission), hand_out: end(hand_out), events: 0 }
    }

    #[test]
    fn the_admission_counts_where_it_was_measured() {
        // Each layer as `GESTURE`, then the admission and the hand-out, over `events`.
        let spent = |admission: f64, events: usize| -> Vec<u64> {
            GESTURE.iter().chain(&[admission, 0.75]).map(|&c| (c * events as f64) as u64).collect()
        };
        // Measured on a few sensor events, a cost counts as none.
        let mut balance = Balance::default();
        balance.update(&spent(30.0, 1000), 1000, &[0, 3], PIECE_EVENTS);
        assert_eq!(balance.admission.cost(false), 0.0);
        // Measured on enough with layer 1 on the other thread, the admission is dear (its
        // buffers move between the caches). Next to layer 1 it is not measured yet, so cuts
        // that bring layer 1 back are tried: the caller's thread takes 9 + 44 + 0.75 with them
        // and the other 69, against 30 + 44 + 0.75 and 78 without.
        let mut balance = Balance::default();
        balance.update(&spent(30.0, TRUST_EVENTS), TRUST_EVENTS, &[0, 3], PIECE_EVENTS);
        assert_eq!(balance.cuts(9, 2, GAIN), vec![1, 3]);
        // Next to layer 1 it is cheap, and layer 1 stays there (62.25 against 69), though the
        // dear measurement still counts for cuts that send it away.
        balance.update(&spent(8.5, TRUST_EVENTS), TRUST_EVENTS, &[1, 3], PIECE_EVENTS);
        assert_eq!(balance.cuts(9, 2, GAIN), vec![1, 3]);
        assert_eq!((balance.admission.cost(true), balance.admission.cost(false)), (8.5, 30.0));
        // In pieces smaller than the usual, whose buffers are still growing, it does not count.
        balance.update(&spent(20.0, TRUST_EVENTS), TRUST_EVENTS, &[1, 3], PIECE_EVENTS / 2);
        assert_eq!(balance.admission.cost(true), 8.5);
        // The hand-out, measured next to the last layer only, counts as none apart from it.
        assert_eq!((balance.hand_out.cost(true), balance.hand_out.cost(false)), (0.75, 0.0));
        assert_eq!(balance.cost, GESTURE);
    }

    /// `synth02`'s first 262 k sensor events measured layer 3 slow (its thread was slowed for
    /// a while), and the cuts made on them kept it alone on the other thread; a look at the
    /// cuts after as many again, at the usual pace, brings layer 1 back to the caller.
    #[test]
    fn a_look_at_the_cuts_recovers_from_a_bad_measurement() {
        // Nanoseconds per sensor event of each layer, then the admission and the hand-out.
        let (early, usual) = ([29.0, 67.0, 228.0, 94.0, 42.0, 18.0, 6.0, 3.0, 2.0], [27.0, 53.0, 140.0, 91.0, 40.0, 16.0, 6.0, 3.0, 2.0]);
        let mut balance = Balance::default();
        let measure = |balance: &mut Balance, cost: &[f64], events: usize, cuts: &[usize]| {
            let spent: Vec<u64> = cost.iter().chain(&[10.0, 5.0]).map(|&c| (c * events as f64) as u64).collect();
            balance.update(&spent, events, cuts, PIECE_EVENTS);
            balance.cuts(9, 2, GAIN)
        };
        measure(&mut balance, &early, LOOK_EVENTS / 2, &[1, 3]);
        let stuck = measure(&mut balance, &early, LOOK_EVENTS / 2, &[1, 3]);
        assert_eq!(stuck, vec![2, 3]);
        // A look after as many sensor events again goes half the way to the usual pace.
        let better = measure(&mut balance, &usual, LOOK_EVENTS, &stuck);
        assert_eq!(better, vec![1, 3]);
        assert!(balance.pace(&better) < balance.pace(&stuck) * (1.0 - RECUT_GAIN));
        // Looks at the usual pace change nothing then.
        assert_eq!(measure(&mut balance, &usual, LOOK_EVENTS, &better), better);
        // The few sensor events of a drain weigh little: twice layer 3's cost over a sixteenth
        // of a look moves it by a sixteenth or less.
        let before = balance.cost[2];
        measure(&mut balance, &usual.map(|c| 2.0 * c), LOOK_EVENTS / 16, &better);
        assert!(balance.cost[2] < before * 1.07, "{} against {before}", balance.cost[2]);
    }

    #[test]
    fn cuts_balance_the_slowest_stage() {
        assert_eq!(best_cuts(&[1.0, 1.0, 1.0, 1.0], 2), vec![2]);
        assert_eq!(best_cuts(&[5.0, 1.0, 1.0, 1.0, 1.0, 1.0], 2), vec![1]);
        assert_eq!(best_cuts(&[1.0, 2.0, 6.0, 3.0, 1.0], 3), vec![2, 3]);
        assert_eq!(best_cuts(&[1.0, 2.0], 5), vec![1]);
        assert!(best_cuts(&[3.0], 2).is_empty());
    }
}
