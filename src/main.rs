//! `dynapviz`: the command-line front of the dynapviz crates.

mod builtin;
mod commands;

use clap::{Parser, Subcommand};

/// Watch spiking neural networks run on DYNAP-CNN / Speck chips, simulated or real.
#[derive(Parser)]
#[command(name = "dynapviz", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log level filter (error, warn, info, debug, trace), as for RUST_LOG.
    #[arg(long, global = true, default_value = "warn")]
    log: String,
}

#[derive(Subcommand)]
enum Command {
    Demo(commands::demo::Args),
    Inspect(commands::inspect::Args),
    Convert(commands::convert::Args),
    Replay(commands::replay::Args),
    Model(commands::model::Args),
    Simulate(commands::simulate::Args),
    // Boxed: its options (model, chip, the visualizer's) make it much larger than the others.
    Run(Box<commands::run::Args>),
    Synth(commands::synth::Args),
    Eval(commands::eval::Args),
}

fn main() -> std::process::ExitCode {
    let started = std::time::Instant::now();
    // Die quietly on a closed pipe (`dynapviz ... | head`) like other Unix tools, instead of
    // panicking in println!.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let window_sim_threads = match &cli.command {
        Command::Run(a) => a.window_sim_threads(),
        Command::Demo(a) => a.window_sim_threads(),
        _ => None,
    };
    if let Some(threads) = window_sim_threads {
        // SAFETY: no other thread runs yet.
        unsafe { commands::share_cores_with_software_gl(threads) };
    }
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&cli.log).unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Demo(a) => commands::demo::run(a, started),
        Command::Inspect(a) => commands::inspect::run(a),
        Command::Convert(a) => commands::convert::run(a),
        Command::Replay(a) => commands::replay::run(a),
        Command::Model(a) => commands::model::run(a),
        Command::Simulate(a) => commands::simulate::run(a),
        Command::Run(a) => commands::run::run(*a, started),
        Command::Synth(a) => commands::synth::run(a),
        Command::Eval(a) => commands::eval::run(a),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
