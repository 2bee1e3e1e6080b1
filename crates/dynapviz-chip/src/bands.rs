//! Event mode on several threads. The conv output rows of every layer are cut into as many
//! bands as threads; thread k runs band k of every layer, layer after layer, over a piece of
//! sensor events that thread 0 admits. After each layer the threads wait for each other, then
//! each merges every thread's spikes into its own input queues. The threads live for a whole
//! call: on a virtual machine, a new thread (or a sleeping one) takes longer to start than a
//! piece takes to run. The results are those of one thread:
//! - a neuron's state depends only on the order of its own input, and every thread sees each
//!   layer's whole input in the one-thread order;
//! - one thread gives an input event's spikes in raster order; band k's rows come before band
//!   k + 1's, so taking each input event's spikes band after band gives that order back. (An
//!   input event, not a sensor event: one sensor event can bring a layer several.)
//!
//! Unlike cutting the network into runs of layers, this splits the work of every layer, so it
//! balances however the work is spread over the layers, and it scales with the threads.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use dynapviz_events::Event;

use crate::batch::Batch;
use crate::cascade::{Cascade, Cause, Pending, Wiring};
use crate::dvs::Front;
use crate::layer::{Band, LayerRt, Site};
use crate::power::Work;
use crate::sim::{LayerCounters, Spike};

/// Sensor events per piece: small enough to keep the per-event buffers in cache; the threads
/// meet `layers + 2` times per piece.
pub(crate) const PIECE_EVENTS: usize = 8192;

/// The work of one spike in synaptic operations (pooling, routing, queueing), for balancing.
const SPIKE_COST: u64 = 200;

/// The simulator's parts a banded call uses.
pub(crate) struct Call<'a> {
    pub layers: &'a mut [LayerRt],
    pub threads: usize,
    pub front: &'a mut Front,
    pub dvs_counters: &'a mut LayerCounters,
    /// The layers' counters (layer 1 first).
    pub counters: &'a mut [LayerCounters],
    /// Without a busy model: whether a core drops an event depends on all events before it.
    pub wiring: &'a Wiring,
    /// The simulator's batch buffers, for thread 0's pieces.
    pub batch: &'a mut Batch,
}

/// Memory of the threads, kept between calls: once warm, a call allocates next to nothing.
#[derive(Default)]
pub(crate) struct Buffers {
    threads: Vec<ThreadBuffers>,
    /// `[thread][layer]`: the spikes a thread's band of a layer sent on, in the order it made
    /// them; written by that thread, read by all after the layer's barrier.
    outboxes: Vec<Vec<RwLock<Vec<Pending>>>>,
    /// Per thread: its work and monitored spikes of the piece, read by thread 0 at its end.
    results: Vec<RwLock<Results>>,
    /// The admitted sensor events of the piece, queued for the first layer.
    first_queue: RwLock<Vec<Pending>>,
    /// Thread 0's: all threads' monitored spikes of a piece, with their causes.
    tagged: Vec<(Cause, Spike)>,
    balance: Balance,
}

/// Where to cut each layer: estimated work per conv row, from the work the bands did.
#[derive(Default)]
struct Balance {
    /// Per layer, per conv row.
    row_cost: Vec<Vec<f64>>,
    /// Per layer, the rows where bands end (one fewer than threads).
    cuts: Vec<Vec<usize>>,
}

impl Balance {
    /// Even bands for layers of these row counts (kept if they already fit).
    fn fit(&mut self, rows: impl ExactSizeIterator<Item = usize>, threads: usize) {
        if self.row_cost.len() == rows.len() && self.cuts.first().is_none_or(|c| c.len() + 1 == threads) {
            return;
        }
        self.row_cost = rows.map(|r| vec![1.0; r]).collect();
        self.cuts = self.row_cost.iter().map(|c| even_cuts(c, threads)).collect();
    }

