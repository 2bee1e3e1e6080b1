//! `dynapviz replay IN --serve tcp://HOST:PORT`: a recording played as a live camera, served
//! as DV's network output serves one, to try a live setup without a camera: `run`, `simulate`
//! or DV itself connect to it as to a camera.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use dynapviz_events::formats::aedat4::Compression;
use dynapviz_events::serve::DvServer;
use dynapviz_streams::source::{Controls, FileSource};

use super::demo::scratch_dir;

/// Serve a recording as a live camera: the AEDAT 4.0 network stream of DV's "Output to
/// network", in real time (or --speed), from its first client on.
#[derive(clap::Args)]
pub struct Args {
    /// The recording; `demo`: the demo's synthetic subject performing the 11 gestures of
    /// DVS128 Gesture on a 128x128 sensor (made as it plays, 2 s each).
    input: PathBuf,
    /// Where clients connect: `tcp://HOST:PORT` (port 0: any free one, printed), or
    /// `unix://PATH` for a local socket.
    #[arg(long, value_name = "ADDRESS")]
    serve: PathBuf,
    /// Playback speed (1 = real time; 0 = as fast as the slowest client takes it, which then
    /// loses nothing).
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// Start again at the end (timestamps keep increasing), until Ctrl-C.
    #[arg(long = "loop")]
    looped: bool,
    /// Packet compression: lz4, zstd or none.
    #[arg(long, value_enum, default_value_t = PacketCompression::Lz4)]
    compression: PacketCompression,
    /// Sensor size WxH to state when the recording does not (default: the smallest holding
    /// every event).
    #[arg(long)]
    geometry: Option<String>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum PacketCompression {
    Lz4,
    Zstd,
    None,
}

pub fn run(args: Args) -> Result<()> {
    anyhow::ensure!(args.speed.is_finite() && args.speed >= 0.0, "--speed {}: expected 0 (as fast as possible) or more", args.speed);
    let address = dynapviz_events::net::address(&args.serve)
        .with_context(|| format!("--serve {}: expected tcp://HOST:PORT or unix://PATH", args.serve.display()))?;
    let controls = Controls::new(args.speed);
    // Removes the demo's recording at the end.
    let (_demo, mut source) = if args.input == Path::new("demo") && !args.input.exists() {
        let demo = scratch_dir("replay")?;
        let subject = super::synth::Synthesis::start(demo.path(), 1, 0, DEMO_SEGMENT_US)?;
        let path = subject.path.clone();
        (Some(demo), FileSource::with_reader(&path, Box::new(subject), args.looped, controls))
    } else {
        (None, FileSource::open(&args.input, args.looped, controls)?)
    };
    let geometry = match &args.geometry {
        Some(g) => super::convert::parse_geometry(g)?,
        None => super::fit::sensor_size(&args.input, source.geometry())?,
    };
    let compression = match args.compression {
        PacketCompression::Lz4 => Compression::Lz4,
        PacketCompression::Zstd => Compression::Zstd,
        PacketCompression::None => Compression::None,
    };
    let mut server = DvServer::bind(address, geometry, compression)?;
    super::interrupt::catch();
    println!(
        "serving {} ({geometry}) as a DV camera at {}; playback starts with the first client; Ctrl-C stops",
        args.input.display(),
        server.address()
    );
    if !wait_for_client(&server) {
        return Ok(());
    }
    let started = Instant::now();
    let (mut chunk, mut sent, mut first_t, mut outside) = (Vec::new(), 0u64, None, 0usize);
    // At speed 0 nothing is paced, so nothing need be lost: wait for the clients.
    let wait = args.speed == 0.0;
    // Where the replay is, on a terminal (it may go on for hours with --loop).
    let status = indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    status.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {elapsed} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    while !super::interrupt::asked() && source.next_chunk(&mut chunk)? {
        // The stream states its sensor size: a client may count on every event being inside.
        let before = chunk.len();
        chunk.retain(|e| e.x < geometry.width && e.y < geometry.height);
        outside += before - chunk.len();
        server.send(&chunk, wait)?;
        sent += chunk.len() as u64;
        if let (Some(first), Some(last)) = (chunk.first(), chunk.last()) {
            let at_s = (last.t - *first_t.get_or_insert(first.t)) as f64 * 1e-6;
            status.set_message(format!("{at_s:.1} s of the recording, {sent} events sent, {} client(s) connected", server.clients()));
            status.tick();
        }
        chunk.clear();
    }
    status.finish_and_clear();
    let served = server.finish();
    println!(
        "sent {sent} events in {:.1} s to {} client(s); packets clients did not take in time: {}{}",
        started.elapsed().as_secs_f64(),
        served.clients,
        served.dropped_packets,
        if outside > 0 { format!("; {outside} events outside the {geometry} sensor left out") } else { String::new() }
    );
    Ok(())
}

/// Waits for the first client; false if Ctrl-C came first.
fn wait_for_client(server: &DvServer) -> bool {
    while server.clients_served() == 0 {
        if super::interrupt::asked() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// Seconds per gesture of `replay demo`, as the demo's default.
const DEMO_SEGMENT_US: i64 = 2_000_000;
