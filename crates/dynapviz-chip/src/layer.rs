//! The runtime form of one chip layer: weights laid out for scattering one input event to every
//! neuron under the kernel with a contiguous inner loop over output channels, and the neuron
//! state of the simulation it is built for (the event mode's general path and the binned mode;
//! the event mode's common layers run as windows, see `window.rs`).

use dynapviz_model::network::{QuantParams, Reset};
use dynapviz_model::{ChipLayer, ModelError};

use crate::aligned::Aligned;
use crate::decimator::Decimator;
#[cfg(x86_kernels)]
use crate::lanes::{Avx2, Avx512};
use crate::lanes::{Kernel, Lanes, Neuron, Portable, fire_tail, update_tail};
use crate::peak::Peak;
use crate::sim::LayerCounters;
use crate::window::{AnyWindow, Pending, Windows};

/// One chip layer ready to run.
#[derive(Clone, Debug)]
pub struct LayerRt {
    /// Layer number (1-based).
    pub index: usize,
    /// Input (C, H, W).
    pub in_shape: [usize; 3],
    /// Output channels.
    pub out_channels: usize,
    /// Channels each neuron column stores: the output channels, and in the event mode as many
    /// more as make a whole number of vectors the windows run (see [`stored_channels`]). The
    /// extra channels have no weights and no bias, so they never fire.
    lanes: usize,
    /// Which neurons and weights each input reaches.
    reach: Reach,
    /// The same as windows, for the fast event mode of the common layer shape.
    windows: Option<Windows>,
    /// Sum-pooling kernel.
    pub pool: [usize; 2],
    /// Conv output (H, W).
    pub conv_out: [usize; 2],
    /// Output after pooling (C, H, W).
    pub out_shape: [usize; 3],
    /// Weights `[c][ky][kw - 1 - kx][o]`, for the binned mode's exact sums (empty for the event
    /// mode). Kernel columns are reversed so that the weights of consecutive output columns
    /// follow each other.
    weights: Vec<i32>,
    /// The same weights as the chip stores them, for the event mode (empty for the binned mode).
    weights16: Aligned,
    bias: Option<Vec<i32>>,
    /// The bias of the event mode, one neuron column's worth (`lanes`, the stored channels
    /// past the layer's 0), for the leak; empty without a bias.
    bias16: Aligned,
    /// Spike threshold.
    pub threshold: i32,
    /// Lower bound of the membrane potential.
    pub min_v_mem: i32,
    /// Membrane potentials `[oy][ox][o]` of the binned mode (unbounded, like sinabs' floats;
    /// empty for the event mode).
    state: Vec<i32>,
    /// Membrane potentials of the event mode: the chip's int16 (empty for the binned mode).
    state16: Aligned,
    /// Binned mode: neuron columns (`oy * fw + ox`) that received input in the current bin,
    /// and their marks.
    touched: Vec<u32>,
    touched_mark: Vec<bool>,
    /// Binned mode: where the spikes of each neuron column land after pooling (`None` where
    /// pooling cuts it off), so that firing divides nothing.
    pooled: Vec<Option<[u16; 2]>>,
    /// Event mode: the firing rule in int16.
    neuron: Neuron,
    /// Event mode: the windows' words of firing bits, kept between runs (no allocation per run).
    pending: Vec<Pending>,
    /// The plain potentials the neurons start with, `[oy][ox][lanes]` (see
    /// `QuantParams::initial_v_mem`); empty when they all start at 0.
    initial: Vec<i32>,
    /// Event mode: the core's output decimator, if it has one on.
    pub(crate) decimator: Option<Decimator>,
    /// The core's busiest millisecond so far.
    pub(crate) peak: Peak,
    /// Event mode with a leak: its last tick changed no potential and fired no neuron, and no
    /// input came since, so the next ticks would do the same (see `Cascade::tick`).
    pub(crate) quiet: bool,
}

/// A neuron address in a layer's output after pooling, with a spike count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Site {
    /// Channel.
    pub c: u16,
    /// Row.
    pub y: u16,
    /// Column.
    pub x: u16,
}

