//! The arithmetic of the event mode on 16 or 32 neurons at once, with AVX-512, AVX2 or in
//! plain Rust, the firing rule it applies, and the run-time choice of the kernel (which the
//! binned mode follows too, up to AVX2).

use dynapviz_model::network::Reset;

use crate::layer::Site;
use crate::window::Window;

/// The instructions the event mode's kernel is compiled for, from the most portable up. All
/// give identical results; [`crate::Config::kernel`] caps the choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kernel {
    /// Plain Rust, for any CPU.
    Portable,
    /// 16 neurons per instruction (x86-64 with AVX2, POPCNT and BMI1).
    Avx2,
    /// 32 neurons per instruction, firing found as mask bits (x86-64 with AVX-512 F, BW and VL
    /// besides the above).
    Avx512,
}

impl Kernel {
    /// The fastest kernel this CPU runs, up to `self`.
    pub fn on_this_cpu(self) -> Kernel {
        #[cfg(x86_kernels)]
        {
            use std::arch::is_x86_feature_detected as has;
            let avx2 = has!("avx2") && has!("popcnt") && has!("bmi1");
            if self >= Kernel::Avx512 && avx2 && has!("avx512f") && has!("avx512bw") && has!("avx512vl") {
                return Kernel::Avx512;
            }
            if self >= Kernel::Avx2 && avx2 {
                return Kernel::Avx2;
            }
        }
        Kernel::Portable
    }
}

/// The firing rule of one layer, in the chip's int16, on potentials as the layer stores them:
/// plain, or biased by `offset` so that `min_v_mem` is stored as `i16::MIN`. Biased, the
/// saturating add clamps at `min_v_mem` by itself, which saves an instruction per vector on the
/// hot path; that is exact only for a layer whose potentials never reach int16's top (see
/// [`crate::layer`]), where the chip's own saturation would act.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Neuron {
    pub threshold: i32,
    /// The threshold as int16 (only used when a neuron fires, which needs it to be one), for
    /// the vector kernels.
    #[cfg_attr(not(x86_kernels), expect(dead_code, reason = "only the x86 kernels subtract in int16"))]
    pub threshold16: i16,
    /// `threshold - 1`, stored: a potential above it fires (never, for thresholds past int16).
    pub below: i16,
    /// `min_v_mem`, stored (`i16::MIN` when biased).
    pub min: i16,
    /// The potential after a reset to zero, stored.
    pub rest: i16,
    pub reset: Reset,
    /// Stored minus plain potential.
    pub offset: i32,
}

impl Neuron {
    /// The rule for `threshold` (positive), `min_v_mem` and `reset`, on plain or biased
    /// potentials.
    pub fn new(threshold: i32, min_v_mem: i32, reset: Reset, biased: bool) -> Self {
        let (lowest, highest) = (i32::from(i16::MIN), i32::from(i16::MAX));
        let min = min_v_mem.clamp(lowest, highest);
        let offset = if biased { lowest - min } else { 0 };
        // Biased, the layer's check guarantees `min <= threshold - 1 <= i16::MAX`, so these
        // stay in int16; plain, the offset is 0.
        let stored = |v: i32| (v + offset).clamp(lowest, highest) as i16;
        Self {
            threshold,
            threshold16: threshold.min(highest) as i16,
            below: stored((threshold - 1).min(highest)),
            min: stored(min),
            rest: stored(0.max(min)),
            reset,
            offset,
        }
    }

    /// Whether the potentials are stored so that adding needs no clamp at `min_v_mem`.
    pub fn floor_is_saturation(self) -> bool {
        self.min == i16::MIN
    }

    /// The stored potential after a spike from stored `v` (at or above threshold): reset, then
    /// clamped.
    #[inline(always)]
    pub fn after_spike(self, v: i32) -> i16 {
        match self.reset {
            Reset::Subtract => (v - self.threshold).max(i32::from(self.min)) as i16,
            Reset::Zero => self.rest,
        }
    }
}

