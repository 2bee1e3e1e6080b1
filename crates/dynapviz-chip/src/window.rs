//! The event-mode scatter of the common layer: stride 1 along x and 16, 32, 64, 128 or 256
//! channels stored per neuron column (a layer of up to 256 output channels stores as many as
//! the next of these, see `LayerRt`). An input reaches a window of consecutive output rows and
//! columns, and per kernel row the neurons it reaches are one contiguous run, and so are their
//! weights (kernel columns are stored reversed). So an event is a handful of fixed runs of vectors, found with one
//! lookup per axis. The windows are checked against the layer's memory once, when the layer
//! is built, so the loop over a run needs no bounds checks.

use dynapviz_model::network::Reset;

use crate::lanes::{Lanes, Neuron};
use crate::layer::{CUT, Fanout, Site, Tap};

/// Words of firing bits a window's block of rows keeps: 64 neurons each.
const BITS: usize = 32;

/// Words of firing bits a deferred run keeps before it writes their sites (see
/// [`Window::events`]): 256 KiB, whatever the run's length.
const PENDING_WORDS: usize = 1 << 14;

/// Where one input coordinate reaches along one axis: consecutive outputs.
#[derive(Clone, Copy, Debug, Default)]
struct Span {
    /// Offset of the first output's neurons (rows: `oy * fw * o`; columns: `ox * o`).
    state: u32,
    /// Offset of the first output's weights (rows: `ky * kw * o`; columns: `(kw - 1 - kx) * o`).
    weight: u32,
    /// First output row or column.
    first: u16,
    /// Outputs reached; 0 for an input the kernel never covers.
    len: u16,
}

/// The windows of every input of a layer, and where the spikes of their outputs land.
#[derive(Clone, Debug)]
pub(crate) struct Windows {
    rows: Vec<Span>,
    cols: Vec<Span>,
    /// Pooled row of every output row ([`CUT`] when pooling cuts it off).
    pooled_rows: Vec<u16>,
    /// Pooled column of every output column.
    pooled_cols: Vec<u16>,
    /// Neurons from one output row to the next (`fw * o`).
    row_step: usize,
    /// Weights from the kernel row of one output row to that of the next (`stride * kw * o`;
    /// kernel rows go down as output rows go up).
    weight_row_step: usize,
    /// Input channels, and the weights of each.
    channels: usize,
    channel_stride: usize,
    /// Channels stored per neuron column, in chunks of 16.
    chunks: usize,
    /// Output channels (at most `chunks * 16`; the rest never fire): each counts a synaptic
    /// operation.
    out_channels: usize,
    /// Most words of firing bits one event's window has (see [`Pending`]).
    max_words: usize,
    /// The lengths of the neurons and weights the windows were checked against.
    checked: (usize, usize),
}

impl Windows {
    /// The windows of a layer with these taps, or `None` when the layer is not of the common
    /// shape (or, which cannot happen, its taps are not regular or overreach its memory).
    ///
    /// `o` channels are stored per neuron column, of which the first `out_channels` are the
    /// layer's.
    pub(crate) fn new(
        rows: &Fanout,
        cols: &Fanout,
        o: usize,
        out_channels: usize,
        channels: usize,
        state_len: usize,
        weights_len: usize,
    ) -> Option<Self> {
        if !matches!(o, 16 | 32 | 64 | 128 | 256) || out_channels > o {
            return None;
        }
        let row_taps: Vec<_> = (0..rows.len()).map(|y| rows.of(y)).collect();
        let col_taps: Vec<_> = (0..cols.len()).map(|x| cols.of(x)).collect();
        // A row of a window keeps its firing bits in at most `BITS` words (see
        // `Window::step_all`): 256 channels fit 8 kernel columns.
        if col_taps.iter().map(|t| t.len()).max().unwrap_or(0) * o > BITS * 64 {
            return None;
        }
        // Row steps from any input that reaches two output rows (none: a step is never used).
        let steps = row_taps.iter().find(|t| t.len() >= 2).map_or(Some((0, 0)), |t| {
            Some((t[1].state.checked_sub(t[0].state)? as usize, t[0].weight.checked_sub(t[1].weight)? as usize))
        })?;
        let (row_step, weight_row_step) = steps;
        let regular = |taps: &[Tap], state: usize, weight: isize| {
            taps.iter().enumerate().all(|(i, t)| {
                t.state as usize == taps[0].state as usize + i * state
                    && t.weight as isize == taps[0].weight as isize + i as isize * weight
                    && usize::from(t.output) == usize::from(taps[0].output) + i
            })
        };
        if !row_taps.iter().all(|t| regular(t, row_step, -(weight_row_step as isize)))
            || !col_taps.iter().all(|t| regular(t, o, o as isize))
        {
            return None;
        }
        let span = |t: &[Tap]| {
            t.first().map_or(Span::default(), |f| Span { state: f.state, weight: f.weight, first: f.output, len: t.len() as u16 })
        };
        let pooled = |taps: &[&[Tap]]| {
            let mut pooled = Vec::new();
            for t in taps.iter().flat_map(|t| t.iter()) {
                let i = usize::from(t.output);
                if pooled.len() <= i {
                    pooled.resize(i + 1, CUT);
                }
                pooled[i] = t.pooled;
            }
            pooled
        };
        let windows = Self {
            rows: row_taps.iter().map(|t| span(t)).collect(),
            cols: col_taps.iter().map(|t| span(t)).collect(),
            pooled_rows: pooled(&row_taps),
            pooled_cols: pooled(&col_taps),
            row_step,
            weight_row_step,
            channels,
            channel_stride: weights_len / channels.max(1),
            chunks: o / 16,
            out_channels,
            max_words: row_taps.iter().map(|t| t.len()).max().unwrap_or(0)
                * col_taps.iter().map(|t| (t.len() * o / 16).div_ceil(4)).max().unwrap_or(0),
            checked: (state_len, weights_len),
        };
        windows.within(state_len, weights_len).then_some(windows)
    }

