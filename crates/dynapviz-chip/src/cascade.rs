//! Event mode: the input queued for a run of consecutive layers, pushed through them layer by
//! layer for a whole batch of sensor events at once, so each layer's neurons and weights stay
//! in cache while it works. The result is the same as running each sensor event through all
//! layers before the next: a layer's state depends only on the order of its own input, and
//! that order is kept (the queued events come in runs that carry the index of their sensor
//! event, and a queue fed by several layers is put back in sensor-event order before it runs).

use std::marker::PhantomData;

use crate::decimator::Decimator;
#[cfg(x86_kernels)]
use crate::lanes::{Avx2, Avx512};
use crate::lanes::{Kernel, Lanes, Portable};
use crate::layer::{LayerRt, Site};
use crate::peak::Peak;
use crate::power::{Counts, PeriodWork};
use crate::sim::{BusyModel, LayerCounters, Spike};
use crate::window::{AnyWindow, Window};

/// Events waiting at a layer's input, in runs: the spikes one layer made for one sensor event
/// all arrive at the same time, so a run's sensor event and time are kept once, and the layer
/// accounts for its work once per run, not per event. The runs' sites follow one another in
/// `sites`, so a run need not say where they start: 16 bytes a run, not 32 (on `synth01`,
/// cachegrind counts 15 % fewer misses of a 512 KB last-level cache).
#[repr(align(128))] // Threads write their own queues on every event: no shared cache lines.
#[derive(Clone, Debug, Default)]
pub(crate) struct Queue {
    runs: Vec<Run>,
    sites: Vec<Site>,
    /// Room to put the runs in order (see [`Self::sort`]), kept so that sorting allocates
    /// nothing once warm.
    reorder: Reorder,
}

/// Events of one sensor event that arrive at a layer at one time.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Run {
    /// Index of its sensor event in the batch.
    pub index: u32,
    /// Its sites, the next ones in the queue's `sites`.
    len: u32,
    /// Arrival time, ns.
    pub t_ns: i64,
}

impl Run {
    /// The run of `sites` for sensor event `index`, arriving at `t_ns`, to send on (see
    /// [`Wiring::send`], which queues it as runs of at most `u32::MAX` sites).
    pub fn of(index: u32, t_ns: i64, sites: &[Site]) -> Self {
        Self { index, len: u32::try_from(sites.len()).unwrap_or(u32::MAX), t_ns }
    }
}

/// The scratch memory of [`Queue::sort`].
#[derive(Clone, Debug, Default)]
struct Reorder {
    /// Per run: sensor event, position, first site.
    keys: Vec<(u32, usize, usize)>,
    runs: Vec<Run>,
    sites: Vec<Site>,
}

impl Queue {
    /// Queues `sites` as one run (as several, past `u32::MAX` sites); nothing for none.
    #[inline]
    pub fn push(&mut self, index: u32, t_ns: i64, sites: &[Site]) {
        self.sites.extend_from_slice(sites);
        self.runs_of(index, t_ns, sites.len());
    }

    /// Queues `sites` pooled further by `repool` as one run (see [`Self::push`]).
    pub fn push_repooled(&mut self, index: u32, t_ns: i64, sites: &[Site], repool: Repool) {
        let start = self.sites.len();
        self.sites.extend(sites.iter().filter_map(|&s| repool.site(s)));
        self.runs_of(index, t_ns, self.sites.len() - start);
    }

    /// Queues `sites` for a destination: as they are, or pooled further by `repool`.
    #[inline]
    pub fn push_to(&mut self, index: u32, t_ns: i64, sites: &[Site], repool: Option<Repool>) {
        match repool {
            None => self.push(index, t_ns, sites),
            Some(r) => self.push_repooled(index, t_ns, sites, r),
        }
    }

    /// Queues one site as a run of its own, as the admission does for every sensor event: no
    /// slice to copy and no length to check.
    #[inline(always)]
    pub fn push_site(&mut self, index: u32, t_ns: i64, site: Site) {
        self.sites.push(site);
        self.runs.push(Run { index, len: 1, t_ns });
    }

    /// The queued sites, for a layer to append one run's spikes to in place; then
    /// [`Self::close_run`].
    pub fn sites_mut(&mut self) -> &mut Vec<Site> {
        &mut self.sites
    }

    pub fn sites(&self) -> &[Site] {
        &self.sites
    }

    /// Makes the sites appended from `start` on one run (at least one is); returns them.
    #[inline]
    pub fn close_run(&mut self, index: u32, t_ns: i64, start: usize) -> &[Site] {
        debug_assert!(start < self.sites.len(), "a run has sites");
        self.runs_of(index, t_ns, self.sites.len() - start);
        &self.sites[start..]
    }