/// The arithmetic on 16 neurons at once (32 for the `2` methods where the CPU has 32 lanes), in
/// two ways. Two passes: "at threshold" is folded into an accumulator that stays in a register
/// over a kernel row, and which neurons fire is worked out again only for the rows where one
/// does. One pass ([`Self::step`]): add, compare and reset each vector at once, for layers
/// where most rows fire.
pub(crate) trait Lanes {
    /// The highest potential so far: whether some neuron reached threshold, found with one
    /// compare per row instead of one per vector.
    type Any: Copy;
    /// # Safety
    /// The CPU has the instructions of the implementation (for all methods).
    unsafe fn none() -> Self::Any;
    /// Adds the weights with int16 saturation, clamps at `min_v_mem` and folds the potentials
    /// into `any`.
    unsafe fn update(v: &mut [i16; 16], w: &[i16; 16], n: Neuron, any: Self::Any) -> Self::Any;
    /// [`Self::update`] for potentials whose floor is the saturation
    /// ([`Neuron::floor_is_saturation`]): no clamp.
    unsafe fn add(v: &mut [i16; 16], w: &[i16; 16], any: Self::Any) -> Self::Any;
    /// Whether a potential folded into `any` is at threshold.
    unsafe fn fired(any: Self::Any, n: Neuron) -> bool;
    /// Resets the neurons at threshold; returns a bit per neuron that fired, in lane order
    /// (see [`Self::unlane`]).
    unsafe fn fire(v: &mut [i16; 16], n: Neuron) -> u32;
    /// [`Self::fire`] on 32 consecutive neurons, in lane order.
    unsafe fn fire2(v: &mut [[i16; 16]; 2], n: Neuron) -> u32;
    /// [`Self::add`] and [`Self::fire`] in one pass, for potentials whose floor is the
    /// saturation: returns a bit per neuron that fired, in lane order (see [`Self::unlane`]).
    /// Each neuron is touched once per event, so firing right after its add is the same as
    /// firing after all adds.
    unsafe fn step(v: &mut [i16; 16], w: &[i16; 16], n: Neuron) -> u32;
    /// [`Self::step`] on 32 consecutive neurons, in lane order.
    unsafe fn step2(v: &mut [[i16; 16]; 2], w: &[[i16; 16]; 2], n: Neuron) -> u32;

    /// Neuron order (bit `i` of each half is neuron `i` of its 32) from the lane order of two
    /// halves made by [`Self::step`], [`Self::fire`] or their 32-neuron forms. Where that order
    /// is not the neurons' own, putting it right costs a few scalar instructions per word whose
    /// sites are written (each kept word of a deferred layer, each word of a firing row or
    /// block otherwise), instead of a lane-crossing shuffle per 32 neurons stepped.
    #[inline(always)]
    fn unlane(bits: u64) -> u64 {
        bits
    }

    /// [`Self::add`] on 32 consecutive neurons: one instruction each where the CPU has 32
    /// lanes.
    #[inline(always)]
    unsafe fn add2(v: &mut [[i16; 16]; 2], w: &[[i16; 16]; 2], any: Self::Any) -> Self::Any {
        let ([v0, v1], [w0, w1]) = (v, w);
        // SAFETY: the caller's promise.
        unsafe { Self::add(v1, w1, Self::add(v0, w0, any)) }
    }

    /// [`Self::update`] on 32 consecutive neurons, as [`Self::add2`].
    #[inline(always)]
    unsafe fn update2(v: &mut [[i16; 16]; 2], w: &[[i16; 16]; 2], n: Neuron, any: Self::Any) -> Self::Any {
        let ([v0, v1], [w0, w1]) = (v, w);
        // SAFETY: the caller's promise.
        unsafe { Self::update(v1, w1, n, Self::update(v0, w0, n, any)) }
    }