    /// How a layer that made `spikes` in `synaptic_ops` steps its windows, by how many of the
    /// rows an event reaches have a spike. Two passes (updating, then resetting the rows that
    /// fire) ask of every row whether it fires, a branch the CPU predicts when few rows do and
    /// cannot when about half do; one pass (updating and resetting at once) asks no such
    /// question but resets every row and writes every row's firing bits. On the gesture
    /// network (`synth02`/`synth00`, per-layer busy times): layer 2 (about 1.3 spikes per row)
    /// ran 12 % faster in one pass per event; layer 3 (0.24-0.3 spikes per row) 8-19 % faster
    /// in one pass with its sites written after the run ([`Pass::Deferred`]), which the first
    /// two layers were 10-20 % slower in; layers 3-5 at 0.09-0.17 spikes per row (on other
    /// recordings too) 16-28 % faster in two.
    fn pass(&self, (synaptic_ops, spikes): (u64, u64)) -> Pass {
        let row = self.cols.iter().map(|k| u64::from(k.len)).max().unwrap_or(0) * self.out_channels as u64;
        // Spikes per row reached, times 10.
        let per_row = spikes.saturating_mul(10 * row).checked_div(synaptic_ops).unwrap_or(0);
        match per_row {
            5.. => Pass::One,
            2..5 => Pass::Deferred,
            _ => Pass::Two,
        }
    }

    /// Whether every run of every window lies inside the layer's neurons and weights.
    fn within(&self, state_len: usize, weights_len: usize) -> bool {
        let o = self.chunks * 16;
        let last_channel = self.channels.saturating_sub(1) * self.channel_stride;
        self.rows.iter().filter(|r| r.len > 0).all(|r| {
            let rows = usize::from(r.len) - 1;
            self.cols.iter().filter(|k| k.len > 0).all(|k| {
                let run = usize::from(k.len) * o;
                let state_end = r.state as usize + rows * self.row_step + k.state as usize + run;
                let weight = (r.weight + k.weight) as usize;
                state_end <= state_len
                    && weight >= rows * self.weight_row_step
                    && last_channel + weight + run <= weights_len
                    && usize::from(r.first) + rows < self.pooled_rows.len()
                    && usize::from(k.first + k.len) <= self.pooled_cols.len()
            })
        })
    }

    /// The windows with the layer's neurons and weights, typed by the output's chunks; `None`
    /// unless `state` and `weights` are what the windows were checked against. `seen`: the
    /// layer's synaptic operations and spikes so far, which choose how its windows are stepped
    /// (see [`Self::pass`]).
    pub(crate) fn with<'a>(
        &'a self,
        state: &'a mut [i16],
        weights: &'a [i16],
        neuron: Neuron,
        seen: (u64, u64),
        pending: &'a mut Vec<Pending>,
    ) -> Option<AnyWindow<'a>> {
        if (state.len(), weights.len()) != self.checked {
            return None;
        }
        // Potentials stored plain are clamped at each add, in two passes (the one pass adds
        // without a clamp).
        let pass = if neuron.floor_is_saturation() { self.pass(seen) } else { Pass::Two };
        Some(match self.chunks {
            1 => AnyWindow::N1(Window { windows: self, state, weights, neuron, pass, pending }),
            2 => AnyWindow::N2(Window { windows: self, state, weights, neuron, pass, pending }),
            4 => AnyWindow::N4(Window { windows: self, state, weights, neuron, pass, pending }),
            8 => AnyWindow::N8(Window { windows: self, state, weights, neuron, pass, pending }),
            16 => AnyWindow::N16(Window { windows: self, state, weights, neuron, pass, pending }),
            _ => return None,
        })
    }
}

/// Where one event lands in a window: its rows and columns, how many (a constant where the
/// caller unrolls them), and the offsets of its first neurons and weights.
#[derive(Clone, Copy)]
struct Landing {
    r: Span,
    k: Span,
    rows: usize,
    /// Vectors of 16 neurons per row: columns times the output's chunks.
    chunks: usize,
    state: usize,
    weights: usize,
}

