//! Any bytes as a NIR model (which names its own input shape): the whole pipeline, then the
//! simulator, gives an error or a network, never a panic or a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    dynapviz_fuzz::whole_pipeline(&dynapviz_fuzz::as_file(data, "nir"), None);
});