    /// [`Window::events`] with this kernel, in a function of its own rather than inlined
    /// into the loop over the layer's runs: inlined there (measured when one loop held every
    /// layer, before [`crate::cascade`] gave each kind of layer its own), the deferred loop
    /// shared its registers with everything else and reloaded its constants from the stack on
    /// every row.
    ///
    /// # Safety
    /// As [`Window::events`].
    unsafe fn deferred<const N: usize>(w: &mut Window<'_, N>, sites: &[Site], fired: &mut Vec<Site>) -> (u64, u64)
    where
        Self: Sized;
}

/// Plain Rust, for any CPU (and for channel counts that are not a multiple of 16).
pub(crate) struct Portable;

impl Lanes for Portable {
    type Any = i16;

    #[inline(never)]
    unsafe fn deferred<const N: usize>(w: &mut Window<'_, N>, sites: &[Site], fired: &mut Vec<Site>) -> (u64, u64) {
        // SAFETY: the caller's promise; the portable kernel needs nothing of the CPU.
        unsafe { w.events::<Self>(sites, fired) }
    }

    #[inline(always)]
    unsafe fn none() -> i16 {
        i16::MIN
    }

    #[inline(always)]
    unsafe fn update(v: &mut [i16; 16], w: &[i16; 16], n: Neuron, any: i16) -> i16 {
        any.max(update_tail(v, w, n))
    }

    #[inline(always)]
    unsafe fn add(v: &mut [i16; 16], w: &[i16; 16], any: i16) -> i16 {
        let mut highest = any;
        for (v, &w) in v.iter_mut().zip(w) {
            *v = v.saturating_add(w);
            highest = highest.max(*v);
        }
        highest
    }

    #[inline(always)]
    unsafe fn fired(any: i16, n: Neuron) -> bool {
        any > n.below
    }

    #[inline(always)]
    unsafe fn fire(v: &mut [i16; 16], n: Neuron) -> u32 {
        u32::from(fire_tail(v, n))
    }

    #[inline(always)]
    unsafe fn fire2(v: &mut [[i16; 16]; 2], n: Neuron) -> u32 {
        let [a, b] = v;
        u32::from(fire_tail(a, n)) | u32::from(fire_tail(b, n)) << 16
    }

    #[inline(always)]
    unsafe fn step(v: &mut [i16; 16], w: &[i16; 16], n: Neuron) -> u32 {
        let mut fired = 0;
        for (i, (v, &w)) in v.iter_mut().zip(w).enumerate() {
            let x = v.saturating_add(w);
            let at = x > n.below;
            *v = if at { n.after_spike(i32::from(x)) } else { x };
            fired |= u32::from(at) << i;
        }
        fired
    }

    #[inline(always)]
    unsafe fn step2(v: &mut [[i16; 16]; 2], w: &[[i16; 16]; 2], n: Neuron) -> u32 {
        let ([a, b], [wa, wb]) = (v, w);
        // SAFETY: plain Rust.
        unsafe { Self::step(a, wa, n) | Self::step(b, wb, n) << 16 }
    }
}

/// Adds the weights of up to 16 neurons with int16 saturation and clamps at `min_v_mem`;
/// returns the highest potential (`i16::MIN` for none), as [`Lanes::update`] folds it.
#[inline(always)]
pub(crate) fn update_tail(v: &mut [i16], w: &[i16], n: Neuron) -> i16 {
    let mut highest = i16::MIN;
    for (v, &w) in v.iter_mut().zip(w) {
        *v = v.saturating_add(w).max(n.min);
        highest = highest.max(*v);
    }
    highest
}

/// Resets the neurons at threshold among up to 16; returns a bit per neuron that fired.
#[inline(always)]
pub(crate) fn fire_tail(v: &mut [i16], n: Neuron) -> u16 {
    let mut fired = 0;
    for (i, v) in v.iter_mut().enumerate() {
        if *v > n.below {
            *v = n.after_spike(i32::from(*v));
            fired |= 1 << i;
        }
    }
    fired
}

/// AVX2: 16 neurons per instruction.
#[cfg(x86_kernels)]
pub(crate) struct Avx2;

#[cfg(x86_kernels)]
mod avx2_lanes {
    use std::arch::x86_64::{
        __m256i, _mm256_adds_epi16, _mm256_and_si256, _mm256_blendv_epi8, _mm256_cmpgt_epi16, _mm256_loadu_si256, _mm256_max_epi16,
        _mm256_movemask_epi8, _mm256_packs_epi16, _mm256_set1_epi16, _mm256_setzero_si256, _mm256_storeu_si256, _mm256_subs_epi16,
        _mm256_testz_si256,
    };

