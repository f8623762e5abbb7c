//! Decoded frames to 8-bit RGB, exactly as `ffmpeg -i video frame.png`
//! converts them.
//!
//! The `ffmpeg` CLI turns a YUV frame into the PNG encoder's `rgb24` through
//! an automatically inserted `scale` filter with its default `-sws_flags`
//! (`bicubic`), and that filter (FFmpeg 5.1 `vf_scale.c`) configures
//! swscale in a particular way, reproduced here:
//! - the matrix is the frame's own colorspace (`in_color_matrix=auto`):
//!   BT.709 for a BT.709 stream, BT.601 (BT.470BG/SMPTE 170M) for an
//!   unspecified, reserved or RGB one, BT.2020 non-constant-luminance,
//!   FCC, SMPTE 240M as tagged;
//! - the range is the frame's (limited "MPEG" range unless the stream says
//!   full "JPEG" range; `yuvj*` formats are full range);
//! - 4:2:0 input has its chroma sited vertically centred (`src_v_chr_pos`
//!   128, the MPEG-2 convention);
//! - one swscale thread (slice threads give the same samples).
//!
//! The same library with the same settings gives the same samples, so a
//! frame here equals the CLI's PNG of it, the 8-bit sources at least: a
//! source deeper than 8 bits becomes 8-bit RGB here where the CLI would
//! write a 16-bit PNG. Alpha is dropped, as `convert("RGB")` drops it.
//!
//! The display matrix of the stream (a phone's portrait video is stored
//! landscape with a 90° rotation) is applied afterwards, as the CLI's
//! `autorotate` does by default: quarter turns only, the angles it turns
//! with `transpose`/`hflip,vflip`; another angle is reported and left.

use std::ffi::{c_int, c_void, CStr};

use dfscan_imaging::RgbImage;
use ffmpeg_next::ffi;
use ffmpeg_next::format::Pixel;
use ffmpeg_next::frame;

use crate::error::VideoError;

/// A quarter-turn rotation, clockwise, applied to every frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rotation {
    None,
    Clockwise90,
    Half,
    Clockwise270,
}

impl Rotation {
    /// From the clockwise angle `ffmpeg`'s `get_rotation` derives from a
    /// display matrix (`-av_display_rotation_get`, normalised to
    /// `[0, 360)`): the rotation, or `None` with the odd angle.
    pub(crate) fn from_display_matrix(matrix: &[u8]) -> (Rotation, Option<f64>) {
        if matrix.len() < 36 {
            return (Rotation::None, None);
        }
        let mut m = [0i32; 9];
        for (value, bytes) in m.iter_mut().zip(matrix.chunks_exact(4)) {
            *value = i32::from_ne_bytes(bytes.try_into().expect("4 bytes"));
        }
        // SAFETY: `m` is the 3x3 matrix of 16.16 and 2.30 fixed-point values
        // the function reads.
        let ccw = unsafe { ffi::av_display_rotation_get(m.as_ptr()) };
        if ccw.is_nan() {
            return (Rotation::None, None);
        }
        let mut theta = -ccw.round();
        theta -= 360.0 * (theta / 360.0 + 0.9 / 360.0).floor();
        let rotation = match theta {
            t if (t - 90.0).abs() < 1.0 => Rotation::Clockwise90,
            t if (t - 180.0).abs() < 1.0 => Rotation::Half,
            t if (t - 270.0).abs() < 1.0 => Rotation::Clockwise270,
            t if t.abs() > 1.0 => return (Rotation::None, Some(t)),
            _ => Rotation::None,
        };
        (rotation, None)
    }

    pub(crate) fn degrees(self) -> u16 {
        match self {
            Rotation::None => 0,
            Rotation::Clockwise90 => 90,
            Rotation::Half => 180,
            Rotation::Clockwise270 => 270,
        }
    }

    fn apply(self, image: RgbImage) -> RgbImage {
        use image::imageops;
        match self {
            Rotation::None => image,
            Rotation::Clockwise90 => imageops::rotate90(&image),
            Rotation::Half => imageops::rotate180(&image),
            Rotation::Clockwise270 => imageops::rotate270(&image),
        }
    }
}

/// What a swscale context was set up for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key {
    format: ffi::AVPixelFormat,
    width: c_int,
    height: c_int,
    colorspace: ffi::AVColorSpace,
    range: ffi::AVColorRange,
}

/// One swscale context and its RGB output frame, reused while the input
/// keeps its format, size and colour description.
pub(crate) struct Converter {
    sws: Option<(Key, *mut ffi::SwsContext)>,
    rgb: frame::Video,
}

// SAFETY: the swscale context is a heap object used only through `&mut
// self`; it is not tied to the thread that created it.
unsafe impl Send for Converter {}

impl Converter {
    pub(crate) fn new() -> Self {
        Self {
            sws: None,
            rgb: frame::Video::empty(),
        }
    }

