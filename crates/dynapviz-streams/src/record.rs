//! Recording a session: the input events to any writable event format (replayable with
//! `dynapviz run --input`), and the analysis stream (counts, readouts, power) as JSON lines.

use std::io::{BufWriter, Write};
use std::path::Path;

use dynapviz_events::{Event, EventWriter, Format, Geometry};

use crate::session::Analysis;

/// Tees events into a file. A write error stops the recording and is reported once; the
/// session goes on.
pub struct EventRecorder {
    writer: Option<EventWriter>,
    /// The first write error, if any.
    pub error: Option<String>,
    /// Events written.
    pub written: u64,
}

impl EventRecorder {
    /// Creates `path` in the format its extension names.
    pub fn create(path: &Path, geometry: Geometry) -> Result<Self, String> {
        let format = Format::from_extension(path)
            .ok_or_else(|| format!("{}: cannot tell the recording format from the extension", path.display()))?;
        let writer = EventWriter::create(path, format, geometry).map_err(|e| e.to_string())?;
        Ok(Self { writer: Some(writer), error: None, written: 0 })
    }

    /// Appends a chunk.
    pub fn record(&mut self, events: &[Event]) {
        if let Some(w) = &mut self.writer {
            match w.write(events) {
                Ok(()) => self.written += events.len() as u64,
                Err(e) => {
                    self.error = Some(e.to_string());
                    self.writer = None;
                }
            }
        }
    }

    /// Completes the file.
    pub fn finish(mut self) -> Result<u64, String> {
        if let Some(w) = self.writer.take() {
            w.finish().map_err(|e| e.to_string())?;
        }
        match self.error {
            Some(e) => Err(e),
            None => Ok(self.written),
        }
    }
}

/// Writes analysis results as JSON lines:
/// `{"t_us":..,"counts":[..]}`, `{"t_us":..,"readout":k,"predicted":true}`,
/// `{"t_us":..,"power_channel":c,"watts":w}`.
pub struct AnalysisRecorder {
    out: BufWriter<std::fs::File>,
}

impl AnalysisRecorder {
    /// Creates the file.
    pub fn create(path: &Path) -> Result<Self, String> {
        let f = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Self { out: BufWriter::new(f) })
    }

    /// Appends one result.
    pub fn record(&mut self, a: &Analysis) -> std::io::Result<()> {
        match a {
            Analysis::Counts { t_us, counts } => {
                let c: Vec<String> = counts.iter().map(u64::to_string).collect();
                writeln!(self.out, "{{\"t_us\":{t_us},\"counts\":[{}]}}", c.join(","))
            }
            Analysis::Readout { t_us, feature, predicted } => {
                writeln!(self.out, "{{\"t_us\":{t_us},\"readout\":{feature},\"predicted\":{predicted}}}")
            }
            Analysis::Power(p) => writeln!(self.out, "{{\"t_us\":{},\"power_channel\":{},\"watts\":{}}}", p.timestamp, p.channel, p.value),
            Analysis::Layers { t_us, counters } => {
                let l: Vec<String> = counters
                    .iter()
                    .map(|c| format!("[{},{},{},{}]", c.input_events, c.synaptic_ops, c.spikes_after_pool, c.dropped_busy))
                    .collect();
                writeln!(self.out, "{{\"t_us\":{t_us},\"layers_input_synops_spikes_dropped\":[{}]}}", l.join(","))
            }
            // Pictures are the display's business, not the record's.
            Analysis::Snapshot(_) => Ok(()),
        }
    }

    /// Flushes the file.
    pub fn finish(mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}
