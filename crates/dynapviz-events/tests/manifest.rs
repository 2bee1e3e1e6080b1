//! Every recording in `../shared/fixtures/events/` decodes to exactly the figures its
//! `MANIFEST.md` table gives. The table is parsed, not copied, so a new row is a new test case.

use std::path::PathBuf;

use dynapviz_events::{Geometry, inspect};

fn shared() -> Option<PathBuf> {
    // The shared folder itself: the tests name paths below it.
    dynapviz_testkit::shared("fixtures/events").map(|d| d.join("../.."))
}

fn num(s: &str) -> i64 {
    s.trim().replace(',', "").parse().unwrap_or_else(|_| panic!("not a number in MANIFEST: `{s}`"))
}

fn range(s: &str, sep: &str) -> (i64, i64) {
    let (a, b) = s.split_once(sep).unwrap_or_else(|| panic!("not a range: `{s}`"));
    (num(a), num(b))
}

#[test]
fn every_manifest_recording_decodes_to_its_figures() {
    let Some(shared) = shared() else { return };
    let dir = shared.join("fixtures/events");
    let manifest = std::fs::read_to_string(dir.join("MANIFEST.md")).expect("MANIFEST.md");
    let mut checked = 0;
    for line in manifest.lines().filter(|l| l.starts_with('|')) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        if cells.len() < 9 || cells[0] == "file" || cells[0].starts_with("---") {
            continue;
        }
        let path = dir.join(cells[0]);
        let got = inspect(&path).unwrap_or_else(|e| panic!("{e}"));
        let s = &got.summary;
        let (on, off) = range(cells[5], "/");
        let (t0, t1) = range(cells[6], "..");
        let (x0, x1) = range(cells[7], "..");
        let (y0, y1) = range(cells[8], "..");
        let name = cells[0];
        assert_eq!(s.events as i64, num(cells[4]), "{name}: event count");
        assert_eq!((s.on as i64, s.off as i64), (on, off), "{name}: ON/OFF");
        assert_eq!((s.t_first_us, s.t_last_us), (Some(t0), Some(t1)), "{name}: first/last t");
        let xr = s.x_range.map(|(a, b)| (i64::from(a), i64::from(b)));
        let yr = s.y_range.map(|(a, b)| (i64::from(a), i64::from(b)));
        assert_eq!(xr, Some((x0, x1)), "{name}: x range");
        assert_eq!(yr, Some((y0, y1)), "{name}: y range");
        // Where the sensor column states a size the file itself carries, it must be found.
        if let Some(g) = got.geometry {
            assert!(g.contains(x1 as u16, y1 as u16), "{name}: geometry {g} does not hold the events");
        }
        checked += 1;
    }
    assert!(checked >= 6, "only {checked} recordings checked");
}

#[test]
fn geometry_comes_from_the_file() {
    let Some(shared) = shared() else { return };
    let dir = shared.join("fixtures/events");
    for (file, want) in [
        ("dvxplorer_person.aedat4", Some(Geometry::new(320, 240))),
        ("davis346_street.aedat4", Some(Geometry::new(346, 260))),
        ("gen3_grass_evt2.raw", Some(Geometry::new(640, 480))),
        ("gen3_ring_evt2.raw", Some(Geometry::new(640, 480))),
    ] {
        let got = inspect(&dir.join(file)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got.geometry, want, "{file}");
    }
}

/// Every recording, written as EVT 2.1 (events of one row and time share words) and read back,
/// is the same events in the same order: the real rows' runs of pixels, not only made-up ones.
#[test]
fn every_manifest_recording_survives_evt21() {
    let Some(shared) = shared() else { return };
    let dir = shared.join("fixtures/events");
    let out = tempfile::tempdir().expect("tempdir");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("fixtures/events") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "md") {
            continue;
        }
        let mut r = dynapviz_events::open(&path).unwrap_or_else(|e| panic!("{e}"));
        let events = dynapviz_events::read_all(r.as_mut()).unwrap_or_else(|e| panic!("{e}"));
        let geometry = r.geometry().unwrap_or(Geometry::new(2048, 2048));
        let copy = out.path().join("copy.raw");
        let mut w = dynapviz_events::EventWriter::create(&copy, dynapviz_events::Format::Evt21, geometry).expect("create");
        w.write(&events).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        w.finish().expect("finish");
        let mut back = dynapviz_events::open(&copy).expect("detected as EVT 2.1");
        assert_eq!(back.format(), dynapviz_events::Format::Evt21);
        let got = dynapviz_events::read_all(back.as_mut()).expect("reads back");
        assert!(got == events, "{}: {} events back of {}", path.display(), got.len(), events.len());
        checked += 1;
    }
    assert!(checked >= 6, "only {checked} recordings checked");
}