    use super::{Avx2, Lanes, Neuron, Reset, Site, Window};

    impl Lanes for Avx2 {
        type Any = __m256i;

        #[inline(never)]
        #[target_feature(enable = "avx2,popcnt,bmi1")]
        unsafe fn deferred<const N: usize>(w: &mut Window<'_, N>, sites: &[Site], fired: &mut Vec<Site>) -> (u64, u64) {
            // SAFETY: the caller's promise (AVX2 among it).
            unsafe { w.events::<Self>(sites, fired) }
        }

        #[inline(always)]
        unsafe fn none() -> __m256i {
            // SAFETY: the caller guarantees AVX2.
            unsafe { lowest() }
        }

        #[inline(always)]
        unsafe fn update(v: &mut [i16; 16], w: &[i16; 16], n: Neuron, any: __m256i) -> __m256i {
            // SAFETY: the caller guarantees AVX2.
            unsafe { update(v, w, n, any) }
        }

        #[inline(always)]
        unsafe fn add(v: &mut [i16; 16], w: &[i16; 16], any: __m256i) -> __m256i {
            // SAFETY: the caller guarantees AVX2.
            unsafe { add(v, w, any) }
        }

        #[inline(always)]
        unsafe fn fired(any: __m256i, n: Neuron) -> bool {
            // SAFETY: the caller guarantees AVX2.
            unsafe { fired(any, n) }
        }

        #[inline(always)]
        unsafe fn fire(v: &mut [i16; 16], n: Neuron) -> u32 {
            // SAFETY: the caller guarantees AVX2.
            unsafe { lane_bits(fire(v, n), _mm256_setzero_si256()) }
        }

        #[inline(always)]
        unsafe fn fire2(v: &mut [[i16; 16]; 2], n: Neuron) -> u32 {
            // SAFETY: the caller guarantees AVX2.
            unsafe {
                let [a, b] = v;
                lane_bits(fire(a, n), fire(b, n))
            }
        }

        #[inline(always)]
        unsafe fn step(v: &mut [i16; 16], w: &[i16; 16], n: Neuron) -> u32 {
            // SAFETY: the caller guarantees AVX2.
            unsafe { lane_bits(step(v, w, n), _mm256_setzero_si256()) }
        }

        #[inline(always)]
        unsafe fn step2(v: &mut [[i16; 16]; 2], w: &[[i16; 16]; 2], n: Neuron) -> u32 {
            // SAFETY: the caller guarantees AVX2.
            unsafe {
                let ([a, b], [wa, wb]) = (v, w);
                lane_bits(step(a, wa, n), step(b, wb, n))
            }
        }

        /// Swaps bytes 1 and 2 of each half: see [`lane_bits`].
        #[inline(always)]
        fn unlane(m: u64) -> u64 {
            const KEEP: u64 = 0xff00_00ff_ff00_00ff;
            const BYTE: u64 = 0x0000_ff00_0000_ff00;
            (m & KEEP) | ((m << 8) & (BYTE << 8)) | ((m >> 8) & BYTE)
        }
    }

