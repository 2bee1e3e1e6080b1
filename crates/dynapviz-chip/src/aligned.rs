//! int16 memory on 64-byte boundaries, for the event mode's potentials and weights. The
//! vector kernels read and write 32 or 64 bytes at a time at multiples of the channel count
//! (16, 32, ...); from an allocator that aligns to 16 bytes, half of the 32-byte accesses of a
//! layer of 32 channels straddled two cache lines.

use std::ops::{Deref, DerefMut};

/// One cache line of int16.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
struct Line([i16; 32]);

/// A fixed number of int16 starting on a cache line; a slice by `Deref`.
#[derive(Clone, Debug, Default)]
pub(crate) struct Aligned {
    lines: Vec<Line>,
    len: usize,
}

impl Aligned {
    /// `len` zeros.
    pub(crate) fn zeroed(len: usize) -> Self {
        Self { lines: vec![Line([0; 32]); len.div_ceil(32)], len }
    }
}

impl FromIterator<i16> for Aligned {
    fn from_iter<I: IntoIterator<Item = i16>>(values: I) -> Self {
        let values: Vec<i16> = values.into_iter().collect();
        let mut aligned = Self::zeroed(values.len());
        aligned.copy_from_slice(&values);
        aligned
    }
}

impl Deref for Aligned {
    type Target = [i16];

    fn deref(&self) -> &[i16] {
        // SAFETY: a `Line` is 32 int16 and nothing else (`repr(C)`, size 64), so the lines are
        // `32 * lines.len() >= len` consecutive int16.
        unsafe { std::slice::from_raw_parts(self.lines.as_ptr().cast::<i16>(), self.len) }
    }
}

impl DerefMut for Aligned {
    fn deref_mut(&mut self) -> &mut [i16] {
        // SAFETY: as in `deref`, borrowed mutably.
        unsafe { std::slice::from_raw_parts_mut(self.lines.as_mut_ptr().cast::<i16>(), self.len) }
    }
}

#[cfg(test)]
mod tests {
    use super::Aligned;

    #[test]
    fn starts_on_a_cache_line_and_holds_what_it_was_given() {
        let a: Aligned = (0..70).map(|i| i as i16 - 35).collect();
        assert_eq!(a.as_ptr() as usize % 64, 0);
        assert_eq!(a.len(), 70);
        assert!(a.iter().enumerate().all(|(i, &v)| v == i as i16 - 35));
        let z = Aligned::zeroed(0);
        assert!(z.is_empty());
    }
}
