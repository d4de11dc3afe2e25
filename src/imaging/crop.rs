//! A rectangle of a decoded, upright photo (what the user boxed around the product) and its
//! pixels. Coordinates are whole pixels of the upright image (EXIF orientation applied, as
//! [`crate::imaging::decode::decode_rgb`] returns it): `x`, `y` the top-left corner, then width and
//! height. The cropped pixels then go through the model's own preprocessing, as a photo of that
//! region alone would.

use std::fmt;
use std::str::FromStr;

use image::RgbImage;
use serde::Serialize;

use crate::error::RegionError;
use crate::imaging::decode::DecodedPhoto;

/// Fewest pixels a region may have on each side.
pub const MIN_REGION_SIDE: u32 = 8;

/// A rectangle in the upright photo's pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Region {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

impl fmt::Display for Region {
    /// As `clipmatch query --crop` takes it: `x,y,width,height`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{},{},{},{}", self.x, self.y, self.width, self.height)
    }
}

impl FromStr for Region {
    type Err = RegionError;

    /// `x,y,width,height`, four whole numbers (spaces around them allowed).
    fn from_str(s: &str) -> Result<Self, RegionError> {
        let numbers: Vec<u32> = s
            .split(',')
            .map(|part| part.trim().parse::<u32>())
            .collect::<Result<_, _>>()
            .map_err(|_| RegionError::Syntax(s.to_string()))?;
        match numbers[..] {
            [x, y, width, height] => Ok(Region { x, y, width, height }),
            _ => Err(RegionError::Syntax(s.to_string())),
        }
    }
}

impl Region {
    /// From numbers as JavaScript gives them: each must be a whole number from 0 to 2^32 - 1.
    pub fn from_numbers(x: f64, y: f64, width: f64, height: f64) -> Result<Self, RegionError> {
        let whole = |v: f64| {
            (v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v <= u32::MAX as f64)
                .then_some(v as u32)
                .ok_or_else(|| RegionError::Syntax(format!("{x},{y},{width},{height}")))
        };
        Ok(Region { x: whole(x)?, y: whole(y)?, width: whole(width)?, height: whole(height)? })
    }

    /// Whether the region can be searched in an upright photo of `width` x `height` pixels:
    /// inside it, at least [`MIN_REGION_SIDE`] pixels a side, and its long side at most
    /// `max_aspect_ratio` times its short side (the limit photos have).
    pub fn check(&self, width: u32, height: u32, max_aspect_ratio: u32) -> Result<(), RegionError> {
        let right = self.x as u64 + self.width as u64;
        let bottom = self.y as u64 + self.height as u64;
        if right > width as u64 || bottom > height as u64 {
            return Err(RegionError::Outside { region: *self, width, height });
        }
        if self.width < MIN_REGION_SIDE || self.height < MIN_REGION_SIDE {
            return Err(RegionError::TooSmall { width: self.width, height: self.height, min_side: MIN_REGION_SIDE });
        }
        let (short, long) = (self.width.min(self.height) as u64, self.width.max(self.height) as u64);
        if long > short * max_aspect_ratio as u64 {
            return Err(RegionError::TooThin { width: self.width, height: self.height, max_ratio: max_aspect_ratio });
        }
        Ok(())
    }

    /// The region's pixels of `rgb`, checked first ([`Self::check`]).
    pub fn crop(&self, rgb: &RgbImage, max_aspect_ratio: u32) -> Result<RgbImage, RegionError> {
        self.check(rgb.width(), rgb.height(), max_aspect_ratio)?;
        Ok(image::imageops::crop_imm(rgb, self.x, self.y, self.width, self.height).to_image())
    }

    /// The region's pixels of a decoded photo, the region given in the photo's own upright
    /// pixels and checked against them ([`Self::check`]): its own pixels at full resolution,
    /// else the pixels of the reduced copy it covers (each edge moved outwards to a whole pixel).
    pub fn crop_photo(&self, photo: &DecodedPhoto, max_aspect_ratio: u32) -> Result<RgbImage, RegionError> {
        let (width, height) = photo.upright_size;
        self.check(width, height, max_aspect_ratio)?;
        if photo.full_resolution() {
            return self.crop(&photo.rgb, max_aspect_ratio);
        }
        let (w, h) = photo.rgb.dimensions();
        let (x0, x1) = scaled_span(self.x, self.width, width, w);
        let (y0, y1) = scaled_span(self.y, self.height, height, h);
        Ok(image::imageops::crop_imm(&photo.rgb, x0, y0, x1 - x0, y1 - y0).to_image())
    }
}

