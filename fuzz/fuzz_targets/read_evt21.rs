//! Any bytes given to the Evt21 reader: an error or events, never a panic or a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let bytes = Box::new(std::io::Cursor::new(data.to_vec()));
    if let Ok(mut reader) = dynapviz_events::from_reader("fuzz".as_ref(), bytes, dynapviz_events::Format::Evt21) {
        let mut out = Vec::new();
        while let Ok(n) = reader.read_chunk(&mut out, 1024) {
            if n == 0 {
                break;
            }
            out.clear();
        }
    }
});
