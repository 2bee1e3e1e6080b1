//! DVS events and the files they live in.
//!
//! Every reader decodes in chunks (see [`EventReader::read_chunk`]) so a 10 GB recording streams
//! in bounded memory, takes the sensor size from the file when the file has one, and reports bad
//! input as an [`Error`] naming the file, the byte offset and what was expected there.
//!
//! ```no_run
//! let mut reader = dynapviz_events::open(std::path::Path::new("recording.aedat4"))?;
//! let mut chunk = Vec::new();
//! while reader.read_chunk(&mut chunk, dynapviz_events::CHUNK)? > 0 {
//!     // use chunk
//!     chunk.clear();
//! }
//! # Ok::<(), dynapviz_events::Error>(())
//! ```

mod error;
mod event;
mod format;
pub mod formats;
mod labels;
pub mod net;
mod reader;
pub mod reconnect;
pub mod serve;
mod source;
mod summary;
mod writer;

pub use error::{Error, Result};
pub use event::{Event, Geometry};
pub use format::Format;
pub use labels::{GESTURE_CLASSES, Segment, parse_labels, read_labels, write_labels};
pub use reader::{CHUNK, EventReader, Skipped, detect, from_reader, open, open_as, read_all};
pub use summary::{Inspection, Summary};
pub use writer::EventWriter;

/// Reads a whole file once and gathers its figures, in bounded memory.
pub fn inspect(path: &std::path::Path) -> Result<Inspection> {
    inspect_reader(&mut *open(path)?, || false)
}

/// [`inspect`] of what `reader` reads, ending early once `stop` says so (asked after each
/// chunk): a live stream (see [`net`]) has no end of its own, and one connected again when it
/// ends (see [`reconnect`]) none at all.
pub fn inspect_reader(reader: &mut dyn EventReader, stop: impl Fn() -> bool) -> Result<Inspection> {
    let mut summary = Summary::default();
    let mut chunk = Vec::with_capacity(CHUNK);
    loop {
        chunk.clear();
        if reader.read_chunk(&mut chunk, CHUNK)? == 0 {
            break;
        }
        summary.add(&chunk);
        if stop() {
            break;
        }
    }
    Ok(Inspection { format: reader.format(), geometry: reader.geometry(), summary })
}