    /// A bit per lane of two compares, in lane order: packing interleaves the 128-bit halves,
    /// so the bytes of the mask are `a` 0-7, `b` 0-7, `a` 8-15 and `b` 8-15
    /// ([`Lanes::unlane`] swaps the middle two).
    #[target_feature(enable = "avx2")]
    #[inline]
    fn lane_bits(a: __m256i, b: __m256i) -> u32 {
        _mm256_movemask_epi8(_mm256_packs_epi16(a, b)) as u32
    }

    #[target_feature(enable = "avx2")]
    #[inline]
    fn lowest() -> __m256i {
        _mm256_set1_epi16(i16::MIN)
    }

    #[target_feature(enable = "avx2")]
    #[inline]
    fn update(v: &mut [i16; 16], w: &[i16; 16], n: Neuron, any: __m256i) -> __m256i {
        // SAFETY: both arrays are 16 i16 (32 bytes); the loads and stores are unaligned.
        unsafe {
            let p = v.as_mut_ptr().cast::<__m256i>();
            let x =
                _mm256_max_epi16(_mm256_adds_epi16(_mm256_loadu_si256(p), _mm256_loadu_si256(w.as_ptr().cast())), _mm256_set1_epi16(n.min));
            _mm256_storeu_si256(p, x);
            _mm256_max_epi16(any, x)
        }
    }

    #[target_feature(enable = "avx2")]
    #[inline]
    fn add(v: &mut [i16; 16], w: &[i16; 16], any: __m256i) -> __m256i {
        // SAFETY: both arrays are 16 i16 (32 bytes); the loads and stores are unaligned.
        unsafe {
            let p = v.as_mut_ptr().cast::<__m256i>();
            let x = _mm256_adds_epi16(_mm256_loadu_si256(p), _mm256_loadu_si256(w.as_ptr().cast()));
            _mm256_storeu_si256(p, x);
            _mm256_max_epi16(any, x)
        }
    }

    #[target_feature(enable = "avx2")]
    #[inline]
    fn fired(any: __m256i, n: Neuron) -> bool {
        let at = _mm256_cmpgt_epi16(any, _mm256_set1_epi16(n.below));
        _mm256_testz_si256(at, at) == 0
    }

    /// Resets the neurons at threshold; returns which are, as lanes.
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(super) fn fire(v: &mut [i16; 16], n: Neuron) -> __m256i {
        // SAFETY: 16 i16 (32 bytes), unaligned load and store.
        unsafe {
            let p = v.as_mut_ptr().cast::<__m256i>();
            let (x, at) = reset(_mm256_loadu_si256(p), n);
            _mm256_storeu_si256(p, x);
            at
        }
    }

    /// [`Lanes::step`]; returns the neurons that fired, as lanes. The floor is the saturation,
    /// so a subtracting reset needs no clamp: the threshold is subtracted from all lanes, 0
    /// from those below it.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn step(v: &mut [i16; 16], w: &[i16; 16], n: Neuron) -> __m256i {
        // SAFETY: both arrays are 16 i16 (32 bytes); the loads and stores are unaligned.
        unsafe {
            let p = v.as_mut_ptr().cast::<__m256i>();
            let x = _mm256_adds_epi16(_mm256_loadu_si256(p), _mm256_loadu_si256(w.as_ptr().cast()));
            let at = _mm256_cmpgt_epi16(x, _mm256_set1_epi16(n.below));
            let x = match n.reset {
                Reset::Subtract => _mm256_subs_epi16(x, _mm256_and_si256(at, _mm256_set1_epi16(n.threshold16))),
                Reset::Zero => _mm256_blendv_epi8(x, _mm256_set1_epi16(n.rest), at),
            };
            _mm256_storeu_si256(p, x);
            at
        }
    }

