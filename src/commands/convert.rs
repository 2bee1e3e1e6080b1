//! `dynapviz convert IN OUT`: re-encode a recording, streaming, with a progress bar.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use dynapviz_events::{CHUNK, EventWriter, Format, Geometry};

/// Convert a recording to another format (chosen by OUT's extension or --to).
#[derive(clap::Args)]
pub struct Args {
    /// Input recording.
    input: PathBuf,
    /// Output file.
    output: PathBuf,
    /// Output format: aedat4, aedat3, aedat2, evt2, evt3, es, npy, csv (default: from OUT's extension).
    #[arg(long)]
    to: Option<String>,
    /// Sensor size WxH for outputs that store one when the input does not state it
    /// (default: the smallest size holding every event).
    #[arg(long)]
    geometry: Option<String>,
    /// Shift timestamps so that the first event is at t = 0.
    #[arg(long)]
    rebase_time: bool,
}

fn parse_geometry(s: &str) -> Result<Geometry> {
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
        bail!("{format} is read-only here; write aedat4, aedat3, aedat2, evt2, evt3, es, npy or csv");
    }
    let mut reader = dynapviz_events::open(&args.input)?;
    let geometry = match (&args.geometry, reader.geometry()) {
        (Some(g), _) => parse_geometry(g)?,
        (None, Some(g)) => g,
        // The file states no size: one pass finds the extent, a second converts.
        (None, None) => {
            let ins = dynapviz_events::inspect(&args.input)?;
            ins.summary.geometry_or_extent(None).unwrap_or(Geometry::DVS128)
        }
    };
    let len = std::fs::metadata(&args.input).map(|m| m.len()).unwrap_or(0);
    let bar = super::byte_progress(len, "converting");
    let mut writer = EventWriter::create(&args.output, format, geometry)?;
    let mut chunk = Vec::with_capacity(CHUNK);
    let mut offset = None;
    let mut total = 0u64;
    loop {
        chunk.clear();
        if reader.read_chunk(&mut chunk, CHUNK)? == 0 {
            break;
        }
        if args.rebase_time {
            let base = *offset.get_or_insert(chunk[0].t);
            chunk.iter_mut().for_each(|e| e.t -= base);
        }
        writer.write(&chunk)?;
        total += chunk.len() as u64;
        bar.set_position((total * 16).min(len));
    }
    writer.finish()?;
    bar.finish_and_clear();
    let skipped = reader.skipped();
    println!(
        "wrote {total} events to {} ({format}, {geometry}); skipped {} invalid events and {} other records",
        args.output.display(),
        skipped.invalid_events,
        skipped.other_records
    );
    Ok(())
}
