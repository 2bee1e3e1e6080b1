//! Label files of DVS128 Gesture: `class,startTime_usec,endTime_usec`, one labelled segment of
//! the recording per line, classes 1..11.

use std::path::Path;

use crate::{Error, Result};

/// One labelled time segment of a recording.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Class number as in the file (1..11 for DVS128 Gesture).
    pub class: u32,
    /// Start, µs, inclusive.
    pub start_us: i64,
    /// End, µs, exclusive.
    pub end_us: i64,
}

/// Names of the 11 DVS128 Gesture classes, class 1 first.
pub const GESTURE_CLASSES: [&str; 11] = [
    "hand_clapping",
    "right_hand_wave",
    "left_hand_wave",
    "right_arm_clockwise",
    "right_arm_counter_clockwise",
    "left_arm_clockwise",
    "left_arm_counter_clockwise",
    "arm_roll",
    "air_drums",
    "air_guitar",
    "other_gestures",
];

/// Reads a label CSV; a header line is optional.
pub fn read_labels(path: &Path) -> Result<Vec<Segment>> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.to_path_buf(), error: source })?;
    parse_labels(path, &text)
}

/// Parses label CSV text; `path` names it in errors.
pub fn parse_labels(path: &Path, text: &str) -> Result<Vec<Segment>> {
    let mut out = Vec::new();
    let mut offset = 0u64;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let at = offset;
        offset += line.len() as u64;
        let l = line.trim();
        if l.is_empty() || (i == 0 && l.bytes().any(|b| b.is_ascii_alphabetic())) {
            continue;
        }
        let bad = || Error::Format {
            path: path.to_path_buf(),
            offset: at,
            message: format!("line {}: `{l}` is not `class,startTime_usec,endTime_usec`", i + 1),
        };
        let f: Vec<&str> = l.split(',').map(str::trim).collect();
        let [c, s, e] = f[..] else { return Err(bad()) };
        let seg = Segment {
            class: c.parse().map_err(|_| bad())?,
            start_us: s.parse().map_err(|_| bad())?,
            end_us: e.parse().map_err(|_| bad())?,
        };
        if seg.end_us < seg.start_us {
            return Err(Error::Format {
                path: path.to_path_buf(),
                offset: at,
                message: format!("line {}: segment ends ({}) before it starts ({})", i + 1, seg.end_us, seg.start_us),
            });
        }
        out.push(seg);
    }
    Ok(out)
}

/// Writes segments in the DVS128 Gesture layout (with its header line).
pub fn write_labels(path: &Path, segments: &[Segment]) -> Result<()> {
    let mut text = String::from("class,startTime_usec,endTime_usec\n");
    for s in segments {
        text.push_str(&format!("{},{},{}\n", s.class, s.start_us, s.end_us));
    }
    std::fs::write(path, text).map_err(|source| Error::Io { path: path.to_path_buf(), error: source })
}
