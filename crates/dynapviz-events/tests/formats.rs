//! Formats without a real fixture, built byte for byte from their description
//! (`shared/DESIGN.md` §7 and the vendors' format documents), round trips through every
//! writer, and bad input.

use std::io::Write;
use std::path::{Path, PathBuf};

use dynapviz_events::{Error, Event, EventWriter, Format, Geometry, Summary, open, read_all};
use proptest::prelude::*;

fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::File::create(&p).and_then(|mut f| f.write_all(bytes)).expect("write test file");
    p
}

fn decode(path: &Path) -> Result<Vec<Event>, Error> {
    let mut r = open(path)?;
    read_all(r.as_mut())
}

// ---------- AEDAT 3.1, byte for byte ----------

fn aedat31_packet(kind: u16, overflow: u32, events: &[(u32, u32)]) -> Vec<u8> {
    let n = events.len() as u32;
    let valid = events.iter().filter(|(d, _)| d & 1 == 1).count() as u32;
    aedat31_packet_counted(kind, overflow, [n, n, valid], events)
}

/// A packet whose header states `[capacity, number, valid]`, with `events` (`capacity` of them)
/// as its body.
fn aedat31_packet_counted(kind: u16, overflow: u32, counts: [u32; 3], events: &[(u32, u32)]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&kind.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    for v in [8u32, 4, overflow].into_iter().chain(counts) {
        b.extend_from_slice(&v.to_le_bytes());
    }
    for (d, ts) in events {
        b.extend_from_slice(&d.to_le_bytes());
        b.extend_from_slice(&ts.to_le_bytes());
    }
    b
}

fn polarity_data(x: u32, y: u32, p: u32, valid: u32) -> u32 {
    (x << 17) | (y << 2) | (p << 1) | valid
}

#[test]
fn aedat31_decodes_the_documented_layout_with_overflow() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut bytes = b"#!AER-DAT3.1\r\n#Format: RAW\r\n#Source 1: DVS128\r\n#!END-HEADER\r\n".to_vec();
    bytes.extend(aedat31_packet(
        1,
        0,
        &[(polarity_data(5, 7, 1, 1), 100), (polarity_data(127, 0, 0, 1), 0x7FFF_FFFF), (polarity_data(3, 3, 1, 0), 200)],
    ));
    // A non-polarity packet (type 2, special events) in between is skipped.
    bytes.extend(aedat31_packet(2, 0, &[(0xdead_beef, 1)]));
    // The timestamp overflow counter moves on: t = overflow << 31 | ts.
    bytes.extend(aedat31_packet(1, 1, &[(polarity_data(0, 127, 1, 1), 5)]));
    let path = write_file(dir.path(), "g.aedat", &bytes);
    assert_eq!(dynapviz_events::detect(&path).expect("detect"), Format::Aedat31);
    let mut r = open(&path).expect("open");
    assert_eq!(r.geometry(), Some(Geometry::DVS128));
    let ev = read_all(r.as_mut()).expect("decode");
    assert_eq!(ev, vec![Event::new(100, 5, 7, true), Event::new(0x7FFF_FFFF, 127, 0, false), Event::new((1 << 31) | 5, 0, 127, true)]);
    assert_eq!(r.skipped().invalid_events, 1);
    assert_eq!(r.skipped().other_records, 1);
}

/// cAER's header counts the events in the packet's memory (capacity), those in use (number)
/// and the valid ones among them: a packet with an invalid event in the middle and room to
/// spare gives every valid event in use, and nothing of the spare room.
#[test]
fn aedat31_reads_the_events_in_use_past_invalid_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut bytes = b"#!AER-DAT3.1\r\n#Source 1: DVS128\r\n#!END-HEADER\r\n".to_vec();
    let records = [
        (polarity_data(1, 2, 1, 1), 10),
        (polarity_data(3, 4, 0, 0), 11),
        (polarity_data(5, 6, 0, 1), 12),
        (polarity_data(7, 8, 1, 1), 13),
    ];
    bytes.extend(aedat31_packet_counted(1, 0, [4, 3, 2], &records));
    bytes.extend(aedat31_packet(1, 0, &[(polarity_data(9, 9, 1, 1), 20)]));
    let path = write_file(dir.path(), "v.aedat", &bytes);
    let mut r = open(&path).expect("open");
    let ev = read_all(r.as_mut()).expect("decode");
    assert_eq!(ev, vec![Event::new(10, 1, 2, true), Event::new(12, 5, 6, false), Event::new(20, 9, 9, true)]);
    assert_eq!(r.skipped().invalid_events, 1);
}

