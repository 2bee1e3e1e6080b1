//! `--serve ADDR`: the dashboard of a running session, rendered on this machine and served to
//! browsers (see `dynapviz-serve`). Pictures are made only while someone watches, and only
//! when something changed; the session is never slowed by a viewer.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use dynapviz_serve::{Command, LiveServer, OnCommand, ServeConfig};
use dynapviz_streams::session::Session;
use dynapviz_streams::source::Controls;
use dynapviz_viewer::{Dashboard, Headless};

use super::viz::VizArgs;

/// A picture at least this often while watched, changed or not: the status line's clock.
const STILL_PICTURE_EVERY: Duration = Duration::from_secs(1);

/// Serves the session's dashboard at `addr` until Ctrl-C (caught by `viz::show`), which stops
/// the session (its recordings completed) and returns, so that the caller's scratch files go
/// too. When the recording ends, the last picture stays up.
pub fn serve(args: &VizArgs, addr: &str, mut dashboard: Dashboard, session: Session, controls: Option<Controls>) -> Result<()> {
    let (w, h) = args.image_size()?;
    anyhow::ensure!(
        args.serve_fps.is_finite() && args.serve_fps > 0.0,
        "--serve-fps {}: expected pictures per second above 0",
        args.serve_fps
    );
    let period = Duration::from_secs_f64(1.0 / args.serve_fps.min(60.0));
    let ended = Arc::new(AtomicBool::new(false));
    // The panel toggles are the dashboard's, which this thread owns: the server's threads flip
    // these and the loop applies them.
    let (chip, heat) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let on_command: OnCommand = {
        let (ended, chip, heat, controls) = (Arc::clone(&ended), Arc::clone(&chip), Arc::clone(&heat), controls.clone());
        Box::new(move |command| {
            let playback = controls.as_ref().filter(|_| !ended.load(Ordering::Acquire));
            match (command, playback) {
                (Command::ChipPanel, _) => {
                    chip.fetch_xor(true, Ordering::AcqRel);
                }
                (Command::HeatChannels, _) => {
                    heat.fetch_xor(true, Ordering::AcqRel);
                }
                (Command::TogglePause, Some(c)) => c.toggle_pause(),
                (Command::Faster, Some(c)) => c.faster(),
                (Command::Slower, Some(c)) => c.slower(),
                (_, None) => return false,
            }
            true
        })
    };
    let token = match &args.serve_token {
        Some(t) => Some(checked_token(t)?),
        None if resolves_to_loopback(addr) => None,
        None => Some(random_token()?),
    };
    let server = LiveServer::bind(addr, ServeConfig { token: token.clone(), ..ServeConfig::default() }, Some(on_command))?;
    let local = server.local_addr();
    let exposed = if local.ip().is_unspecified() { " (every address of this machine)" } else { "" };
    let query = token.map_or(String::new(), |t| format!("?token={t}"));
    println!("serving the dashboard at http://{local}/{query}{exposed}; Ctrl-C stops");
    let mut renderer = Headless::new(w, h);
    let display = Arc::clone(&session.display);
    let mut session = Some(session);
    let mut last_picture: Option<Instant> = None;
    let mut changed = true;
    // What the last picture cost to draw and encode.
    let mut picture_ms = 0.0;
    loop {
        let tick = Instant::now();
        if super::interrupt::asked() {
            let stats = session.take().map(Session::stop).transpose().map_err(anyhow::Error::msg)?;
            let totals = stats.map_or(String::new(), |s| format!(" ({} input events, {} output spikes)", s.events, s.output_spikes));
            println!("stopped by Ctrl-C{totals}");
            return Ok(());
        }
        if let Some(s) = &session {
            // Checked first: everything sent before the end is drained below.
            let finished = s.is_finished();
            while let Ok(batch) = s.analysis.try_recv() {
                batch.iter().for_each(|a| dashboard.on_analysis(a));
                changed = true;
            }
            if finished {
                let stats = session.take().map(Session::join).transpose().map_err(anyhow::Error::msg)?;
                ended.store(true, Ordering::Release);
                changed = true;
                if let Some(stats) = stats {
                    println!(
                        "the recording ended ({} input events, {} output spikes); its last picture stays up",
                        stats.events, stats.output_spikes
                    );
                }
            }
        }
        if let Some(f) = display.take() {
            dashboard.on_frame(&f);
            changed = true;
        }
        if chip.swap(false, Ordering::AcqRel) {
            dashboard.show_chip = !dashboard.show_chip;
            changed = true;
        }
        if heat.swap(false, Ordering::AcqRel) {
            dashboard.heat_per_channel = !dashboard.heat_per_channel;
            changed = true;
        }
        if let Some(c) = &controls {
            dashboard.stats.follow(c);
        }
        dashboard.stats.skipped_frames = display.skipped();
        let due = last_picture.is_none_or(|t| t.elapsed() >= STILL_PICTURE_EVERY);
        // A viewer saving the picture as SVG gets this frame, drawn both ways.
        let vector = server.vector_wanted();
        if vector || (server.watched() && (changed || due)) {
            let made = Instant::now();
            let rgba = if vector {
                let (rgba, svg) = renderer.render_and_svg(&mut dashboard);
                server.publish_vector(svg.into_bytes(), "image/svg+xml");
                rgba
            } else {
                renderer.render(&mut dashboard)
            };
            let png = renderer.encode_png(&rgba).map_err(anyhow::Error::msg)?;
            picture_ms = made.elapsed().as_secs_f64() * 1e3;
            server.publish(png, "image/png", status(&dashboard, ended.load(Ordering::Acquire), picture_ms));
            (changed, last_picture) = (false, Some(Instant::now()));
        } else {
            server.set_status(status(&dashboard, ended.load(Ordering::Acquire), picture_ms));
        }
        std::thread::sleep(period.saturating_sub(tick.elapsed()));
    }
}

/// The page's status line, as JSON.
fn status(dashboard: &Dashboard, ended: bool, picture_ms: f64) -> String {
    let s = &dashboard.stats;
    serde_json::json!({
        "t_s": (dashboard.now_seconds() * 1e3).round() / 1e3,
        "events": s.events,
        "paused": s.paused,
        "speed": s.speed,
        "behind_s": (s.behind_s * 1e3).round() / 1e3,
        "skipped_frames": s.skipped_frames,
        "live": s.live,
        "dropped_events": s.dropped_events,
        "reconnects": s.reconnects,
        "link_down": s.link_down.as_ref().map(|d| serde_json::json!({
            "lost_s": (d.since.elapsed().as_secs_f64() * 10.0).round() / 10.0,
            "tries": d.tries,
            "why": d.why,
        })),
        "ended": ended,
        "picture_ms": (picture_ms * 10.0).round() / 10.0,
    })
    .to_string()
}

/// `--serve-token`, if it can go in an address as it is and is too long to guess.
fn checked_token(token: &str) -> Result<String> {
    anyhow::ensure!(
        (16..=128).contains(&token.len()) && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "--serve-token: expected 16 to 128 letters, digits, `-` or `_` (got {} characters)",
        token.len()
    );
    Ok(token.to_string())
}

/// Whether every address `addr` names is a loopback one: only this machine can connect.
fn resolves_to_loopback(addr: &str) -> bool {
    use std::net::ToSocketAddrs;
    addr.to_socket_addrs().is_ok_and(|mut all| all.all(|a| a.ip().is_loopback()))
}

/// 128 random bits from the system, as 32 hex digits.
fn random_token() -> Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no random numbers for the --serve token: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
