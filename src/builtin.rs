//! The built-in demo model, compiled into the binary so `demo` and `eval --model demo` need no
//! files: the sinabs gesture architecture (`models/sinabs-gesture.toml`) trained on synthetic
//! gestures by `tools/train-gesture` (`models/gesture-synth.safetensors`, its training record in
//! `models/gesture-synth.json`), and the readout pictures `dynapviz synth --icons` draws
//! (`models/gesture-icons/`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use dynapviz_model::import::{arch::Arch, safetensors};
use dynapviz_model::{Ann, Network, Pipeline};

const WEIGHTS: &[u8] = include_bytes!("../models/gesture-synth.safetensors");
const ARCH: &str = include_str!("../models/sinabs-gesture.toml");
const ICONS: [(&str, &[u8]); 11] = [
    ("01_hand_clapping.png", include_bytes!("../models/gesture-icons/01_hand_clapping.png")),
    ("02_right_hand_wave.png", include_bytes!("../models/gesture-icons/02_right_hand_wave.png")),
    ("03_left_hand_wave.png", include_bytes!("../models/gesture-icons/03_left_hand_wave.png")),
    ("04_right_arm_clockwise.png", include_bytes!("../models/gesture-icons/04_right_arm_clockwise.png")),
    ("05_right_arm_counter_clockwise.png", include_bytes!("../models/gesture-icons/05_right_arm_counter_clockwise.png")),
    ("06_left_arm_clockwise.png", include_bytes!("../models/gesture-icons/06_left_arm_clockwise.png")),
    ("07_left_arm_counter_clockwise.png", include_bytes!("../models/gesture-icons/07_left_arm_counter_clockwise.png")),
    ("08_arm_roll.png", include_bytes!("../models/gesture-icons/08_arm_roll.png")),
    ("09_air_drums.png", include_bytes!("../models/gesture-icons/09_air_drums.png")),
    ("10_air_guitar.png", include_bytes!("../models/gesture-icons/10_air_guitar.png")),
    ("11_other_gestures.png", include_bytes!("../models/gesture-icons/11_other_gestures.png")),
];

/// The chip the built-in model is mapped to.
pub const DEVICE: &str = "speck2e";

/// The built-in ANN and the input shape its architecture names.
pub fn ann() -> Result<(Ann, Option<[usize; 3]>)> {
    let (arch_path, weights_path) = (Path::new("<built-in>/sinabs-gesture.toml"), Path::new("<built-in>/gesture-synth.safetensors"));
    let arch = Arch::parse(ARCH, arch_path)?;
    let ann = arch.build(arch_path, weights_path, safetensors::parse(WEIGHTS, weights_path)?)?;
    Ok((ann, arch.input_shape))
}

/// The built-in model converted, discretized and mapped to [`DEVICE`].
pub fn network() -> Result<Network> {
    let (ann, shape) = ann()?;
    Ok(Pipeline::new(Path::new("<built-in>")).device(DEVICE).build_from(&ann, shape)?)
}

/// Writes the readout pictures into `dir` (created), for the viewer's `readout_images`.
pub fn write_icons(dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (name, bytes) in ICONS {
        let path = dir.join(name);
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(dir.to_path_buf())
}
