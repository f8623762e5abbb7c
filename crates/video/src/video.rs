//! Opening a video and walking its targets: demuxing, seeking, decoding.
//!
//! A [`Video`] owns FFmpeg's format context and one decoder for the chosen
//! stream. For each target it positions the demuxer and decodes forward:
//!
//! - **Accurate**: seek (`avformat_seek_file` with the target as the
//!   latest allowed timestamp, i.e. to the keyframe before it), flush the
//!   decoder, decode forward to the first frame whose presentation time is
//!   at or after the target. If the seek lands after the target (a
//!   container whose index counts decode times, a demuxer that only
//!   approximates), it seeks again from further back. No seek is made when
//!   the container's index shows that the keyframe before the target has
//!   already been read: decoding on from where the previous target left
//!   off reaches the same frame with less work, which is what keeps 32
//!   samples of a 10-second clip with a 250-frame GOP at one decode of it.
//!   At the end of the stream the decoder is drained, and a target past the
//!   last frame gets the last frame (the one a player shows there).
//! - **Keyframes**: the decoder skips every non-key frame
//!   (`AVDISCARD_NONKEY`); each target is a backward seek and the first
//!   frame decoded after it.
//!
//! Frames are reported once: a target that finds the frame the previous
//! one found (a short or sparse video, two targets in one GOP in keyframe
//! mode) adds nothing. Only the frame last decoded is held between
//! targets, so memory is one converted RGB frame plus the decoder's own
//! pipeline, whatever the video.

use std::ffi::{c_int, CStr, CString};
use std::io::Read;
use std::ops::ControlFlow;
use std::path::Path;

use dfscan_imaging::RgbImage;
use ffmpeg_next::codec::packet::side_data::Type as SideDataType;
use ffmpeg_next::format::context::Input;
use ffmpeg_next::{codec, decoder, ffi, frame, media, Error as FfError, Packet};

use crate::convert::{Converter, Rotation};
use crate::error::VideoError;
use crate::io::{Budget, SliceIo};
use crate::limits::VideoLimits;
use crate::probe::{probe, PROBE_BYTES};
use crate::sampling::{plan, Sampling, Seek};

/// Where the video's bytes are.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// A file, read by FFmpeg itself (only the `file` protocol is allowed).
    Path(&'a Path),
    /// Bytes in memory, read in place through a custom `AVIOContext`.
    Bytes(&'a [u8]),
}

/// What the container and the stream's codec parameters say.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoInfo {
    /// FFmpeg's names of the demuxer, e.g. `mov,mp4,m4a,3gp,3g2,mj2` or
    /// `matroska,webm`.
    pub container: String,
    /// FFmpeg's name of the codec, e.g. `h264`, `hevc`, `vp9`, `av1`.
    pub codec: String,
    /// Frame size as displayed, i.e. after [`rotation`](Self::rotation).
    pub width: u32,
    pub height: u32,
    /// Clockwise quarter turn applied to every frame (0, 90, 180, 270),
    /// from the stream's display matrix.
    pub rotation: u16,
    /// Average frame rate, when the container gives one.
    pub fps: Option<f64>,
    /// Length of the timeline sampled, in seconds: the stream's end when
    /// the container records it, else the container's duration.
    pub duration_s: f64,
    /// Frame count the container claims, when it claims one (unverified).
    pub frame_count: Option<u64>,
}

/// One sampled frame.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Presentation time of this decoded frame, in seconds from the start
    /// of the file's timeline (the container's start time, from which
    /// players and `ffmpeg -ss` count). Exact, not the target's time.
    pub t: f64,
    /// Index of the first target that found this frame.
    pub target: usize,
    /// Whether the decoder marked it a keyframe.
    pub keyframe: bool,
    /// The frame in 8-bit RGB, rotated for display.
    pub image: RgbImage,
}

/// What a sampling run did, besides the frames themselves.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub info: VideoInfo,
    /// Targets planned.
    pub targets: usize,
    /// Frames handed over (distinct frames; at most `targets`).
    pub frames: usize,
    /// Why sampling ended before its last target, when it did: the frames
    /// handed over are the ones before it (a partial result).
    pub stopped: Option<VideoError>,
    /// Things worth telling that did not stop sampling: a request lowered
    /// to the limits, packets that failed to decode, frames with concealed
    /// errors, a stream that ends before its timeline does.
    pub warnings: Vec<String>,
}

/// The frames of a video and the summary of the run.
#[derive(Debug, Clone)]
pub struct Sampled {
    pub frames: Vec<Frame>,
    pub summary: Summary,
}

/// How many times an accurate seek that landed after its target retries
/// from further back (1 s, 2 s, 4 s, ... before it) before it accepts the
/// frame it found.
const MAX_BACKOFF: u32 = 6;

