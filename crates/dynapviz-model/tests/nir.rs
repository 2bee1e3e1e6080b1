//! NIR import: what the chip cannot run, and files that are not NIR graphs, are refused with
//! an error naming the file or the node and the reason (the graphs in `tests/nir/bad` are made
//! by `tools/nir_cases.py` with the `nir` package itself). The networks sinabs exports import
//! exactly: see `golden.rs`.

use std::path::PathBuf;

use dynapviz_model::{Pipeline, report};

fn bad(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/nir/bad").join(name)
}

fn error_of(path: &std::path::Path) -> String {
    match Pipeline::new(path).device("speck2e").build() {
        Ok(_) => panic!("{} was accepted", path.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn what_the_chip_cannot_run_is_refused_naming_the_node() {
    for (file, words) in [
        ("leaky.nir", &["NIR node neuron", "LIF", "without leak"][..]),
        ("two_thresholds.nir", &["node neuron `v_threshold`", "one value per layer", "1 and 2"]),
        ("dilated.nir", &["NIR node conv", "dilation"]),
        ("cycle.nir", &["cycle"]),
        ("no_input.nir", &["no Input node"]),
        ("output_and_on.nir", &["NIR node neuron", "feeds an Output node and other nodes"]),
        // 302 M values declared in a file of 31 kB (HDF5 fills them in): refused unread.
        ("huge_dataset.nir", &["node neuron `r`", "shape [3, 33554435, 3]", "more than 67108864 values"]),
    ] {
        let message = error_of(&bad(file));
        for w in words {
            assert!(message.contains(w), "{file}: {message:?} does not say {w:?}");
        }
        assert!(message.contains(file), "{file}: {message:?} does not name the file");
    }
}

#[test]
fn files_that_are_no_nir_graph_are_refused_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = dir.path().join("notes.nir");
    std::fs::write(&text, "not an HDF5 file\n").expect("write");
    let message = error_of(&text);
    assert!(message.contains("notes.nir") && message.contains("not a readable NIR (HDF5) file"), "{message}");
    // A cut file: the first half of a real one.
    let whole = std::fs::read(bad("leaky.nir")).expect("read");
    let cut = dir.path().join("cut.nir");
    std::fs::write(&cut, &whole[..whole.len() / 2]).expect("write");
    let message = error_of(&cut);
    assert!(message.contains("cut.nir"), "{message}");
    let empty = dir.path().join("empty.nir");
    std::fs::write(&empty, []).expect("write");
    assert!(error_of(&empty).contains("empty.nir"));
}

/// Every prefix of a real NIR file is refused with an error, and a file with any one byte
/// changed gives a network or an error: never a panic or a hang. Every error names the file.
#[test]
fn a_truncated_or_corrupted_file_never_panics() {
    let whole = std::fs::read(bad("two_thresholds.nir")).expect("read");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("cut.nir");
    for len in (0..whole.len()).step_by(97) {
        std::fs::write(&path, &whole[..len]).expect("write");
        match Pipeline::new(&path).device("speck2e").build() {
            Ok(_) => panic!("a file cut at {len} bytes was accepted"),
            Err(e) => assert!(e.to_string().contains("cut.nir"), "cut at {len} bytes: the error does not name the file: {e}"),
        }
    }
    for at in (0..whole.len()).step_by(13) {
        let mut changed = whole.clone();
        changed[at] ^= 0x5a;
        std::fs::write(&path, &changed).expect("write");
        if let Err(e) = Pipeline::new(&path).device("speck2e").build() {
            assert!(e.to_string().contains("cut.nir"), "byte {at} changed: the error does not name the file: {e}");
        }
    }
}

/// A graph inside a graph is read as part of the whole: the edges to and from it reach its
/// `Input` and `Output` nodes. Its IF's threshold (0.5) is the layer's.
#[test]
fn a_nested_graph_reads_as_the_flat_one() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/nir");
    let load = |f: &str| Pipeline::new(&dir.join(f)).device("speck2e").build().unwrap_or_else(|e| panic!("{f}: {e}"));
    let (flat, nested) = (load("flat.nir"), load("nested.nir"));
    let (mut a, mut b) = (report::layers(&flat), report::layers(&nested));
    assert_eq!(b[0].source, ["body.conv", "body.neuron"], "nested nodes are named after their graph");
    a[0].source.clear();
    b[0].source.clear();
    assert_eq!(a, b);
    assert_eq!(flat.layers.len(), 1);
    assert_eq!(flat.layers[0].float.threshold, 0.5);
    assert_eq!(flat.layers[0].float.min_v_mem, -0.5);
    assert_eq!(flat.dvs.input_shape, [2, 8, 8]);
}
