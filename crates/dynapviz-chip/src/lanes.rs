//! The arithmetic of the event mode on 16 neurons at once, with AVX2 or in plain Rust, the
//! firing rule it applies, and the run-time choice of AVX2 (which the binned mode follows too).

use std::sync::atomic::{AtomicBool, Ordering};

use dynapviz_model::network::Reset;

/// Set by [`use_vector_instructions`]`(false)`.
static PORTABLE_ONLY: AtomicBool = AtomicBool::new(false);

/// Turns the AVX2 kernel off or back on, process-wide: to compare speeds, and to test the
/// portable kernel on a machine that has AVX2. Results are identical either way.
pub fn use_vector_instructions(on: bool) {
    PORTABLE_ONLY.store(!on, Ordering::Relaxed);
}

/// Whether the AVX2 kernel runs: the CPU has it and it is not turned off. The kernel also
/// counts and finds set bits with POPCNT and TZCNT (BMI1), which CPUs with AVX2 have in practice.
#[inline]
pub(crate) fn avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    return !PORTABLE_ONLY.load(Ordering::Relaxed)
        && std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("popcnt")
        && std::arch::is_x86_feature_detected!("bmi1");
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// The firing rule of one layer, in the chip's int16.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Neuron {
    pub threshold: i32,
    /// The threshold as int16 (only used when a neuron fires, which needs it to be one).
    pub threshold16: i16,
    /// `threshold - 1` as int16: a potential above it fires (never, for thresholds past int16).
    pub below: i16,
    pub min: i16,
    pub reset: Reset,
}

impl Neuron {
    /// The potential after a spike from `v` (at or above threshold): reset, then clamped.
    #[inline(always)]
    pub fn after_spike(self, v: i16) -> i16 {
        match self.reset {
            Reset::Subtract => (i32::from(v) - self.threshold).max(i32::from(self.min)) as i16,
            Reset::Zero => 0.max(self.min),
        }
    }
}

/// The arithmetic on 16 neurons at once, with AVX2 or without. "At threshold" is folded into an
/// accumulator that stays in a register over a kernel row; which neurons fire is worked out
/// again only for the rare rows where one does.
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
    /// Whether a potential folded into `any` is at threshold.
    unsafe fn fired(any: Self::Any, n: Neuron) -> bool;
    /// Resets the neurons at threshold; returns a bit per neuron that fired.
    unsafe fn fire(v: &mut [i16; 16], n: Neuron) -> u16;
    /// [`Self::fire`] on 32 consecutive neurons: bit `i` is neuron `i`.
    unsafe fn fire2(v: &mut [[i16; 16]; 2], n: Neuron) -> u32;
}

/// Plain Rust, for any CPU (and for channel counts that are not a multiple of 16).
pub(crate) struct Portable;

impl Lanes for Portable {
    type Any = i16;

    #[inline(always)]
    unsafe fn none() -> i16 {
        i16::MIN
    }

    #[inline(always)]
    unsafe fn update(v: &mut [i16; 16], w: &[i16; 16], n: Neuron, any: i16) -> i16 {
        any.max(update_tail(v, w, n))
    }

    #[inline(always)]
    unsafe fn fired(any: i16, n: Neuron) -> bool {
        any > n.below
    }

    #[inline(always)]
    unsafe fn fire(v: &mut [i16; 16], n: Neuron) -> u16 {
        fire_tail(v, n)
    }

    #[inline(always)]
    unsafe fn fire2(v: &mut [[i16; 16]; 2], n: Neuron) -> u32 {
        let [a, b] = v;
        u32::from(fire_tail(a, n)) | u32::from(fire_tail(b, n)) << 16
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
            *v = n.after_spike(*v);
            fired |= 1 << i;
        }
    }
    fired
}

/// AVX2: 16 neurons per instruction.
#[cfg(target_arch = "x86_64")]
pub(crate) struct Avx2;

#[cfg(target_arch = "x86_64")]
mod avx2_lanes {
    use std::arch::x86_64::{
        __m256i, _mm256_adds_epi16, _mm256_blendv_epi8, _mm256_cmpgt_epi16, _mm256_loadu_si256, _mm256_max_epi16, _mm256_movemask_epi8,
        _mm256_packs_epi16, _mm256_permute4x64_epi64, _mm256_set1_epi16, _mm256_storeu_si256, _mm256_subs_epi16, _mm256_testz_si256,
    };

    use super::{Avx2, Lanes, Neuron, Reset};

    impl Lanes for Avx2 {
        type Any = __m256i;

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
        unsafe fn fired(any: __m256i, n: Neuron) -> bool {
            // SAFETY: the caller guarantees AVX2.
            unsafe { fired(any, n) }
        }

        #[inline(always)]
        unsafe fn fire(v: &mut [i16; 16], n: Neuron) -> u16 {
            // SAFETY: the caller guarantees AVX2.
            unsafe {
                let at = fire(v, n);
                // Bytes 0-7 and 16-23 of the packed compare are neurons 0-7 and 8-15.
                let m = _mm256_movemask_epi8(_mm256_packs_epi16(at, at)) as u32;
                ((m & 0xff) | ((m >> 8) & 0xff00)) as u16
            }
        }

        #[inline(always)]
        unsafe fn fire2(v: &mut [[i16; 16]; 2], n: Neuron) -> u32 {
            // SAFETY: the caller guarantees AVX2.
            unsafe {
                let [a, b] = v;
                let (a, b) = (fire(a, n), fire(b, n));
                // Packing interleaves the halves (a 0-7, b 0-7, a 8-15, b 8-15); the permute
                // puts them back in neuron order.
                _mm256_movemask_epi8(_mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packs_epi16(a, b))) as u32
            }
        }
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
    fn fired(any: __m256i, n: Neuron) -> bool {
        let at = _mm256_cmpgt_epi16(any, _mm256_set1_epi16(n.below));
        _mm256_testz_si256(at, at) == 0
    }

    /// Resets the neurons at threshold; returns which are, as lanes.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn fire(v: &mut [i16; 16], n: Neuron) -> __m256i {
        // SAFETY: 16 i16 (32 bytes), unaligned load and store.
        unsafe {
            let p = v.as_mut_ptr().cast::<__m256i>();
            let x = _mm256_loadu_si256(p);
            let at = _mm256_cmpgt_epi16(x, _mm256_set1_epi16(n.below));
            // Subtracting the potential itself resets to zero.
            let minus = match n.reset {
                Reset::Subtract => _mm256_set1_epi16(n.threshold16),
                Reset::Zero => x,
            };
            let after = _mm256_max_epi16(_mm256_subs_epi16(x, minus), _mm256_set1_epi16(n.min));
            _mm256_storeu_si256(p, _mm256_blendv_epi8(x, after, at));
            at
        }
    }
}