/// Longest stretch an accurate target decodes forward instead of seeking
/// when the container's index shows no keyframe in between, in seconds:
/// ten seconds covers the usual GOPs (x264's default 250 frames at 25 fps)
/// and bounds the work where an index lists only the keyframes seen so far.
const FORWARD_INDEXED_S: f64 = 10.0;

/// The same without an index (MPEG-TS, a WebM without cues), where a
/// keyframe may lie anywhere in between: seeking is cheaper beyond this.
const FORWARD_UNINDEXED_S: f64 = 2.0;

/// Last decoded frame and its presentation timestamp, in stream units.
struct Held {
    pts: i64,
    frame: frame::Video,
}

/// The stream fields `open` uses, copied out of FFmpeg's structures.
struct StreamHeader {
    width: u32,
    height: u32,
    codec_id: ffi::AVCodecID,
    time_base: ffi::AVRational,
    start_time: i64,
    duration: i64,
    nb_frames: i64,
    avg_frame_rate: ffi::AVRational,
    r_frame_rate: ffi::AVRational,
}

impl StreamHeader {
    /// # Safety
    /// `st` must be a stream of an open context, with its parameters.
    unsafe fn read(st: &ffi::AVStream) -> Self {
        let par = unsafe { &*st.codecpar };
        Self {
            width: par.width.max(0) as u32,
            height: par.height.max(0) as u32,
            codec_id: par.codec_id,
            time_base: st.time_base,
            start_time: st.start_time,
            duration: st.duration,
            nb_frames: st.nb_frames,
            avg_frame_rate: st.avg_frame_rate,
            r_frame_rate: st.r_frame_rate,
        }
    }
}

/// An opened video, ready to be sampled once.
pub struct Video<'a> {
    // Field order is drop order: the decoder and its frames first, then the
    // format context, then the custom I/O it reads through, then the budget
    // that both poll.
    decoder: decoder::Video,
    held: Option<Held>,
    converter: Converter,
    input: Input,
    _io: Option<SliceIo<'a>>,
    budget: Box<Budget>,
    limits: VideoLimits,
    info: VideoInfo,
    rotation: Rotation,
    stream: usize,
    time_base: (i64, i64),
    /// Timeline origin, in stream units.
    origin: i64,
    /// First timestamp of the stream, in stream units.
    stream_start: i64,
    /// The container's index refers to bytes past the end of the input.
    index_past_end: bool,
    warnings: Vec<String>,
    // Decoding state.
    input_ended: bool,
    exhausted: bool,
    read_error: Option<VideoError>,
    last_dts: Option<i64>,
    last_keyframe_entry: Option<i64>,
    failed_packets: usize,
    corrupt_packets: usize,
    untimed_frames: usize,
}