    /// Notes the last `len` sites as runs of sensor event `index`: one, unless it has more sites
    /// than a run can count (which splits it without changing anything it does).
    #[inline]
    fn runs_of(&mut self, index: u32, t_ns: i64, len: usize) {
        match u32::try_from(len) {
            Ok(0) => {}
            Ok(len) => self.runs.push(Run { index, len, t_ns }),
            Err(_) => self.split_runs_of(index, t_ns, len),
        }
    }

    #[cold]
    fn split_runs_of(&mut self, index: u32, t_ns: i64, mut len: usize) {
        while len > 0 {
            let part = len.min(u32::MAX as usize);
            self.runs.push(Run { index, len: part as u32, t_ns });
            len -= part;
        }
    }

    /// The runs queued.
    pub fn len(&self) -> usize {
        self.runs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// Empties the queue, keeping its memory.
    pub fn clear(&mut self) {
        self.runs.clear();
        self.sites.clear();
    }

    /// The runs with their sites, in queue order.
    pub fn iter(&self) -> impl Iterator<Item = (Run, &[Site])> {
        let mut next = 0;
        self.runs.iter().map(move |&r| {
            let sites = &self.sites[next..][..r.len as usize];
            next += r.len as usize;
            (r, sites)
        })
    }

    /// Puts the runs in sensor-event order, stable: within one sensor event the earlier source
    /// stays first, as one event at a time would give. For a queue fed by several layers. The
    /// sites move with their runs.
    fn sort(&mut self) {
        if self.runs.is_sorted_by_key(|r| r.index) {
            return;
        }
        let Reorder { keys, runs, sites } = &mut self.reorder;
        keys.clear();
        let mut first = 0;
        for (position, r) in self.runs.iter().enumerate() {
            keys.push((r.index, position, first));
            first += r.len as usize;
        }
        // Positions are unique, so this order is the stable one, and needs no scratch memory.
        keys.sort_unstable();
        runs.clear();
        sites.clear();
        for &(_, position, first) in keys.iter() {
            let r = self.runs[position];
            runs.push(r);
            sites.extend_from_slice(&self.sites[first..][..r.len as usize]);
        }
        std::mem::swap(&mut self.runs, runs);
        std::mem::swap(&mut self.sites, sites);
    }
}

/// What a queue holds without growing: see [`Queue::make_room`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Room {
    runs: usize,
    sites: usize,
}

impl Room {
    /// Room for what either holds.
    pub fn max(self, other: Room) -> Room {
        Room { runs: self.runs.max(other.runs), sites: self.sites.max(other.sites) }
    }
}

/// Grows `v` to hold `n` items without allocating (no more: a queue's room is its high-water
/// mark, not twice it). An empty `v` gets a fresh allocation: `realloc` would copy the whole
/// old one, touching every page of the new (levelling the pipeline's buffers that way took
/// 1-2.4 ms between segments on the gesture network).
pub(crate) fn hold<T>(v: &mut Vec<T>, n: usize) {
    if v.is_empty() && v.capacity() < n {
        *v = Vec::with_capacity(n);
    } else {
        v.reserve_exact(n.saturating_sub(v.len()));
    }
}

impl Queue {
    /// What this queue holds without allocating, its sorting room included.
    pub fn room(&self) -> Room {
        let Reorder { keys, runs, sites } = &self.reorder;
        Room { runs: self.runs.capacity().max(runs.capacity()).max(keys.capacity()), sites: self.sites.capacity().max(sites.capacity()) }
    }

    /// Grows to hold `room` without allocating. The pipeline swaps a queue's memory between
    /// roles (a flight becomes a layer's queue, the first layer's queue a piece's), and new
    /// cuts of the layers give a buffer a new role: with the room of the largest, none grows
    /// in its new role.
    pub fn make_room(&mut self, room: Room) {
        hold(&mut self.runs, room.runs);
        hold(&mut self.sites, room.sites);
        // Scratch, emptied before each use: emptied here, it grows without a copy.
        let Reorder { keys, runs, sites } = &mut self.reorder;
        keys.clear();
        runs.clear();
        sites.clear();
        hold(keys, room.runs);
        hold(runs, room.runs);
        hold(sites, room.sites);
    }
}