    /// Spreads the work each thread's band did (per thread, per layer) evenly over its rows and
    /// cuts again. Recent work weighs more; one per row is the floor that keeps idle rows apart.
    fn update(&mut self, work: &[&[LayerCounters]]) {
        for (li, (cost, cuts)) in self.row_cost.iter_mut().zip(&mut self.cuts).enumerate() {
            let ends: Vec<usize> = std::iter::once(0).chain(cuts.iter().copied()).chain([cost.len()]).collect();
            for (band, rows) in work.iter().zip(ends.windows(2)) {
                let Some(c) = band.get(li) else { continue };
                let per_row = (c.synaptic_ops + SPIKE_COST * c.spikes) as f64 / (rows[1] - rows[0]).max(1) as f64;
                for r in &mut cost[rows[0]..rows[1]] {
                    *r = 0.5 * *r + 0.5 * (per_row + 1.0);
                }
            }
            *cuts = even_cuts(cost, work.len());
        }
    }
}

/// Where to cut rows of the given work into `threads` bands of about equal work: a row goes to
/// the earlier band when its middle lies before the band's share.
fn even_cuts(row_cost: &[f64], threads: usize) -> Vec<usize> {
    let total: f64 = row_cost.iter().sum();
    let (mut cuts, mut before, mut r) = (Vec::with_capacity(threads.saturating_sub(1)), 0.0, 0);
    for k in 1..threads {
        let share = total * k as f64 / threads as f64;
        while r < row_cost.len() && before + row_cost[r] / 2.0 < share {
            before += row_cost[r];
            r += 1;
        }
        cuts.push(r);
    }
    cuts
}

/// One thread's own memory.
#[derive(Default)]
struct ThreadBuffers {
    /// Per layer, the input events that reach the thread's band.
    queues: Vec<Vec<Pending>>,
    /// Per layer, the input events that arrived so far in the piece (every thread's, not only
    /// the ones it queued): the arrival numbers all threads agree on.
    arrived: Vec<u32>,
    /// Per layer, over the call.
    counters: Vec<LayerCounters>,
    /// The spikes of one input event.
    fired: Vec<Site>,
}

/// A thread's output of one piece.
#[derive(Default)]
struct Results {
    /// Per sensor event of the piece.
    work: Vec<Work>,
    /// Monitored spikes with their cause.
    tagged: Vec<(Cause, Spike)>,
}

/// Runs `events` on `call.threads` threads (the caller's is one of them), in pieces, then moves
/// the bands to balance the work the threads did. Appends the monitored spikes to `out` in
/// one-thread order, calls `power(t_us, work)` once per admitted sensor event in order, and
/// adds the counters up.
pub(crate) fn run(call: Call<'_>, events: &[Event], buffers: &mut Buffers, out: &mut Vec<Spike>, power: impl FnMut(i64, Work)) {
    let Call { layers, threads, front, dvs_counters, counters, wiring, batch } = call;
    debug_assert!(wiring.busy.is_none(), "the busy model runs on one thread");
    let n = layers.len();
    buffers.balance.fit(layers.iter().map(|l| l.conv_out[0]), threads);
    let cuts = &buffers.balance.cuts;
    let mut bands: Vec<Vec<Band<'_>>> = (0..threads).map(|_| Vec::with_capacity(n)).collect();
    for (layer, cuts) in layers.iter_mut().zip(cuts) {
        for (k, band) in layer.bands(cuts).into_iter().enumerate() {
            bands[k].push(band);
        }
    }
    buffers.threads.resize_with(threads, ThreadBuffers::default);
    buffers.outboxes.resize_with(threads, Vec::new);
    for t in &mut buffers.outboxes {
        t.resize_with(n, RwLock::default);
    }
    buffers.results.resize_with(threads, RwLock::default);
    let Buffers { threads: own, outboxes, results, first_queue, tagged, balance: _ } = buffers;
    let shared =
        Shared { wiring, pieces: events.len().div_ceil(PIECE_EVENTS), barrier: SpinBarrier::new(threads), outboxes, results, first_queue };
    let host = Host { front, dvs_counters, events, out, power, batch, tagged };
    std::thread::scope(|scope| {
        let mut own = bands.into_iter().zip(own.iter_mut());
        let mine = own.next();
        let others: Vec<_> = own
            .enumerate()
            .map(|(k, (b, t))| {
                let shared = &shared;
                scope.spawn(move || worker(k + 1, b, t, shared, None::<Host<'_, fn(i64, Work)>>))
            })
            .collect();
        if let Some((b, t)) = mine {
            worker(0, b, t, &shared, Some(host));
        }
        for h in others {
            h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        }
    });
    buffers.balance.update(&buffers.threads.iter().map(|t| t.counters.as_slice()).collect::<Vec<_>>());
    for t in &buffers.threads {
        for (total, band) in counters.iter_mut().zip(&t.counters) {
            total.input_events += band.input_events;
            total.synaptic_ops += band.synaptic_ops;
            total.spikes += band.spikes;
            total.spikes_after_pool += band.spikes_after_pool;
        }
    }
}

/// What the threads share during a call.
struct Shared<'a> {
    wiring: &'a Wiring,
    pieces: usize,
    barrier: SpinBarrier,
    outboxes: &'a [Vec<RwLock<Vec<Pending>>>],
    results: &'a [RwLock<Results>],
    first_queue: &'a RwLock<Vec<Pending>>,
}

/// Thread 0's extra jobs: admitting sensor events and handing out the results.
struct Host<'a, P> {
    front: &'a mut Front,
    dvs_counters: &'a mut LayerCounters,
    events: &'a [Event],
    out: &'a mut Vec<Spike>,
    power: P,
    batch: &'a mut Batch,
    tagged: &'a mut Vec<(Cause, Spike)>,
}