impl<'a> Video<'a> {
    /// Opens the container, picks its video stream (the one with the most
    /// pixels, cover art excluded, as the `ffmpeg` CLI picks) and opens a
    /// decoder for it. Everything the limits cover is checked here, before
    /// a frame is decoded: size, frame dimensions, duration.
    pub fn open(source: Source<'a>, limits: &VideoLimits) -> Result<Self, VideoError> {
        crate::init();
        let budget = Budget::start(limits.max_decode_ms);
        let (size, format) = match source {
            Source::Path(path) => {
                let io_error = |e: std::io::Error| VideoError::Io {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                };
                let file = std::fs::File::open(path).map_err(io_error)?;
                let size = file.metadata().map_err(io_error)?.len();
                limits.check_bytes(size)?;
                let mut prefix = Vec::with_capacity(PROBE_BYTES.min(size as usize));
                file.take(PROBE_BYTES as u64)
                    .read_to_end(&mut prefix)
                    .map_err(io_error)?;
                (size, probe(&prefix)?)
            }
            Source::Bytes(bytes) => {
                limits.check_bytes(bytes.len() as u64)?;
                (bytes.len() as u64, probe(bytes)?)
            }
        };
        let io = match source {
            Source::Bytes(bytes) => Some(SliceIo::new(bytes, &budget)?),
            Source::Path(_) => None,
        };
        let path = match source {
            Source::Path(path) => Some(path),
            Source::Bytes(_) => None,
        };
        // SAFETY: `io` and `budget` outlive the context: both are stored in
        // the `Video` after it, and dropped after it.
        let mut input = unsafe { open_input(path, format, io.as_ref(), &budget, limits)? };
        let stream = choose_stream(&input)?;
        // SAFETY: `stream` indexes one of the context's streams. The pointer
        // stays raw: FFmpeg updates the stream while it reads packets.
        let st: *mut ffi::AVStream = unsafe { *(*input.as_mut_ptr()).streams.add(stream) };
        for other in 0..input.nb_streams() as usize {
            if other != stream {
                // SAFETY: as above; the demuxer then skips their packets.
                unsafe {
                    (**(*input.as_mut_ptr()).streams.add(other)).discard =
                        ffi::AVDiscard::AVDISCARD_ALL
                };
            }
        }
        // SAFETY: plain fields of the open stream and its parameters, copied.
        let header = unsafe { StreamHeader::read(&*st) };
        limits.check_dimensions(header.width, header.height)?;
        // SAFETY: a static name for any id.
        let codec_name = unsafe { CStr::from_ptr(ffi::avcodec_get_name(header.codec_id)) }
            .to_string_lossy()
            .into_owned();

        let tb = header.time_base;
        let time_base = (i64::from(tb.num), i64::from(tb.den));
        if time_base.0 <= 0 || time_base.1 <= 0 {
            return Err(VideoError::Corrupt(format!(
                "a time base of {}/{}",
                time_base.0, time_base.1
            )));
        }
        // SAFETY: reading the format context's header fields.
        let (format_start, format_duration) =
            unsafe { ((*input.as_ptr()).start_time, (*input.as_ptr()).duration) };
        let to_stream = |us: i64| rescale(us, (1, i64::from(ffi::AV_TIME_BASE)), time_base);
        let known = |ts: i64| (ts != ffi::AV_NOPTS_VALUE).then_some(ts);
        let origin = known(format_start)
            .map(to_stream)
            .or(known(header.start_time))
            .unwrap_or(0);
        let stream_start = known(header.start_time).unwrap_or(origin);
        let seconds = |ts: i64| ts as f64 * time_base.0 as f64 / time_base.1 as f64;
        let duration_s = if let Some(duration) = known(header.duration).filter(|d| *d > 0) {
            seconds(stream_start.saturating_add(duration).saturating_sub(origin))
        } else if let Some(duration) = known(format_duration).filter(|d| *d > 0) {
            duration as f64 / f64::from(ffi::AV_TIME_BASE)
        } else if header.nb_frames == 0 && header.duration == 0 {
            return Err(VideoError::EmptyStream("the stream has no frames".into()));
        } else {
            // No duration in the headers (a live-recorded WebM, as browsers
            // write them): the packets' timestamps say where the stream ends.
            match scan_end(&mut input, stream, &budget, limits)? {
                Some(end) => seconds(end.saturating_sub(origin)),
                None => return Err(VideoError::EmptyStream("the stream has no packets".into())),
            }
        };
        if !duration_s.is_finite() {
            return Err(VideoError::UnknownDuration);
        }
        if duration_s <= 0.0 {
            return Err(VideoError::EmptyStream(format!(
                "a duration of {duration_s} s"
            )));
        }
        limits.check_duration(duration_s)?;

        let mut warnings = Vec::new();
        let (rotation, odd_angle) = st_display_matrix(&input, stream)
            .map_or((Rotation::None, None), |m| {
                Rotation::from_display_matrix(&m)
            });
        if let Some(angle) = odd_angle {
            warnings.push(format!(
                "the stream asks for a rotation of {angle}°, which is not applied (only quarter turns are)"
            ));
        }
        // SAFETY: the stream's parameters, read while nothing else runs.
        let decoder = open_decoder(unsafe { &*(*st).codecpar }, tb, limits, &codec_name)?;
        let rate = |r: ffi::AVRational| {
            (r.num > 0 && r.den > 0).then(|| f64::from(r.num) / f64::from(r.den))
        };
        let (width, height) = match rotation {
            Rotation::Clockwise90 | Rotation::Clockwise270 => (header.height, header.width),
            _ => (header.width, header.height),
        };
        // SAFETY: the demuxer's static name.
        let container = unsafe { CStr::from_ptr((*(*input.as_ptr()).iformat).name) }
            .to_string_lossy()
            .into_owned();
        let info = VideoInfo {
            container,
            codec: codec_name,
            width,
            height,
            rotation: rotation.degrees(),
            fps: rate(header.avg_frame_rate).or_else(|| rate(header.r_frame_rate)),
            duration_s,
            frame_count: (header.nb_frames > 0).then_some(header.nb_frames as u64),
        };
        // SAFETY: the open stream, read while nothing else runs.
        let index_past_end = index_past_end(unsafe { &*st }, size);
        // The clock runs again when sampling starts: time between the two
        // (a queue, the caller's own work) is not decoding.
        budget.pause();
        Ok(Self {
            decoder,
            held: None,
            converter: Converter::new(),
            input,
            _io: io,
            budget,
            limits: *limits,
            info,
            rotation,
            stream,
            time_base,
            origin,
            stream_start,
            index_past_end,
            warnings,
            input_ended: false,
            exhausted: false,
            read_error: None,
            last_dts: None,
            last_keyframe_entry: None,
            failed_packets: 0,
            corrupt_packets: 0,
            untimed_frames: 0,
        })
    }