/// Spikes on their way to a later stage of the pipeline: per run, the layer that sent it.
#[derive(Default)]
pub(crate) struct Flight {
    pub sources: Vec<usize>,
    pub spikes: Queue,
    /// The runs of the leak's ticks before the piece's sensor events, per tick that has any,
    /// in tick order; the runs after the last are the sensor events'.
    pub ticks: Vec<TickRuns>,
}

/// Where the runs of one tick of the leak end in a [`Flight`]: first those the layers' ticks
/// made, then those of the run through the layers after it. A later stage queues each part at
/// its place in the tick (see `Stage::run`), so that a layer there gets its input in the
/// one-thread order.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TickRuns {
    /// The tick, counted from the piece's first.
    pub k: u64,
    /// Runs of the flight up to the end of the ticks' spikes.
    pub ticked: usize,
    /// Runs of the flight up to the end of the tick.
    pub end: usize,
}

impl Flight {
    /// Queues `sites` as runs of layer `source` (none for no sites).
    pub fn push(&mut self, source: usize, index: u32, t_ns: i64, sites: &[Site]) {
        self.spikes.push(index, t_ns, sites);
        // One source per run: a push makes none for no sites, and several past `u32::MAX`.
        self.sources.resize(self.spikes.len(), source);
    }

    /// [`Queue::close_run`] of the spikes, made by layer `source`.
    fn close_run(&mut self, source: usize, index: u32, t_ns: i64, start: usize) -> &[Site] {
        self.spikes.close_run(index, t_ns, start);
        self.sources.resize(self.spikes.len(), source);
        &self.spikes.sites()[start..]
    }

    pub fn clear(&mut self) {
        self.sources.clear();
        self.spikes.clear();
        self.ticks.clear();
    }

    /// [`Queue::room`] of the spikes and their sources.
    pub fn room(&self) -> Room {
        let room = self.spikes.room();
        Room { runs: room.runs.max(self.sources.capacity()), ..room }
    }

    /// [`Queue::make_room`] for the spikes and their sources.
    pub fn make_room(&mut self, room: Room) {
        self.spikes.make_room(room);
        hold(&mut self.sources, room.runs);
    }
}

/// A value on cache lines of its own: see [`Queue`].
#[repr(align(128))]
#[derive(Clone, Debug, Default)]
pub(crate) struct Padded<T>(pub T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> std::ops::DerefMut for Padded<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

/// Consecutive layers `first..first + layers.len()` (0-based) and their state: all layers on
/// one thread, or one stage of the pipeline.
pub(crate) struct Cascade<'a> {
    /// Index of `layers[0]` in the network.
    pub first: usize,
    pub layers: &'a mut [LayerRt],
    /// Counters of these layers (`counters[i]` is layer `first + i`).
    pub counters: &'a mut [LayerCounters],
    /// Input waiting per layer.
    pub queues: &'a mut [Queue],
    /// When each core's backlog clears (busy model), ns (`busy_until_ns[i]` is layer `first + i`).
    pub busy_until_ns: &'a mut [f64],
    pub wiring: &'a Wiring,
    /// Room for the spikes of one input event: kept by the owner, so that no event allocates.
    pub fired: &'a mut Vec<Site>,
    /// Where spikes for layers after these go (a pipeline stage's; `None` when these are all
    /// the layers).
    pub flight: Option<&'a mut Flight>,
    /// Where to add the nanoseconds each layer takes (`spent_ns[i]` is layer `first + i`), for
    /// balancing threads; `None` saves reading the clock.
    pub spent_ns: Option<&'a mut [u64]>,
}

/// The chip's pooling per destination, where a destination's is coarser than the layer's own:
/// its spikes' sites (pooled by the layer) are divided once more, and those past the
/// destination's map dropped (as pooling the neurons by the product cuts them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Repool {
    by: [u16; 2],
    size: [u16; 2],
}

impl Repool {
    /// For a layer that pools by `pool` and sends to a destination pooled by `to` (a multiple
    /// of it) the `size` (H, W) of that destination's map; `None` when `to` is `pool`.
    pub fn new(pool: [usize; 2], to: [usize; 2], size: [usize; 2]) -> Option<Self> {
        let by = [0, 1].map(|d| to[d] / pool[d].max(1));
        (by != [1, 1]).then(|| Self {
            by: by.map(|b| b.clamp(1, usize::from(u16::MAX)) as u16),
            size: size.map(|s| s.min(usize::from(u16::MAX)) as u16),
        })
    }

    /// Where the spike at `s` lands at the destination, if inside its map.
    #[inline]
    pub fn site(self, s: Site) -> Option<Site> {
        let (y, x) = (s.y / self.by[0], s.x / self.by[1]);
        (y < self.size[0] && x < self.size[1]).then_some(Site { c: s.c, y, x })
    }
}

