//! Any bytes as a `torch.save` state_dict (a zip holding a pickle and tensor data): an error
//! or tensors, never a panic or a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = dynapviz_model::import::torch::load_state_dict(&dynapviz_fuzz::as_file(data, "pt"));
});
