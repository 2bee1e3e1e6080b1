//! `dynapviz model`: import, convert, discretize, validate and map a network; print its layers.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use dynapviz_chip::{BusyModel, Config, OutputDecimator};
use dynapviz_model::network::{Crop, Reset};
use dynapviz_model::{ChipProfile, DvsOptions, Network, Neurons, Ordering, Pipeline, report};
use serde::Serialize;

/// How the simulated chip computes (`--mode`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SimMode {
    /// The chip's event-driven model.
    #[default]
    Event,
    /// sinabs' simulation in time bins (bit-exact with sinabs).
    Binned,
}

impl SimMode {
    /// The simulator mode, with bins of `bin_us` in binned mode.
    pub fn mode(self, bin_us: i64) -> dynapviz_chip::Mode {
        match self {
            SimMode::Event => dynapviz_chip::Mode::Event,
            SimMode::Binned => dynapviz_chip::Mode::Binned { bin_us },
        }
    }
}

/// `--threads` of the commands that simulate a chip.
#[derive(clap::Args, Clone, Copy, Debug)]
pub struct ThreadsArg {
    /// Threads for the simulation (the binned mode takes two at most). Results are the same
    /// for any number. Default: every core for `simulate`; 1 with a window, which needs a
    /// core of its own.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    threads: Option<u16>,
}

impl ThreadsArg {
    /// The number asked for, or `default`.
    pub fn or(self, default: usize) -> usize {
        self.threads.map_or(default, usize::from)
    }
}

/// The chip's settings beyond the network, as a samna configuration switches them on per core:
/// shared by `simulate` and `run`.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct ChipArgs {
    /// Model busy cores that drop input (event mode; estimated core speed): every layer's, or
    /// with =LAYERS (comma-separated) only theirs, as samna's per-layer
    /// `input_congestion_balancer_enable`.
    #[arg(long, value_name = "LAYERS", num_args = 0.., value_delimiter = ',', require_equals = true)]
    busy_model: Option<Vec<usize>>,
    /// Add each layer's bias every N µs (the chip's leak; event mode).
    #[arg(long)]
    leak_tick_us: Option<i64>,
    /// A core's output decimator, LAYER=INTERVAL (samna's `output_decimator_interval`, 0-7):
    /// one of every 2^(INTERVAL+1) spikes of the layer leaves its core (event mode).
    /// Repeatable or comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub output_decimator: Vec<OutputDecimator>,
}

/// Devices whose CNN layers have no output decimator in samna's configuration reference
/// (`samna.speck2b.configuration`, `samna.dynapcnn.configuration`); Speck 2e and 2f have one
/// per layer.
const NO_OUTPUT_DECIMATOR: [&str; 2] = ["speck2b", "dynapcnndevkit"];

impl ChipArgs {
    /// `config` with these settings, for a network mapped to `device`: the simulator says what
    /// it cannot run; a warning says what `device` lacks.
    pub fn apply(&self, config: Config, device: Option<&str>) -> Config {
        if let Some(device) = device.filter(|d| !self.output_decimator.is_empty() && NO_OUTPUT_DECIMATOR.contains(d)) {
            tracing::warn!("the {device} has no output decimators in samna's configuration: simulated as on a Speck 2e");
        }
        Config {
            busy: self.busy_model.as_ref().map(|_| BusyModel::default()),
            busy_layers: self.busy_model.clone().unwrap_or_default(),
            leak_tick_us: self.leak_tick_us,
            decimators: self.output_decimator.clone(),
            ..config
        }
    }
}