impl<P: FnMut(i64, Work)> Host<'_, P> {
    /// Admits piece `p` into the first layer's queue.
    fn admit(&mut self, p: usize, monitor_dvs: bool, first_queue: &mut Vec<Pending>) {
        let piece = self.events.chunks(PIECE_EVENTS).nth(p).unwrap_or_default();
        first_queue.clear();
        self.batch.admit(piece, self.front, self.dvs_counters, monitor_dvs, first_queue);
    }

    /// Hands out a piece's results: monitored spikes in one-thread order, then the work of
    /// each sensor event.
    fn hand_out(&mut self, results: &[RwLock<Results>]) {
        self.tagged.clear();
        for r in results {
            let r = read(r);
            for (w, &extra) in self.batch.work.iter_mut().zip(&r.work) {
                *w += extra;
            }
            // Thread by thread, then stable by (sensor event, layer, input event): band order within.
            self.tagged.extend_from_slice(&r.tagged);
        }
        self.tagged.sort_by_key(|&((index, arrival), s)| (index, s.layer, arrival));
        // After each sensor event's DVS spike, admitted first.
        self.batch.tagged.extend(self.tagged.iter().map(|&((index, _), s)| (index, s)));
        self.batch.hand_out(self.out, &mut self.power);
    }
}

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

/// Thread `k`: its band of every layer, piece after piece, in layer order. It queues only the
/// input events that reach its band's rows; thread 0 counts every input event.
fn worker<P: FnMut(i64, Work)>(
    k: usize,
    mut bands: Vec<Band<'_>>,
    own: &mut ThreadBuffers,
    shared: &Shared<'_>,
    mut host: Option<Host<'_, P>>,
) {
    let _poison = PoisonOnPanic(&shared.barrier);
    let n = bands.len();
    let ThreadBuffers { queues, arrived, counters, fired } = own;
    queues.resize_with(n, Vec::new);
    counters.clear();
    counters.resize(n, LayerCounters::default());
    let monitor_dvs = shared.wiring.monitored[0];
    for p in 0..shared.pieces {
        if let Some(host) = &mut host {
            host.admit(p, monitor_dvs, &mut write(shared.first_queue));
        }
        shared.barrier.wait();
        let mut results = write(&shared.results[k]);
        let Results { work, tagged } = &mut *results;
        tagged.clear();
        work.clear();
        let first_queue = read(shared.first_queue);
        work.resize(first_queue.last().map_or(0, |q| q.index as usize + 1), Work::default());
        arrived.clear();
        arrived.resize(n, 0);
        if let (Some(q), Some(band)) = (queues.first_mut(), bands.first()) {
            q.extend(first_queue.iter().filter(|p| band.reaches(p.site)));
            arrived[0] = first_queue.len() as u32;
            if k == 0 {
                counters[0].input_events += u64::from(arrived[0]);
            }
        }
        drop(first_queue);
        for li in 0..n {
            {
                let mut outbox = write(&shared.outboxes[k][li]);
                outbox.clear();
                Cascade {
                    first: li,
                    layers: std::slice::from_mut(&mut bands[li]),
                    count_input: false,
                    counters: &mut counters[li..=li],
                    queues: &mut queues[li..=li],
                    busy_until_ns: &mut [],
                    wiring: shared.wiring,
                    fired,
                }
                .run(work, |cause, s| tagged.push((cause, s)), |p| outbox.push(p));
            }
            shared.barrier.wait();
            let guards: Vec<_> = shared.outboxes.iter().map(|t| read(&t[li])).collect();
            let lists: Vec<&[Pending]> = guards.iter().map(|g| g.as_slice()).collect();
            merge(&lists, |mut p| {
                for &d in &shared.wiring.destinations[li] {
                    p.arrival = arrived[d];
                    arrived[d] += 1;
                    if k == 0 {
                        counters[d].input_events += 1;
                    }
                    if bands[d].reaches(p.site) {
                        queues[d].push(p);
                    }
                }
            });
        }
        drop(results);
        // Every thread's results are in: thread 0 hands them out while the others wait for
        // the next piece.
        shared.barrier.wait();
        if let Some(host) = &mut host {
            host.hand_out(shared.results);
        }
    }
}