    /// The potentials `x` after the neurons at threshold spike, and which those are (as lanes).
    #[target_feature(enable = "avx2")]
    #[inline]
    fn reset(x: __m256i, n: Neuron) -> (__m256i, __m256i) {
        let at = _mm256_cmpgt_epi16(x, _mm256_set1_epi16(n.below));
        let after = match n.reset {
            Reset::Subtract => _mm256_max_epi16(_mm256_subs_epi16(x, _mm256_set1_epi16(n.threshold16)), _mm256_set1_epi16(n.min)),
            Reset::Zero => _mm256_set1_epi16(n.rest),
        };
        (_mm256_blendv_epi8(x, after, at), at)
    }
}

/// AVX-512: 32 neurons per instruction, and compares that give a bit per neuron directly.
#[cfg(x86_kernels)]
pub(crate) struct Avx512;

#[cfg(x86_kernels)]
mod avx512_lanes {
    use std::arch::x86_64::{
        __m256i, __m512i, _mm256_adds_epi16, _mm256_cmpgt_epi16_mask, _mm256_loadu_si256, _mm256_mask_mov_epi16, _mm256_mask_subs_epi16,
        _mm256_max_epi16, _mm256_movepi16_mask, _mm256_set1_epi16, _mm256_storeu_si256, _mm512_adds_epi16, _mm512_castsi256_si512,
        _mm512_cmpgt_epi16_mask, _mm512_loadu_si512, _mm512_mask_blend_epi16, _mm512_mask_max_epi16, _mm512_mask_mov_epi16,
        _mm512_mask_subs_epi16, _mm512_max_epi16, _mm512_set1_epi16, _mm512_storeu_si512, _mm512_subs_epi16,
    };

    use super::{Avx512, Lanes, Neuron, Reset, Site, Window};

    impl Lanes for Avx512 {
        /// 32 lanes: a 16-neuron update folds into the low half.
        type Any = __m512i;

        #[inline(never)]
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,popcnt,bmi1")]
        unsafe fn deferred<const N: usize>(w: &mut Window<'_, N>, sites: &[Site], fired: &mut Vec<Site>) -> (u64, u64) {
            // SAFETY: the caller's promise (AVX-512 among it).
            unsafe { w.events::<Self>(sites, fired) }
        }

        #[inline(always)]
        unsafe fn none() -> __m512i {
            // SAFETY: the caller guarantees AVX-512.
            unsafe { lowest() }
        }

        #[inline(always)]
        unsafe fn update(v: &mut [i16; 16], w: &[i16; 16], n: Neuron, any: __m512i) -> __m512i {
            // SAFETY: the caller guarantees AVX-512.
            unsafe { update16(v, w, n, any) }
        }

        #[inline(always)]
        unsafe fn add(v: &mut [i16; 16], w: &[i16; 16], any: __m512i) -> __m512i {
            // SAFETY: the caller guarantees AVX-512.
            unsafe { add16(v, w, any) }
        }

        #[inline(always)]
        unsafe fn add2(v: &mut [[i16; 16]; 2], w: &[[i16; 16]; 2], any: __m512i) -> __m512i {
            // SAFETY: the caller guarantees AVX-512.
            unsafe { add32(v, w, any) }
        }

        #[inline(always)]
        unsafe fn update2(v: &mut [[i16; 16]; 2], w: &[[i16; 16]; 2], n: Neuron, any: __m512i) -> __m512i {
            // SAFETY: the caller guarantees AVX-512.
            unsafe { update32(v, w, n, any) }
        }

        #[inline(always)]
        unsafe fn fired(any: __m512i, n: Neuron) -> bool {
            // SAFETY: the caller guarantees AVX-512.
            unsafe { fired(any, n) }
        }

        #[inline(always)]
        unsafe fn fire(v: &mut [i16; 16], n: Neuron) -> u32 {
            // SAFETY: the caller guarantees AVX-512.
            unsafe { u32::from(fire16(v, n)) }
        }

        #[inline(always)]
        unsafe fn fire2(v: &mut [[i16; 16]; 2], n: Neuron) -> u32 {
            // SAFETY: the caller guarantees AVX-512.
            unsafe { fire32(v, n) }
        }

