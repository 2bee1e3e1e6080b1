//! One module per subcommand: argument definitions and the glue to the library crates.

pub mod convert;
pub mod demo;
pub mod eval;
pub mod fit;
pub mod inspect;
pub mod model;
pub mod run;
pub mod simulate;
pub mod synth;
pub mod viz;

/// Cores of this machine (1 when unknown).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
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