#[test]
fn aedat31_rejects_corrupt_packet_headers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut bytes = b"#!AER-DAT3.1\r\n#!END-HEADER\r\n".to_vec();
    let mut p = aedat31_packet(1, 0, &[(polarity_data(1, 1, 1, 1), 1)]);
    p[20..24].copy_from_slice(&9u32.to_le_bytes()); // number 9 > capacity 1
    bytes.extend(p);
    let path = write_file(dir.path(), "bad.aedat", &bytes);
    let err = decode(&path).expect_err("corrupt header").to_string();
    assert!(err.contains("at byte 28") && err.contains("corrupt packet header"), "{err}");
}

// ---------- AEDAT 2.0 (jAER DVS128), byte for byte ----------

fn dvs128_address(x: u32, y: u32, p: u32) -> u32 {
    ((127 - y) << 8) | ((127 - x) << 1) | (1 - p)
}

#[test]
fn aedat2_decodes_dvs128_addresses_and_unwraps_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut bytes = b"#!AER-DAT2.0\r\n# This is a raw AE data file\r\n".to_vec();
    for (a, ts) in [(dvs128_address(0, 0, 1), 0xFFFF_FF00u32), (dvs128_address(127, 5, 0), 0xFFFF_FFFF), (dvs128_address(64, 127, 1), 0x10)]
    {
        bytes.extend_from_slice(&a.to_be_bytes());
        bytes.extend_from_slice(&ts.to_be_bytes());
    }
    let path = write_file(dir.path(), "d.aedat", &bytes);
    let ev = decode(&path).expect("decode");
    assert_eq!(
        ev,
        vec![Event::new(0xFFFF_FF00, 0, 0, true), Event::new(0xFFFF_FFFF, 127, 5, false), Event::new((1 << 32) + 0x10, 64, 127, true)]
    );
}

#[test]
fn aedat2_truncated_record_is_an_error_with_offset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut bytes = b"#!AER-DAT2.0\r\n".to_vec();
    bytes.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0]);
    let path = write_file(dir.path(), "t.aedat", &bytes);
    let err = decode(&path).expect_err("truncated").to_string();
    assert!(err.contains("at byte 22") && err.contains("3 trailing bytes"), "{err}");
}

// ---------- EVT 3.0 vectors and time wrap ----------

#[test]
fn evt3_decodes_vectors_and_time_high_wrap() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut bytes = b"% evt 3.0\n% format EVT3;height=480;width=640\n% end\n".to_vec();
    let words: [u16; 9] = [
        0x8FFF,                    // TIME_HIGH 0xFFF
        0x6005,                    // TIME_LOW 5 -> t = 0xFFF005
        10,                        // ADDR_Y 10 (type 0x0)
        0x2000 | (1 << 11) | 20,   // ADDR_X 20, ON
        0x3000 | 100,              // VECT_BASE_X 100, OFF
        0x4000 | 0b1000_0000_0001, // VECT_12: x = 100, 111
        0x5000 | 0b0000_0010,      // VECT_8: x = 112 + 1 = 113
        0x8000,                    // TIME_HIGH 0 after 0xFFF: wrapped
        0x2000 | 7,                // ADDR_X 7 at t = 1 << 24 | 5
    ];
    for w in words {
        bytes.extend_from_slice(&w.to_le_bytes());
    }
    let path = write_file(dir.path(), "v.evt3", &bytes);
    let ev = decode(&path).expect("decode");
    let t0 = 0xFFF005;
    assert_eq!(
        ev,
        vec![
            Event::new(t0, 20, 10, true),
            Event::new(t0, 100, 10, false),
            Event::new(t0, 111, 10, false),
            Event::new(t0, 113, 10, false),
            Event::new((1 << 24) | 5, 7, 10, false)
        ]
    );
}

// ---------- round trips through every writer ----------

fn sorted_events(max_xy: u16, max_t: i64) -> impl Strategy<Value = Vec<Event>> {
    prop::collection::vec((0..max_t, 0..max_xy, 0..max_xy, any::<bool>()), 0..300).prop_map(|mut v| {
        v.sort_by_key(|e| e.0);
        v.into_iter().map(|(t, x, y, p)| Event::new(t, x, y, p)).collect()
    })
}