/// Which simulation a layer is built for: each keeps only the potentials and weights it uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arithmetic {
    /// The chip's int16 potentials (event mode).
    Chip,
    /// sinabs' unbounded sums, as exact integers (binned mode).
    Exact,
}

impl LayerRt {
    /// Builds the runtime layer from a discretized chip layer.
    pub fn new(l: &ChipLayer, arithmetic: Arithmetic) -> Result<Self, ModelError> {
        let q = l
            .quant
            .as_ref()
            .ok_or_else(|| ModelError::Invalid(format!("layer {} is not discretized: the chip runs integer networks", l.index)))?;
        let [c_in, _, _] = l.in_shape;
        let [kh, kw] = l.kernel;
        if kh > 16 || kw > 16 {
            return Err(ModelError::Invalid(format!("layer {}: kernel {kh}x{kw} is larger than the chip's 16x16", l.index)));
        }
        if l.stride.contains(&0) {
            return Err(ModelError::Invalid(format!("layer {}: stride {:?} must be at least 1", l.index, l.stride)));
        }
        if q.threshold <= 0 {
            return Err(ModelError::Invalid(format!("layer {}: threshold {} must be positive", l.index, q.threshold)));
        }
        let o = l.out_channels;
        if q.weights.len() != o * c_in * kh * kw {
            return Err(ModelError::Invalid(format!(
                "layer {}: {} weights, expected {o} x {c_in} x {kh} x {kw} (out x in x kernel)",
                l.index,
                q.weights.len()
            )));
        }
        let chip = arithmetic == Arithmetic::Chip;
        let lanes = if chip { stored_channels(o) } else { o };
        let mut weights = vec![0i32; c_in * kh * kw * lanes];
        for oc in 0..o {
            for c in 0..c_in {
                for ky in 0..kh {
                    for kx in 0..kw {
                        weights[((c * kh + ky) * kw + (kw - 1 - kx)) * lanes + oc] =
                            i32::from(q.weights[((oc * c_in + c) * kh + ky) * kw + kx]);
                    }
                }
            }
        }
        let [fh, fw] = l.conv_out;
        let rows =
            Fanout::new(l.in_shape[1], kh, l.stride[0], l.padding[0], fh, l.pool[0], l.out_shape[1], [fw * lanes, kw * lanes], false);
        let cols = Fanout::new(l.in_shape[2], kw, l.stride[1], l.padding[1], fw, l.pool[1], l.out_shape[2], [lanes, lanes], true);
        let neurons = lanes * fh * fw;
        let bias: Option<Vec<i32>> = q.bias.as_ref().map(|b| b.iter().map(|&v| i32::from(v)).collect());
        if let Some(b) = bias.as_ref().filter(|b| b.len() != o) {
            return Err(ModelError::Invalid(format!("layer {}: {} biases, expected one per output channel ({o})", l.index, b.len())));
        }
        let initial = initial_potentials(l, q, lanes)?;
        let windows = if chip { Windows::new(&rows, &cols, lanes, o, c_in, neurons, weights.len()) } else { None };
        // Biased potentials save the windows a clamp at `min_v_mem` per vector; where that
        // would not be exact, they clamp.
        let largest_rise = weights.iter().chain(bias.iter().flatten()).copied().max().unwrap_or(0);
        let highest_start = initial.iter().copied().max().unwrap_or(0);
        let biased = windows.is_some() && biasable(q.threshold, q.min_v_mem, l.reset, largest_rise, highest_start);
        let neuron = Neuron::new(q.threshold, q.min_v_mem, l.reset, biased);
        let weights16 = if chip { weights.iter().map(|&w| w as i16).collect() } else { Aligned::default() };
        let bias16 = match (&bias, chip) {
            // Biases are int16 (`QuantParams::bias`).
            (Some(b), true) => (0..lanes).map(|c| b.get(c).map_or(0, |&v| v as i16)).collect(),
            _ => Aligned::default(),
        };
        let mut layer = Self {
            index: l.index,
            in_shape: l.in_shape,
            out_channels: o,
            lanes,
            reach: Reach { rows, cols, channels: c_in, channel_stride: kh * kw * lanes },
            windows,
            pool: l.pool,
            conv_out: l.conv_out,
            out_shape: l.out_shape,
            weights16,
            weights: if chip { Vec::new() } else { weights },
            bias,
            bias16,
            threshold: q.threshold,
            min_v_mem: q.min_v_mem,
            state: if chip { Vec::new() } else { vec![0; neurons] },
            state16: Aligned::zeroed(if chip { neurons } else { 0 }),
            touched: Vec::new(),
            touched_mark: if chip { Vec::new() } else { vec![false; fh * fw] },
            pooled: Vec::new(),
            neuron,
            pending: Vec::new(),
            initial,
            decimator: None,
            peak: Peak::default(),
            quiet: false,
        };
        if !chip {
            let geometry = layer.geometry();
            layer.pooled = (0..fh * fw).map(|column| geometry.site(column, 0).map(|s| [s.y, s.x])).collect();
        }
        layer.reset_state();
        Ok(layer)
    }

