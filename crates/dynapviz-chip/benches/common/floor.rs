//! The floor under the event mode: the synaptic adds alone. Each layer gets the input events
//! the simulator gave it, and adds its weights to the neurons each reaches (int16, saturating,
//! as many lanes at once as the CPU has) and stores them; nothing else: no threshold, no
//! reset, no spikes, no queues, no time. The event mode does all of this and more, so its speed
//! as a fraction of the floor's says how much a rework of its kernels could still give.

use dynapviz_chip::Spike;
use dynapviz_model::Network;

/// One layer: its input events and where each lands.
struct Layer {
    /// Output channels stored per neuron column: the next of 16, 32, 64, 128, 256.
    lanes: usize,
    /// Per input row: (offset of the output row's neurons, offset of the kernel row's weights).
    rows: Vec<Vec<(usize, usize)>>,
    /// Per input column: (offset of the first output column's neurons, offset of its kernel
    /// column's weights, output columns reached).
    cols: Vec<(usize, usize, usize)>,
    /// `[input channel][ky][kw - 1 - kx][lane]`.
    weights: Vec<i16>,
    per_channel: usize,
    state: Vec<i16>,
    /// (channel, row, column).
    events: Vec<(u16, u16, u16)>,
}

/// Every layer's input of one run, ready to be added.
pub struct Floor {
    layers: Vec<Layer>,
}

impl Floor {
    /// The floor of `net` for the spikes of a run that monitored the DVS layer and every layer
    /// but the last (`spikes[i]` reach layer `i`); `None` when the network is not a chain of
    /// layers each feeding the next through its own pooling, with kernels that reach a run of
    /// columns (the only kind this bench takes).
    pub fn new(net: &Network, spikes: &[Spike]) -> Option<Self> {
        let chain = net.layers.iter().enumerate().all(|(i, l)| {
            let next: Vec<usize> = net.layers.get(i + 1).map(|next| next.index).into_iter().collect();
            l.destinations == next && (0..l.destinations.len()).all(|d| l.pool_to(d) == l.pool)
        });
        if !chain {
            return None;
        }
        let mut layers: Vec<Layer> = net.layers.iter().map(Layer::new).collect::<Option<_>>()?;
        for s in spikes {
            layers.get_mut(usize::from(s.layer))?.events.push((s.c, s.y, s.x));
        }
        Some(Self { layers })
    }

    /// Adds every layer's input, layer by layer; returns the synaptic operations (those of
    /// the layer's own output channels, as the simulator counts them) and the seconds each
    /// layer took.
    pub fn run(&mut self, out_channels: &[usize]) -> (u64, Vec<f64>) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512bw") {
            // SAFETY: the CPU has AVX-512 BW.
            return unsafe { self.run_avx512(out_channels) };
        }
        self.run_with::<false>(out_channels)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2")]
    fn run_avx512(&mut self, out_channels: &[usize]) -> (u64, Vec<f64>) {
        self.run_with::<true>(out_channels)
    }

    /// [`Self::run`], with AVX-512 BW instructions when `AVX512` (the CPU has them: the caller
    /// checked once).
    #[inline(always)]
    fn run_with<const AVX512: bool>(&mut self, out_channels: &[usize]) -> (u64, Vec<f64>) {
        let (mut ops, mut seconds) = (0, Vec::new());
        for (l, &o) in self.layers.iter_mut().zip(out_channels) {
            let t = std::time::Instant::now();
            let landed = match l.lanes {
                16 => l.add_all::<16, AVX512>(),
                32 => l.add_all::<32, AVX512>(),
                64 => l.add_all::<64, AVX512>(),
                128 => l.add_all::<128, AVX512>(),
                _ => l.add_all::<256, AVX512>(),
            };
            ops += landed * o as u64;
            seconds.push(t.elapsed().as_secs_f64());
        }
        (ops, seconds)
    }
}

