//! `dynapviz convert IN OUT`: re-encode a recording, streaming, with a progress bar.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use dynapviz_events::{CHUNK, EventWriter, Format, Geometry};

/// Convert a recording to another format (chosen by OUT's extension or --to).
#[derive(clap::Args)]
pub struct Args {
    /// Input recording.
    input: PathBuf,
    /// Output file.
    output: PathBuf,
    /// Output format: aedat4, aedat3, aedat2, evt2, evt21, evt3, es, npy, csv (default: from OUT's extension).
    #[arg(long)]
    to: Option<String>,
    /// Sensor size WxH for outputs that store one when the input does not state it
    /// (default: the smallest size holding every event).
    #[arg(long)]
    geometry: Option<String>,
    /// Shift timestamps so that the first event is at t = 0.
    #[arg(long)]
    rebase_time: bool,
    /// Stop after S seconds of the input's time from its first event: how long to record a
    /// live camera (`tcp://HOST:PORT`), which otherwise goes on until its server stops it or
    /// Ctrl-C does (either way the file is completed).
    #[arg(long, value_name = "S")]
    seconds: Option<f64>,
    /// For a live camera: wait for it if it is not up yet, and when its stream ends or breaks,
    /// connect again every second (until --seconds or Ctrl-C) and record on, its times kept
    /// monotonic (see `run`).
    #[arg(long)]
    reconnect: bool,
}

pub(super) fn parse_geometry(s: &str) -> Result<Geometry> {
    let (w, h) = s.split_once(['x', 'X']).context("--geometry expects WxH, e.g. 128x128")?;
    Ok(Geometry::new(w.trim().parse().context("--geometry width")?, h.trim().parse().context("--geometry height")?))
}

pub fn run(args: Args) -> Result<()> {
    let format = match &args.to {
        Some(name) => Format::from_name(name).with_context(|| format!("unknown output format `{name}`"))?,
        None => Format::from_extension(&args.output)
            .with_context(|| format!("{}: cannot tell the output format from the extension; pass --to", args.output.display()))?,
    };
    if !format.writable() {
        bail!("{format} is read-only here; write one of {}", Format::writable_names());
    }
    let span_us = args
        .seconds
        .map(|s| {
            anyhow::ensure!(s.is_finite() && s > 0.0 && s <= 1e9, "--seconds {s}: expected seconds above 0, at most 1e9");
            Ok(((s * 1e6).round() as i64).max(1))
        })
        .transpose()?;
    let live = dynapviz_events::net::is_live(&args.input);
    super::interrupt::catch();
    let mut reader = super::interrupt::open_input(&args.input, args.reconnect)?;
    let geometry = match (&args.geometry, reader.geometry()) {
        (Some(g), _) => parse_geometry(g)?,
        (None, Some(g)) => g,
        (None, None) if live => bail!("{}: the stream states no sensor size: give it with --geometry WxH", args.input.display()),
        // The file states no size: one pass finds the extent, a second converts.
        (None, None) => {
            let ins = dynapviz_events::inspect(&args.input)?;
            ins.summary.geometry_or_extent(None).unwrap_or(Geometry::DVS128)
        }
    };
    let len = std::fs::metadata(&args.input).map(|m| m.len()).unwrap_or(0);
    let bar = super::byte_progress(len, "converting");
    let partial = Partial::beside(&args.output)?;
    let mut writer = EventWriter::create_named(&partial.path, &args.output, format, geometry)?;
    let mut chunk = Vec::with_capacity(CHUNK);
    let (mut offset, mut end) = (None, None);
    let mut total = 0u64;
    let mut stopped = None;
    loop {
        chunk.clear();
        if reader.read_chunk(&mut chunk, CHUNK)? == 0 {
            break;
        }
        if let Some(span) = span_us {
            let end = *end.get_or_insert(chunk[0].t.saturating_add(span));
            let keep = chunk.iter().position(|e| e.t >= end).unwrap_or(chunk.len());
            if keep < chunk.len() {
                chunk.truncate(keep);
                stopped = Some("--seconds");
            }
        }
        if args.rebase_time && !chunk.is_empty() {
            let base = *offset.get_or_insert(chunk[0].t);
            chunk.iter_mut().for_each(|e| e.t -= base);
        }
        writer.write(&chunk)?;
        total += chunk.len() as u64;
        bar.set_position((total * 16).min(len));
        if stopped.is_none() && super::interrupt::asked() {
            // A camera has no end: Ctrl-C is how a recording of it stops. A file's conversion
            // stopped halfway is no conversion: its part is removed.
            anyhow::ensure!(live, "interrupted: {} was not written", args.output.display());
            stopped = Some("Ctrl-C");
        }
        if stopped.is_some() {
            break;
        }
    }
    if stopped.is_none() && live && super::interrupt::asked() {
        // Ctrl-C while the stream was down and being connected again.
        stopped = Some("Ctrl-C");
    }
    writer.finish()?;
    partial.commit()?;
    bar.finish_and_clear();
    let skipped = reader.skipped();
    println!(
        "wrote {total} events to {} ({format}, {geometry}); skipped {} invalid events and {} other records{}",
        args.output.display(),
        skipped.invalid_events,
        skipped.other_records,
        stopped.map_or(String::new(), |by| format!("; stopped by {by}"))
    );
    Ok(())
}

/// The output while it is written: a hidden file beside OUT, renamed to OUT once complete and
/// removed if the conversion fails. A failed conversion (an event the format cannot hold, a
/// corrupt input halfway) leaves no truncated OUT behind, and OUT may be the input itself.
struct Partial {
    path: PathBuf,
    output: PathBuf,
    committed: bool,
}

impl Partial {
    fn beside(output: &Path) -> Result<Self> {
        let name = output.file_name().with_context(|| format!("{}: not a file name", output.display()))?;
        let mut hidden = std::ffi::OsString::from(".");
        hidden.push(name);
        hidden.push(format!(".{}.partial", std::process::id()));
        Ok(Self { path: output.with_file_name(hidden), output: output.to_path_buf(), committed: false })
    }

    fn commit(mut self) -> Result<()> {
        std::fs::rename(&self.path, &self.output)
            .with_context(|| format!("{}: cannot move the converted file {} there", self.output.display(), self.path.display()))?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
