//! Decode throughput per format: `cargo bench -p dynapviz-events --bench decode`.
//! Prints M events/s for every real recording in `../shared/fixtures/events/` (and the golden
//! input of the sinabs fixtures, a CSV file) and for a
//! 2 M-event recording written here in every writable format. `tools/bench-readers` runs this
//! and the Python readers on the same files and prints the ratios.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dynapviz_events::{CHUNK, Event, EventWriter, Format, Geometry};

/// Decodes `path` repeatedly for at least `budget`; returns (events per pass, best M events/s).
fn measure(path: &Path, budget: Duration) -> Result<(u64, f64), dynapviz_events::Error> {
    let mut best = f64::MAX;
    let mut events = 0;
    let start = Instant::now();
    let mut chunk = Vec::with_capacity(CHUNK);
    let mut passes = 0;
    while passes < 3 || start.elapsed() < budget {
        let t = Instant::now();
        let mut r = dynapviz_events::open(path)?;
        events = 0;
        loop {
            chunk.clear();
            let n = r.read_chunk(&mut chunk, CHUNK)?;
            if n == 0 {
                break;
            }
            events += n as u64;
        }
        best = best.min(t.elapsed().as_secs_f64());
        passes += 1;
    }
    Ok((events, events as f64 / best / 1e6))
}

fn main() {
    let budget = Duration::from_millis(std::env::var("BENCH_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(700));
    println!("{:<34} {:>10} {:>12} {:>14}", "file", "format", "events", "M events/s");
    // Without the shared fixtures (`shared` says so), only the synthetic recordings below.
    let shared = dynapviz_testkit::shared("fixtures/events");
    let mut files: Vec<PathBuf> = shared
        .iter()
        .filter_map(|dir| std::fs::read_dir(dir).ok())
        .flat_map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|e| e != "md")))
        .collect();
    files.sort();
    // The sinabs fixtures' input: CSV, the text format many tools export.
    files.extend(shared.map(|dir| dir.join("../golden/gesture_r50/input.csv")).filter(|p| p.exists()));
    // A synthetic recording in every writable format: 2 M events, 640x480, 1 M events/s.
    let dir = std::env::temp_dir().join(format!("dynapviz-bench-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let mut x = 12345u64;
    let events: Vec<Event> = (0..2_000_000u64)
        .map(|i| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            Event::new(i as i64, ((x >> 33) % 640) as u16, ((x >> 45) % 480) as u16, x & 1 == 1)
        })
        .collect();
    for format in Format::ALL.into_iter().filter(|f| f.writable() && *f != Format::Aedat2) {
        let path = dir.join(format!("synthetic.{}", format.name()));
        let mut w = EventWriter::create(&path, format, Geometry::new(640, 480)).expect("create bench file");
        w.write(&events).expect("write bench file");
        w.finish().expect("finish bench file");
        files.push(path);
    }
    for path in &files {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let format = dynapviz_events::detect(path).map(|f| f.name()).unwrap_or("?");
        match measure(path, budget) {
            Ok((n, rate)) => println!("{name:<34} {format:>10} {n:>12} {rate:>14.1}"),
            Err(e) => println!("{name:<34} {format:>10} error: {e}"),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