/// What every run of layers shares, fixed when the simulator is made.
#[derive(Clone, Debug)]
pub(crate) struct Wiring {
    /// Destinations of every layer of the network (0-based), then (at the index one past the
    /// last layer) the DVS layer's besides the first layer, which the admission feeds.
    pub destinations: Vec<Vec<usize>>,
    /// For each destination (as `destinations`), how its spikes are pooled further, if they are.
    pub repools: Vec<Vec<Option<Repool>>>,
    /// Per layer: fed by several layers, so its queue may need putting back in order.
    pub merged: Vec<bool>,
    /// Monitored, by layer number (0 = DVS): the configured monitors as a table, for the hot path.
    pub monitored: Vec<bool>,
    /// Latency of one layer, ns.
    pub latency_ns: i64,
    /// Per layer, the busy model of its core, if it drops input when busy.
    pub busy: Vec<Option<BusyModel>>,
    /// The kernel that runs: one the CPU has.
    pub kernel: Kernel,
}

impl Wiring {
    /// Queues run `run` of `source`'s spikes (`sites`) for its destinations among layers
    /// `first..first + queues.len()` (`queues[i]` is layer `first + i`), each pooled further as
    /// it needs, and once in `flight` for those beyond them. Destinations before `first` took
    /// the run in an earlier stage.
    pub fn send(&self, source: usize, run: Run, sites: &[Site], first: usize, queues: &mut [Queue], mut flight: Option<&mut Flight>) {
        let mut passed_on = false;
        for (&d, &repool) in self.destinations[source].iter().zip(&self.repools[source]) {
            match d.checked_sub(first).and_then(|i| queues.get_mut(i)) {
                Some(queue) => queue.push_to(run.index, run.t_ns, sites, repool),
                None if d >= first && !passed_on => {
                    if let Some(flight) = flight.as_deref_mut() {
                        flight.push(source, run.index, run.t_ns, sites);
                    }
                    passed_on = true;
                }
                None => {}
            }
        }
    }

    /// Queues the sensor events waiting for the first layer (`queues[0]`, of layers
    /// `0..queues.len()`) for the DVS layer's other destination too (see [`Self::send`]).
    /// Called before any layer runs, so that within a sensor event the DVS layer's events
    /// reach a layer before other layers' spikes, as on the chip, where they come first.
    pub fn send_dvs_on(&self, queues: &mut [Queue], mut flight: Option<&mut Flight>) {
        let dvs = self.destinations.len() - 1;
        let Some((first, rest)) = queues.split_first_mut().filter(|_| !self.destinations[dvs].is_empty()) else { return };
        for (run, sites) in first.iter() {
            self.send(dvs, run, sites, 1, rest, flight.as_deref_mut());
        }
    }
}

