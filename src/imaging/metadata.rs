//! Metadata the decoders would hold for one photo, kept within [`MAX_METADATA_BYTES`]. A colour
//! profile, text, EXIF or XMP can take far more memory than the pixels (a PNG profile inflating
//! to gigabytes from a few megabytes, a WebP chunk claiming 2 GiB, megabytes of JPEG segments),
//! and the pipeline uses none of it but the EXIF orientation.
//!
//! - PNG: the `png` crate counts what it keeps of the chunks before the pixels (colour profile,
//!   text, EXIF) against this budget ([`png_limits`]): a profile that would inflate past it is
//!   dropped (the crate skips a profile it cannot read), other chunks past it refuse the photo.
//!   Compressed text is never inflated.
//! - JPEG: the decoder keeps every ICC and extended-XMP segment it meets. When the segments it
//!   does not use (APP1 but the last EXIF, APP2 to APP13, APP15, comments) take more than the
//!   budget, a copy of the file without them is decoded instead ([`within_budget`]).
//! - GIF: the decoder keeps the XMP and ICC application extensions before the first image; past
//!   the budget, the application extensions are left out the same way.
//! - WebP: only the EXIF chunk is read; one claiming more than the budget refuses the photo.

use std::borrow::Cow;
use std::ops::Range;

use image::{ImageFormat, Limits};

use crate::error::ImageError;
use crate::imaging::structure::{gif_first_frame_size, jpeg_segments, webp_extended_chunks};

/// Most bytes of metadata a decoder may hold for one photo (4 MiB).
pub const MAX_METADATA_BYTES: usize = 4 << 20;

/// The PNG decoder's limits while it reads the chunks before the pixels: what it keeps of them
/// within [`MAX_METADATA_BYTES`].
pub fn png_limits(max_side: u32) -> Limits {
    let mut limits = Limits::default();
    limits.max_image_width = Some(max_side);
    limits.max_image_height = Some(max_side);
    limits.max_alloc = Some(MAX_METADATA_BYTES as u64);
    limits
}

/// The error when the PNG decoder's metadata did not fit [`png_limits`].
pub fn png_metadata_too_large() -> ImageError {
    ImageError::MetadataTooLarge {
        what: "text, EXIF or colour profile",
        max_mib: MAX_METADATA_BYTES >> 20,
    }
}

/// `bytes` as the decoder is to see them: as they are, or a copy without the JPEG segments or
/// GIF extensions it does not use when those take more than [`MAX_METADATA_BYTES`]. A WebP
/// whose EXIF chunk claims more than that is refused.
pub fn within_budget(format: ImageFormat, bytes: &[u8]) -> Result<Cow<'_, [u8]>, ImageError> {
    let unused = match format {
        ImageFormat::Jpeg => unused_jpeg_segments(bytes),
        ImageFormat::Gif => {
            let mut apps = Vec::new();
            gif_first_frame_size(bytes, |label, block| {
                if label == 0xFF {
                    apps.push(block);
                }
            });
            apps
        }
        ImageFormat::WebP => {
            let mut exif_len = 0;
            webp_extended_chunks(bytes, |fourcc, len| {
                if fourcc == b"EXIF" {
                    exif_len = exif_len.max(len);
                }
            });
            if exif_len > MAX_METADATA_BYTES as u64 {
                return Err(ImageError::MetadataTooLarge {
                    what: "EXIF",
                    max_mib: MAX_METADATA_BYTES >> 20,
                });
            }
            Vec::new()
        }
        _ => Vec::new(),
    };
    if unused.iter().map(ExactSizeIterator::len).sum::<usize>() <= MAX_METADATA_BYTES {
        return Ok(Cow::Borrowed(bytes));
    }
    Ok(Cow::Owned(without(bytes, &unused)))
}

/// A JPEG's segments that the decoder reads past or keeps unused: APP1 but the last EXIF one
/// (the decoder's), APP2 to APP13, APP15 and comments. APP0 (which may mark Motion JPEG) and
/// APP14 (Adobe's colour transform) change the decoding and stay.
fn unused_jpeg_segments(b: &[u8]) -> Vec<Range<usize>> {
    let mut unused = Vec::new();
    let mut last_exif = None;
    jpeg_segments(b, |marker, segment| {
        let payload = &b[(segment.start + 4).min(segment.end)..segment.end];
        match marker {
            0xE1 if payload.len() > 6 && payload.starts_with(b"Exif\0\0") => {
                unused.extend(last_exif.replace(segment));
            }
            0xE1..=0xED | 0xEF | 0xFE => unused.push(segment),
            _ => {}
        }
    });
    unused
}

/// A copy of `bytes` without `ranges` (in order, not overlapping).
fn without(bytes: &[u8], ranges: &[Range<usize>]) -> Vec<u8> {
    let dropped: usize = ranges.iter().map(ExactSizeIterator::len).sum();
    let mut out = Vec::with_capacity(bytes.len() - dropped);
    let mut at = 0;
    for r in ranges {
        out.extend_from_slice(&bytes[at..r.start]);
        at = r.end;
    }
    out.extend_from_slice(&bytes[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_keeps_everything_between_the_ranges() {
        assert_eq!(without(b"abcdefgh", &[1..3, 5..6]), b"adegh");
        assert_eq!(without(b"abc", &[]), b"abc");
        assert_eq!(without(b"abc", &[0..3]), b"");
    }
}
