//! Ctrl-C as a request to stop, for a command that can end cleanly (`convert` completes the
//! file it records a live camera into, or removes the part it wrote of a recording; `simulate`
//! and `inspect` print what a live camera gave until then), also while a stream that is
//! connected again (`--reconnect`) is down. The first
//! Ctrl-C is noted and the default comes back, so a second one ends the process at once, as
//! when the first cannot be seen: a read that waits on a camera that sends nothing.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Result;
use dynapviz_events::EventReader;
use dynapviz_events::reconnect::Reconnecting;

static ASKED: AtomicBool = AtomicBool::new(false);

#[cfg(unix)]
extern "C" fn on_interrupt(_: libc::c_int) {
    ASKED.store(true, Ordering::SeqCst);
    // SAFETY: `signal` is async-signal-safe; the next Ctrl-C gets the default.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_DFL);
    }
}

/// From now on, Ctrl-C sets [`asked`] (once; elsewhere than on Unix it keeps its default).
pub fn catch() {
    #[cfg(unix)]
    // SAFETY: the handler only stores to an atomic and calls `signal`, both async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_interrupt as *const () as libc::sighandler_t);
    }
}

/// Whether Ctrl-C was pressed since [`catch`].
pub fn asked() -> bool {
    ASKED.load(Ordering::Relaxed)
}

/// For a command that reads `input` to its end: when it is a live stream, which has none,
/// catches Ctrl-C and returns whether it was pressed (the stream ends there, and what came is
/// reported); for a file, Ctrl-C keeps its default and this says false.
pub fn ends_live_stream(input: &std::path::Path) -> impl Fn() -> bool + use<> {
    let live = dynapviz_events::net::is_live(input);
    if live {
        catch();
    }
    move || live && asked()
}

/// The stream or recording `input`; with `reconnect` (`--reconnect`, for a live stream only)
/// the stream as [`open_waiting`] opens it, connected again whenever it ends or breaks, until
/// Ctrl-C (see `dynapviz_events::reconnect`).
pub fn open_input(input: &Path, reconnect: bool) -> Result<Box<dyn EventReader>> {
    if !reconnect {
        return Ok(dynapviz_events::open(input)?);
    }
    anyhow::ensure!(dynapviz_events::net::is_live(input), "--reconnect: {} is a file, not a live stream", input.display());
    catch();
    Ok(Box::new(open_reconnecting(input, asked)?))
}

/// The live stream `input` as [`open_waiting`] opens it, connected again whenever it ends or
/// breaks until `stop` says so.
pub fn open_reconnecting(input: &Path, stop: impl Fn() -> bool + Send + 'static) -> Result<Reconnecting> {
    Ok(Reconnecting::new(input, open_waiting(input)?).stop_when(stop))
}

/// The live stream `input`, once something answers there: a command started before the
/// camera's server is up tries again every second, having said once why it cannot connect
/// yet. An answer that is no DV stream is an error, and so is Ctrl-C before the stream came
/// (when caught; else it ends the process).
fn open_waiting(input: &Path) -> Result<Box<dyn EventReader>> {
    let mut said = false;
    loop {
        match dynapviz_events::open(input) {
            Err(e) if dynapviz_events::net::nobody_there(&e) => {
                if said {
                    tracing::debug!("{e}");
                } else {
                    eprintln!("{e}\nwaiting for the stream: trying again every second (Ctrl-C stops)");
                    said = true;
                }
            }
            opened => return Ok(opened?),
        }
        std::thread::sleep(dynapviz_events::reconnect::RETRY);
        anyhow::ensure!(!asked(), "interrupted before {} came", input.display());
    }
}