impl Cascade<'_> {
    /// Runs everything queued for these layers, layer by layer (a layer's spikes only go to
    /// later layers, so one pass empties every queue). Monitored spikes go to `out`, tagged
    /// with their sensor event, in layer order (a vector, not a closure: every kind of layer
    /// would compile its loop once per type of closure, see [`RouteWith`]). A spike for layers
    /// after these goes once to the flight, with the layer that made it: the caller sends it
    /// to every destination. Adds the work done for each sensor event to its period in `work`.
    pub fn run(&mut self, work: &mut PeriodWork, out: &mut Vec<(u32, Spike)>) {
        match self.wiring.kernel {
            // SAFETY: the CPU has AVX-512 (and AVX2), as `Kernel::on_this_cpu` checked.
            #[cfg(x86_kernels)]
            Kernel::Avx512 => unsafe { self.run_with::<Avx512>(work, out) },
            // SAFETY: the CPU has AVX2, as `Kernel::on_this_cpu` checked.
            #[cfg(x86_kernels)]
            Kernel::Avx2 => unsafe { self.run_with::<Avx2>(work, out) },
            // SAFETY: plain Rust.
            _ => unsafe { self.run_with::<Portable>(work, out) },
        }
    }

    /// # Safety
    /// The CPU has the instructions of `K`.
    unsafe fn run_with<K: RouteWith>(&mut self, work: &mut PeriodWork, out: &mut Vec<(u32, Spike)>) {
        for i in 0..self.layers.len() {
            if self.queues[i].is_empty() {
                continue;
            }
            let li = self.first + i;
            // Input ends the quiet of a leak (see `Cascade::tick`).
            self.layers[i].quiet = false;
            let started = self.spent_ns.is_some().then(std::time::Instant::now);
            let mut queue = std::mem::take(&mut self.queues[i]);
            if self.wiring.merged[li] {
                queue.sort();
            }
            let mut route = Route {
                first: self.first,
                end: self.first + self.layers.len(),
                layer: li,
                queues: &mut *self.queues,
                fired: &mut *self.fired,
                flight: self.flight.as_deref_mut(),
                wiring: self.wiring,
                monitored: self.wiring.monitored[li + 1],
                busy_until_ns: self.busy_until_ns[i],
                decimator: self.layers[i].decimator,
                peak: self.layers[i].peak,
            };
            let layer = &mut self.layers[i];
            // One loop per kind of layer, so that the kind is not decided per event.
            // SAFETY (all calls): the caller's promise.
            let c = unsafe {
                match layer.window(&self.counters[i]) {
                    Some(AnyWindow::N1(w)) if w.deferred() => K::route(&mut route, &queue, work, out, Deferring::<K, 1>(w, PhantomData)),
                    Some(AnyWindow::N1(w)) => K::route(&mut route, &queue, work, out, Windowed::<K, 1>(w, PhantomData)),
                    Some(AnyWindow::N2(w)) if w.deferred() => K::route(&mut route, &queue, work, out, Deferring::<K, 2>(w, PhantomData)),
                    Some(AnyWindow::N2(w)) => K::route(&mut route, &queue, work, out, Windowed::<K, 2>(w, PhantomData)),
                    Some(AnyWindow::N4(w)) if w.deferred() => K::route(&mut route, &queue, work, out, Deferring::<K, 4>(w, PhantomData)),
                    Some(AnyWindow::N4(w)) => K::route(&mut route, &queue, work, out, Windowed::<K, 4>(w, PhantomData)),
                    Some(AnyWindow::N8(w)) if w.deferred() => K::route(&mut route, &queue, work, out, Deferring::<K, 8>(w, PhantomData)),
                    Some(AnyWindow::N8(w)) => K::route(&mut route, &queue, work, out, Windowed::<K, 8>(w, PhantomData)),
                    Some(AnyWindow::N16(w)) if w.deferred() => K::route(&mut route, &queue, work, out, Deferring::<K, 16>(w, PhantomData)),
                    Some(AnyWindow::N16(w)) => K::route(&mut route, &queue, work, out, Windowed::<K, 16>(w, PhantomData)),
                    None => K::route(&mut route, &queue, work, out, General::<K>(layer, PhantomData)),
                }
            };
            self.busy_until_ns[i] = route.busy_until_ns;
            self.layers[i].decimator = route.decimator;
            self.layers[i].peak = route.peak;
            let peak = route.peak.most();
            // Keep the allocation: no allocation per event on the hot path.
            queue.clear();
            debug_assert!(self.queues[i].is_empty(), "layers only send to later layers");
            self.queues[i] = queue;
            self.counters[i] += c;
            self.counters[i].peak_synops_per_ms = peak;
            if let (Some(spent), Some(started)) = (&mut self.spent_ns, started) {
                spent[i] += started.elapsed().as_nanos() as u64;
            }
        }
    }

    /// One tick of the chip's leak at `at_us` on these layers (see [`crate::leak`]): each
    /// biased layer that is not quiet adds its bias to every neuron, in layer order, and sends
    /// the spikes on as the spikes of sensor event `index` (to the queues of these layers, the
    /// flight for later ones); the monitored ones go to `out`, tagged `tag`. Run the queues
    /// after it ([`Self::run`]). A layer is quiet when its last tick changed no potential and
    /// fired no neuron and no input came since: its next ticks would do the same, so they are
    /// skipped. Returns whether every biased layer here is quiet.
    pub fn tick(&mut self, at_us: i64, index: u32, out: &mut Vec<(u32, Spike)>, tag: u32) -> bool {
        let mut quiet = true;
        for (i, layer) in self.layers.iter_mut().enumerate() {
            if !layer.has_bias() || layer.quiet {
                continue;
            }
            let li = self.first + i;
            let started = self.spent_ns.is_some().then(std::time::Instant::now);
            let sites = &mut *self.fired;
            sites.clear();
            let (n, changed) = layer.leak_tick(self.wiring.kernel, |s| sites.extend(s));
            if let (Some(spent), Some(started)) = (&mut self.spent_ns, started) {
                spent[i] += started.elapsed().as_nanos() as u64;
            }
            layer.quiet = n == 0 && !changed;
            quiet &= layer.quiet;
            let c = &mut self.counters[i];
            if let Some(d) = &mut layer.decimator {
                c.decimated += d.thin(sites, 0);
            }
            c.spikes += n;
            c.spikes_after_pool += sites.len() as u64;
            if self.wiring.monitored[li + 1] {
                out.extend(sites.iter().map(|s| (tag, Spike { t: at_us, layer: (li + 1) as u16, c: s.c, y: s.y, x: s.x })));
            }
            let run = Run::of(index, at_us.saturating_mul(1000), sites);
            self.wiring.send(li, run, sites, self.first, self.queues, self.flight.as_deref_mut());
        }
        quiet
    }

    /// Queues `sites`, spikes of layer `source` that came from an earlier stage as `run`, for
    /// their destinations here and beyond (see [`Wiring::send`]).
    pub fn take(&mut self, source: usize, run: Run, sites: &[Site]) {
        self.wiring.send(source, run, sites, self.first, self.queues, self.flight.as_deref_mut());
    }
}

