//! Which instants of a video are sampled.
//!
//! `Frames(n)` puts one target in the middle of each of `n` equal segments
//! of the timeline, `t_i = duration * (i + 0.5) / n`: the samples cover the
//! whole video evenly, as the DFDC winner's and DeepfakeBench's evenly
//! spaced frame indices do, without landing on the very first frame (often
//! a black fade-in) or on the end of the timeline, where a container's
//! duration may run past the last frame. `Fps(f)` puts them at
//! `(k + 0.5) / f` for every `k` that falls inside the timeline.
//!
//! The frame reported for a target is a real decoded frame and carries its
//! own presentation time, which is what callers should show; targets only
//! say where to look.

use crate::error::VideoError;

/// How many frames to take and where.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampling {
    /// `n` frames spread evenly over the duration.
    Frames(usize),
    /// A fixed rate, in frames per second of the timeline.
    Fps(f64),
}

impl Default for Sampling {
    /// 32 evenly spaced frames, as the DFDC winner and DeepfakeBench sample.
    fn default() -> Self {
        Sampling::Frames(32)
    }
}

/// How a target is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Seek {
    /// The first frame whose presentation time is at or after the target:
    /// seek to the keyframe before it, decode forward. What
    /// `ffmpeg -ss T -i video -frames:v 1` gives.
    #[default]
    Accurate,
    /// The keyframe FFmpeg's backward seek lands on for the target (the
    /// last keyframe at or before it, where the container has an index);
    /// non-key frames are never decoded, so this is much cheaper and
    /// coarser. A container without presentation times (AVI) holding
    /// B-frames gives each keyframe its decode-order time here, a frame or
    /// two off the time a full decode guesses for it.
    Keyframes,
}

/// The targets of one request, in seconds from the start of the timeline,
/// strictly increasing, never more than the frame limit.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Plan {
    pub(crate) targets: Vec<f64>,
    pub(crate) warnings: Vec<String>,
}

pub(crate) fn plan(
    sampling: Sampling,
    duration_s: f64,
    max_frames: usize,
) -> Result<Plan, VideoError> {
    debug_assert!(duration_s > 0.0 && duration_s.is_finite());
    if max_frames == 0 {
        return Err(VideoError::InvalidSampling("the frame limit is 0".into()));
    }
    let mut warnings = Vec::new();
    let even = |n: usize| -> Vec<f64> {
        (0..n)
            .map(|i| duration_s * (i as f64 + 0.5) / n as f64)
            .collect()
    };
    let targets = match sampling {
        Sampling::Frames(0) => {
            return Err(VideoError::InvalidSampling("0 frames requested".into()));
        }
        Sampling::Frames(n) if n > max_frames => {
            warnings.push(format!(
                "{n} frames requested, over the limit of {max_frames}: sampled {max_frames}"
            ));
            even(max_frames)
        }
        Sampling::Frames(n) => even(n),
        Sampling::Fps(fps) if !(fps.is_finite() && fps > 0.0) => {
            return Err(VideoError::InvalidSampling(format!(
                "a rate of {fps} frames per second"
            )));
        }
        Sampling::Fps(fps) => {
            // k + 0.5 < duration * fps, counted in f64 so that no huge rate
            // sizes anything before the limit applies.
            let wanted = (duration_s * fps - 0.5).ceil().max(1.0);
            if wanted > max_frames as f64 {
                warnings.push(format!(
                    "{fps} frames per second over {duration_s:.3} s is {wanted} frames, over the \
                     limit of {max_frames}: sampled {max_frames} evenly ({:.4} per second)",
                    max_frames as f64 / duration_s
                ));
                even(max_frames)
            } else if duration_s * fps <= 0.5 {
                // Shorter than half a period: the one sample goes in the middle.
                vec![duration_s / 2.0]
            } else {
                (0..wanted as usize)
                    .map(|k| (k as f64 + 0.5) / fps)
                    .collect()
            }
        }
    };
    Ok(Plan { targets, warnings })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_sit_in_the_middle_of_equal_segments() {
        let plan = plan(Sampling::Frames(4), 8.0, 256).unwrap();
        assert_eq!(plan.targets, vec![1.0, 3.0, 5.0, 7.0]);
        assert!(plan.warnings.is_empty());
    }

    #[test]
    fn fps_targets_stay_inside_the_timeline() {
        let two = plan(Sampling::Fps(2.0), 2.0, 256).unwrap();
        assert_eq!(two.targets, vec![0.25, 0.75, 1.25, 1.75]);
        // 1.2 s at 1 fps: 0.5 fits, 1.5 does not.
        assert_eq!(
            plan(Sampling::Fps(1.0), 1.2, 256).unwrap().targets,
            vec![0.5]
        );
        // Shorter than half a period: one target in the middle.
        assert_eq!(
            plan(Sampling::Fps(1.0), 0.4, 256).unwrap().targets,
            vec![0.2]
        );
    }

    #[test]
    fn limits_lower_the_count_with_a_warning() {
        let frames = plan(Sampling::Frames(1000), 10.0, 8).unwrap();
        assert_eq!(frames.targets.len(), 8);
        assert_eq!(frames.warnings.len(), 1);
        // A rate that would want 1e300 frames is planned without sizing anything by it.
        let fps = plan(Sampling::Fps(1e300), 10.0, 8).unwrap();
        assert_eq!(fps.targets, frames.targets);
        assert_eq!(fps.warnings.len(), 1);
    }

    #[test]
    fn unusable_requests_are_refused() {
        for sampling in [
            Sampling::Frames(0),
            Sampling::Fps(0.0),
            Sampling::Fps(-1.0),
            Sampling::Fps(f64::NAN),
            Sampling::Fps(f64::INFINITY),
        ] {
            assert!(
                matches!(plan(sampling, 10.0, 8), Err(VideoError::InvalidSampling(_))),
                "{sampling:?}"
            );
        }
    }
}