    pub fn info(&self) -> &VideoInfo {
        &self.info
    }

    /// Samples the video, handing each frame to `each` as soon as it is
    /// converted; `each` returns `ControlFlow::Break(())` to stop early.
    /// At most one converted frame exists at a time on this side.
    ///
    /// `Err` when nothing could be sampled; otherwise the summary, whose
    /// `stopped` says why sampling ended early, if it did.
    pub fn sample_each<F>(
        mut self,
        sampling: Sampling,
        seek: Seek,
        mut each: F,
    ) -> Result<Summary, VideoError>
    where
        F: FnMut(Frame) -> ControlFlow<()>,
    {
        let plan = plan(sampling, self.info.duration_s, self.limits.max_frames)?;
        self.warnings.extend(plan.warnings);
        self.budget.resume();
        if seek == Seek::Keyframes {
            // SAFETY: a plain field of the open decoder, read per packet.
            unsafe { (*self.decoder.as_mut_ptr()).skip_frame = ffi::AVDiscard::AVDISCARD_NONKEY };
        }
        let mut emitted = 0usize;
        let mut last_emitted: Option<i64> = None;
        let mut repeats = 0usize;
        let mut after_end = 0usize;
        let mut concealed = 0usize;
        let mut stopped = None;
        for (index, &t) in plan.targets.iter().enumerate() {
            let target = self.origin.saturating_add(self.target_units(t));
            let found = match seek {
                Seek::Accurate => self.accurate(target),
                Seek::Keyframes => self.keyframe(target),
            };
            if let Err(error) = found {
                stopped = Some(error);
                break;
            }
            let Some(held) = &self.held else {
                // Nothing decodable at or before this target.
                if let Some(error) = self.read_error.take() {
                    stopped = Some(error);
                    break;
                }
                continue;
            };
            if self.exhausted && held.pts < target {
                after_end += 1;
            }
            // Times only go forward: a target that finds the frame of the one
            // before it (or, after an imprecise seek, an earlier one) adds
            // nothing.
            if last_emitted.is_some_and(|last| held.pts <= last) {
                repeats += 1;
            } else {
                last_emitted = Some(held.pts);
                let image = match self.converter.convert(&held.frame, self.rotation) {
                    Ok(image) => image,
                    Err(error) => {
                        stopped = Some(error);
                        break;
                    }
                };
                concealed += usize::from(held.frame.is_corrupt() || held.frame.has_decode_errors());
                let frame = Frame {
                    t: self.seconds(held.pts - self.origin),
                    target: index,
                    keyframe: held.frame.is_key(),
                    image,
                };
                emitted += 1;
                self.budget.pause();
                let flow = each(frame);
                self.budget.resume();
                if flow.is_break() {
                    break;
                }
            }
            if let Some(error) = self.read_error.take() {
                stopped = Some(error);
                break;
            }
        }
        if emitted == 0 {
            return Err(stopped.unwrap_or_else(|| self.nothing_decoded()));
        }
        let last_t = last_emitted.map_or(0.0, |pts| self.seconds(pts - self.origin));
        self.finish_warnings(repeats, after_end, last_t, concealed, seek);
        Ok(Summary {
            info: self.info.clone(),
            targets: plan.targets.len(),
            frames: emitted,
            stopped,
            warnings: std::mem::take(&mut self.warnings),
        })
    }

    /// Samples the video and collects the frames.
    pub fn sample(self, sampling: Sampling, seek: Seek) -> Result<Sampled, VideoError> {
        let mut frames = Vec::new();
        let summary = self.sample_each(sampling, seek, |frame| {
            frames.push(frame);
            ControlFlow::Continue(())
        })?;
        Ok(Sampled { frames, summary })
    }

    fn nothing_decoded(&self) -> VideoError {
        if self.failed_packets > 0 {
            VideoError::Corrupt(format!(
                "none of {} packets decoded to a frame",
                self.failed_packets
            ))
        } else if self.untimed_frames > 0 {
            VideoError::Corrupt(format!(
                "{} frames decoded without a timestamp",
                self.untimed_frames
            ))
        } else {
            VideoError::EmptyStream("no frame decoded".into())
        }
    }

