//! Any bytes as a safetensors file: an error or tensors, never a panic or a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = dynapviz_model::import::safetensors::parse(data, "fuzz.safetensors".as_ref());
});