    /// Puts the membrane potentials (and the output decimator's count) back where they start.
    pub fn reset_state(&mut self) {
        self.quiet = false;
        self.decimator.iter_mut().for_each(Decimator::reset);
        self.touched.clear();
        self.touched_mark.fill(false);
        if self.initial.is_empty() {
            self.state.fill(0);
            self.state16.fill(self.neuron.offset as i16);
            return;
        }
        let offset = self.neuron.offset;
        for (s, &v) in self.state16.iter_mut().zip(&self.initial) {
            *s = (v + offset).clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16;
        }
        for (s, &v) in self.state.iter_mut().zip(&self.initial) {
            *s = v;
        }
        // The binned mode visits only the neurons that received input in a bin, unless the layer
        // has a bias: one that starts at threshold fires in the first bin without any.
        let o = self.out_channels.max(1);
        for (column, start) in self.initial.chunks(o).enumerate() {
            if !self.touched_mark.is_empty() && start.iter().any(|&v| v >= self.threshold) {
                self.touched_mark[column] = true;
                self.touched.push(column as u32);
            }
        }
    }

    /// Bytes of neuron state the simulator holds for this layer.
    pub fn state_bytes(&self) -> usize {
        self.state.len() * std::mem::size_of::<i32>() + self.state16.len() * std::mem::size_of::<i16>()
    }

    /// sinabs accumulation: adds `count` x the weights of input `(c, y, x)` to the neurons under
    /// the kernel, without bounds (sinabs' state is a float). Returns synaptic operations: those
    /// of `count` events, as the chip adds the weights `count` times.
    /// Inlined: the binned mode compiles its bins for AVX2 when the CPU has it.
    #[inline(always)]
    pub fn accumulate(&mut self, c: usize, y: usize, x: usize, count: i32) -> u64 {
        let (o, fw) = (self.out_channels, self.conv_out[1]);
        let Some((rows, cols, wc)) = self.reach.taps(c, y, x) else { return 0 };
        let (state, weights, touched, mark) = (&mut self.state, &self.weights, &mut self.touched, &mut self.touched_mark);
        for r in rows {
            for k in cols {
                let (base, w) = ((r.state + k.state) as usize, wc + (r.weight + k.weight) as usize);
                let (v, w) = (&mut state[base..base + o], &weights[w..w + o]);
                // Most inputs come once a bin: an add, not a multiply (which took a fifth of
                // the binned mode's time).
                if count == 1 {
                    v.iter_mut().zip(w).for_each(|(v, &w)| *v += w);
                } else {
                    v.iter_mut().zip(w).for_each(|(v, &w)| *v += count * w);
                }
                let column = usize::from(r.output) * fw + usize::from(k.output);
                if !mark[column] {
                    mark[column] = true;
                    touched.push(column as u32);
                }
            }
        }
        (rows.len() * cols.len() * o) as u64 * u64::from(count.unsigned_abs())
    }