/// A [`Window`] of any of the channel counts that have one.
pub(crate) enum AnyWindow<'a> {
    N1(Window<'a, 1>),
    N2(Window<'a, 2>),
    N4(Window<'a, 4>),
    N8(Window<'a, 8>),
    N16(Window<'a, 16>),
}

/// A layer's windows with its neurons and weights, `N` chunks of 16 channels: runs the events
/// of one queue. Made only by [`Windows::with`], which checks the memory.
pub(crate) struct Window<'a, const N: usize> {
    windows: &'a Windows,
    state: &'a mut [i16],
    weights: &'a [i16],
    neuron: Neuron,
    /// How the windows are stepped (see [`Windows::pass`]).
    pass: Pass,
    /// The words of firing bits of a run of events, until their sites are written (see
    /// [`Self::events`]); the layer's, kept between runs.
    pending: &'a mut Vec<Pending>,
}

/// How a layer steps the windows of its events (see [`Windows::pass`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pass {
    /// Update every row, then reset and emit the rows that fire.
    Two,
    /// Update and reset every row at once, and emit each event's firing rows (see
    /// [`Window::step_all`]). Only for potentials whose floor is the saturation
    /// ([`Neuron::floor_is_saturation`]): the one pass adds without a clamp at `min_v_mem`.
    One,
    /// As `One`, but the sites of a run's spikes are written after its last event (see
    /// [`Window::events`]).
    Deferred,
}

/// A word of firing bits (64 neurons of one row of an event's window) whose sites are yet to
/// be written, with where they land.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pending {
    /// In lane order (see [`Lanes::unlane`]).
    bits: u64,
    place: Place,
}

/// Where a [`Pending`] word lands, in one integer: a row of the window stores it whole, where
/// four fields were put together in a vector register for every word (see [`Window::defer`]).
/// Bits 0-15: the pooled row ([`CUT`] when pooling cuts it off); 16-31: the window's first
/// column; 32-47: its last, relative to the first; 48-63: the word's place in its row.
#[derive(Clone, Copy, Debug)]
struct Place(u64);

impl Place {
    /// Words of a window whose columns are `first..=first + last`, in pooled row 0.
    #[inline(always)]
    fn columns(first: u16, last: u16) -> Self {
        Self(u64::from(first) << 16 | u64::from(last) << 32)
    }

    /// Word `word` of pooled row `py` of these columns.
    #[inline(always)]
    fn at(self, py: u16, word: usize) -> Self {
        Self(self.0 | u64::from(py) | (word as u64) << 48)
    }

    #[inline(always)]
    fn py(self) -> u16 {
        self.0 as u16
    }

    #[inline(always)]
    fn first_col(self) -> usize {
        usize::from((self.0 >> 16) as u16)
    }

    #[inline(always)]
    fn last_col(self) -> usize {
        usize::from((self.0 >> 32) as u16)
    }

    #[inline(always)]
    fn word(self) -> usize {
        usize::from((self.0 >> 48) as u16)
    }
}

impl<const N: usize> Window<'_, N> {
    /// Whether the sites of a run's spikes are written after its last event: run it by
    /// [`Self::events`].
    pub(crate) fn deferred(&self) -> bool {
        self.pass == Pass::Deferred
    }

    /// The chip's response to one input event, as [`crate::layer::LayerRt::event_with`]:
    /// returns the synaptic operations and the spikes, and appends the spikes' pooled sites to
    /// `fired` in raster order.
    ///
    /// # Safety
    /// The CPU has the instructions of `K`.
    #[inline(always)]
    pub(crate) unsafe fn event<K: Lanes>(&mut self, c: usize, y: usize, x: usize, fired: &mut Vec<Site>) -> (u64, u64) {
        let w = self.windows;
        let (Some(&r), Some(&k)) = (w.rows.get(y), w.cols.get(x)) else { return (0, 0) };
        if c >= w.channels || r.len == 0 || k.len == 0 {
            return (0, 0);
        }
        let state = (r.state + k.state) as usize;
        let weights = c * w.channel_stride + (r.weight + k.weight) as usize;
        let rows = usize::from(r.len);
        // SAFETY: `Windows::new` checked that every run of every window is in bounds, and the
        // caller's promise.
        let spikes = unsafe {
            match k.len {
                // The interior of a 3x3 kernel, the most common window: fully unrolled.
                3 if r.len == 3 => self.scatter::<K, 3, 3>(r, k, state, weights, fired),
                3 => self.scatter::<K, 3, 0>(r, k, state, weights, fired),
                2 => self.scatter::<K, 2, 0>(r, k, state, weights, fired),
                // A kernel no wider than its stride (the gesture network's first layer): one
                // output reached, fully unrolled.
                1 if r.len == 1 => self.scatter::<K, 1, 1>(r, k, state, weights, fired),
                1 => self.scatter::<K, 1, 0>(r, k, state, weights, fired),
                _ => self.scatter::<K, 0, 0>(r, k, state, weights, fired),
            }
        };
        ((rows * usize::from(k.len) * w.out_channels) as u64, spikes)
    }

    /// One event over the window of rows `r` and columns `k` (`R` and `C` of them when not 0,
    /// so that the loops unroll), in one pass or two. Each neuron is touched once per event, so
    /// firing after all updates is the same as firing right after each.
    ///
    /// # Safety
    /// The window is in bounds; the CPU has the instructions of `K`.
    #[inline(always)]
    unsafe fn scatter<K: Lanes, const C: usize, const R: usize>(
        &mut self,
        r: Span,
        k: Span,
        state: usize,
        weights: usize,
        fired: &mut Vec<Site>,
    ) -> u64 {
        let chunks = if C == 0 { usize::from(k.len) } else { C } * N;
        let rows = if R == 0 { usize::from(r.len) } else { R };
        let at = Landing { r, k, rows, chunks, state, weights };
        // SAFETY: the caller's promise.
        unsafe {
            if self.pass == Pass::One {
                self.step_all::<K>(at, fired)
            } else {
                let firing = self.update::<K>(at);
                if firing == 0 { 0 } else { self.fire::<K>(firing, at, fired) }
            }
        }
    }

    /// The chip's response to a run of input events, as [`Self::event`] on each in turn, for a
    /// window that is [`Self::deferred`]: returns the sums of the synaptic operations and
    /// spikes. Each window is stepped in one pass (added and reset at once, see
    /// [`Lanes::step`]); its words of firing bits are kept without a branch (a word with none
    /// is overwritten by the next), and the sites of their spikes are written after the last
    /// event, in one loop over the words that have any. Per event, whether a row fires and how
    /// many of its words have spikes are what the CPU cannot predict; here it is asked only how
    /// many words have any.
    ///
    /// # Safety
    /// The CPU has the instructions of `K`.
    #[inline(always)]
    pub(crate) unsafe fn events<K: Lanes>(&mut self, sites: &[Site], fired: &mut Vec<Site>) -> (u64, u64) {
        // A loop per reset mode, so that the step of every row does not ask which it is.
        let n = self.neuron;
        // SAFETY: the caller's promise.
        unsafe {
            match n.reset {
                Reset::Subtract => self.events_as::<K>(Neuron { reset: Reset::Subtract, ..n }, sites, fired),
                Reset::Zero => self.events_as::<K>(Neuron { reset: Reset::Zero, ..n }, sites, fired),
            }
        }
    }

    /// [`Self::events`] with the layer's firing rule `n`, its reset mode fixed at compile time.
    ///
    /// # Safety
    /// The CPU has the instructions of `K`.
    #[inline(always)]
    unsafe fn events_as<K: Lanes>(&mut self, n: Neuron, sites: &[Site], fired: &mut Vec<Site>) -> (u64, u64) {
        debug_assert_eq!(self.pass, Pass::Deferred);
        let w = self.windows;
        self.pending.clear();
        self.pending.reserve(sites.len() * w.max_words);
        let pending = self.pending.as_mut_ptr();
        let (mut ops, mut spikes, mut kept) = (0, 0, 0);
        for s in sites {
            let (c, y, x) = (usize::from(s.c), usize::from(s.y), usize::from(s.x));
            // The same lookup as `event`'s, written out: as a shared function returning an
            // `Option`, it made layer 3 of the gesture network 18 % slower here.
            let (Some(&r), Some(&k)) = (w.rows.get(y), w.cols.get(x)) else { continue };
            if c >= w.channels || r.len == 0 || k.len == 0 {
                continue;
            }
            let state = (r.state + k.state) as usize;
            let weights = c * w.channel_stride + (r.weight + k.weight) as usize;
            ops += (usize::from(r.len) * usize::from(k.len) * w.out_channels) as u64;
            // SAFETY: `Windows::new` checked that every run of every window is in bounds;
            // `pending` has room for `max_words` per event; the caller's promise.
            (kept, spikes) = unsafe {
                let to = Keep { pending, kept, spikes };
                match k.len {
                    3 if r.len == 3 => self.defer::<K, 3, 3>(n, r, k, state, weights, to),
                    3 => self.defer::<K, 3, 0>(n, r, k, state, weights, to),
                    2 => self.defer::<K, 2, 0>(n, r, k, state, weights, to),
                    1 if r.len == 1 => self.defer::<K, 1, 1>(n, r, k, state, weights, to),
                    1 => self.defer::<K, 1, 0>(n, r, k, state, weights, to),
                    _ => self.defer::<K, 0, 0>(n, r, k, state, weights, to),
                }
            };
        }
        // One more than the spikes: `write_word` may write a site past the last.
        fired.reserve(spikes as usize + 1);
        let (out, mut len) = (fired.as_mut_ptr(), fired.len());
        for i in 0..kept {
            // SAFETY: the first `kept` are written.
            let Pending { bits, place: p } = unsafe { *pending.add(i) };
            // Rows that pooling cuts off are few (at most the last of a map of odd height).
            if p.py() == CUT {
                continue;
            }
            // SAFETY: their columns are the window's, which `Windows::within` checked have
            // pooled columns; room for every spike is reserved.
            unsafe {
                let cols = w.pooled_cols.as_ptr().add(p.first_col());
                len = write_word::<N>(out, len, cols, p.last_col(), p.py(), p.word(), K::unlane(bits));
            }
        }
        // SAFETY: the sites up to `len` are written, within the reserved room.
        unsafe { fired.set_len(len) };
        (ops, spikes)
    }

    /// The most events [`Self::events`] should be given at once: their words of firing bits
    /// take at most [`PENDING_WORDS`] (or one window's).
    pub(crate) fn events_at_once(&self) -> usize {
        (PENDING_WORDS / self.windows.max_words.max(1)).max(1)
    }

    /// One event over the window of rows `r` and columns `k` in one pass (as [`Self::scatter`]
    /// for `C` and `R`, with firing rule `n`): appends its words of firing bits to
    /// `to.pending`, keeping those with a spike; returns how many are kept now, and the spikes
    /// so far. Written for few registers: the addresses and each row's [`Place`] are made once,
    /// the 3x3 rows written out, and a row that pooling cuts off not asked about per word. On
    /// `synth02` with the gesture network, layer 3 took 7-9 % less time than with a loop over
    /// the rows and the place's four fields put together per word.
    ///
    /// # Safety
    /// As [`Self::scatter`]; `to.pending` has room for the window's words after `to.kept`.
    #[inline(always)]
    unsafe fn defer<K: Lanes, const C: usize, const R: usize>(
        &mut self,
        n: Neuron,
        r: Span,
        k: Span,
        state: usize,
        weights: usize,
        mut to: Keep,
    ) -> (usize, u64) {
        let chunks = if C == 0 { usize::from(k.len) } else { C } * N;
        let rows = if R == 0 { usize::from(r.len) } else { R };
        // In locals: the compiler cannot tell that the writes to the neurons and the words
        // leave them alone. Wrapping: a row's runs are in bounds (the caller's promise), the
        // arithmetic on the way need not be.
        let w = self.windows;
        let (row_step, weight_row_step) = (w.row_step, w.weight_row_step);
        let (v, wt) = (self.state.as_mut_ptr().wrapping_add(state), self.weights.as_ptr().wrapping_add(weights));
        let pooled_rows = w.pooled_rows.as_ptr().wrapping_add(usize::from(r.first));
        let cols = Place::columns(k.first, k.len - 1);
        // A closure only for the addresses: one with vector code would be compiled without
        // the caller's target features, and the vector code would not inline into it (layer 3
        // of the gesture network took five times as long).
        let row = |ri: usize| {
            let v = v.wrapping_add(ri * row_step).cast::<[i16; 16]>();
            (v, wt.wrapping_sub(ri * weight_row_step).cast::<[i16; 16]>(), pooled_rows.wrapping_add(ri))
        };
        // SAFETY (all rows): `Windows::within` checked the window's rows have pooled rows;
        // the caller's promise.
        if R == 3 {
            // The rows of the common 3x3 window written out: the compiler does not unroll them.
            let ((v0, w0, p0), (v1, w1, p1), (v2, w2, p2)) = (row(0), row(1), row(2));
            unsafe {
                to = defer_row::<K>(v0, w0, cols, *p0, chunks, n, to);
                to = defer_row::<K>(v1, w1, cols, *p1, chunks, n, to);
                to = defer_row::<K>(v2, w2, cols, *p2, chunks, n, to);
            }
        } else {
            for ri in 0..rows {
                let (v, wt, py) = row(ri);
                to = unsafe { defer_row::<K>(v, wt, cols, *py, chunks, n, to) };
            }
        }
        (to.kept, to.spikes)
    }

    /// The window in one pass per block of rows, for a layer where most rows have a spike:
    /// adds and resets every neuron at once (see [`Lanes::step`]), noting which fired, then
    /// appends the sites of those in raster order. No row is read twice and no branch asks
    /// whether a row fires.
    ///
    /// # Safety
    /// As [`Self::scatter`].
    #[inline(always)]
    unsafe fn step_all<K: Lanes>(&mut self, at: Landing, fired: &mut Vec<Site>) -> u64 {
        let words = at.chunks.div_ceil(4);
        // At most `BITS` words a row (`Windows::new` checks): a block has a row or more.
        let per_block = BITS / words;
        let mut bits = [0u64; BITS];
        let (mut spikes, mut first) = (0, 0);
        while first < at.rows {
            let block = per_block.min(at.rows - first);
            // SAFETY: the caller's promise.
            unsafe {
                let firing = self.step::<K>(first, block, at, &mut bits);
                if firing != 0 {
                    spikes += self.emit::<K>(firing, first, block, at, &bits, fired);
                }
            }
            first += block;
        }
        spikes
    }

    /// Steps rows `first..first + block` of `chunks` vectors: the bits of the neurons that
    /// fired go to `bits` in lane order, `chunks.div_ceil(4)` words a row; returns a bit per
    /// row of the block with one that fired.
    ///
    /// # Safety
    /// As [`Self::scatter`].
    #[inline(always)]
    unsafe fn step<K: Lanes>(&mut self, first: usize, block: usize, at: Landing, bits: &mut [u64; BITS]) -> u32 {
        let Landing { chunks, state, weights, .. } = at;
        // In locals: the compiler cannot tell that the writes to the neurons leave them alone.
        let (n, row_step, weight_row_step) = (self.neuron, self.windows.row_step, self.windows.weight_row_step);
        let words = chunks.div_ceil(4);
        let mut firing = 0u32;
        for ri in 0..block {
            // Wrapping: a row's runs are in bounds (the caller's promise), the arithmetic on
            // the way need not be.
            let v = self.state.as_mut_ptr().wrapping_add(state + (first + ri) * row_step).cast::<[i16; 16]>();
            let wt = self.weights.as_ptr().wrapping_add(weights).wrapping_sub((first + ri) * weight_row_step).cast::<[i16; 16]>();
            let mut row = 0u64;
            for word in 0..words {
                // SAFETY: the caller's promise: row `first + ri`'s runs are in bounds.
                let b = unsafe { step_word::<K>(v, wt, word, chunks, n) };
                bits[ri * words + word] = b;
                row |= b;
            }
            firing |= u32::from(row != 0) << ri;
        }
        firing
    }

    /// Appends the sites of the neurons that fired in the block of `block` rows from row
    /// `first` (their bits in `bits`, as [`Self::step`] left them; `firing` has a bit per row
    /// with one) in raster order (row, column, channel); returns the spikes. Every row of the
    /// block is visited: in a layer where most rows fire, which do is what the CPU cannot
    /// predict (see [`Emitter::row_word`]).
    ///
    /// # Safety
    /// As [`Self::scatter`].
    #[inline(always)]
    unsafe fn emit<K: Lanes>(
        &self,
        firing: u32,
        first: usize,
        block: usize,
        at: Landing,
        bits: &[u64; BITS],
        fired: &mut Vec<Site>,
    ) -> u64 {
        let Landing { r, k, chunks, .. } = at;
        let words = chunks.div_ceil(4);
        let mut sites = Emitter::<N>::new(self.windows, k, firing, chunks, fired);
        let mut spikes = 0;
        for ri in 0..block {
            let py = self.windows.pooled_rows[usize::from(r.first) + first + ri];
            for word in 0..words {
                let b = K::unlane(bits[ri * words + word]);
                spikes += u64::from(b.count_ones());
                // SAFETY: the caller's promise.
                unsafe { sites.row_word(py, word, b) };
            }
        }
        sites.done();
        spikes
    }

    /// Adds the weights to the `rows` runs of `chunks` vectors (clamped at `min_v_mem` for
    /// potentials stored plain; biased, their floor is the saturation); returns a bit per row
    /// with a neuron at threshold.
    ///
    /// # Safety
    /// As [`Self::scatter`].
    #[inline(always)]
    unsafe fn update<K: Lanes>(&mut self, at: Landing) -> u32 {
        let Landing { rows, chunks, state, weights, .. } = at;
        // In locals: the compiler cannot tell that the writes to the neurons leave them alone.
        let (n, row_step, weight_row_step) = (self.neuron, self.windows.row_step, self.windows.weight_row_step);
        let mut v = self.state.as_mut_ptr().wrapping_add(state);
        let mut wt = self.weights.as_ptr().wrapping_add(weights);
        let (mut firing, clamp) = (0u32, !n.floor_is_saturation());
        for ri in 0..rows {
            // SAFETY: the caller's promise: row `ri`'s runs are in bounds.
            unsafe {
                let (v, wt) = (v.cast::<[i16; 16]>(), wt.cast::<[i16; 16]>());
                let mut any = K::none();
                if clamp {
                    for j in 0..chunks / 2 {
                        any = K::update2(&mut *v.add(2 * j).cast(), &*wt.add(2 * j).cast(), n, any);
                    }
                    if chunks % 2 == 1 {
                        any = K::update(&mut *v.add(chunks - 1), &*wt.add(chunks - 1), n, any);
                    }
                } else {
                    for j in 0..chunks / 2 {
                        any = K::add2(&mut *v.add(2 * j).cast(), &*wt.add(2 * j).cast(), any);
                    }
                    if chunks % 2 == 1 {
                        any = K::add(&mut *v.add(chunks - 1), &*wt.add(chunks - 1), any);
                    }
                }
                firing |= u32::from(K::fired(any, n)) << ri;
            }
            // Wrapping: past the last row they point nowhere and are not used.
            v = v.wrapping_add(row_step);
            wt = wt.wrapping_sub(weight_row_step);
        }
        firing
    }

    /// Resets the neurons at threshold in the `firing` rows of `chunks` vectors and appends
    /// their sites in raster order (row, column, channel); returns the spikes.
    ///
    /// # Safety
    /// As [`Self::scatter`].
    #[inline(always)]
    unsafe fn fire<K: Lanes>(&mut self, mut firing: u32, at: Landing, fired: &mut Vec<Site>) -> u64 {
        let Landing { r, k, chunks, state, .. } = at;
        let (n, w) = (self.neuron, self.windows);
        let mut sites = Emitter::<N>::new(w, k, firing, chunks, fired);
        let mut spikes = 0;
        while firing != 0 {
            let ri = firing.trailing_zeros() as usize;
            firing &= firing - 1;
            let py = w.pooled_rows[usize::from(r.first) + ri];
            // SAFETY: the caller's promise.
            let v = unsafe { self.state.as_mut_ptr().add(state + ri * w.row_step).cast::<[i16; 16]>() };
            // Four chunks' bits at a time: one loop over the spikes of 64 neurons, not four.
            for word in 0..chunks.div_ceil(4) {
                let mut bits = 0u64;
                for pair in 0..2 {
                    let j = word * 4 + pair * 2;
                    // SAFETY: the caller's promise.
                    let b = unsafe {
                        if j + 1 < chunks {
                            K::fire2(&mut *v.add(j).cast(), n)
                        } else if j < chunks {
                            K::fire(&mut *v.add(j), n)
                        } else {
                            0
                        }
                    };
                    bits |= u64::from(b) << (32 * pair);
                }
                spikes += u64::from(bits.count_ones());
                // SAFETY: the caller's promise.
                unsafe { sites.row_word(py, word, K::unlane(bits)) };
            }
        }
        sites.done();
        spikes
    }
}

