//! How large a tensor can be: the one limit that network loading and the ops check sizes
//! against, so that a size too large is an error rather than a panic in the allocator.

/// The most elements an array can hold: ndarray refuses (panics) past `isize::MAX` bytes,
/// here counted in `f64`, the wider of the two element types.
pub const MAX_ELEMENTS: usize = isize::MAX.unsigned_abs() / std::mem::size_of::<f64>();

/// The number of elements of `shape`, if an `f64` array of that shape can be allocated
/// (at most [`MAX_ELEMENTS`]); `None` if it cannot, or if the count overflows `usize`.
pub fn allocatable_elements(shape: &[usize]) -> Option<usize> {
    shape
        .iter()
        .try_fold(1usize, |count, &size| count.checked_mul(size))
        .filter(|&count| count <= MAX_ELEMENTS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_up_to_the_limit_and_no_further() {
        assert_eq!(allocatable_elements(&[]), Some(1));
        assert_eq!(allocatable_elements(&[2, 0, usize::MAX]), Some(0));
        assert_eq!(allocatable_elements(&[MAX_ELEMENTS]), Some(MAX_ELEMENTS));
        assert_eq!(allocatable_elements(&[MAX_ELEMENTS + 1]), None);
        assert_eq!(allocatable_elements(&[3, usize::MAX / 2, 8]), None);
        // 2^63 - 1 bytes hold 2^60 - 1 f64 numbers (8 bytes each).
        assert_eq!(MAX_ELEMENTS, (1 << 60) - 1);
    }
}
