//! One side of a convolution window (dilation 1, the same stride and padding at both ends): the
//! geometry the depthwise and dense convolutions share.

/// Whether `kernel` taps at `stride` fit a side of `input` values padded by `padding` at each
/// end, with kernel and stride at least 1.
pub fn fits(input: usize, kernel: usize, stride: usize, padding: usize) -> bool {
    stride >= 1 && kernel >= 1 && input + 2 * padding >= kernel
}

/// Outputs along that side (where it [`fits`]).
pub fn outputs(input: usize, kernel: usize, stride: usize, padding: usize) -> usize {
    (input + 2 * padding - kernel) / stride + 1
}
