//! What the model targets share: the fuzzer's bytes as a model file, and the whole pipeline on it.

use std::path::PathBuf;

use dynapviz_chip::{Config, Mode, Simulator};
use dynapviz_events::Event;
use dynapviz_model::{Network, Pipeline};

/// `bytes` written to a file named `model.EXT` in a directory of this process's own (the
/// importers read files: an ONNX model's external data lies beside it).
pub fn as_file(bytes: &[u8], ext: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dynapviz-fuzz-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(format!("model.{ext}"));
    std::fs::write(&path, bytes).expect("the fuzzer's scratch directory is writable");
    path
}

/// The input shape from the first three bytes (channels 1-4, sides 1-128), so that the
/// fuzzer can reach what depends on the shape; the rest is the file.
pub fn shape_and_file(data: &[u8]) -> Option<([usize; 3], &[u8])> {
    let (&[c, h, w], file) = data.split_first_chunk::<3>()?;
    Some(([1 + c as usize % 4, 1 + h as usize % 128, 1 + w as usize % 128], file))
}

/// Import, convert, discretize and map for a Speck 2f; then, if that gave a network, build the
/// simulator and run a few events through it in both modes. Any outcome but a panic or a hang
/// is fine: bad files must give errors.
pub fn whole_pipeline(path: &std::path::Path, shape: Option<[usize; 3]>) {
    let mut pipeline = Pipeline::new(path).device("speck2f");
    if let Some(shape) = shape {
        pipeline = pipeline.input_shape(shape);
    }
    if let Ok(network) = pipeline.build() {
        simulate(&network);
    }
}

/// A few events through the simulator in both modes.
pub fn simulate(network: &Network) {
    let [_, h, w] = network.dvs.input_shape;
    let events: Vec<Event> =
        (0..64u32).map(|i| Event::new(i64::from(i) * 50, (i * 7) as u16 % w as u16, (i * 13) as u16 % h as u16, i % 2 == 0)).collect();
    for mode in [Mode::Event, Mode::Binned { bin_us: 1000 }] {
        if let Ok(mut sim) = Simulator::new(network, Config { mode, ..Config::default() }) {
            sim.process(&events, &mut Vec::new());
        }
    }
}