    /// `last_t`: time of the last frame handed over.
    fn finish_warnings(
        &mut self,
        repeats: usize,
        after_end: usize,
        last_t: f64,
        concealed: usize,
        seek: Seek,
    ) {
        // The last frame is shown until the end of the timeline; only a gap
        // of more than two frames (and half a second) says the stream ends
        // early.
        let frame_interval = self.info.fps.map_or(0.04, |fps| 1.0 / fps);
        let gap = self.info.duration_s - last_t;
        if after_end > 0 && gap > (2.0 * frame_interval).max(0.5) {
            self.warnings.push(format!(
                "the frames end at t={last_t:.3} s of a {:.3} s timeline: {after_end} targets after \
                 the last frame found it again (a truncated file, or a video stream shorter than \
                 the container)",
                self.info.duration_s
            ));
        } else if repeats > 0 {
            self.warnings.push(match seek {
                Seek::Accurate => format!("{repeats} targets found a frame already sampled (fewer frames than targets there)"),
                Seek::Keyframes => format!("{repeats} targets found a keyframe already sampled"),
            });
        }
        if concealed > 0 {
            self.warnings.push(format!(
                "{concealed} sampled frames had decoding errors (concealed by the decoder)"
            ));
        }
        if self.corrupt_packets > 0 {
            self.warnings.push(format!(
                "{} packets were incomplete or damaged as read from the container",
                self.corrupt_packets
            ));
        }
        if self.failed_packets > 0 {
            self.warnings
                .push(format!("{} packets failed to decode", self.failed_packets));
        }
        if self.untimed_frames > 0 {
            self.warnings.push(format!(
                "{} decoded frames had no timestamp and were skipped",
                self.untimed_frames
            ));
        }
    }

    /// The first frame at or after `target` (stream units) into `held`.
    fn accurate(&mut self, target: i64) -> Result<(), VideoError> {
        if self.held.as_ref().is_some_and(|h| h.pts >= target) {
            return Ok(());
        }
        let entry = self.keyframe_entry(target);
        // After the end of the data only the index can say there is more
        // (past a stretch the demuxer could not read).
        if self.exhausted && !matches!((entry, self.last_dts), (Some(kf), Some(read)) if kf > read)
        {
            return Ok(());
        }
        let forward = self.last_dts.is_some_and(|read| {
            let gap = target.saturating_sub(read);
            match entry {
                // No keyframe between here and the target: decoding on costs
                // less than seeking back to the one behind, within a GOP of
                // any usual length.
                Some(keyframe) => {
                    keyframe <= read && gap <= self.to_stream_units(FORWARD_INDEXED_S)
                }
                // No index: a short gap is cheaper decoded than sought.
                None => gap <= self.to_stream_units(FORWARD_UNINDEXED_S),
            }
        });
        let mut seek_to = target;
        let mut backoff = self.to_stream_units(1.0).max(1);
        let mut retries = 0;
        let mut fresh = !forward && self.seek(seek_to)?;
        while let Some((pts, frame)) = self.next_frame()? {
            if fresh && pts > target && retries < MAX_BACKOFF && seek_to > self.stream_start {
                seek_to = seek_to.saturating_sub(backoff);
                backoff = backoff.saturating_mul(2);
                retries += 1;
                fresh = self.seek(seek_to)?;
                continue;
            }
            fresh = false;
            self.held = Some(Held { pts, frame });
            if pts >= target {
                return Ok(());
            }
        }
        self.exhausted = true;
        Ok(())
    }

    /// The keyframe a backward seek to `target` lands on into `held`.
    fn keyframe(&mut self, target: i64) -> Result<(), VideoError> {
        let entry = self.keyframe_entry(target);
        if entry.is_some() && entry == self.last_keyframe_entry && self.held.is_some() {
            return Ok(());
        }
        if !self.seek(target)? && self.exhausted {
            return Ok(());
        }
        self.last_keyframe_entry = entry;
        loop {
            match self.next_frame()? {
                // A decoder that does not honour AVDISCARD_NONKEY hands over
                // its other frames too: they are passed over.
                Some((_, frame)) if !is_intra(&frame) => continue,
                Some((pts, frame)) => self.held = Some(Held { pts, frame }),
                None => self.exhausted = true,
            }
            return Ok(());
        }
    }

    /// Repositions the demuxer at the keyframe at or before `ts` and resets
    /// the decoder. `Ok(false)` when the container cannot seek there (then
    /// decoding simply goes on from where it is).
    fn seek(&mut self, ts: i64) -> Result<bool, VideoError> {
        // SAFETY: an open input context and one of its stream indices.
        let ret = unsafe {
            ffi::avformat_seek_file(
                self.input.as_mut_ptr(),
                self.stream as c_int,
                i64::MIN,
                ts,
                ts,
                0,
            )
        };
        if self.budget.exceeded() {
            return Err(self.budget.error());
        }
        if ret < 0 {
            return Ok(false);
        }
        self.decoder.flush();
        self.held = None;
        self.input_ended = false;
        self.exhausted = false;
        self.last_dts = None;
        Ok(true)
    }