/// Appends the pooled sites of a window's spikes to a queue with plain writes: room for every
/// neuron of the firing rows is reserved up front.
struct Emitter<'a, const N: usize> {
    fired: &'a mut Vec<Site>,
    sites: *mut Site,
    len: usize,
    /// The pooled columns of the window's columns, read without bounds checks: in a local,
    /// not reloaded after every write of a site.
    cols: *const u16,
    /// The window's last column (index into `cols`).
    last_col: usize,
}

impl<'a, const N: usize> Emitter<'a, N> {
    /// Room for the `firing` rows of `chunks` vectors of the window with columns `k`.
    #[inline(always)]
    fn new(w: &Windows, k: Span, firing: u32, chunks: usize, fired: &'a mut Vec<Site>) -> Self {
        // One more than the neurons of the rows: `row_word` may write a site past the last.
        fired.reserve(firing.count_ones() as usize * chunks * 16 + 1);
        let (sites, len) = (fired.as_mut_ptr(), fired.len());
        let cols = w.pooled_cols.as_ptr().wrapping_add(usize::from(k.first));
        Self { fired, sites, len, cols, last_col: usize::from(k.len).saturating_sub(1) }
    }

    /// Appends the sites of the neurons in `bits`, word `word` (64 neurons) of a row of pooled
    /// row `py` (none when pooling cuts it off), see [`write_word`].
    ///
    /// # Safety
    /// The neurons are below the row's `chunks * 16`; the row is one of the `firing` ones
    /// [`Self::new`] made room for, or `bits` is 0.
    #[inline(always)]
    unsafe fn row_word(&mut self, py: u16, word: usize, bits: u64) {
        if py != CUT {
            // SAFETY: the caller's promise and the room reserved in `new`.
            self.len = unsafe { write_word::<N>(self.sites, self.len, self.cols, self.last_col, py, word, bits) };
        }
    }