    /// The chip's response to one input event at `(c, y, x)`: every neuron under the kernel
    /// gets its weight added with int16 saturation and is clamped at `min_v_mem`; a neuron at or
    /// above threshold emits one spike and is reset. Spikes come in raster order (output row,
    /// column, channel): their pooled sites are appended to `fired` (those pooling cuts off are
    /// only counted). Returns the synaptic operations and the spikes.
    ///
    /// Inlined into a caller compiled for AVX2 (a whole batch of events, see `Cascade::run`),
    /// the vector code inlines too: checking the CPU and calling per event costs more than the
    /// event.
    ///
    /// # Safety
    /// The CPU has the instructions of `K`.
    #[inline(always)]
    pub(crate) unsafe fn event_with<K: Lanes>(&mut self, c: usize, y: usize, x: usize, fired: &mut Vec<Site>) -> (u64, u64) {
        let Some((rows, cols, wc)) = self.reach.taps(c, y, x) else { return (0, 0) };
        let scatter = Scatter { rows, cols, weights: &self.weights16[wc..], o: self.lanes, neuron: self.neuron };
        // SAFETY: the caller's promise.
        let spikes = unsafe { scatter.run::<K>(&mut self.state16, fired) };
        ((rows.len() * cols.len() * self.out_channels) as u64, spikes)
    }

    /// sinabs semantics for every neuron (one time bin): add the bias, then
    /// `n = v > 0 ? v / thr : 0`, `v -= n * thr` (or, resetting to zero, `v = 0` where `n > 0`:
    /// sinabs' `MembraneReset`), clamp at `min_v_mem`. Calls `spike(site, n)`.
    /// Returns whether any neuron's potential changed: a bin without input that changes none
    /// and fires none would repeat itself until the next input.
    /// Inlined: the binned mode compiles its bins for AVX2 when the CPU has it.
    #[inline(always)]
    pub fn fire_binned(&mut self, mut spike: impl FnMut(Option<Site>, i32)) -> bool {
        let o = self.out_channels.max(1);
        let rule = BinRule { threshold: self.threshold, min: self.min_v_mem, reset: self.neuron.reset };
        let pooled = &self.pooled;
        let site = |column: usize, oc: usize| pooled[column].map(|[y, x]| Site { c: oc as u16, y, x });
        let Some(bias) = &self.bias else {
            // Without a bias only neurons that received input this bin can change: visit those
            // (in first-touch order, which is deterministic) instead of the whole layer.
            let mut changed = false;
            for &column in &self.touched {
                let column = column as usize;
                self.touched_mark[column] = false;
                let v = &mut self.state[column * o..][..o];
                changed |= rule.settle(v, None, |oc, n| spike(site(column, oc), n));
            }
            self.touched.clear();
            return changed;
        };
        let mut changed = false;
        for (column, v) in self.state.chunks_exact_mut(o).enumerate() {
            changed |= rule.settle(v, Some(bias), |oc, n| spike(site(column, oc), n));
        }
        changed
    }

    /// Adds the bias once to every neuron of the event mode (one slow-clock tick of the chip's
    /// leak), saturating at int16, then applies the chip's firing rule to each, with the
    /// fastest of `kernel`'s instructions (one the CPU has): a tick touches every neuron of
    /// every biased layer, and at a tick per millisecond, neuron by neuron, that cost more than
    /// the events. Calls `spike` in neuron order; returns the spikes and whether any neuron's
    /// potential changed: a tick that changes none and fires none would repeat itself until
    /// the next input.
    pub(crate) fn leak_tick(&mut self, kernel: Kernel, spike: impl FnMut(Option<Site>)) -> (u64, bool) {
        match kernel {
            // SAFETY: the CPU has AVX-512 (and AVX2): `kernel` is one it has.
            #[cfg(x86_kernels)]
            Kernel::Avx512 => unsafe { self.leak_avx512(spike) },
            // SAFETY: the CPU has AVX2: `kernel` is one it has.
            #[cfg(x86_kernels)]
            Kernel::Avx2 => unsafe { self.leak_avx2(spike) },
            // SAFETY: plain Rust.
            _ => unsafe { self.leak_with::<Portable>(spike) },
        }
    }