    /// The frame as RGB, rotated. Its dimensions were checked against the
    /// limits by the caller.
    pub(crate) fn convert(
        &mut self,
        frame: &frame::Video,
        rotation: Rotation,
    ) -> Result<RgbImage, VideoError> {
        // SAFETY: `frame` is a decoded frame; only its header is read.
        let src = unsafe { &*frame.as_ptr() };
        let key = Key {
            format: frame.format().into(),
            width: src.width,
            height: src.height,
            colorspace: frame.color_space().into(),
            range: frame.color_range().into(),
        };
        let sws = self.context(key)?;
        let (width, height) = (src.width as u32, src.height as u32);
        if self.rgb.width() != width || self.rgb.height() != height {
            self.rgb = frame::Video::new(Pixel::RGB24, width, height);
        }
        // SAFETY: the context was made for this frame's format and size; the
        // output frame is an RGB24 frame of the same size.
        let rows = unsafe {
            let dst = &mut *self.rgb.as_mut_ptr();
            ffi::sws_scale(
                sws,
                src.data.as_ptr() as *const *const u8,
                src.linesize.as_ptr(),
                0,
                src.height,
                dst.data.as_ptr(),
                dst.linesize.as_ptr(),
            )
        };
        if rows != src.height {
            return Err(VideoError::Corrupt(format!(
                "swscale converted {rows} of {} rows of a {} frame",
                src.height,
                pixel_format_name(key.format)
            )));
        }
        let row = width as usize * 3;
        let stride = self.rgb.stride(0);
        let data = self.rgb.data(0);
        let mut pixels = Vec::with_capacity(row * height as usize);
        for y in 0..height as usize {
            pixels.extend_from_slice(&data[y * stride..y * stride + row]);
        }
        let image = RgbImage::from_raw(width, height, pixels).expect("width * height * 3 samples");
        Ok(rotation.apply(image))
    }

    fn context(&mut self, key: Key) -> Result<*mut ffi::SwsContext, VideoError> {
        if let Some((current, sws)) = self.sws {
            if current == key {
                return Ok(sws);
            }
        }
        self.release();
        let sws = unsafe { configure(key) }.ok_or_else(|| {
            VideoError::Corrupt(format!(
                "swscale cannot convert {} {}x{} to RGB",
                pixel_format_name(key.format),
                key.width,
                key.height
            ))
        })?;
        self.sws = Some((key, sws));
        Ok(sws)
    }

    fn release(&mut self) {
        if let Some((_, sws)) = self.sws.take() {
            // SAFETY: the context was made by `configure` and is not used again.
            unsafe { ffi::sws_freeContext(sws) };
        }
    }
}

impl Drop for Converter {
    fn drop(&mut self) {
        self.release();
    }
}

/// `scale`'s `config_props` and `scale_frame`, for a same-size conversion
/// to RGB24 with the CLI's default flags.
unsafe fn configure(key: Key) -> Option<*mut ffi::SwsContext> {
    unsafe {
        let sws = ffi::sws_alloc_context();
        if sws.is_null() {
            return None;
        }
        let set = |name: &CStr, value: i64| {
            ffi::av_opt_set_int(sws as *mut c_void, name.as_ptr(), value, 0) >= 0
        };
        let v_chr_pos = if key.format == ffi::AVPixelFormat::AV_PIX_FMT_YUV420P {
            128
        } else {
            -513
        };
        let ok = set(c"srcw", key.width.into())
            && set(c"srch", key.height.into())
            && set(c"src_format", key.format as i64)
            && set(c"dstw", key.width.into())
            && set(c"dsth", key.height.into())
            && set(c"dst_format", ffi::AVPixelFormat::AV_PIX_FMT_RGB24 as i64)
            && set(c"sws_flags", ffi::SWS_BICUBIC as i64)
            && set(c"threads", 1)
            && set(c"src_h_chr_pos", -513)
            && set(c"src_v_chr_pos", v_chr_pos)
            && set(c"dst_h_chr_pos", -513)
            && set(c"dst_v_chr_pos", -513)
            && ffi::sws_init_context(sws, std::ptr::null_mut(), std::ptr::null_mut()) >= 0;
        if !ok {
            ffi::sws_freeContext(sws);
            return None;
        }
        let (mut inv_table, mut table) = (std::ptr::null_mut(), std::ptr::null_mut());
        let (mut src_full, mut dst_full, mut brightness, mut contrast, mut saturation) =
            (0, 0, 0, 0, 0);
        ffi::sws_getColorspaceDetails(
            sws,
            &mut inv_table,
            &mut src_full,
            &mut table,
            &mut dst_full,
            &mut brightness,
            &mut contrast,
            &mut saturation,
        );
        // parse_yuv_type("auto", colorspace)
        let cs = key.colorspace as c_int;
        let cs = if !(1..=10).contains(&cs) || cs == 8 {
            ffi::AVColorSpace::AVCOL_SPC_BT470BG as c_int
        } else {
            cs
        };
        let coefficients = ffi::sws_getCoefficients(cs);
        if key.range != ffi::AVColorRange::AVCOL_RANGE_UNSPECIFIED {
            src_full = c_int::from(key.range == ffi::AVColorRange::AVCOL_RANGE_JPEG);
        }
        ffi::sws_setColorspaceDetails(
            sws,
            coefficients,
            src_full,
            coefficients,
            dst_full,
            brightness,
            contrast,
            saturation,
        );
        Some(sws)
    }
}

pub(crate) fn pixel_format_name(format: ffi::AVPixelFormat) -> String {
    // SAFETY: returns a static string or null.
    let name = unsafe { ffi::av_get_pix_fmt_name(format) };
    if name.is_null() {
        format!("pixel format {}", format as c_int)
    } else {
        // SAFETY: non-null, static, NUL-terminated.
        unsafe { CStr::from_ptr(name) }
            .to_string_lossy()
            .into_owned()
    }
}