    /// Makes the written sites part of the queue.
    #[inline(always)]
    fn done(self) {
        // SAFETY: the sites up to `len` are written, within the reserved room.
        unsafe { self.fired.set_len(self.len) };
    }
}

/// Where [`Window::defer`] keeps words of firing bits: `pending` with `kept` of them so far,
/// and the spikes they (and the words not kept) had. Passed by value, its counts handed back
/// by `defer`: a count behind a reference stayed in memory, a load and a store on every row.
struct Keep {
    pending: *mut Pending,
    kept: usize,
    spikes: u64,
}

/// One row of [`Window::defer`]: steps the row of `chunks` vectors of neurons `v` with weights
/// `wt` (see [`step_word`]) and appends its words of firing bits, which land in pooled row `py`
/// of the window's columns `cols`, to `to.pending`, keeping those with a spike.
///
/// # Safety
/// The row's `chunks` vectors are in bounds; `to.pending` has room for its words after
/// `to.kept`; the CPU has the instructions of `K`.
#[inline(always)]
unsafe fn defer_row<K: Lanes>(v: *mut [i16; 16], wt: *const [i16; 16], cols: Place, py: u16, chunks: usize, n: Neuron, to: Keep) -> Keep {
    let Keep { pending, mut kept, mut spikes } = to;
    for word in 0..chunks.div_ceil(4) {
        // SAFETY: the caller's promise.
        let bits = unsafe { step_word::<K>(v, wt, word, chunks, n) };
        spikes += u64::from(bits.count_ones());
        // SAFETY: the caller's promise.
        unsafe { pending.add(kept).write(Pending { bits, place: cols.at(py, word) }) };
        // A word in a row that pooling cuts off is passed over when its sites are written:
        // asking here cost every word.
        kept += usize::from(bits != 0);
    }
    Keep { pending, kept, spikes }
}

