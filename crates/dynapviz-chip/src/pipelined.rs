//! Event mode on two threads. The layers are cut in two runs, A = `..at` and B = `at..`: the
//! calling thread admits sensor events and runs A on batches of them, a second thread runs B on
//! the spikes A sends across while A goes on with the next batch. Each layer sees its input in
//! the same order as on one thread (see [`crate::cascade`]), so the state, the spikes and the
//! counters are identical. Outputs carry their sensor event's index and are merged in that
//! order, A's before B's (on one thread, too, a sensor event finishes A's layers first).

use std::sync::mpsc;

use dynapviz_events::Event;

use crate::cascade::{Cascade, Pending};
use crate::dvs::Front;
use crate::power::Work;
use crate::sim::{LayerCounters, Spike};

/// Sensor events per batch from A to B: enough to make the channel's cost negligible, few
/// enough to keep both threads busy.
const BATCH_EVENTS: usize = 512;

/// Buffers kept between calls, so the pipeline allocates only per batch, never per event.
#[derive(Default)]
pub(crate) struct Buffers {
    out_a: Vec<(u32, Spike)>,
    out_b: Vec<(u32, Spike)>,
    /// Per sensor event of the call: the work of A (`sensor_events` = 1 when admitted) and of B.
    work_a: Vec<Work>,
    work_b: Vec<Work>,
    /// Per sensor event of the call: its time, µs.
    times: Vec<i64>,
}

/// Everything the two threads need, borrowed apart.
pub(crate) struct Stages<'a> {
    pub front: &'a mut Front,
    pub dvs_counters: &'a mut LayerCounters,
    pub monitor_dvs: bool,
    pub a: Cascade<'a>,
    pub b: Cascade<'a>,
}

/// Runs `events` (at most `u32::MAX`) through both stages; appends monitored spikes to `out` and
/// calls `work(t_us, work)` once per admitted sensor event, in order.
pub(crate) fn run(stages: Stages<'_>, events: &[Event], buffers: &mut Buffers, out: &mut Vec<Spike>, mut work: impl FnMut(i64, Work)) {
    let Stages { front, dvs_counters, monitor_dvs, mut a, mut b } = stages;
    // Each thread's vectors live on its own stack while it runs: headers of vectors that both
    // threads push to in one cache line would make every push a cache miss for the other.
    let Buffers { mut out_a, mut out_b, mut work_a, mut work_b, mut times } = std::mem::take(buffers);
    for v in [&mut out_a, &mut out_b] {
        v.clear();
    }
    for w in [&mut work_a, &mut work_b] {
        w.clear();
        w.resize(events.len(), Work::default());
    }
    times.clear();
    times.resize(events.len(), 0);
    let (mut out_b, work_b) = std::thread::scope(|scope| {
        // Unbounded, but a call's input is bounded; B spins a little before it sleeps: on a
        // virtual machine a sleeping CPU takes far longer to wake than a batch takes to run.
        let (tx, rx) = mpsc::channel::<Vec<(usize, Pending)>>();
        let stage_b = scope.spawn(move || {
            while let Some(batch) = receive(&rx) {
                for &(layer, pending) in &batch {
                    b.queues[layer - b.first].push(pending);
                }
                b.run(&mut work_b, |i, s| out_b.push((i, s)), |_, _| unreachable!("B is the last run"));
            }
            (out_b, work_b)
        });
        for (chunk_index, chunk) in events.chunks(BATCH_EVENTS).enumerate() {
            for (i, e) in chunk.iter().enumerate() {
                let i = chunk_index * BATCH_EVENTS + i;
                let Some(t) = front.admit_to(e, i as u32, dvs_counters, monitor_dvs, &mut a.queues[0], &mut out_a) else { continue };
                (work_a[i].sensor_events, times[i]) = (1, t);
            }
            let mut batch = Vec::new();
            a.run(&mut work_a, |i, s| out_a.push((i, s)), |layer, pending| batch.push((layer, pending)));
            if !batch.is_empty() && tx.send(batch).is_err() {
                break;
            }
        }
        drop(tx);
        stage_b.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    });
    // Stable: within a sensor event, layer order stays.
    out_a.sort_by_key(|x| x.0);
    out_b.sort_by_key(|x| x.0);
    merge(&out_a, &out_b, out);
    for ((&done, &extra), &t) in work_a.iter().zip(&work_b).zip(&times) {
        if done.sensor_events > 0 {
            let mut both = done;
            both += extra;
            work(t, both);
        }
    }
    *buffers = Buffers { out_a, out_b, work_a, work_b, times };
}

/// The next batch, spinning up to about 100 µs before blocking; `None` when A is done.
fn receive<T>(rx: &mpsc::Receiver<T>) -> Option<T> {
    for _ in 0..SPIN {
        match rx.try_recv() {
            Ok(batch) => return Some(batch),
            Err(mpsc::TryRecvError::Disconnected) => return None,
            Err(mpsc::TryRecvError::Empty) => std::hint::spin_loop(),
        }
    }
    rx.recv().ok()
}

/// Polls before [`receive`] blocks.
const SPIN: usize = 20_000;

/// Both runs' spikes in sensor-event order, A's before B's within an event.
fn merge(a: &[(u32, Spike)], b: &[(u32, Spike)], out: &mut Vec<Spike>) {
    out.reserve(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i].0 <= b[j].0 {
            out.push(a[i].1);
            i += 1;
        } else {
            out.push(b[j].1);
            j += 1;
        }
    }
    out.extend(a[i..].iter().map(|x| x.1));
    out.extend(b[j..].iter().map(|x| x.1));
}