/// [`Route::run`] built for kernel `K`: a function per kind of layer, compiled with the
/// kernel's instructions so that its vector code inlines into the loop. Inlined into one loop
/// over all layers instead, the kinds made a few functions so large that optimizing them took
/// most of the crate's build (ten minutes in release on two cores); a call per layer and batch
/// costs nothing.
trait RouteWith: Lanes {
    /// # Safety
    /// The CPU has the instructions of the kernel.
    unsafe fn route(
        route: &mut Route<'_>,
        queue: &Queue,
        work: &mut PeriodWork,
        out: &mut Vec<(u32, Spike)>,
        respond: impl Respond,
    ) -> LayerCounters;
}

/// Implements [`RouteWith`] for a kernel, compiled with the target features given.
macro_rules! route_with {
    ($kernel:ty $(, $features:literal)?) => {
        impl RouteWith for $kernel {
            #[inline(never)]
            $(#[target_feature(enable = $features)])?
            unsafe fn route(
                route: &mut Route<'_>,
                queue: &Queue,
                work: &mut PeriodWork,
                out: &mut Vec<(u32, Spike)>,
                respond: impl Respond,
            ) -> LayerCounters {
                // SAFETY: the caller's promise: the CPU has the kernel's instructions.
                unsafe { route.run(queue, work, out, respond) }
            }
        }
    };
}

route_with!(Portable);
#[cfg(x86_kernels)]
route_with!(Avx2, "avx2,popcnt,bmi1");
#[cfg(x86_kernels)]
route_with!(Avx512, "avx512f,avx512bw,avx512vl,avx2,popcnt,bmi1");

/// How a layer responds to one input event at `(c, y, x)`: see [`LayerRt::event_with`].
trait Respond {
    /// # Safety
    /// The CPU has the instructions the implementation uses.
    unsafe fn respond(&mut self, c: usize, y: usize, x: usize, fired: &mut Vec<Site>) -> (u64, u64);

    /// [`Self::respond`] to each of `sites` in turn; returns the sums. One tight loop: the
    /// synaptic operations and spikes stay in registers.
    ///
    /// # Safety
    /// As [`Self::respond`].
    #[inline(always)]
    unsafe fn respond_all(&mut self, sites: &[Site], fired: &mut Vec<Site>) -> (u64, u64) {
        let (mut ops, mut spikes) = (0, 0);
        for s in sites {
            // SAFETY: the caller's promise.
            let (o, n) = unsafe { self.respond(usize::from(s.c), usize::from(s.y), usize::from(s.x), fired) };
            (ops, spikes) = (ops + o, spikes + n);
        }
        (ops, spikes)
    }
}

/// Any layer, tap by tap.
struct General<'a, K>(&'a mut LayerRt, PhantomData<K>);

impl<K: Lanes> Respond for General<'_, K> {
    #[inline(always)]
    unsafe fn respond(&mut self, c: usize, y: usize, x: usize, fired: &mut Vec<Site>) -> (u64, u64) {
        // SAFETY: the caller's promise.
        unsafe { self.0.event_with::<K>(c, y, x, fired) }
    }
}

/// A layer of the common shape, by windows of `N` 16-channel chunks.
struct Windowed<'a, K, const N: usize>(Window<'a, N>, PhantomData<K>);

impl<K: Lanes, const N: usize> Respond for Windowed<'_, K, N> {
    #[inline(always)]
    unsafe fn respond(&mut self, c: usize, y: usize, x: usize, fired: &mut Vec<Site>) -> (u64, u64) {
        // SAFETY: the caller's promise.
        unsafe { self.0.event::<K>(c, y, x, fired) }
    }
}