/// Steps word `word` (chunks `4 * word..4 * word + 4`, those below `chunks`) of the row of
/// neurons `v` with weights `wt` (see [`Lanes::step`]); returns the bits of those that fired,
/// in lane order ([`Lanes::unlane`] puts them in neuron order).
///
/// # Safety
/// The row's `chunks` vectors are in bounds; the CPU has the instructions of `K`.
#[inline(always)]
unsafe fn step_word<K: Lanes>(v: *mut [i16; 16], wt: *const [i16; 16], word: usize, chunks: usize, n: Neuron) -> u64 {
    let mut b = 0u64;
    for pair in 0..2 {
        let j = word * 4 + pair * 2;
        // SAFETY: the caller's promise.
        let half = unsafe {
            if j + 1 < chunks {
                K::step2(&mut *v.add(j).cast(), &*wt.add(j).cast(), n)
            } else if j < chunks {
                K::step(&mut *v.add(j), &*wt.add(j), n)
            } else {
                0
            }
        };
        b |= u64::from(half) << (32 * pair);
    }
    b
}

/// Writes the sites of the neurons in `bits`, word `word` (64 neurons) of a row of pooled row
/// `py`, from `sites + len`; returns the new length. Two spikes at a time, each written whether
/// or not it is one (a site written for none is overwritten by the next, or lies past the
/// end), so the only branch is whether the word has more than two: how many spikes a word has,
/// 0 included, is what the CPU cannot predict. On `synth02` with the gesture network, the
/// first two layers took 18 % and 21 % less time than with a branch per spike, and layers 3-5
/// a few per cent less.
///
/// # Safety
/// `cols` has the pooled columns of a window whose last is `last_col`; the neurons of `bits`
/// are in its columns; `sites` has room for the spikes of `bits` after `len`, and one more.
#[inline(always)]
unsafe fn write_word<const N: usize>(
    sites: *mut Site,
    mut len: usize,
    cols: *const u16,
    last_col: usize,
    py: u16,
    word: usize,
    mut bits: u64,
) -> usize {
    loop {
        for _ in 0..2 {
            let spike = bits != 0;
            // Some neuron of the row when `bits` is 0: its column is clamped to the window.
            let neuron = word * 64 + (bits.trailing_zeros() & 63) as usize;
            bits &= bits.wrapping_sub(1);
            // SAFETY: the column is clamped to the window's (the caller's promise).
            let px = unsafe { *cols.add((neuron / (N * 16)).min(last_col)) };
            // SAFETY: the caller's promise: `len` is at most the spikes written so far.
            unsafe { sites.add(len).write(Site { c: (neuron % (N * 16)) as u16, y: py, x: px }) };
            len += usize::from(spike & (px != CUT));
        }
        if bits == 0 {
            break;
        }
    }
    len
}

