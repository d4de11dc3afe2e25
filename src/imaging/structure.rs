//! Walking an encoded photo's structure without decoding it: a JPEG's marker segments, a GIF's
//! blocks before its first image, an extended WebP's chunks. Each walk hands on what it meets as
//! byte ranges of the file; nothing is allocated.

use std::ops::Range;

/// Walks a JPEG's marker segments after SOI, handing on each segment's marker and byte range
/// (marker, length and payload; cut at the end of the file). Returns whether the stream reaches
/// its end-of-image marker: the decoder fills a truncated scan with grey instead of failing, so
/// completeness is checked by walking the markers: segment lengths skip embedded thumbnails,
/// entropy-coded data is scanned for the next marker.
pub fn jpeg_segments(b: &[u8], mut each: impl FnMut(u8, Range<usize>)) -> bool {
    let mut i = 2; // after SOI
    while i + 1 < b.len() {
        if b[i] != 0xFF {
            return false;
        }
        let marker = b[i + 1];
        match marker {
            0xFF => i += 1, // fill byte
            0xD9 => return true,
            0x01 | 0xD0..=0xD7 => i += 2,
            _ => {
                if i + 3 >= b.len() {
                    return false;
                }
                let len = u16::from_be_bytes([b[i + 2], b[i + 3]]) as usize;
                each(marker, i..(i + 2 + len).min(b.len()));
                i += 2 + len;
                if marker == 0xDA {
                    // Entropy-coded data runs until a marker that is not a stuffed byte or RSTn.
                    while i + 1 < b.len() {
                        if b[i] == 0xFF && b[i + 1] != 0 && !(0xD0..=0xD7).contains(&b[i + 1]) {
                            break;
                        }
                        i += 1;
                    }
                }
            }
        }
    }
    false
}

/// Width and height of a GIF's first image, from its descriptor, handing on each extension
/// block before it (its label and byte range, introducer to terminator). After the 13-byte
/// header and screen descriptor come the global colour table, then extension blocks (each a
/// label and length-prefixed sub-blocks ending with a zero length) until the image descriptor
/// (0x2C: left, top, width, height, little-endian u16).
pub fn gif_first_frame_size(
    b: &[u8],
    mut each_extension: impl FnMut(u8, Range<usize>),
) -> Option<(u16, u16)> {
    let u16_at = |i: usize| Some(u16::from_le_bytes([*b.get(i)?, *b.get(i + 1)?]));
    let flags = *b.get(10)?;
    let mut i = 13 + if flags & 0x80 != 0 { 3 << ((flags & 7) + 1) } else { 0 };
    loop {
        match *b.get(i)? {
            0x2C => return Some((u16_at(i + 5)?, u16_at(i + 7)?)),
            0x21 => {
                let (start, label) = (i, *b.get(i + 1)?);
                i += 2; // introducer and label
                loop {
                    let len = *b.get(i)? as usize;
                    i += 1 + len;
                    if len == 0 {
                        break;
                    }
                }
                each_extension(label, start..i);
            }
            _ => return None,
        }
    }
}

/// Hands on the FourCC and declared length of each chunk of an extended (VP8X) WebP after its
/// VP8X chunk, stepping as the decoder does, up to the end of the file (the decoder stops there
/// or at the RIFF size, whichever comes first). Other WebPs have one chunk: nothing is handed on.
pub fn webp_extended_chunks(b: &[u8], mut each: impl FnMut(&[u8], u64)) {
    let u32_at = |i: u64| {
        Some(u32::from_le_bytes(b.get(i as usize..i as usize + 4)?.try_into().ok()?) as u64)
    };
    if b.get(12..16) != Some(b"VP8X") {
        return;
    }
    let Some(vp8x_len) = u32_at(16) else { return };
    let mut i = 20 + vp8x_len + (vp8x_len & 1);
    while i + 8 <= b.len() as u64 {
        let Some(len) = u32_at(i + 4) else { return };
        each(&b[i as usize..i as usize + 4], len);
        i += 8 + len + (len & 1);
    }
}
