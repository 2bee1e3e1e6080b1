//! `dynapviz inspect FILE`: format, sensor size and figures of a recording.

use std::path::PathBuf;

use anyhow::Result;
use serde::Serialize;

/// Print the format, sensor size, event counts and time span of a recording.
#[derive(clap::Args)]
pub struct Args {
    /// The recording (AEDAT 2/3.1/4, EVT 2/3, DAT, ES, N-MNIST bin, npy/npz, CSV).
    file: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// For a live camera: wait for it if it is not up yet, and when its stream ends or breaks,
    /// connect again every second and count on, until Ctrl-C (see `run`).
    #[arg(long)]
    reconnect: bool,
}

#[derive(Serialize)]
struct Report {
    file: String,
    format: String,
    width: Option<u16>,
    height: Option<u16>,
    events: u64,
    on: u64,
    off: u64,
    t_first_us: Option<i64>,
    t_last_us: Option<i64>,
    /// Seconds.
    duration: f64,
    duration_us: i64,
    /// Events per second.
    mean_rate: f64,
    x_range: Option<(u16, u16)>,
    y_range: Option<(u16, u16)>,
    non_monotonic: u64,
}

pub fn run(args: Args) -> Result<()> {
    // A live camera has no end: Ctrl-C ends its stream, and the figures of what came are printed.
    let stop = super::interrupt::ends_live_stream(&args.file);
    let ins = dynapviz_events::inspect_reader(&mut *super::interrupt::open_input(&args.file, args.reconnect)?, stop)?;
    let s = &ins.summary;
    let r = Report {
        file: args.file.display().to_string(),
        format: ins.format.name().to_string(),
        width: ins.geometry.map(|g| g.width),
        height: ins.geometry.map(|g| g.height),
        events: s.events,
        on: s.on,
        off: s.off,
        t_first_us: s.t_first_us,
        t_last_us: s.t_last_us,
        duration: s.duration_us() as f64 / 1e6,
        duration_us: s.duration_us(),
        mean_rate: s.mean_rate_hz(),
        x_range: s.x_range,
        y_range: s.y_range,
        non_monotonic: s.non_monotonic,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    let opt = |v: Option<i64>| v.map_or("-".to_string(), |v| v.to_string());
    let size = ins.geometry.map_or("not stated by the file".to_string(), |g| g.to_string());
    let range = |r: Option<(u16, u16)>| r.map_or("-".to_string(), |(a, b)| format!("{a}..{b}"));
    println!("file           {}", r.file);
    println!("format         {} ({})", ins.format, r.format);
    println!("sensor         {size}");
    println!("events         {}", r.events);
    println!("on / off       {} / {}", r.on, r.off);
    println!("t_first_us     {}", opt(r.t_first_us));
    println!("t_last_us      {}", opt(r.t_last_us));
    println!("duration       {:.6} s", r.duration);
    println!("mean rate      {:.1} ev/s", r.mean_rate);
    println!("x range        {}", range(r.x_range));
    println!("y range        {}", range(r.y_range));
    if r.non_monotonic > 0 {
        println!("non-monotonic  {} events earlier than their predecessor", r.non_monotonic);
    }
    Ok(())
}