#[cfg(test)]
mod tests {
    use dynapviz_model::convert::{DvsOptions, convert};
    use dynapviz_model::discretize::discretize;
    use dynapviz_model::{Ann, AnnLayer, Tensor};

    use super::{AnyWindow, Pass, Window};
    use crate::lanes::Portable;
    use crate::layer::{Arithmetic, LayerRt, Site};
    use crate::sim::LayerCounters;

    /// The second layer of a network whose first (1x1, 2 to 16 channels) feeds a `k`x`k` conv
    /// to `o` channels with padding `pad` on a `size`x`size` map, pooled 2x2. Weights mostly
    /// excitatory, so that neurons fire often.
    fn layer(o: usize, k: usize, pad: usize, size: usize) -> LayerRt {
        let mut uniform = dynapviz_testkit::uniform((o * 31 + k) as u64);
        let mut rnd = move || uniform() - 0.3;
        let mut ann = Ann::default();
        let first = Tensor::new(vec![16, 2, 1, 1], (0..32).map(|_| rnd()).collect()).expect("tensor");
        ann.push("0", AnnLayer::Conv { weight: first, bias: None, stride: [1; 2], padding: [0; 2] });
        ann.push("1", AnnLayer::Relu);
        let second = Tensor::new(vec![o, 16, k, k], (0..o * 16 * k * k).map(|_| rnd()).collect()).expect("tensor");
        ann.push("2", AnnLayer::Conv { weight: second, bias: None, stride: [1; 2], padding: [pad; 2] });
        ann.push("3", AnnLayer::Relu);
        ann.push("4", AnnLayer::AvgPool { kernel: [2; 2], stride: [2; 2] });
        let mut n = convert(&ann, [2, size, size], &DvsOptions::default()).expect("network");
        discretize(&mut n);
        LayerRt::new(&n.layers[1], Arithmetic::Chip).expect("layer")
    }