/// The pixels `start..start + len` of an axis of `full` pixels, on the same axis at `scaled`
/// pixels: first pixel floored, end rounded up, at least one pixel.
fn scaled_span(start: u32, len: u32, full: u32, scaled: u32) -> (u32, u32) {
    let (full, scaled) = (full as u64, scaled as u64);
    let first = (start as u64 * scaled / full).min(scaled - 1);
    let end = ((start as u64 + len as u64) * scaled).div_ceil(full).clamp(first + 1, scaled);
    (first as u32, end as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: Region = Region { x: 10, y: 20, width: 30, height: 40 };

    #[test]
    fn parses_and_prints_four_whole_numbers() {
        assert_eq!("10,20,30,40".parse::<Region>().unwrap(), R);
        assert_eq!(" 10, 20 ,30,40 ".parse::<Region>().unwrap(), R);
        assert_eq!(R.to_string(), "10,20,30,40");
        for bad in ["", "10,20,30", "10,20,30,40,50", "10,20,30,-4", "10,20,30.5,40", "a,b,c,d", "10;20;30;40"] {
            assert!(matches!(bad.parse::<Region>(), Err(RegionError::Syntax(_))), "{bad:?}");
        }
    }

    #[test]
    fn numbers_from_javascript_must_be_whole_and_not_negative() {
        assert_eq!(Region::from_numbers(10.0, 20.0, 30.0, 40.0).unwrap(), R);
        for bad in [[-1.0, 0.0, 10.0, 10.0], [0.0, 0.5, 10.0, 10.0], [0.0, 0.0, f64::NAN, 10.0], [0.0, 0.0, 10.0, 1e10]] {
            let err = Region::from_numbers(bad[0], bad[1], bad[2], bad[3]).unwrap_err();
            assert!(matches!(err, RegionError::Syntax(_)), "{bad:?}: {err}");
        }
    }

    #[test]
    fn a_region_must_lie_inside_be_large_enough_and_not_too_thin() {
        assert!(R.check(40, 60, 20).is_ok());
        let err = R.check(39, 60, 20).unwrap_err();
        assert_eq!(err.to_string(), "the region 10,20,30,40 (x,y,width,height) reaches past the photo, which is 39x60 pixels upright");
        assert!(matches!(R.check(40, 59, 20), Err(RegionError::Outside { .. })));
        // Sums that would overflow u32 are still outside.
        let far = Region { x: u32::MAX, y: 0, width: u32::MAX, height: 10 };
        assert!(matches!(far.check(100, 100, 20), Err(RegionError::Outside { .. })));
        let small = Region { x: 0, y: 0, width: 7, height: 100 };
        assert_eq!(small.check(100, 100, 20).unwrap_err().to_string(), "the region is 7x100 pixels, too small: each side must be at least 8 pixels");
        let thin = Region { x: 0, y: 0, width: 200, height: 9 };
        assert_eq!(thin.check(300, 300, 20).unwrap_err().to_string(), "the region is 200x9 pixels, too thin to search: its long side may be at most 20 times its short side");
        assert!(Region { x: 0, y: 0, width: 180, height: 9 }.check(300, 300, 20).is_ok());
    }

    #[test]
    fn crop_keeps_the_regions_pixels() {
        let img = RgbImage::from_fn(50, 70, |x, y| image::Rgb([x as u8, y as u8, (x * y) as u8]));
        let c = R.crop(&img, 20).unwrap();
        assert_eq!(c.dimensions(), (30, 40));
        assert_eq!(c.get_pixel(0, 0), img.get_pixel(10, 20));
        assert_eq!(c.get_pixel(29, 39), img.get_pixel(39, 59));
        assert!(Region { x: 30, ..R }.crop(&img, 20).is_err());
    }

    #[test]
    fn a_reduced_photo_is_cropped_where_the_region_falls_on_it() {
        // A 400x280 photo kept at a quarter: pixel (x, y) of the copy covers (4x.., 4y..).
        let rgb = RgbImage::from_fn(100, 70, |x, y| image::Rgb([x as u8, y as u8, 0]));
        let photo = DecodedPhoto { rgb, upright_size: (400, 280) };
        let c = Region { x: 41, y: 80, width: 100, height: 43 }.crop_photo(&photo, 20).unwrap();
        // x 41..141 -> 10..36 (35.25 rounded up), y 80..123 -> 20..31 (30.75 rounded up)
        assert_eq!(c.dimensions(), (26, 11));
        assert_eq!(c.get_pixel(0, 0).0, [10, 20, 0]);
        let edge = Region { x: 392, y: 272, width: 8, height: 8 }.crop_photo(&photo, 20).unwrap();
        assert_eq!((edge.dimensions(), edge.get_pixel(0, 0).0), ((2, 2), [98, 68, 0]));
        // Checked in the photo's own pixels, not the copy's.
        assert!(R.crop_photo(&photo, 20).is_ok());
        let outside = Region { x: 300, y: 0, width: 101, height: 10 };
        assert!(matches!(outside.crop_photo(&photo, 20), Err(RegionError::Outside { width: 400, height: 280, .. })));
        // At full resolution, the region's own pixels.
        let full = DecodedPhoto { rgb: RgbImage::from_fn(50, 70, |x, y| image::Rgb([x as u8, y as u8, 1])), upright_size: (50, 70) };
        assert_eq!(R.crop_photo(&full, 20).unwrap(), R.crop(&full.rgb, 20).unwrap());
    }
}