impl Layer {
    fn new(l: &dynapviz_model::network::ChipLayer) -> Option<Self> {
        let lanes = [16, 32, 64, 128, 256].into_iter().find(|&n| n >= l.out_channels)?;
        let [c, h, w] = l.in_shape;
        let ([kh, kw], [sy, sx], [py, px], [oh, ow]) = (l.kernel, l.stride, l.padding, l.conv_out);
        // The (output, kernel index) pairs an input at `i` reaches: `o * s + k = i + p`.
        let axis = |size: usize, k: usize, s: usize, p: usize, out: usize| -> Vec<Vec<(usize, usize)>> {
            (0..size)
                .map(|i| {
                    (0..k)
                        .rev()
                        .filter_map(|kk| {
                            let at = (i + p).checked_sub(kk)?;
                            (at % s == 0 && at / s < out).then_some((at / s, kk))
                        })
                        .collect()
                })
                .collect()
        };
        let rows =
            axis(h, kh, sy, py, oh).into_iter().map(|r| r.into_iter().map(|(o, k)| (o * ow * lanes, k * kw * lanes)).collect()).collect();
        // Kernel columns are stored reversed, so that the outputs an input reaches along a row
        // and their weights are each one run (which needs stride 1, or one output per input).
        let mut cols = Vec::new();
        for reached in axis(w, kw, sx, px, ow) {
            let run = reached.windows(2).all(|p| p[1].0 == p[0].0 + 1 && p[0].1 == p[1].1 + 1);
            if !run {
                return None;
            }
            cols.push(reached.first().map_or((0, 0, 0), |&(o, k)| (o * lanes, (kw - 1 - k) * lanes, reached.len())));
        }
        let q = l.quant.as_ref()?;
        let per_channel = kh * kw * lanes;
        let mut weights = vec![0i16; c * per_channel];
        for (i, &wt) in q.weights.iter().enumerate() {
            // `q.weights` is [out][in][ky][kx].
            let (kx, ky, ci, o) = (i % kw, i / kw % kh, i / (kw * kh) % c, i / (kw * kh * c));
            weights[ci * per_channel + (ky * kw + kw - 1 - kx) * lanes + o] = i16::from(wt);
        }
        Some(Self { lanes, rows, cols, weights, per_channel, state: vec![0; oh * ow * lanes], events: Vec::new() })
    }

    /// Adds the weights of every input event; returns the neuron columns reached.
    #[inline(always)]
    fn add_all<const L: usize, const AVX512: bool>(&mut self) -> u64 {
        let mut landed = 0;
        for &(c, y, x) in &self.events {
            let (col, kx, len) = self.cols[usize::from(x)];
            let base = usize::from(c) * self.per_channel + kx;
            for &(row, ky) in &self.rows[usize::from(y)] {
                let (s, w) = (row + col, base + ky);
                add::<AVX512>(&mut self.state[s..s + len * L], &self.weights[w..w + len * L]);
                landed += len as u64;
            }
        }
        landed
    }
}

/// `v += w`, saturating, lane by lane: with `AVX512` (the CPU has AVX-512 BW) 32 lanes at once
/// (the compiler left some runs scalar), then 16.
#[inline(always)]
fn add<const AVX512: bool>(v: &mut [i16], w: &[i16]) {
    #[cfg(target_arch = "x86_64")]
    if AVX512 && v.len() == w.len() && v.len().is_multiple_of(16) {
        use std::arch::x86_64::*;
        let (n, v, w) = (v.len(), v.as_mut_ptr(), w.as_ptr());
        let mut i = 0;
        // SAFETY: the CPU has AVX-512 BW (the caller's `AVX512`); every access is within `n`
        // lanes of both.
        unsafe {
            while i + 32 <= n {
                let sum = _mm512_adds_epi16(_mm512_loadu_si512(v.add(i).cast()), _mm512_loadu_si512(w.add(i).cast()));
                _mm512_storeu_si512(v.add(i).cast(), sum);
                i += 32;
            }
            if i < n {
                let sum = _mm256_adds_epi16(_mm256_loadu_si256(v.add(i).cast()), _mm256_loadu_si256(w.add(i).cast()));
                _mm256_storeu_si256(v.add(i).cast(), sum);
            }
        }
        return;
    }
    for (v, &w) in v.iter_mut().zip(w) {
        *v = v.saturating_add(w);
    }
}