    /// The next decoded frame with a timestamp, `None` once the stream is
    /// drained.
    fn next_frame(&mut self) -> Result<Option<(i64, frame::Video)>, VideoError> {
        let mut frame = frame::Video::empty();
        let mut packet = Packet::empty();
        loop {
            if self.budget.exceeded() {
                return Err(self.budget.error());
            }
            match self.decoder.receive_frame(&mut frame) {
                Ok(()) => {
                    self.limits
                        .check_dimensions(frame.width(), frame.height())?;
                    match frame.timestamp() {
                        Some(pts) => return Ok(Some((pts, frame))),
                        None => {
                            self.untimed_frames += 1;
                            continue;
                        }
                    }
                }
                Err(FfError::Eof) => return Ok(None),
                Err(FfError::Other { errno }) if errno == ffi::EAGAIN => {}
                // A frame that failed to decode; the decoder goes on, as the CLI does.
                Err(_) => {
                    self.failed_packets += 1;
                    continue;
                }
            }
            if self.input_ended {
                // Drained already, yet the decoder wants more: nothing left.
                return Ok(None);
            }
            match packet.read(&mut self.input) {
                Ok(()) => {
                    if packet.stream() != self.stream {
                        continue;
                    }
                    if let Some(ts) = packet.dts().or(packet.pts()) {
                        self.last_dts = Some(ts);
                    }
                    self.corrupt_packets += usize::from(packet.is_corrupt());
                    match self.decoder.send_packet(&packet) {
                        Ok(()) => {}
                        Err(_) => self.failed_packets += 1,
                    }
                }
                Err(FfError::Eof) => {
                    if self.index_past_end {
                        self.read_error = Some(VideoError::Truncated(
                            "the data ends before the samples its index lists".into(),
                        ));
                    }
                    self.end_input();
                }
                Err(error) => {
                    if self.budget.exceeded() {
                        return Err(self.budget.error());
                    }
                    self.read_error = Some(self.read_failure(error));
                    self.end_input();
                }
            }
        }
    }

    fn end_input(&mut self) {
        self.input_ended = true;
        // Draining: the decoder returns what it holds, then EOF.
        let _ = self.decoder.send_eof();
    }

    /// A demuxer error: truncated when the input ran out, corrupt otherwise.
    /// Either way the input ends there, as it does for the `ffmpeg` CLI.
    fn read_failure(&self, error: FfError) -> VideoError {
        // SAFETY: the context's I/O, read-only.
        let at_end = unsafe {
            let pb = (*self.input.as_ptr()).pb;
            !pb.is_null() && ffi::avio_feof(pb) != 0
        };
        if at_end || self.index_past_end {
            VideoError::Truncated(format!("reading failed at the end of the data ({error})"))
        } else {
            VideoError::Corrupt(format!("reading the container failed ({error})"))
        }
    }

    /// Timestamp of the index entry a backward seek to `ts` would use.
    fn keyframe_entry(&self, ts: i64) -> Option<i64> {
        // SAFETY: the chosen stream of the open context; the entry is read
        // at once, before anything can change the index.
        unsafe {
            let st = *(*self.input.as_ptr()).streams.add(self.stream);
            let entry = ffi::avformat_index_get_entry_from_timestamp(
                st,
                ts,
                ffi::AVSEEK_FLAG_BACKWARD as c_int,
            );
            entry.as_ref().map(|e| e.timestamp)
        }
    }

    fn seconds(&self, ts: i64) -> f64 {
        ts as f64 * self.time_base.0 as f64 / self.time_base.1 as f64
    }

    /// Seconds to stream units, rounded down.
    fn to_stream_units(&self, seconds: f64) -> i64 {
        (seconds * self.time_base.1 as f64 / self.time_base.0 as f64).floor() as i64
    }

    /// A target in stream units: the first timestamp not before it, so that
    /// "at or after the target" compares timestamps exactly (the `ffmpeg`
    /// CLI rounds `-ss` to the stream's units the same way), give or take a
    /// millionth of a unit of floating-point error.
    fn target_units(&self, seconds: f64) -> i64 {
        (seconds * self.time_base.1 as f64 / self.time_base.0 as f64 - 1e-6).ceil() as i64
    }
}

/// A keyframe, or an intra-coded frame the decoder does not call one (an
/// H.264 I-frame outside an IDR without a recovery point).
fn is_intra(frame: &frame::Video) -> bool {
    frame.is_key() || frame.kind() == ffmpeg_next::picture::Type::I
}

/// `ts` from one time base to another, rounded to nearest.
fn rescale(ts: i64, from: (i64, i64), to: (i64, i64)) -> i64 {
    // SAFETY: pure arithmetic.
    unsafe {
        ffi::av_rescale_q(
            ts,
            ffi::AVRational {
                num: from.0 as c_int,
                den: from.1 as c_int,
            },
            ffi::AVRational {
                num: to.0 as c_int,
                den: to.1 as c_int,
            },
        )
    }
}

