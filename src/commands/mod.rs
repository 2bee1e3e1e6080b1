//! One module per subcommand: argument definitions and the glue to the library crates.

mod class_bins;
pub mod convert;
pub mod demo;
pub mod eval;
pub mod fit;
pub mod inspect;
mod interrupt;
mod live;
pub mod model;
pub mod replay;
pub mod run;
pub mod simulate;
pub mod synth;
pub mod viz;

/// Cores of this machine (1 when unknown).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Mesa's software OpenGL (llvmpipe, what a machine without a GPU draws with) starts a render
/// thread per core. Next to the window's own thread they took the simulation's core on a
/// 2-core machine: 1.9-2.1 M ev/s of the gesture network, 2.2 M with rendering on the window's
/// thread alone, at the same frame rate. This leaves the renderer only the cores that neither
/// the window nor the `sim_threads` simulation threads use (0: it renders on the window's
/// thread), unless `LP_NUM_THREADS` is set already. Drivers for a GPU ignore the variable.
///
/// # Safety
/// No other thread may run: it changes the environment.
pub unsafe fn share_cores_with_software_gl(sim_threads: usize) {
    if std::env::var_os("LP_NUM_THREADS").is_none() {
        let spare = cores().saturating_sub(1 + sim_threads);
        // SAFETY: the caller's promise.
        unsafe { std::env::set_var("LP_NUM_THREADS", spare.to_string()) };
    }
}

/// A progress bar over bytes of a file, hidden when stderr is not a terminal.
pub fn byte_progress(len: u64, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(Some(len), indicatif::ProgressDrawTarget::stderr());
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} {wide_bar} {bytes}/{total_bytes} {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(what.to_string());
    bar
}
