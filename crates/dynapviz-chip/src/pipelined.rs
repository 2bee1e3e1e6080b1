//! Event mode on two threads. The layers are cut in two runs, A = `..at` and B = `at..`: the
//! calling thread admits sensor events and runs A, a second thread runs B on the spikes A sends
//! across, event by event, while A goes on with the next events. Within one sensor event the
//! one-thread simulator also finishes A's layers before B's (a layer only sends to later
//! layers), and each layer sees its input in the same order, so the state, the spikes and the
//! counters are identical. Outputs carry their sensor event's index and are merged in that
//! order, A's before B's.

use std::sync::mpsc;

use dynapviz_events::Event;

use crate::cascade::Cascade;
use crate::dvs::Front;
use crate::layer::Site;
use crate::power::Work;
use crate::sim::{LayerCounters, Spike};

/// Sensor events per message from A to B: enough to make the channel's cost negligible, few
/// enough to keep both threads busy.
const BATCH_EVENTS: usize = 256;

/// A spike crossing from A to B: sensor event index, destination layer (0-based), time (ns),
/// address.
type Crossing = (u32, usize, i64, Site);

/// Buffers kept between calls, so the pipeline allocates only per batch, never per event.
#[derive(Default)]
pub(crate) struct Buffers {
    out_a: Vec<(u32, Spike)>,
    out_b: Vec<(u32, Spike)>,
    /// Per admitted sensor event: index, time (µs) and the work of A.
    work_a: Vec<(u32, i64, Work)>,
    /// Per sensor event that reached B: index and the work of B.
    work_b: Vec<(u32, Work)>,
}

/// Everything the two threads need, borrowed apart.
pub(crate) struct Stages<'a> {
    pub front: &'a mut Front,
    pub dvs_counters: &'a mut LayerCounters,
    pub monitor_dvs: bool,
    pub a: Cascade<'a>,
    pub b: Cascade<'a>,
}

/// Runs `events` through both stages; appends monitored spikes to `out` and calls
/// `work(t_us, work)` once per admitted sensor event, in order.
pub(crate) fn run(stages: Stages<'_>, events: &[Event], buffers: &mut Buffers, out: &mut Vec<Spike>, mut work: impl FnMut(i64, Work)) {
    let Stages { front, dvs_counters, monitor_dvs, mut a, mut b } = stages;
    // Each thread's vectors live on its own stack while it runs: headers of vectors that both
    // threads push to in one cache line would make every push a cache miss for the other.
    let mut out_a = std::mem::take(&mut buffers.out_a);
    let mut work_a = std::mem::take(&mut buffers.work_a);
    let mut out_b = std::mem::take(&mut buffers.out_b);
    let mut work_b = std::mem::take(&mut buffers.work_b);
    out_a.clear();
    work_a.clear();
    out_b.clear();
    work_b.clear();
    let (out_b, work_b) = std::thread::scope(|scope| {
        // Unbounded, but a call's input is bounded; B spins a little before it sleeps: on a
        // virtual machine a sleeping CPU takes far longer to wake than a batch takes to run.
        let (tx, rx) = mpsc::channel::<Vec<Crossing>>();
        let stage_b = scope.spawn(move || {
            while let Some(batch) = receive(&rx) {
                for group in batch.chunk_by(|x, y| x.0 == y.0) {
                    let index = group[0].0;
                    for &(_, layer, t_ns, site) in group {
                        b.queues[layer - b.first].push((t_ns, site));
                    }
                    let mut done = Work::default();
                    b.run(&mut done, |s| out_b.push((index, s)), |_, _, _| unreachable!("B is the last run"));
                    work_b.push((index, done));
                }
            }
            (out_b, work_b)
        });
        let mut batch = Vec::new();
        for (chunk_index, chunk) in events.chunks(BATCH_EVENTS).enumerate() {
            for (i, e) in chunk.iter().enumerate() {
                let index = (chunk_index * BATCH_EVENTS + i) as u32;
                let Some((t, site)) = front.admit(e, false, dvs_counters) else { continue };
                if monitor_dvs {
                    out_a.push((index, Spike { t, layer: 0, c: site.c, y: site.y, x: site.x }));
                }
                let mut done = Work { sensor_events: 1, ..Work::default() };
                a.queues[0].push((t * 1000, site));
                a.run(&mut done, |s| out_a.push((index, s)), |layer, t_ns, site| batch.push((index, layer, t_ns, site)));
                work_a.push((index, t, done));
            }
            if !batch.is_empty() && tx.send(std::mem::take(&mut batch)).is_err() {
                break;
            }
        }
        drop(tx);
        stage_b.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    });
    merge(&out_a, &out_b, out);
    let mut b_work = work_b.iter().peekable();
    for &(index, t, mut done) in &work_a {
        while let Some(&(_, extra)) = b_work.next_if(|(i, _)| *i == index) {
            done.synops += extra.synops;
            done.spikes += extra.spikes;
            done.output_events += extra.output_events;
        }
        work(t, done);
    }
    *buffers = Buffers { out_a, out_b, work_a, work_b };
}

/// The next batch, spinning up to about 100 µs before blocking; `None` when A is done.
fn receive(rx: &mpsc::Receiver<Vec<Crossing>>) -> Option<Vec<Crossing>> {
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