/// `avformat_open_input` with the probed demuxer (so the file name plays no
/// part), the budget as interrupt callback, no protocol but `file`, and
/// `avformat_find_stream_info` with the pixel limit on every decoder it
/// opens to probe.
///
/// # Safety
/// `io` and `budget` must outlive the returned context.
unsafe fn open_input(
    path: Option<&Path>,
    format: &ffi::AVInputFormat,
    io: Option<&SliceIo<'_>>,
    budget: &Budget,
    limits: &VideoLimits,
) -> Result<Input, VideoError> {
    let failed = |what: &str, error: FfError| {
        if budget.exceeded() {
            budget.error()
        } else {
            VideoError::Corrupt(format!("{what} ({error})"))
        }
    };
    let url = match path {
        Some(path) => {
            use std::os::unix::ffi::OsStrExt;
            let mut url = b"file:".to_vec();
            url.extend_from_slice(path.as_os_str().as_bytes());
            CString::new(url).map_err(|_| VideoError::Io {
                path: path.to_path_buf(),
                message: "the path contains a NUL byte".into(),
            })?
        }
        None => CString::default(),
    };
    unsafe {
        let mut ctx = ffi::avformat_alloc_context();
        if ctx.is_null() {
            return Err(VideoError::Corrupt(
                "out of memory for the format context".into(),
            ));
        }
        (*ctx).interrupt_callback = budget.interrupt_callback();
        if let Some(io) = io {
            (*ctx).pb = io.as_ptr();
            (*ctx).flags |= ffi::AVFMT_FLAG_CUSTOM_IO as c_int;
        }
        let mut options = ffmpeg_next::Dictionary::new();
        // Nothing but the file itself may be opened (a reference to another
        // file or URL inside a container is refused).
        options.set(
            "protocol_whitelist",
            if path.is_some() { "file" } else { "none" },
        );
        let mut options = options.disown();
        let ret = ffi::avformat_open_input(&mut ctx, url.as_ptr(), format, &mut options);
        drop(ffmpeg_next::Dictionary::own(options));
        if ret < 0 {
            // avformat_open_input freed the context (and left custom I/O alone).
            if let (Some(path), FfError::Other { errno }) = (path, FfError::from(ret)) {
                if errno != ffi::EINVAL {
                    return Err(VideoError::Io {
                        path: path.to_path_buf(),
                        message: FfError::from(ret).to_string(),
                    });
                }
            }
            // SAFETY: the demuxer's static name.
            let names = CStr::from_ptr(format.name).to_string_lossy();
            return Err(failed(
                &format!("FFmpeg cannot open it as {names}"),
                FfError::from(ret),
            ));
        }
        let mut input = Input::wrap(ctx);
        for st in 0..(*ctx).nb_streams as usize {
            let par = &*(**(*ctx).streams.add(st)).codecpar;
            if par.codec_type == ffi::AVMediaType::AVMEDIA_TYPE_VIDEO
                && par.width > 0
                && par.height > 0
            {
                limits.check_dimensions(par.width as u32, par.height as u32)?;
            }
        }
        let streams = (*ctx).nb_streams as usize;
        let max_pixels = CString::new(limits.max_pixels_per_frame.to_string()).expect("digits");
        let mut per_stream = vec![std::ptr::null_mut::<ffi::AVDictionary>(); streams];
        for dict in &mut per_stream {
            ffi::av_dict_set(dict, c"max_pixels".as_ptr(), max_pixels.as_ptr(), 0);
        }
        let ret = ffi::avformat_find_stream_info(input.as_mut_ptr(), per_stream.as_mut_ptr());
        for dict in &mut per_stream {
            ffi::av_dict_free(dict);
        }
        if ret < 0 && (budget.exceeded() || (*ctx).nb_streams == 0) {
            return Err(failed(
                "FFmpeg finds no stream parameters",
                FfError::from(ret),
            ));
        }
        Ok(input)
    }
}

