//! The file formats this crate knows, and how a file's format is recognised.

use std::path::Path;

/// An event file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// jAER AEDAT 2.0 (DVS128 or DAVIS addresses, big endian).
    Aedat2,
    /// cAER AEDAT 3.1 (the DVS128 Gesture format).
    Aedat31,
    /// DV AEDAT 4.0 (flatbuffer packets, optionally LZ4/Zstd compressed).
    Aedat4,
    /// Prophesee EVT 2.0 raw.
    Evt2,
    /// Prophesee EVT 2.1 raw (64-bit words of up to 32 events).
    Evt21,
    /// Prophesee EVT 3.0 raw.
    Evt3,
    /// Prophesee DAT (CD or old ATIS "2d" events).
    Dat,
    /// Event Stream (`.es`, DVS or ATIS type).
    Es,
    /// N-MNIST / N-Caltech101 binary (5-byte events).
    Nmnist,
    /// numpy `.npy`: a structured t/x/y/p array or tonic's float (N, 4) x, y, p, t(ms).
    Npy,
    /// numpy `.npz`: an archive holding one such array, or separate t, x, y, p arrays.
    Npz,
    /// Text `t_us,x,y,p`, header optional.
    Csv,
}

impl Format {
    /// Every format, in the order the CLI lists them.
    pub const ALL: [Format; 12] = [
        Format::Aedat2,
        Format::Aedat31,
        Format::Aedat4,
        Format::Evt2,
        Format::Evt21,
        Format::Evt3,
        Format::Dat,
        Format::Es,
        Format::Nmnist,
        Format::Npy,
        Format::Npz,
        Format::Csv,
    ];

    /// Short name used on the command line and in JSON (`aedat4`, `evt2`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            Format::Aedat2 => "aedat2",
            Format::Aedat31 => "aedat3",
            Format::Aedat4 => "aedat4",
            Format::Evt2 => "evt2",
            Format::Evt21 => "evt21",
            Format::Evt3 => "evt3",
            Format::Dat => "dat",
            Format::Es => "es",
            Format::Nmnist => "nmnist",
            Format::Npy => "npy",
            Format::Npz => "npz",
            Format::Csv => "csv",
        }
    }

    /// Parses a short name (case-insensitive; a few common aliases accepted).
    pub fn from_name(name: &str) -> Option<Format> {
        let n = name.to_ascii_lowercase();
        let alias = match n.as_str() {
            "aedat3.1" | "aedat31" => "aedat3",
            "aedat" | "aedat2.0" => "aedat2",
            "aedat4.0" => "aedat4",
            "evt2.0" | "raw" => "evt2",
            "evt2.1" => "evt21",
            "evt3.0" => "evt3",
            "bin" => "nmnist",
            other => other,
        };
        Format::ALL.into_iter().find(|f| f.name() == alias)
    }

    /// Whether this crate can write the format.
    pub const fn writable(self) -> bool {
        !matches!(self, Format::Dat | Format::Nmnist | Format::Npz)
    }

    /// The short names of the formats this crate writes, for messages (`aedat2, aedat3, ...`).
    pub fn writable_names() -> String {
        Format::ALL.into_iter().filter(|f| f.writable()).map(Format::name).collect::<Vec<_>>().join(", ")
    }

    /// The format a path's extension suggests, when it suggests one unambiguously.
    pub fn from_extension(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match ext.as_str() {
            "aedat4" => Format::Aedat4,
            "aedat3" => Format::Aedat31,
            "aedat" | "aedat2" => Format::Aedat2,
            "raw" | "evt2" => Format::Evt2,
            "evt21" => Format::Evt21,
            "evt3" => Format::Evt3,
            "dat" => Format::Dat,
            "es" => Format::Es,
            "bin" => Format::Nmnist,
            "npy" => Format::Npy,
            "npz" => Format::Npz,
            "csv" | "txt" => Format::Csv,
            _ => return None,
        })
    }

    /// Recognises a format from the first bytes of a file (magic numbers and header lines);
    /// `None` when the content alone does not decide.
    pub fn from_content(head: &[u8]) -> Option<Format> {
        if head.starts_with(b"#!AER-DAT4") {
            return Some(Format::Aedat4);
        }
        if head.starts_with(b"#!AER-DAT3") {
            return Some(Format::Aedat31);
        }
        if head.starts_with(b"#!AER-DAT2") || head.starts_with(b"#!AER-DAT1") {
            return Some(Format::Aedat2);
        }
        if head.starts_with(b"Event Stream") {
            return Some(Format::Es);
        }
        if head.starts_with(b"\x93NUMPY") {
            return Some(Format::Npy);
        }
        if head.starts_with(b"PK\x03\x04") {
            return Some(Format::Npz);
        }
        if head.first() == Some(&b'%') {
            let text = String::from_utf8_lossy(head).to_ascii_lowercase();
            for line in text.lines().filter(|l| l.starts_with('%')) {
                let l = line.trim_start_matches('%').trim();
                if l == "evt 3.0" || l.starts_with("format evt3") {
                    return Some(Format::Evt3);
                }
                // EVT 2.1 before 2.0: `format evt21` starts as `format evt2` does.
                if l == "evt 2.1" || l.starts_with("format evt21") {
                    return Some(Format::Evt21);
                }
                if l == "evt 2.0" || l.starts_with("format evt2") {
                    return Some(Format::Evt2);
                }
                if l.starts_with("data file containing") {
                    return Some(Format::Dat);
                }
            }
        }
        None
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Format::Aedat2 => "AEDAT 2.0",
            Format::Aedat31 => "AEDAT 3.1",
            Format::Aedat4 => "AEDAT 4.0",
            Format::Evt2 => "EVT 2.0",
            Format::Evt21 => "EVT 2.1",
            Format::Evt3 => "EVT 3.0",
            Format::Dat => "DAT",
            Format::Es => "Event Stream",
            Format::Nmnist => "N-MNIST bin",
            Format::Npy => "numpy npy",
            Format::Npz => "numpy npz",
            Format::Csv => "CSV",
        })
    }
}
