//! Ctrl-C as a request to stop, for a command that can end cleanly (`convert` completes the
//! file it records a live camera into, or removes the part it wrote of a recording; `simulate`
//! and `inspect` print what a live camera gave until then), also while a stream that is
//! connected again (`--reconnect`) is down. The first
//! Ctrl-C is noted and the default comes back, so a second one ends the process at once, as
//! when the first cannot be seen: a read that waits on a camera that sends nothing.

use std::sync::atomic::{AtomicBool, Ordering};

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

/// `reader` of `input`, or with `reconnect` (`--reconnect`, for a live stream only) the same
/// stream connected again whenever it ends or breaks, until Ctrl-C (see
/// `dynapviz_events::reconnect`).
pub fn reconnecting(
    input: &std::path::Path,
    reader: Box<dyn dynapviz_events::EventReader>,
    reconnect: bool,
) -> anyhow::Result<Box<dyn dynapviz_events::EventReader>> {
    if !reconnect {
        return Ok(reader);
    }
    anyhow::ensure!(dynapviz_events::net::is_live(input), "--reconnect: {} is a file, not a live stream", input.display());
    catch();
    Ok(Box::new(dynapviz_events::reconnect::Reconnecting::new(input, reader).stop_when(asked)))
}