/// The model options shared by `model`, `simulate` and `run`.
#[derive(clap::Args, Clone, Debug)]
pub struct ModelArgs {
    /// The trained network: .onnx, a NIR graph (.nir, a spiking network of IF neurons, as
    /// sinabs' `to_nir` writes it), or a state_dict (.pt/.pth/.safetensors) with --arch.
    #[arg(long = "model", value_name = "MODEL")]
    pub model: Option<PathBuf>,
    /// Architecture TOML for a state_dict (layers of the nn.Sequential, with module indices).
    #[arg(long)]
    pub arch: Option<PathBuf>,
    /// Input shape C,H,W (C = 2 polarities, or 1 for merged polarities); a NIR graph and an
    /// architecture file name their own.
    #[arg(long, value_parser = parse_shape)]
    pub input_shape: Option<[usize; 3]>,
    /// Chip: speck2e, speck2f, speck2b, dynapcnndevkit, speck2cmini, speck2dmini.
    #[arg(long, default_value = "speck2e")]
    pub device: String,
    /// Core of each layer, comma-separated (layer 1 first), or "auto".
    #[arg(long, default_value = "auto")]
    pub chip_layers_ordering: String,
    /// DVS crop in pooled coordinates: y0,y1,x0,x1 (rows y0..y1, columns x0..x1).
    #[arg(long, value_parser = parse_crop)]
    pub crop: Option<Crop>,
    /// Mirror the input left-right.
    #[arg(long)]
    pub flip_x: bool,
    /// Mirror the input top-bottom.
    #[arg(long)]
    pub flip_y: bool,
    /// Swap x and y of the input.
    #[arg(long)]
    pub swap_xy: bool,
    /// What a spike does to a neuron's potential, in every layer: subtract the threshold, or
    /// reset to zero (the chip's `return_to_zero`; sinabs' `from_model(..., reset_fn=...)`
    /// with `MembraneSubtract` or `MembraneReset`). Default: as the model says, which is
    /// subtract unless an architecture file's IAF layer says `reset = "zero"`.
    #[arg(long, value_enum)]
    pub reset: Option<ResetArg>,
    /// Every layer's spike threshold, as sinabs' `from_model(..., spike_threshold=T)` sets it.
    /// Default: as the model says (1 for a ReLU, an imported IAF's own).
    #[arg(long, value_name = "T", allow_hyphen_values = true)]
    pub spike_threshold: Option<f32>,
    /// Every layer's lower bound of the potential, as `from_model(..., min_v_mem=V)` sets it.
    /// Default: as the model says (-1 for a ReLU, an imported IAF's own).
    #[arg(long, value_name = "V", allow_hyphen_values = true)]
    pub min_v_mem: Option<f32>,
    /// Every conv's and linear layer's bias divided by R, as `from_model(...,
    /// bias_rescaling=R)` does (before batch norm folds in).
    #[arg(long, value_name = "R", allow_hyphen_values = true)]
    pub bias_rescaling: Option<f32>,
}

/// `--reset`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetArg {
    /// Subtract the threshold (sinabs' default).
    Subtract,
    /// Reset to zero.
    Zero,
}

impl From<ResetArg> for Reset {
    fn from(r: ResetArg) -> Self {
        match r {
            ResetArg::Subtract => Reset::Subtract,
            ResetArg::Zero => Reset::Zero,
        }
    }
}

fn parse_list(s: &str) -> Result<Vec<usize>, String> {
    s.split(',').map(|v| v.trim().parse::<usize>().map_err(|_| format!("`{v}` is not a non-negative integer"))).collect()
}

fn parse_shape(s: &str) -> Result<[usize; 3], String> {
    parse_list(s)?.try_into().map_err(|_| "expected C,H,W (three numbers)".to_string())
}

fn parse_crop(s: &str) -> Result<Crop, String> {
    let [y0, y1, x0, x1]: [usize; 4] = parse_list(s)?.try_into().map_err(|_| "expected y0,y1,x0,x1".to_string())?;
    Ok(Crop { y0, y1, x0, x1 })
}

impl ModelArgs {
    /// Runs the model pipeline with these options.
    pub fn build(&self) -> Result<Network> {
        let ordering = if self.chip_layers_ordering == "auto" {
            Ordering::Auto
        } else {
            Ordering::Manual(parse_list(&self.chip_layers_ordering).map_err(anyhow::Error::msg).context("--chip-layers-ordering")?)
        };
        let model = self.model.as_deref().context("--model is required")?;
        let mut p = Pipeline::new(model)
            .arch(self.arch.as_deref())
            .device(&self.device)
            .ordering(ordering)
            .dvs(DvsOptions { crop: self.crop, flip_x: self.flip_x, flip_y: self.flip_y, swap_xy: self.swap_xy })
            .reset(self.reset.map(Reset::from))
            .neurons(Neurons { spike_threshold: self.spike_threshold, min_v_mem: self.min_v_mem, bias_rescaling: self.bias_rescaling });
        if let Some(shape) = self.input_shape {
            p = p.input_shape(shape);
        }
        Ok(p.build()?)
    }
}

