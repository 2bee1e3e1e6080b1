//! Any bytes as an ONNX model (after three bytes that give the input shape): the whole
//! pipeline, then the simulator, gives an error or a network, never a panic or a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some((shape, file)) = dynapviz_fuzz::shape_and_file(data) {
        dynapviz_fuzz::whole_pipeline(&dynapviz_fuzz::as_file(file, "onnx"), Some(shape));
    }
});