fn round_trip(format: Format, events: &[Event], geometry: Geometry) -> Vec<Event> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(format!("rt.{}", format.name()));
    let mut w = EventWriter::create(&path, format, geometry).expect("create");
    // Write in two pieces so chunk boundaries are exercised.
    let (a, b) = events.split_at(events.len() / 2);
    w.write(a).expect("write");
    w.write(b).expect("write");
    w.finish().expect("finish");
    let mut r = dynapviz_events::open_as(&path, format).expect("open");
    let mut out = Vec::new();
    while r.read_chunk(&mut out, 7).expect("read") > 0 {}
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn every_writer_round_trips(events in sorted_events(128, 1 << 26)) {
        for format in Format::ALL.into_iter().filter(|f| f.writable()) {
            prop_assert_eq!(&round_trip(format, &events, Geometry::DVS128), &events, "{}", format);
        }
    }

    #[test]
    fn wide_formats_round_trip_long_recordings(events in sorted_events(1280, 1 << 40)) {
        for format in [Format::Csv, Format::Npy, Format::Aedat4, Format::Aedat31, Format::Evt2, Format::Evt21, Format::Evt3] {
            prop_assert_eq!(&round_trip(format, &events, Geometry::new(1280, 1280)), &events, "{}", format);
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2000), format_index in 0..Format::ALL.len()) {
        let format = Format::ALL[format_index];
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write_file(dir.path(), "fuzz.bin", &bytes);
        if let Ok(mut r) = dynapviz_events::open_as(&path, format) {
            let mut out = Vec::new();
            while let Ok(n) = r.read_chunk(&mut out, 64) {
                if n == 0 { break; }
            }
        }
    }
}

// ---------- bad input ----------

#[test]
fn truncation_at_any_point_is_an_error_or_a_clean_prefix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let events: Vec<Event> = (0..50).map(|i| Event::new(i * 10, (i % 100) as u16, (i % 77) as u16, i % 3 == 0)).collect();
    for format in Format::ALL.into_iter().filter(|f| f.writable()) {
        let path = dir.path().join(format!("full.{}", format.name()));
        let mut w = EventWriter::create(&path, format, Geometry::DVS128).expect("create");
        w.write(&events).expect("write");
        w.finish().expect("finish");
        let bytes = std::fs::read(&path).expect("read back");
        for cut in 0..bytes.len() {
            let p = write_file(dir.path(), &format!("cut.{}", format.name()), &bytes[..cut]);
            match dynapviz_events::open_as(&p, format).and_then(|mut r| read_all(r.as_mut())) {
                Ok(got) => assert!(got.len() <= events.len() && got[..] == events[..got.len()], "{format} cut at {cut}: not a prefix"),
                Err(e) => assert!(e.to_string().contains("cut."), "{format} cut at {cut}: error does not name the file: {e}"),
            }
        }
    }
}

/// A file that states a sensor size holds only events inside it (its readers reject the
/// rest): the writer refuses the first event outside, by its number, and a size of no pixel.
/// CSV and npy state no size and take any event.
#[test]
fn writers_keep_events_inside_the_sensor_they_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let events = [Event::new(0, 3, 3, true), Event::new(5, 9, 2, false), Event::new(9, 2, 12, true)];
    for format in Format::ALL.into_iter().filter(|f| f.writable()) {
        let path = dir.path().join(format!("small.{}", format.name()));
        let mut w = EventWriter::create(&path, format, Geometry::new(10, 10)).expect("create");
        w.write(&events[..1]).expect("inside");
        let result = w.write(&events[1..]);
        if matches!(format, Format::Csv | Format::Npy) {
            assert!(result.is_ok(), "{format}");
            continue;
        }
        let err = result.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("small.") && err.contains("event 3 (t = 9 µs, x = 2, y = 12)") && err.contains("10x10"), "{format}: {err}");
        let err = EventWriter::create(&path, format, Geometry::new(0, 10)).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("no pixel"), "{format}: {err}");
    }
}

#[test]
fn wrong_magic_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write_file(dir.path(), "x.aedat4", b"#!AER-DAT9.9\r\nrubbish");
    let err = dynapviz_events::open_as(&p, Format::Aedat4).err().expect("wrong magic").to_string();
    assert!(err.contains("x.aedat4") && err.contains("at byte 0") && err.contains("#!AER-DAT4.0"), "{err}");
    let p = write_file(dir.path(), "x.unknown", b"hello");
    let err = open(&p).err().expect("unknown").to_string();
    assert!(err.contains("unknown event file format"), "{err}");
}

#[test]
fn npy_header_promising_more_rows_than_present_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("short.npy");
    let mut w = EventWriter::create(&path, Format::Npy, Geometry::DVS128).expect("create");
    w.write(&[Event::new(1, 2, 3, true), Event::new(2, 3, 4, false)]).expect("write");
    w.finish().expect("finish");
    let mut bytes = std::fs::read(&path).expect("read");
    let at = bytes.windows(4).position(|w| w == b"(2,)").expect("shape in header");
    bytes[at + 1] = b'9';
    std::fs::write(&path, &bytes).expect("write");
    let err = decode(&path).expect_err("short").to_string();
    assert!(err.contains("promises"), "{err}");
}

