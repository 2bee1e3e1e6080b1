//! Test helpers shared by the dynapviz crates.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

/// `shared/<sub>` beside the repository (or under `$DYNAPVIZ_SHARED`), when it exists. When it
/// does not, prints why the calling test skips and returns `None`: a test must never pass
/// silently without its fixtures.
pub fn shared(sub: &str) -> Option<PathBuf> {
    let root = std::env::var_os("DYNAPVIZ_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    let dir = root.join(sub);
    if dir.exists() {
        Some(dir)
    } else {
        note(&format!("SKIPPED: no shared fixtures at {} (set DYNAPVIZ_SHARED)", dir.display()));
        None
    }
}

/// Prints `message` once per test binary, where `cargo test` shows it even when the test
/// passes: the harness captures `println!` and `eprintln!` and shows them only for a failure,
/// so a skip said that way would look like a pass. Direct writes to stderr are not captured.
pub fn note(message: &str) {
    static NOTED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    let mut noted = NOTED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if noted.insert(message.to_owned()) {
        // Nowhere to report a failed write to stderr; the test's own result stands.
        let _ = writeln!(std::io::stderr(), "{message}");
    }
}

/// Deterministic numbers in [0, 1) from `seed` (a 64-bit LCG): weights for test networks that
/// stay the same from run to run.
pub fn uniform(seed: u64) -> impl FnMut() -> f32 {
    const A: u64 = 6364136223846793005;
    const C: u64 = 1442695040888963407;
    let mut x = seed.wrapping_mul(A).wrapping_add(C);
    move || {
        x = x.wrapping_mul(A).wrapping_add(C);
        (x >> 33) as f32 / (1u64 << 31) as f32
    }
}

/// The bytes dv-processing's `NetworkWriter` sent a client (`dv-network-{compression}.bin` of
/// `crates/dynapviz-events/tests/data`, see `tools/dv_network_capture.py`): `none`, `lz4` or
/// `zstd`.
pub fn dv_capture(compression: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../dynapviz-events/tests/data/dv-network-{compression}.bin"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A DV network stream cut where the server sends its parts: the header (its length and the
/// `IOHeader`), then each packet (stream id, size, data).
pub fn dv_stream_parts(stream: &[u8]) -> Vec<&[u8]> {
    let word = |at: usize| u32::from_le_bytes(stream[at..at + 4].try_into().expect("4 bytes")) as usize;
    let header = 4 + word(0);
    let mut parts = vec![&stream[..header]];
    let mut at = header;
    while at < stream.len() {
        let end = at + 8 + word(at + 4);
        parts.push(&stream[at..end]);
        at = end;
    }
    parts
}