/// Hands the threads' spikes of one layer (each list marked with its causes' arrivals) to
/// `receive` in the order one thread would have sent them: by cause, and band after band
/// within one (each list is in cause order, so a merge that prefers the lower band on a tie).
fn merge(lists: &[&[Pending]], mut receive: impl FnMut(Pending)) {
    let key = |p: &Pending| (u64::from(p.index) << 32) | u64::from(p.arrival);
    if let [a, b] = lists {
        let (mut i, mut j) = (0, 0);
        while let (Some(x), Some(y)) = (a.get(i), b.get(j)) {
            if key(x) <= key(y) {
                receive(*x);
                i += 1;
            } else {
                receive(*y);
                j += 1;
            }
        }
        a[i..].iter().chain(&b[j..]).for_each(|&p| receive(p));
        return;
    }
    let mut at = vec![0; lists.len()];
    // The first list (the lowest band on a tie) with the earliest next cause.
    while let Some((_, j)) = (0..lists.len()).filter_map(|j| lists[j].get(at[j]).map(|p| (key(p), j))).min() {
        receive(lists[j][at[j]]);
        at[j] += 1;
    }
}

/// A barrier that spins before it yields: the threads meet after every layer, far more often
/// than a sleeping CPU of a virtual machine can wake up.
struct SpinBarrier {
    threads: usize,
    arrived: AtomicUsize,
    generation: AtomicUsize,
    /// A thread panicked: the others stop waiting for it.
    poisoned: AtomicBool,
}

impl SpinBarrier {
    fn new(threads: usize) -> Self {
        Self { threads, arrived: AtomicUsize::new(0), generation: AtomicUsize::new(0), poisoned: AtomicBool::new(false) }
    }

    /// Returns when every thread has called it. Panics if another thread panicked (its
    /// panic is the one the caller of [`run`] sees).
    fn wait(&self) {
        let generation = self.generation.load(Ordering::Acquire);
        if self.arrived.fetch_add(1, Ordering::AcqRel) + 1 == self.threads {
            self.arrived.store(0, Ordering::Relaxed);
            self.generation.fetch_add(1, Ordering::Release);
            return;
        }
        let mut spins = 0u32;
        while self.generation.load(Ordering::Acquire) == generation {
            assert!(!self.poisoned.load(Ordering::Relaxed), "another simulator thread panicked");
            // No `spin_loop` (PAUSE): a hypervisor takes a PAUSE loop for a vCPU waiting on a
            // lock and deschedules it, which made every barrier here take a millisecond.
            if spins < 2_000 {
                spins += 1;
            } else {
                std::thread::yield_now();
            }
        }
    }
}

/// Poisons the barrier if its thread unwinds, so that the others do not wait forever.
struct PoisonOnPanic<'a>(&'a SpinBarrier);

impl Drop for PoisonOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.poisoned.store(true, Ordering::Relaxed);
        }
    }
}