/// A layer of the common shape whose runs write their sites after their last event (see
/// [`Window::events`]): a loop of its own, so that the others' are compiled as without it.
struct Deferring<'a, K, const N: usize>(Window<'a, N>, PhantomData<K>);

impl<K: Lanes, const N: usize> Respond for Deferring<'_, K, N> {
    #[inline(always)]
    unsafe fn respond(&mut self, c: usize, y: usize, x: usize, fired: &mut Vec<Site>) -> (u64, u64) {
        // SAFETY: the caller's promise.
        unsafe { self.0.event::<K>(c, y, x, fired) }
    }

    #[inline(always)]
    unsafe fn respond_all(&mut self, sites: &[Site], fired: &mut Vec<Site>) -> (u64, u64) {
        let (mut ops, mut spikes) = (0, 0);
        // A long run in parts, so that the words kept stay few.
        for part in sites.chunks(self.0.events_at_once()) {
            // SAFETY: the caller's promise.
            let (o, n) = unsafe { K::deferred(&mut self.0, part, fired) };
            (ops, spikes) = (ops + o, spikes + n);
        }
        (ops, spikes)
    }
}

/// Where a layer writes its spikes as it makes them (see [`Route::run`]).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Direct {
    /// The queue of a layer of the cascade (its index there).
    Queue(usize),
    /// The flight to later stages.
    Flight,
    /// The scratch room: the layer has no destination (the output layer). A cascade without
    /// a flight holds every layer, so no destination lies beyond it.
    Scratch,
}

/// What one layer's run needs besides the layer: where its spikes go.
struct Route<'a> {
    /// The first layer of the cascade and the one past its last (0-based).
    first: usize,
    end: usize,
    /// The layer that runs (0-based).
    layer: usize,
    queues: &'a mut [Queue],
    fired: &'a mut Vec<Site>,
    flight: Option<&'a mut Flight>,
    wiring: &'a Wiring,
    monitored: bool,
    /// The layer's backlog (busy model), kept here while it runs: the backlogs of other
    /// threads' layers may share its cache line.
    busy_until_ns: f64,
    /// The layer's output decimator and busiest millisecond, kept here while it runs (the
    /// layer is borrowed by the loop that runs it).
    decimator: Option<Decimator>,
    peak: Peak,
}

impl Route<'_> {
    /// Runs `queue` through the layer and sends its spikes on (see [`Cascade::run`]); returns
    /// the layer's counters, summed here on the stack.
    ///
    /// # Safety
    /// The CPU has the instructions `respond` uses.
    #[inline(always)]
    unsafe fn run(
        &mut self,
        queue: &Queue,
        work: &mut PeriodWork,
        out: &mut Vec<(u32, Spike)>,
        mut respond: impl Respond,
    ) -> LayerCounters {
        let mut c = LayerCounters::default();
        let (li, monitored, latency_ns, busy) = (self.layer, self.monitored, self.wiring.latency_ns, self.wiring.busy[self.layer]);
        let (dests, repools) = (&self.wiring.destinations[li], &self.wiring.repools[li]);
        // The spikes go straight into the queue of the first destination in this cascade that
        // takes them as they are, or else into the flight to later stages, where they stay: a
        // copy per run cost as much as a small layer's work. Other destinations get copies.
        let direct = match dests.iter().zip(repools).find(|&(&d, r)| d < self.end && r.is_none()) {
            Some((&d, _)) => Direct::Queue(d - self.first),
            None if !dests.is_empty() && dests.iter().all(|&d| d >= self.end) && self.flight.is_some() => Direct::Flight,
            None => Direct::Scratch,
        };
        let copies = match direct {
            Direct::Queue(_) => dests.len() > 1,
            // Every destination is in a later stage: the flight takes them there.
            Direct::Flight => false,
            Direct::Scratch => !dests.is_empty(),
        };
        // The work of each power period is what the counters count while the runs are in it.
        let (mut tally, mut end) = (work.tally(monitored), 0);
        for (Run { index, t_ns, .. }, sites) in queue.iter() {
            // The runs are in the order of their sensor events (a queue fed by several layers
            // was sorted), so a run only moves forward from part to part.
            if index >= end {
                end = tally.seek(index, counts(&c));
            }
            let t_out = t_ns + latency_ns;
            let fired = match (direct, self.flight.as_deref_mut()) {
                (Direct::Queue(q), _) => self.queues[q].sites_mut(),
                (Direct::Flight, Some(flight)) => flight.spikes.sites_mut(),
                _ => {
                    self.fired.clear();
                    &mut *self.fired
                }
            };
            let start = fired.len();
            let (ops, spikes) = match busy {
                // SAFETY (both): the caller's promise.
                None => {
                    c.input_events += sites.len() as u64;
                    unsafe { respond.respond_all(sites, fired) }
                }
                Some(b) => unsafe { respond_busy(b, &mut self.busy_until_ns, t_out, sites, fired, &mut respond, &mut c) },
            };
            if let Some(d) = &mut self.decimator {
                c.decimated += d.thin(fired, start);
            }
            let after_pool = (fired.len() - start) as u64;
            // Many runs make no spike that leaves the layer (pooling cuts some off).
            if after_pool > 0 {
                let made = match (direct, self.flight.as_deref_mut()) {
                    (Direct::Queue(q), _) => self.queues[q].close_run(index, t_out, start),
                    (Direct::Flight, Some(flight)) => flight.close_run(li, index, t_out, start),
                    _ => &self.fired[..],
                };
                if monitored {
                    let t = t_out.div_euclid(1000);
                    out.extend(made.iter().map(|s| (index, Spike { t, layer: (li + 1) as u16, c: s.c, y: s.y, x: s.x })));
                }
                if copies {
                    if let Direct::Queue(q) = direct {
                        self.fired.clear();
                        self.fired.extend_from_slice(&self.queues[q].sites()[start..]);
                    }
                    let mut gone_beyond = false;
                    for (&d, &repool) in dests.iter().zip(repools) {
                        if direct == Direct::Queue(d - self.first) {
                            continue;
                        } else if d < self.end {
                            self.queues[d - self.first].push_to(index, t_out, self.fired, repool);
                        } else if !gone_beyond && let Some(flight) = self.flight.as_deref_mut() {
                            flight.push(li, index, t_out, self.fired);
                            gone_beyond = true;
                        }
                    }
                }
            }
            c.synaptic_ops += ops;
            c.spikes += spikes;
            c.spikes_after_pool += after_pool;
            self.peak.add(t_ns, ops);
        }
        tally.add(counts(&c));
        c
    }
}

