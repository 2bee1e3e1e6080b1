//! Any text as an architecture file, built with the demo's weights (the sinabs gesture network,
//! so a text near the demo's own reaches conversion, mapping and the simulator): an error or a
//! network, never a panic or a hang.
#![no_main]

use std::path::Path;

use dynapviz_model::Pipeline;
use dynapviz_model::import::{arch::Arch, safetensors};
use libfuzzer_sys::fuzz_target;

const WEIGHTS: &[u8] = include_bytes!("../../models/gesture-synth.safetensors");

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (arch_path, weights_path) = (Path::new("fuzz.toml"), Path::new("gesture-synth.safetensors"));
    let Ok(arch) = Arch::parse(text, arch_path) else { return };
    let Ok(state) = safetensors::parse(WEIGHTS, weights_path) else { return };
    let Ok(ann) = arch.build(arch_path, weights_path, state) else { return };
    if let Ok(network) = Pipeline::new(weights_path).device("speck2f").build_from(&ann, arch.input_shape) {
        dynapviz_fuzz::simulate(&network);
    }
});
