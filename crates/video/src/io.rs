//! What FFmpeg reads through, and when it must stop.
//!
//! [`SliceIo`] is a custom `AVIOContext` over borrowed bytes, so a worker
//! decodes a job's inline data where it lies, without a temporary file or a
//! copy. [`Budget`] is the decode time budget; FFmpeg polls it through the
//! format context's interrupt callback (file reads) and the slice reader
//! polls it itself (FFmpeg never calls the interrupt callback for custom
//! I/O).

use std::cell::Cell;
use std::ffi::{c_int, c_void};
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use ffmpeg_next::ffi;

use crate::error::VideoError;

/// Time spent on one video by this crate, the caller's callbacks excluded.
/// Interior mutability: FFmpeg holds its address while the clock is paused
/// and resumed, so it is only ever reached through shared references.
#[derive(Debug)]
pub(crate) struct Budget {
    limit: Duration,
    spent: Cell<Duration>,
    running_since: Cell<Option<Instant>>,
}

impl Budget {
    /// A running budget of `limit_ms`.
    pub(crate) fn start(limit_ms: u64) -> Box<Self> {
        Box::new(Self {
            limit: Duration::from_millis(limit_ms),
            spent: Cell::new(Duration::ZERO),
            running_since: Cell::new(Some(Instant::now())),
        })
    }

    /// Stops the clock (while the caller works on a frame).
    pub(crate) fn pause(&self) {
        if let Some(since) = self.running_since.take() {
            self.spent.set(self.spent.get() + since.elapsed());
        }
    }

    pub(crate) fn resume(&self) {
        if self.running_since.get().is_none() {
            self.running_since.set(Some(Instant::now()));
        }
    }

    pub(crate) fn exceeded(&self) -> bool {
        let running = self
            .running_since
            .get()
            .map_or(Duration::ZERO, |since| since.elapsed());
        self.spent.get() + running > self.limit
    }

    pub(crate) fn error(&self) -> VideoError {
        VideoError::DecodeTimeout {
            limit_ms: self.limit.as_millis() as u64,
        }
    }

    /// The interrupt callback for a format context: its `opaque` is the
    /// budget's address, which the box keeps stable.
    pub(crate) fn interrupt_callback(&self) -> ffi::AVIOInterruptCB {
        ffi::AVIOInterruptCB {
            callback: Some(interrupt),
            opaque: self as *const Self as *mut c_void,
        }
    }
}

unsafe extern "C" fn interrupt(opaque: *mut c_void) -> c_int {
    // SAFETY: `opaque` is the boxed `Budget` of the video whose format
    // context calls this; the box outlives the context (field order of
    // `Video`), and FFmpeg calls it on the thread driving the context.
    c_int::from(unsafe { &*(opaque as *const Budget) }.exceeded())
}

/// FFmpeg's own default `AVIOContext` buffer size.
const BUFFER_SIZE: usize = 32 * 1024;

struct Reader {
    data: *const u8,
    len: usize,
    pos: usize,
    budget: *const Budget,
}

/// A read-only, seekable `AVIOContext` over `&'a [u8]`.
pub(crate) struct SliceIo<'a> {
    ctx: NonNull<ffi::AVIOContext>,
    reader: *mut Reader,
    _data: PhantomData<&'a [u8]>,
}

// SAFETY: the context and the reader are plain heap allocations owned by
// this value; the data is a shared slice (`&[u8]: Send`); FFmpeg only calls
// the callbacks from the thread driving the format context, which is the
// thread that owns the `Video` at the time.
unsafe impl Send for SliceIo<'_> {}

impl<'a> SliceIo<'a> {
    /// `budget` must outlive the returned context.
    pub(crate) fn new(data: &'a [u8], budget: &Budget) -> Result<Self, VideoError> {
        let reader = Box::into_raw(Box::new(Reader {
            data: data.as_ptr(),
            len: data.len(),
            pos: 0,
            budget,
        }));
        // SAFETY: plain allocations; ownership of `buffer` passes to the
        // context on success, and both are released on failure.
        unsafe {
            let buffer = ffi::av_malloc(BUFFER_SIZE) as *mut u8;
            let ctx = if buffer.is_null() {
                std::ptr::null_mut()
            } else {
                ffi::avio_alloc_context(
                    buffer,
                    BUFFER_SIZE as c_int,
                    0,
                    reader as *mut c_void,
                    Some(read),
                    None,
                    Some(seek),
                )
            };
            match NonNull::new(ctx) {
                Some(ctx) => Ok(Self {
                    ctx,
                    reader,
                    _data: PhantomData,
                }),
                None => {
                    ffi::av_free(buffer as *mut c_void);
                    drop(Box::from_raw(reader));
                    Err(VideoError::Corrupt(
                        "out of memory for the input buffer".into(),
                    ))
                }
            }
        }
    }

    pub(crate) fn as_ptr(&self) -> *mut ffi::AVIOContext {
        self.ctx.as_ptr()
    }
}

impl Drop for SliceIo<'_> {
    fn drop(&mut self) {
        // SAFETY: the format context that used this I/O was closed first (it
        // has AVFMT_FLAG_CUSTOM_IO, so closing it left the I/O alone); the
        // buffer is the context's current one (FFmpeg may have replaced the
        // original).
        unsafe {
            let mut ctx = self.ctx.as_ptr();
            ffi::av_freep(&mut (*ctx).buffer as *mut *mut u8 as *mut c_void);
            ffi::avio_context_free(&mut ctx);
            drop(Box::from_raw(self.reader));
        }
    }
}

unsafe extern "C" fn read(opaque: *mut c_void, buf: *mut u8, size: c_int) -> c_int {
    // SAFETY: `opaque` is this context's `Reader`, alive while the context is.
    let reader = unsafe { &mut *(opaque as *mut Reader) };
    // SAFETY: the budget outlives the context (see `SliceIo::new`).
    if unsafe { &*reader.budget }.exceeded() {
        return ffi::AVERROR_EXIT;
    }
    let left = reader.len - reader.pos;
    if left == 0 {
        return ffi::AVERROR_EOF;
    }
    let n = left.min(size.max(0) as usize);
    // SAFETY: `pos + n <= len` within the borrowed slice; FFmpeg's buffer
    // holds `size >= n` bytes.
    unsafe { std::ptr::copy_nonoverlapping(reader.data.add(reader.pos), buf, n) };
    reader.pos += n;
    n as c_int
}

unsafe extern "C" fn seek(opaque: *mut c_void, offset: i64, whence: c_int) -> i64 {
    // SAFETY: as in `read`.
    let reader = unsafe { &mut *(opaque as *mut Reader) };
    let len = reader.len as i64;
    let target = match whence & !(ffi::AVSEEK_FORCE as c_int) {
        w if w == ffi::AVSEEK_SIZE as c_int => return len,
        0 => Some(offset),                            // SEEK_SET
        1 => (reader.pos as i64).checked_add(offset), // SEEK_CUR
        2 => len.checked_add(offset),                 // SEEK_END
        _ => None,
    };
    match target {
        Some(pos) if (0..=len).contains(&pos) => {
            reader.pos = pos as usize;
            pos
        }
        _ => i64::from(ffi::AVERROR(ffi::EINVAL)),
    }
}