        #[inline(always)]
        unsafe fn step(v: &mut [i16; 16], w: &[i16; 16], n: Neuron) -> u32 {
            // SAFETY: the caller guarantees AVX-512.
            unsafe { u32::from(step16(v, w, n)) }
        }

        #[inline(always)]
        unsafe fn step2(v: &mut [[i16; 16]; 2], w: &[[i16; 16]; 2], n: Neuron) -> u32 {
            // SAFETY: the caller guarantees AVX-512.
            unsafe { step32(v, w, n) }
        }
    }

    /// [`Lanes::step`] on 16 neurons: the reset is masked by the compare, and the floor is
    /// the saturation, so a spike costs no clamp.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    #[inline]
    fn step16(v: &mut [i16; 16], w: &[i16; 16], n: Neuron) -> u16 {
        // SAFETY: both arrays are 16 i16 (32 bytes); the loads and stores are unaligned.
        unsafe {
            let p = v.as_mut_ptr().cast::<__m256i>();
            let x = _mm256_adds_epi16(_mm256_loadu_si256(p), _mm256_loadu_si256(w.as_ptr().cast()));
            let at = _mm256_cmpgt_epi16_mask(x, _mm256_set1_epi16(n.below));
            let x = match n.reset {
                Reset::Subtract => _mm256_mask_subs_epi16(x, at, x, _mm256_set1_epi16(n.threshold16)),
                Reset::Zero => _mm256_mask_mov_epi16(x, at, _mm256_set1_epi16(n.rest)),
            };
            _mm256_storeu_si256(p, x);
            at
        }
    }

    /// [`Lanes::step`] on 32 neurons, as [`step16`].
    #[target_feature(enable = "avx512f,avx512bw")]
    #[inline]
    fn step32(v: &mut [[i16; 16]; 2], w: &[[i16; 16]; 2], n: Neuron) -> u32 {
        // SAFETY: both arrays are 32 i16 (64 bytes); the loads and stores are unaligned.
        unsafe {
            let p = v.as_mut_ptr().cast::<__m512i>();
            let x = _mm512_adds_epi16(_mm512_loadu_si512(p), _mm512_loadu_si512(w.as_ptr().cast()));
            let at = _mm512_cmpgt_epi16_mask(x, _mm512_set1_epi16(n.below));
            let x = match n.reset {
                Reset::Subtract => _mm512_mask_subs_epi16(x, at, x, _mm512_set1_epi16(n.threshold16)),
                Reset::Zero => _mm512_mask_mov_epi16(x, at, _mm512_set1_epi16(n.rest)),
            };
            _mm512_storeu_si512(p, x);
            at
        }
    }