    #[cfg(x86_kernels)]
    #[target_feature(enable = "avx2,popcnt,bmi1")]
    fn leak_avx2(&mut self, spike: impl FnMut(Option<Site>)) -> (u64, bool) {
        // SAFETY: this function only runs with AVX2.
        unsafe { self.leak_with::<Avx2>(spike) }
    }

    #[cfg(x86_kernels)]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,popcnt,bmi1")]
    fn leak_avx512(&mut self, spike: impl FnMut(Option<Site>)) -> (u64, bool) {
        // SAFETY: this function only runs with AVX-512.
        unsafe { self.leak_with::<Avx512>(spike) }
    }

    /// [`Self::leak_tick`] with kernel `K`: the bias is one more event whose weights reach
    /// every neuron column, added in two passes (see [`Lanes`]); the stored channels past the
    /// layer's have a bias of 0 and stay as they are.
    ///
    /// # Safety
    /// The CPU has the instructions of `K`.
    #[inline(always)]
    unsafe fn leak_with<K: Lanes>(&mut self, mut spike: impl FnMut(Option<Site>)) -> (u64, bool) {
        let (bias, _) = self.bias16.as_chunks::<16>();
        if bias.is_empty() {
            return (0, false);
        }
        let (n, geometry) = (self.neuron, self.geometry());
        let (state, _) = self.state16.as_chunks_mut::<16>();
        let (mut spikes, mut changed) = (0, false);
        for (column, v) in state.chunks_exact_mut(bias.len()).enumerate() {
            // SAFETY (all calls): the caller's promise.
            let mut any = unsafe { K::none() };
            for (v, b) in v.iter_mut().zip(bias) {
                let was = *v;
                any = unsafe { K::update(v, b, n, any) };
                changed |= was != *v;
            }
            if !unsafe { K::fired(any, n) } {
                continue;
            }
            for (j, v) in v.iter_mut().enumerate() {
                let mut bits = K::unlane(u64::from(unsafe { K::fire(v, n) }));
                spikes += u64::from(bits.count_ones());
                while bits != 0 {
                    spike(geometry.site(column, j * 16 + bits.trailing_zeros() as usize));
                    bits &= bits - 1;
                }
            }
        }
        (spikes, changed)
    }

    /// The layer as windows, for the event mode; `None` if it is not of the common shape.
    /// `seen`: its counters so far (see [`Windows::with`]).
    pub(crate) fn window(&mut self, seen: &LayerCounters) -> Option<AnyWindow<'_>> {
        self.windows.as_ref()?.with(&mut self.state16, &self.weights16, self.neuron, (seen.synaptic_ops, seen.spikes), &mut self.pending)
    }

    /// Whether the layer has a bias (a leak on the chip).
    pub fn has_bias(&self) -> bool {
        self.bias.is_some()
    }

    fn geometry(&self) -> PoolGeometry {
        PoolGeometry { fw: self.conv_out[1], pool: self.pool, out: [self.out_shape[1], self.out_shape[2]] }
    }
}

/// Where a neuron's spike lands after sum pooling.
#[derive(Clone, Copy)]
struct PoolGeometry {
    fw: usize,
    pool: [usize; 2],
    out: [usize; 2],
}

impl PoolGeometry {
    /// The pooled site of neuron column `pix` (row-major over the conv output), channel `oc`;
    /// `None` for the rows/columns the pooling cuts off.
    #[inline]
    fn site(self, pix: usize, oc: usize) -> Option<Site> {
        let (py, px) = ((pix / self.fw) / self.pool[0], (pix % self.fw) / self.pool[1]);
        (py < self.out[0] && px < self.out[1]).then_some(Site { c: oc as u16, y: py as u16, x: px as u16 })
    }
}

