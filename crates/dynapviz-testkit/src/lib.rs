//! Test helpers shared by the dynapviz crates.

use std::path::PathBuf;

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
        println!("SKIPPED: no shared fixtures at {} (set DYNAPVIZ_SHARED)", dir.display());
        None
    }
}