    #[target_feature(enable = "avx512f,avx512bw")]
    #[inline]
    fn lowest() -> __m512i {
        _mm512_set1_epi16(i16::MIN)
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    #[inline]
    fn update16(v: &mut [i16; 16], w: &[i16; 16], n: Neuron, any: __m512i) -> __m512i {
        // SAFETY: both arrays are 16 i16 (32 bytes); the loads and stores are unaligned.
        unsafe {
            let p = v.as_mut_ptr().cast::<__m256i>();
            let x =
                _mm256_max_epi16(_mm256_adds_epi16(_mm256_loadu_si256(p), _mm256_loadu_si256(w.as_ptr().cast())), _mm256_set1_epi16(n.min));
            _mm256_storeu_si256(p, x);
            fold16(any, x)
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    #[inline]
    fn add16(v: &mut [i16; 16], w: &[i16; 16], any: __m512i) -> __m512i {
        // SAFETY: both arrays are 16 i16 (32 bytes); the loads and stores are unaligned.
        unsafe {
            let p = v.as_mut_ptr().cast::<__m256i>();
            let x = _mm256_adds_epi16(_mm256_loadu_si256(p), _mm256_loadu_si256(w.as_ptr().cast()));
            _mm256_storeu_si256(p, x);
            fold16(any, x)
        }
    }

    /// [`update16`] on 32 neurons.
    #[target_feature(enable = "avx512f,avx512bw")]
    #[inline]
    fn update32(v: &mut [[i16; 16]; 2], w: &[[i16; 16]; 2], n: Neuron, any: __m512i) -> __m512i {
        // SAFETY: both arrays are 32 i16 (64 bytes); the loads and stores are unaligned.
        unsafe {
            let p = v.as_mut_ptr().cast::<__m512i>();
            let x =
                _mm512_max_epi16(_mm512_adds_epi16(_mm512_loadu_si512(p), _mm512_loadu_si512(w.as_ptr().cast())), _mm512_set1_epi16(n.min));
            _mm512_storeu_si512(p, x);
            _mm512_max_epi16(any, x)
        }
    }

    #[target_feature(enable = "avx512f,avx512bw")]
    #[inline]
    fn add32(v: &mut [[i16; 16]; 2], w: &[[i16; 16]; 2], any: __m512i) -> __m512i {
        // SAFETY: both arrays are 32 i16 (64 bytes); the loads and stores are unaligned.
        unsafe {
            let p = v.as_mut_ptr().cast::<__m512i>();
            let x = _mm512_adds_epi16(_mm512_loadu_si512(p), _mm512_loadu_si512(w.as_ptr().cast()));
            _mm512_storeu_si512(p, x);
            _mm512_max_epi16(any, x)
        }
    }

    /// Folds 16 potentials into the low half of `any`; the high half keeps its own.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    #[inline]
    fn fold16(any: __m512i, x: __m256i) -> __m512i {
        _mm512_mask_max_epi16(any, 0xffff, any, _mm512_castsi256_si512(x))
    }

    #[target_feature(enable = "avx512f,avx512bw")]
    #[inline]
    fn fired(any: __m512i, n: Neuron) -> bool {
        _mm512_cmpgt_epi16_mask(any, _mm512_set1_epi16(n.below)) != 0
    }

    /// AVX2's reset of 16 neurons; returns a bit per neuron that fired.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    #[inline]
    fn fire16(v: &mut [i16; 16], n: Neuron) -> u16 {
        _mm256_movepi16_mask(super::avx2_lanes::fire(v, n))
    }

    /// Resets the neurons at threshold among 32; returns a bit per neuron that fired.
    #[target_feature(enable = "avx512f,avx512bw")]
    #[inline]
    fn fire32(v: &mut [[i16; 16]; 2], n: Neuron) -> u32 {
        // SAFETY: 32 i16 (64 bytes), unaligned load and store.
        unsafe {
            let p = v.as_mut_ptr().cast::<__m512i>();
            let x = _mm512_loadu_si512(p);
            let at = _mm512_cmpgt_epi16_mask(x, _mm512_set1_epi16(n.below));
            let after = match n.reset {
                Reset::Subtract => _mm512_max_epi16(_mm512_subs_epi16(x, _mm512_set1_epi16(n.threshold16)), _mm512_set1_epi16(n.min)),
                Reset::Zero => _mm512_set1_epi16(n.rest),
            };
            _mm512_storeu_si512(p, _mm512_mask_blend_epi16(at, x, after));
            at
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Kernel;

    /// A request is a cap: no CPU gets a kernel above the one asked for. Built as for a CPU
    /// other than x86-64 (`--cfg dynapviz_portable`, as CI does), every request gets the
    /// plain-Rust kernel, which is then what all other tests run.
    #[test]
    fn the_kernel_is_capped_by_the_request_and_portable_off_x86() {
        for asked in [Kernel::Portable, Kernel::Avx2, Kernel::Avx512] {
            let got = asked.on_this_cpu();
            assert!(got <= asked, "asked for {asked:?}, got {got:?}");
            if cfg!(any(not(target_arch = "x86_64"), dynapviz_portable)) {
                assert_eq!(got, Kernel::Portable);
            }
        }
    }
}