/// sinabs' firing rule of the binned mode, on plain potentials.
#[derive(Clone, Copy)]
struct BinRule {
    threshold: i32,
    min: i32,
    reset: Reset,
}

impl BinRule {
    /// One bin's end for the potentials `v` of a neuron column: adds `bias` (one per channel),
    /// then `n = v / threshold` spikes (for `v >= threshold`, `spike(channel, n)`), the reset,
    /// and the clamp at `min`. Returns whether any potential changed. A column where none
    /// reaches threshold (most) is done in vector steps with no branch per neuron.
    #[inline(always)]
    fn settle(self, v: &mut [i32], bias: Option<&[i32]>, mut spike: impl FnMut(usize, i32)) -> bool {
        let Self { threshold, min, reset } = self;
        let biased = |i: usize, v: i32| bias.map_or(v, |b| v + b[i]);
        let fires = v.iter().enumerate().fold(false, |any, (i, &v)| any | (biased(i, v) >= threshold));
        if !fires {
            let mut differs = 0;
            for (i, v) in v.iter_mut().enumerate() {
                let after = biased(i, *v).max(min);
                differs |= after ^ *v;
                *v = after;
            }
            return differs != 0;
        }
        let mut changed = false;
        for (i, v) in v.iter_mut().enumerate() {
            let was = *v;
            *v = biased(i, *v);
            if *v >= threshold {
                let n = *v / threshold;
                *v = match reset {
                    Reset::Subtract => *v - n * threshold,
                    Reset::Zero => 0,
                };
                spike(i, n);
            }
            *v = (*v).max(min);
            changed |= *v != was;
        }
        changed
    }
}

/// One kernel tap along one axis: an input row (or column) reaches output row `oy` through
/// kernel row `ky`; an input's taps go by ascending output. Precomputed per input coordinate,
/// so the hot path does no division.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tap {
    /// State offset of the output row (`oy * fw * o`; for columns `ox * o`).
    pub state: u32,
    /// Weight offset of the kernel row (`ky * kw * o`; for columns, whose weights are stored
    /// reversed, `(kw - 1 - kx) * o`).
    pub weight: u32,
    /// Output row (or column).
    pub output: u16,
    /// Output row after pooling, or [`CUT`] when pooling cuts it off.
    pub pooled: u16,
}

/// Which neurons and weights each input of a layer reaches.
#[derive(Clone, Debug)]
struct Reach {
    /// Where an input row reaches: output rows, kernel rows, pooled rows.
    rows: Fanout,
    /// Where an input column reaches.
    cols: Fanout,
    /// Input channels.
    channels: usize,
    /// Weights per input channel (`kh * kw * out_channels`).
    channel_stride: usize,
}

impl Reach {
    /// The kernel taps input `(c, y, x)` reaches, rows and columns (empty when the input lies
    /// outside the layer's input), and the offset of channel `c`'s weights; `None` past the last
    /// channel. [`Simulator::new`](crate::Simulator::new) rules both out for connected layers.
    #[inline]
    fn taps(&self, c: usize, y: usize, x: usize) -> Option<(&[Tap], &[Tap], usize)> {
        (c < self.channels).then(|| (self.rows.of(y), self.cols.of(x), c * self.channel_stride))
    }
}

/// The channels the event mode stores per neuron column for `o` output channels: the next
/// channel count the windows run (16, 32, 64, 128 or 256), or past 256 the next multiple of 16.
/// A layer of 11 classes (the gesture network's output) or of 256 channels otherwise ran a
/// general path at 3-5 times the cost per synaptic operation; padded, it runs as whole vectors
/// and costs a few lanes that never fire.
fn stored_channels(o: usize) -> usize {
    match o {
        0..=256 => o.max(1).next_power_of_two().max(16),
        _ => o.next_multiple_of(16),
    }
}