/// The end (largest `pts + duration`, in stream units) of the stream's
/// packets, read to the end of the input without decoding, the demuxer then
/// rewound to the start. Bounded by the bytes limit and the budget; stops
/// early, with `TooLong`, once the end passes the duration limit.
fn scan_end(
    input: &mut Input,
    stream: usize,
    budget: &Budget,
    limits: &VideoLimits,
) -> Result<Option<i64>, VideoError> {
    // SAFETY: the stream's time base, read before any packet.
    let tb = unsafe { (**(*input.as_ptr()).streams.add(stream)).time_base };
    let limit = (limits.max_duration_s * f64::from(tb.den) / f64::from(tb.num.max(1)))
        .min(i64::MAX as f64) as i64;
    let (mut first, mut end): (Option<i64>, Option<i64>) = (None, None);
    let mut packet = Packet::empty();
    loop {
        match packet.read(input) {
            Ok(()) if packet.stream() == stream => {
                if let Some(pts) = packet.pts().or(packet.dts()) {
                    let last = pts.saturating_add(packet.duration().max(0));
                    let start = first.map_or(pts, |f| f.min(pts));
                    first = Some(start);
                    end = Some(end.map_or(last, |e| e.max(last)));
                    if last.saturating_sub(start) > limit {
                        return Err(VideoError::TooLong {
                            duration_s: last.saturating_sub(start) as f64 * f64::from(tb.num)
                                / f64::from(tb.den),
                            limit_s: limits.max_duration_s,
                        });
                    }
                }
            }
            Ok(()) => {}
            Err(FfError::Eof) => break,
            Err(_) if budget.exceeded() => return Err(budget.error()),
            // What cannot be read ends the scan; the timestamps so far stand.
            Err(_) => break,
        }
    }
    // SAFETY: an open input and one of its streams.
    let start = first.unwrap_or(0);
    let ret = unsafe {
        ffi::avformat_seek_file(
            input.as_mut_ptr(),
            stream as c_int,
            i64::MIN,
            start,
            start,
            0,
        )
    };
    if ret < 0 {
        return Err(VideoError::Corrupt(format!(
            "the demuxer cannot return to the start after measuring the duration ({})",
            FfError::from(ret)
        )));
    }
    Ok(end)
}

/// The video stream with the most pixels, cover art excluded; the first
/// of equals.
fn choose_stream(input: &Input) -> Result<usize, VideoError> {
    let mut best: Option<(usize, i64)> = None;
    for stream in input.streams() {
        let par = stream.parameters();
        if par.medium() != media::Type::Video
            || stream
                .disposition()
                .contains(ffmpeg_next::format::stream::Disposition::ATTACHED_PIC)
        {
            continue;
        }
        // SAFETY: reading the parameters' plain fields.
        let pixels =
            unsafe { i64::from((*par.as_ptr()).width) * i64::from((*par.as_ptr()).height) };
        if best.is_none_or(|(_, most)| pixels > most) {
            best = Some((stream.index(), pixels));
        }
    }
    best.map(|(index, _)| index)
        .ok_or(VideoError::NoVideoStream)
}

/// The stream's display matrix, when it has one.
fn st_display_matrix(input: &Input, stream: usize) -> Option<Vec<u8>> {
    input
        .stream(stream)?
        .side_data()
        .find(|data| data.kind() == SideDataType::DisplayMatrix)
        .map(|data| data.data().to_vec())
}

fn open_decoder(
    par: &ffi::AVCodecParameters,
    time_base: ffi::AVRational,
    limits: &VideoLimits,
    codec_name: &str,
) -> Result<decoder::Video, VideoError> {
    let mut context = codec::Context::new();
    // SAFETY: copying parameters into a fresh context, then setting plain
    // fields before the decoder opens.
    unsafe {
        let ctx = context.as_mut_ptr();
        if ffi::avcodec_parameters_to_context(ctx, par) < 0 {
            return Err(VideoError::Corrupt("unusable codec parameters".into()));
        }
        (*ctx).pkt_timebase = time_base;
        // FFmpeg refuses to allocate a frame over this (a resolution change
        // mid-stream included).
        (*ctx).max_pixels = limits.max_pixels_per_frame.min(i64::MAX as u64) as i64;
        (*ctx).thread_count = limits.max_decode_threads.clamp(1, 64) as c_int;
    }
    match context.decoder().video() {
        Ok(decoder) => Ok(decoder),
        Err(FfError::DecoderNotFound) => Err(VideoError::UnsupportedCodec(codec_name.to_owned())),
        Err(error) => Err(VideoError::Corrupt(format!(
            "the {codec_name} decoder does not open ({error})"
        ))),
    }
}

/// Whether the last keyframe entry of the stream's index lies past the end
/// of the input: a file cut short after its index was written (an MP4 with
/// its `moov` first).
fn index_past_end(st: &ffi::AVStream, size: u64) -> bool {
    // SAFETY: the stream of an open context; entries read at once.
    unsafe {
        let count = ffi::avformat_index_get_entries_count(st);
        if count <= 0 {
            return false;
        }
        ffi::avformat_index_get_entry(st as *const _ as *mut _, count - 1)
            .as_ref()
            .is_some_and(|e| e.pos >= 0 && e.pos as u64 + u64::from(e.size() as u32) > size)
    }
}