/// What a [`Tally`] needs of a layer's counters.
#[inline(always)]
fn counts(c: &LayerCounters) -> Counts {
    [c.synaptic_ops, c.spikes, c.spikes_after_pool]
}

/// [`Respond::respond_all`] with the busy model: an event that finds the core's backlog
/// full is dropped and counted.
///
/// # Safety
/// The CPU has the instructions `respond` uses.
#[inline(always)]
unsafe fn respond_busy(
    b: BusyModel,
    busy_until_ns: &mut f64,
    t_out: i64,
    sites: &[Site],
    fired: &mut Vec<Site>,
    respond: &mut impl Respond,
    c: &mut LayerCounters,
) -> (u64, u64) {
    let (mut ops, mut spikes) = (0, 0);
    for s in sites {
        if *busy_until_ns - t_out as f64 > b.max_backlog_ns {
            c.dropped_busy += 1;
            continue;
        }
        // SAFETY: the caller's promise.
        let (o, n) = unsafe { respond.respond(usize::from(s.c), usize::from(s.y), usize::from(s.x), fired) };
        (ops, spikes) = (ops + o, spikes + n);
        *busy_until_ns = busy_until_ns.max(t_out as f64) + b.ns_per_event + b.ns_per_synop * o as f64;
        c.input_events += 1;
    }
    (ops, spikes)
}

#[cfg(test)]
mod tests {
    use super::Queue;

    /// A run counts its sites in a `u32`; one sensor event's spikes past that are queued as
    /// several runs of the same event and time, which every layer takes one after another, as
    /// it takes the runs of a queue fed by several layers. (The sites themselves, 24 GB, are
    /// not made: counting runs does not read them.)
    #[test]
    fn a_run_past_u32_max_sites_is_split_into_runs_of_the_same_event_and_time() {
        let mut queue = Queue::default();
        let len = 2 * u32::MAX as usize + 5;
        queue.runs_of(7, 123, len);
        let runs: Vec<_> = queue.runs.iter().map(|r| (r.index, r.len, r.t_ns)).collect();
        assert_eq!(runs, [(7, u32::MAX, 123), (7, u32::MAX, 123), (7, 5, 123)]);
        // No sites, no run; exactly `u32::MAX`, one.
        queue.runs_of(8, 0, 0);
        queue.runs_of(9, 1, u32::MAX as usize);
        assert_eq!(queue.len(), 4);
        assert_eq!((queue.runs[3].index, queue.runs[3].len), (9, u32::MAX));
    }
}