/// Import a trained network, convert it to IAF, discretize it and map it to the chip's cores.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// Print JSON (the field names of the sinabs golden fixtures).
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Output<'a> {
    device: &'a str,
    input_shape: [usize; 3],
    dvs: &'a dynapviz_model::network::DvsLayer,
    layers: Vec<report::LayerReport>,
}

pub fn run(args: Args) -> Result<()> {
    let net = args.model.build()?;
    let profile = ChipProfile::by_name(&args.model.device)?;
    let layers = report::layers(&net);
    if args.json {
        let out = Output { device: profile.name, input_shape: net.dvs.input_shape, dvs: &net.dvs, layers };
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    let d = &net.dvs;
    println!(
        "{}: input {:?}, DVS layer: {} polarities, pool {:?}, output {:?}, to {}",
        profile.name,
        d.input_shape,
        if d.merge_polarities { "merged" } else { "2" },
        d.pool,
        d.output_shape,
        d.destinations.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(",")
    );
    println!(
        "{:>3} {:>4} {:>9} {:>6} {:>6} {:>5} {:>6} {:>12} {:>5} {:>6} {:>8} {:>10} {:>16} {:>16}",
        "idx", "core", "in->out", "kernel", "stride", "pad", "pool", "output", "to", "thr", "min_v", "w range", "kernel mem", "neuron mem"
    );
    for l in &layers {
        let cap = |f: fn(&dynapviz_model::chip::CoreMemory) -> usize| l.core_memory.as_ref().map_or("-".to_string(), |c| f(c).to_string());
        println!(
            "{:>3} {:>4} {:>9} {:>6} {:>6} {:>5} {:>6} {:>12} {:>5} {:>6} {:>8} {:>10} {:>16} {:>16}",
            l.index,
            l.core.map_or("-".to_string(), |c| c.to_string()),
            format!("{}->{}", l.in_channels, l.out_channels),
            format!("{}x{}", l.kernel[0], l.kernel[1]),
            format!("{},{}", l.stride[0], l.stride[1]),
            format!("{},{}", l.padding[0], l.padding[1]),
            if l.destination_pools.iter().all(|&p| p == l.pool) {
                format!("{}x{}", l.pool[0], l.pool[1])
            } else {
                l.destination_pools.iter().map(|p| format!("{}x{}", p[0], p[1])).collect::<Vec<_>>().join(",")
            },
            format!("{}x{}x{}", l.output_shape[0], l.output_shape[1], l.output_shape[2]),
            l.destinations.iter().map(|d| d.to_string()).chain(l.output.then(|| "out".to_string())).collect::<Vec<_>>().join(","),
            l.threshold,
            l.min_v_mem,
            format!("{}..{}", l.weight_min, l.weight_max),
            format!("{}/{}", l.memory.kernel, cap(|c| c.kernel)),
            format!("{}/{}", l.memory.neuron, cap(|c| c.neuron)),
        );
    }
    let to_zero: Vec<String> = layers.iter().filter(|l| l.return_to_zero).map(|l| l.index.to_string()).collect();
    if to_zero.len() == layers.len() && !layers.is_empty() {
        println!("neurons reset to zero after a spike, in every layer");
    } else if !to_zero.is_empty() {
        println!("layers whose neurons reset to zero after a spike: {} (the others subtract the threshold)", to_zero.join(", "));
    }
    let charged: Vec<String> =
        layers.iter().filter_map(|l| l.initial_v_mem_range.map(|[lo, hi]| format!("{} ({lo}..{hi})", l.index))).collect();
    if !charged.is_empty() {
        println!(
            "layers that start charged, with their potentials: {} (sinabs' conversion runs one time step of zeros, \
             and a bias charges the neurons in it; the chip gets them as initial values)",
            charged.join(", ")
        );
    }
    if net.layers.is_empty() {
        bail!("the network has no layers");
    }
    Ok(())
}
