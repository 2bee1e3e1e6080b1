//! Any bytes as the pickle (`data.pkl`) of a `torch.save` state_dict, in a well-formed zip
//! beside storages `0`-`3` of 64 KiB (a mutated zip mostly fails its checksums before the
//! pickle is read): an error or tensors, never a panic, a hang or an allocation that fails.
#![no_main]

use std::io::Write as _;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let stored = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let storage: Vec<u8> = (0..1u32 << 16).map(|i| i as u8).collect();
    let entries = [("archive/data.pkl", data)].into_iter().chain(["0", "1", "2", "3"].map(|k| (k, &storage[..])));
    for (name, bytes) in entries {
        let name = if name.len() == 1 { format!("archive/data/{name}") } else { name.to_string() };
        if zip.start_file(name, stored).and_then(|()| Ok(zip.write_all(bytes)?)).is_err() {
            return;
        }
    }
    let Ok(file) = zip.finish() else { return };
    let _ = dynapviz_model::import::torch::load_state_dict(&dynapviz_fuzz::as_file(file.get_ref(), "pt"));
});