/// Whether a layer's potentials can be stored biased (see [`Neuron`]): they never reach int16's
/// top, where the chip saturates, and 0 is not below `min_v_mem`.
///
/// Between events every potential is at most `threshold - 1`. It starts at 0 (`min_v_mem <= 0`
/// < threshold), or at most at `highest_start`, which must be below threshold too (see
/// [`initial_potentials`]). An event (or a leak tick) raises it by at most `largest_rise`, the
/// largest weight or bias; a neuron that then reaches threshold resets to `max(0, min_v_mem)`,
/// or subtracts the threshold and lands at most at `largest_rise - 1`, below threshold when
/// `largest_rise <= threshold`. So no sum exceeds `threshold - 1 + largest_rise`, which must
/// fit in int16.
fn biasable(threshold: i32, min_v_mem: i32, reset: Reset, largest_rise: i32, highest_start: i32) -> bool {
    if highest_start >= threshold {
        return false;
    }
    let rise = largest_rise.max(0);
    let settles = match reset {
        Reset::Subtract => rise <= threshold,
        Reset::Zero => true,
    };
    threshold >= 1 && min_v_mem <= 0 && settles && threshold - 1 + rise <= i32::from(i16::MAX)
}

/// The plain potentials the neurons of `l` start with, `[oy][ox][lanes]`, from its
/// `initial_v_mem` (`[c][y][x]`, as sinabs holds them), each kept within `min_v_mem` and int16;
/// empty for none.
fn initial_potentials(l: &ChipLayer, q: &QuantParams, lanes: usize) -> Result<Vec<i32>, ModelError> {
    let Some(v) = &q.initial_v_mem else { return Ok(Vec::new()) };
    let ([fh, fw], o) = (l.conv_out, l.out_channels);
    if v.len() != o * fh * fw {
        return Err(ModelError::Invalid(format!(
            "layer {}: {} initial potentials, expected one per neuron ({o} x {fh} x {fw})",
            l.index,
            v.len()
        )));
    }
    let mut initial = vec![0; fh * fw * lanes];
    for (i, &start) in v.iter().enumerate() {
        let (c, column) = (i / (fh * fw), i % (fh * fw));
        initial[column * lanes + c] = i32::from(start).max(q.min_v_mem);
    }
    Ok(initial)
}

/// [`Tap::pooled`] of rows and columns past the pooled map.
pub(crate) const CUT: u16 = u16::MAX;

/// The taps of every input coordinate along one axis.
#[derive(Clone, Debug)]
pub(crate) struct Fanout {
    /// `taps[starts[i]..starts[i + 1]]` belong to input coordinate `i`.
    starts: Vec<u32>,
    taps: Vec<Tap>,
}

impl Fanout {
    /// Input coordinate `i` reaches output `n / stride` for every kernel index `k` with
    /// `n = i + padding - k >= 0` divisible by the stride and inside the output; the outputs
    /// ascend. `reversed`: the weights are stored with `k` reversed.
    #[allow(clippy::too_many_arguments)]
    fn new(
        input: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        out: usize,
        pool: usize,
        pooled: usize,
        step: [usize; 2],
        reversed: bool,
    ) -> Self {
        let mut starts = vec![0u32];
        let mut taps = Vec::new();
        for i in 0..input {
            for k in (0..kernel).rev() {
                let Some(n) = (i + padding).checked_sub(k) else { continue };
                if n % stride != 0 || n / stride >= out {
                    continue;
                }
                let o = n / stride;
                let p = o / pool.max(1);
                taps.push(Tap {
                    state: (o * step[0]) as u32,
                    weight: ((if reversed { kernel - 1 - k } else { k }) * step[1]) as u32,
                    output: o as u16,
                    pooled: if p < pooled { p as u16 } else { CUT },
                });
            }
            starts.push(taps.len() as u32);
        }
        Self { starts, taps }
    }

    /// The input coordinates.
    pub(crate) fn len(&self) -> usize {
        self.starts.len() - 1
    }

    /// The taps of input coordinate `i` (none past the input).
    #[inline]
    pub(crate) fn of(&self, i: usize) -> &[Tap] {
        match (self.starts.get(i), self.starts.get(i + 1)) {
            (Some(&a), Some(&b)) => &self.taps[a as usize..b as usize],
            _ => &[],
        }
    }
}