    /// Runs of 1-12 input events, a third of them at the position of the one before (another
    /// channel), as the spikes of a layer's window come.
    fn runs(in_shape: [usize; 3], count: usize) -> Vec<Vec<Site>> {
        let mut uniform = dynapviz_testkit::uniform(99);
        let mut pick = move |n: usize| ((uniform() * n as f32) as usize).min(n - 1);
        let mut at = (0, 0);
        (0..count)
            .map(|_| {
                (0..1 + pick(12))
                    .map(|_| {
                        if pick(3) > 0 {
                            at = (pick(in_shape[1]), pick(in_shape[2]));
                        }
                        Site { c: pick(in_shape[0]) as u16, y: at.0 as u16, x: at.1 as u16 }
                    })
                    .collect()
            })
            .collect()
    }

    /// The sites `runs` make through `layer` stepped as `pass`, and the synaptic operations
    /// and spikes.
    fn run_as(mut layer: LayerRt, pass: Pass, runs: &[Vec<Site>]) -> (Vec<Site>, u64, u64) {
        fn go<const N: usize>(mut w: Window<'_, N>, pass: Pass, run: &[Site], fired: &mut Vec<Site>) -> (u64, u64) {
            assert!(w.neuron.floor_is_saturation(), "one pass needs biased potentials");
            w.pass = pass;
            // SAFETY: the portable kernel needs no instructions beyond the baseline.
            unsafe {
                if pass == Pass::Deferred {
                    // In parts, as the cascade gives them.
                    let parts = run.chunks(w.events_at_once()).map(|part| w.events::<Portable>(part, fired));
                    parts.fold((0, 0), |(o, n), (a, b)| (o + a, n + b))
                } else {
                    run.iter().fold((0, 0), |(o, n), s| {
                        let (a, b) = w.event::<Portable>(usize::from(s.c), usize::from(s.y), usize::from(s.x), fired);
                        (o + a, n + b)
                    })
                }
            }
        }
        let (mut fired, mut ops, mut spikes) = (Vec::new(), 0, 0);
        for run in runs {
            let (o, n) = match layer.window(&LayerCounters::default()).expect("a layer of windows") {
                AnyWindow::N1(w) => go(w, pass, run, &mut fired),
                AnyWindow::N2(w) => go(w, pass, run, &mut fired),
                AnyWindow::N4(w) => go(w, pass, run, &mut fired),
                AnyWindow::N8(w) => go(w, pass, run, &mut fired),
                AnyWindow::N16(w) => go(w, pass, run, &mut fired),
            };
            (ops, spikes) = (ops + o, spikes + n);
        }
        (fired, ops, spikes)
    }

    /// One pass, one pass with the sites written after each run, and two passes are three ways
    /// to the same spikes: every site in the same order, the same counts, on windows of every
    /// width the kernels unroll and every channel count they store (11 and 48 stored padded),
    /// at the edges, where pooling cuts rows and columns off, and in a run of more events than
    /// [`Window::events_at_once`].
    #[test]
    fn every_pass_makes_the_same_spikes() {
        for (o, k, pad) in [(16, 3, 1), (32, 3, 1), (64, 3, 1), (32, 2, 0), (16, 5, 2), (128, 1, 0), (256, 3, 1), (11, 3, 1), (48, 2, 0)] {
            // A conv output of 11x11: pooling cuts its last row and column off.
            let l = layer(o, k, pad, 10 + k - 2 * pad);
            let mut input = runs(l.in_shape, 3000);
            // A run of more events than a deferred run keeps the words of.
            input.push(input.concat());
            let two = run_as(l.clone(), Pass::Two, &input);
            assert!(two.2 > 2000 && two.0.len() < two.2 as usize, "o {o} k {k}: {} spikes, {} sites", two.2, two.0.len());
            for pass in [Pass::One, Pass::Deferred] {
                let got = run_as(l.clone(), pass, &input);
                assert_eq!((got.1, got.2), (two.1, two.2), "o {o} k {k} {pass:?}: synaptic ops, spikes");
                assert!(got.0 == two.0, "o {o} k {k} {pass:?}: the sites differ");
            }
        }
    }
}