#[test]
fn coordinates_outside_the_stated_sensor_are_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut bytes = b"% evt 2.0\n% geometry 10x10\n".to_vec();
    bytes.extend_from_slice(&(0x8000_0000u32).to_le_bytes());
    bytes.extend_from_slice(&((1u32 << 28) | (20 << 11) | 3).to_le_bytes());
    let p = write_file(dir.path(), "o.raw", &bytes);
    let err = decode(&p).expect_err("outside").to_string();
    assert!(err.contains("x=20 y=3") && err.contains("10x10") && err.contains("at byte 31"), "{err}");
}

#[test]
fn aedat31_coordinates_outside_the_sensor_name_the_record_past_invalid_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut bytes = b"#!AER-DAT3.1\r\n#Source 1: DVS128\r\n#!END-HEADER\r\n".to_vec();
    let body_at = bytes.len() + 28;
    // Valid inside, invalid outside (skipped, not an error), valid outside.
    let records = [(polarity_data(5, 6, 0, 1), 10), (polarity_data(300, 6, 0, 0), 11), (polarity_data(200, 7, 0, 1), 12)];
    bytes.extend(aedat31_packet_counted(1, 0, [3, 3, 2], &records));
    let p = write_file(dir.path(), "o.aedat", &bytes);
    let err = decode(&p).expect_err("outside").to_string();
    let third = body_at + 16;
    assert!(err.contains("x=200 y=7") && err.contains("128x128") && err.contains(&format!("at byte {third}")), "{err}");
}

#[test]
fn aedat4_corrupt_packet_size_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("c.aedat4");
    let mut w = EventWriter::create(&path, Format::Aedat4, Geometry::DVS128).expect("create");
    w.write(&[Event::new(1, 2, 3, true)]).expect("write");
    w.finish().expect("finish");
    let mut bytes = std::fs::read(&path).expect("read");
    let header_len = i32::from_le_bytes(bytes[14..18].try_into().expect("4 bytes")) as usize;
    let size_at = 18 + header_len + 4;
    bytes[size_at..size_at + 4].copy_from_slice(&(-5i32).to_le_bytes());
    std::fs::write(&path, &bytes).expect("write");
    let err = decode(&path).expect_err("corrupt").to_string();
    assert!(err.contains(&format!("at byte {size_at}")) && err.contains("packet size -5"), "{err}");
}

#[test]
fn non_monotonic_timestamps_are_counted_not_hidden() {
    let mut s = Summary::default();
    s.add(&[Event::new(10, 0, 0, true), Event::new(5, 0, 0, true), Event::new(6, 0, 0, false)]);
    assert_eq!(s.non_monotonic, 1);
    assert_eq!((s.t_first_us, s.t_last_us), (Some(10), Some(6)));
}

#[test]
fn csv_accepts_a_reordered_header_and_names_bad_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = write_file(dir.path(), "a.csv", b"x,y,p,t\n1,2,1,100\n3,4,-1,200\n");
    assert_eq!(decode(&p).expect("decode"), vec![Event::new(100, 1, 2, true), Event::new(200, 3, 4, false)]);
    let p = write_file(dir.path(), "b.csv", b"1,2,3,1\n5,oops,3,1\n");
    let err = decode(&p).expect_err("bad").to_string();
    assert!(err.contains("b.csv: at byte 8: line 2: x `oops`"), "{err}");
}

#[test]
fn npz_with_separate_columns_and_tonic_float_layout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let npy = |descr: &str, shape: &str, data: &[u8]| {
        let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        let mut h = b"\x93NUMPY\x01\x00".to_vec();
        let len = (dict.len() + 11).div_ceil(64) * 64 - 10;
        h.extend_from_slice(&(len as u16).to_le_bytes());
        let mut d = dict.into_bytes();
        d.resize(len - 1, b' ');
        d.push(b'\n');
        h.extend(d);
        h.extend_from_slice(data);
        h
    };
    let path = dir.path().join("cols.npz");
    let file = std::fs::File::create(&path).expect("create");
    let mut zip = zip::ZipWriter::new(file);
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    let ints = |v: &[i64]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    for (name, vals) in [("t", vec![5i64, 7]), ("x", vec![1, 2]), ("y", vec![3, 4]), ("p", vec![1, 0])] {
        zip.start_file(format!("{name}.npy"), opts).expect("entry");
        zip.write_all(&npy("<i8", "(2,)", &ints(&vals))).expect("data");
    }
    zip.finish().expect("finish");
    assert_eq!(decode(&path).expect("decode"), vec![Event::new(5, 1, 3, true), Event::new(7, 2, 4, false)]);

    let floats: Vec<u8> = [10.0f32, 20.0, 1.0, 1.5, 11.0, 21.0, 0.0, 2.25].iter().flat_map(|f| f.to_le_bytes()).collect();
    let p = write_file(dir.path(), "tonic.npy", &npy("<f4", "(2, 4)", &floats));
    assert_eq!(decode(&p).expect("decode"), vec![Event::new(1500, 10, 20, true), Event::new(2250, 11, 21, false)]);
}