/// One input event's scatter over the neurons under the kernel.
struct Scatter<'a> {
    rows: &'a [Tap],
    cols: &'a [Tap],
    /// The weights of the event's input channel, `[ky][kw - 1 - kx][o]`.
    weights: &'a [i16],
    o: usize,
    neuron: Neuron,
}

impl Scatter<'_> {
    /// Two passes. The first adds the weights to every neuron under the kernel and notes, without
    /// branching, the kernel rows with a neuron at threshold. The second resets those neurons
    /// and appends their sites to `fired` in raster order (row, column, channel); returns the
    /// spikes. Each neuron is touched once per event, so firing after all updates is the same
    /// as firing after each.
    ///
    /// # Safety
    /// The CPU has the instructions of `K`.
    #[inline(always)]
    unsafe fn run<K: Lanes>(&self, state: &mut [i16], fired: &mut Vec<Site>) -> u64 {
        // SAFETY (both calls): the caller's promise.
        unsafe {
            let firing_rows = self.update_columns::<K>(state);
            if firing_rows == 0 { 0 } else { self.fire_columns::<K>(state, firing_rows, fired) }
        }
    }

    /// First pass, column by column, for any channel count and stride. Returns a bit per
    /// kernel row with a neuron at threshold.
    ///
    /// # Safety
    /// As [`Self::run`].
    #[inline(always)]
    unsafe fn update_columns<K: Lanes>(&self, state: &mut [i16]) -> u32 {
        let (o, n) = (self.o, self.neuron);
        let mut firing = 0;
        for (ri, r) in self.rows.iter().enumerate() {
            // SAFETY: the caller's promise.
            let mut any = unsafe { K::none() };
            let mut tail = false;
            for k in self.cols {
                let base = (r.state + k.state) as usize;
                let w = (r.weight + k.weight) as usize;
                let (v, v_rest) = state[base..base + o].as_chunks_mut::<16>();
                let (w, w_rest) = self.weights[w..w + o].as_chunks::<16>();
                for (v, w) in v.iter_mut().zip(w) {
                    // SAFETY: the caller's promise.
                    any = unsafe { K::update(v, w, n, any) };
                }
                tail |= update_tail(v_rest, w_rest, n) > n.below;
            }
            // SAFETY: the caller's promise.
            firing |= u32::from(tail || unsafe { K::fired(any, n) }) << ri;
        }
        firing
    }

    /// Second pass, column by column: resets the neurons at threshold of the `firing` kernel
    /// rows and appends their sites in raster order.
    ///
    /// # Safety
    /// As [`Self::run`].
    #[inline(always)]
    unsafe fn fire_columns<K: Lanes>(&self, state: &mut [i16], mut firing: u32, fired: &mut Vec<Site>) -> u64 {
        let (n, o) = (self.neuron, self.o);
        let mut spikes = 0;
        while firing != 0 {
            let r = self.rows[firing.trailing_zeros() as usize];
            firing &= firing - 1;
            for k in self.cols {
                let base = (r.state + k.state) as usize;
                let (chunks, tail) = state[base..base + o].as_chunks_mut::<16>();
                let cut = r.pooled == CUT || k.pooled == CUT;
                let mut emit = |mut bits: u16, first_channel: usize| {
                    spikes += u64::from(bits.count_ones());
                    while bits != 0 && !cut {
                        let c = (first_channel + bits.trailing_zeros() as usize) as u16;
                        bits &= bits - 1;
                        fired.push(Site { c, y: r.pooled, x: k.pooled });
                    }
                };
                for (j, v) in chunks.iter_mut().enumerate() {
                    // Put in neuron order, the 16 neurons' bits are the low 16.
                    // SAFETY: the caller's promise.
                    emit(unsafe { K::unlane(u64::from(K::fire(v, n))) } as u16, j * 16);
                }
                emit(fire_tail(tail, n), chunks.len() * 16);
            }
        }
        spikes
    }
}