/// Lines are read in place from a 64 KB buffer: a file several buffers long, read in chunks that
/// end anywhere, gives every event once, in order, whatever line straddles a buffer's end.
#[test]
fn csv_reads_long_files_in_any_chunks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let events: Vec<Event> = (0..30_000i64).map(|i| Event::new(i * 7, (i % 641) as u16, (i % 479) as u16, i % 3 == 0)).collect();
    let mut text = String::from("# a comment\nt,x,y,p\n");
    for (i, e) in events.iter().enumerate() {
        // Lines of varied length and ending, a comment now and then: buffer ends fall anywhere.
        let pad = " ".repeat(i % 5);
        let end = if i % 7 == 0 { "\r\n" } else { "\n" };
        text += &format!("{},{pad}{},{},{}{end}", e.t, e.x, e.y, u8::from(e.p));
        if i % 1000 == 999 {
            text += "\n# more\n";
        }
    }
    text.pop(); // the last line has no terminator
    let path = write_file(dir.path(), "long.csv", text.as_bytes());
    for chunk in [1, 7, 4096, 1 << 20] {
        let mut r = open(&path).expect("open");
        let mut got = Vec::new();
        loop {
            let n = r.read_chunk(&mut got, chunk).expect("read");
            assert!(n <= chunk);
            if n == 0 {
                break;
            }
        }
        assert_eq!(got.len(), events.len(), "chunks of {chunk}");
        assert!(got == events, "chunks of {chunk}");
    }
}

/// A bad line past the first buffer is named by its line and its byte offset.
#[test]
fn csv_names_bad_lines_far_into_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut text = String::new();
    for i in 0..10_000 {
        text += &format!("{i},1,2,1\n");
    }
    let offset = text.len();
    text += "10000,1,2,maybe\n";
    let path = write_file(dir.path(), "bad.csv", text.as_bytes());
    let err = decode(&path).expect_err("bad polarity").to_string();
    assert!(err.contains(&format!("at byte {offset}: line 10001: p `maybe`")), "{err}");
    let long = format!("1,2,3,1\n{}\n", "9".repeat(5000));
    let err = decode(&write_file(dir.path(), "long.csv", long.as_bytes())).expect_err("long line").to_string();
    assert!(err.contains("at byte 8: line longer than 4096 bytes"), "{err}");
}

/// A `.raw` file is recognised by its header: EVT 2.1's `format EVT21` starts as EVT 2.0's
/// `format EVT2` does, and read as EVT 2.0 its 64-bit words would be garbage events.
#[test]
fn raw_files_are_told_apart_by_their_header() {
    let dir = tempfile::tempdir().expect("tempdir");
    let word = (0x1u64 << 60 | 3 << 54 | 32 << 43 | 5 << 32 | 0b11).to_le_bytes();
    for (header, want) in [
        ("% evt 2.1\n% end\n", Format::Evt21),
        ("% format EVT21;height=720;width=1280\n% end\n", Format::Evt21),
        ("% camera_integrator_name Prophesee\n% format EVT21;height=720;width=1280;endianness=legacy\n% end\n", Format::Evt21),
        ("% format EVT2;height=480;width=640\n% end\n", Format::Evt2),
        ("% evt 3.0\n% end\n", Format::Evt3),
    ] {
        let mut bytes = header.as_bytes().to_vec();
        bytes.extend_from_slice(&word);
        let path = write_file(dir.path(), "rec.raw", &bytes);
        assert_eq!(dynapviz_events::detect(&path).expect("detects"), want, "{header}");
    }
    let path = write_file(dir.path(), "rec.raw", &[b"% format EVT21;height=8;width=64\n% end\n".as_slice(), &word].concat());
    assert_eq!(decode(&path).expect("decodes"), vec![Event::new(3, 32, 5, true), Event::new(3, 33, 5, true)]);
}
