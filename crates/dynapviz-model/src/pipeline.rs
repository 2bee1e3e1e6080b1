//! One builder that runs the whole pipeline with sinabs' defaults.

use std::path::{Path, PathBuf};

use crate::chip::{self, ChipProfile};
use crate::convert::{self, DvsOptions};
use crate::error::{ModelError, Result};
use crate::network::{Network, Reset};
use crate::{Ann, discretize, import, mapping};

/// How layers are assigned to cores.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Ordering {
    /// sinabs' "auto" matching.
    #[default]
    Auto,
    /// The core of layer 1, 2, ... as given.
    Manual(Vec<usize>),
}

/// Import, convert, discretize, validate and map a model.
#[derive(Clone, Debug)]
pub struct Pipeline {
    model: PathBuf,
    arch: Option<PathBuf>,
    input_shape: Option<[usize; 3]>,
    device: Option<String>,
    ordering: Ordering,
    discretize: bool,
    dvs: DvsOptions,
    reset: Option<Reset>,
}

impl Pipeline {
    /// Starts from a model file (`.onnx`, or a state_dict with [`Pipeline::arch`]).
    pub fn new(model: &Path) -> Self {
        Self {
            model: model.to_path_buf(),
            arch: None,
            input_shape: None,
            device: None,
            ordering: Ordering::Auto,
            discretize: true,
            dvs: DvsOptions::default(),
            reset: None,
        }
    }

    /// The architecture file of a state_dict.
    pub fn arch(mut self, arch: Option<&Path>) -> Self {
        self.arch = arch.map(Path::to_path_buf);
        self
    }

    /// The input (C, H, W); required unless the architecture file gives it.
    pub fn input_shape(mut self, shape: [usize; 3]) -> Self {
        self.input_shape = Some(shape);
        self
    }

    /// The chip profile to validate and map for; without one the network stays unmapped.
    pub fn device(mut self, name: &str) -> Self {
        self.device = Some(name.to_string());
        self
    }

    /// Core assignment.
    pub fn ordering(mut self, ordering: Ordering) -> Self {
        self.ordering = ordering;
        self
    }

    /// Keep float parameters only (no integer ones).
    pub fn discretize(mut self, on: bool) -> Self {
        self.discretize = on;
        self
    }

    /// DVS layer options.
    pub fn dvs(mut self, dvs: DvsOptions) -> Self {
        self.dvs = dvs;
        self
    }

    /// The reset of every layer's neurons, as sinabs' `from_model(..., reset_fn=...)` sets it
    /// for the layers it makes (`MembraneSubtract` or `MembraneReset`). `None` keeps what the
    /// model says: subtract for a ReLU, an imported IAF's own.
    pub fn reset(mut self, reset: Option<Reset>) -> Self {
        self.reset = reset;
        self
    }

    /// Runs every stage.
    pub fn build(self) -> Result<Network> {
        let (ann, arch_shape) = import::load(&self.model, self.arch.as_deref())?;
        self.build_from(&ann, arch_shape)
    }

    /// Runs every stage after import on an ANN already loaded (`shape`: the input shape the
    /// architecture names, used unless one was set).
    pub fn build_from(self, ann: &Ann, arch_shape: Option<[usize; 3]>) -> Result<Network> {
        // The device is an option, not part of the model: its error names no file.
        let profile = self.device.as_deref().map(ChipProfile::by_name).transpose()?;
        let named = |error| ModelError::Network { path: self.model.clone(), error: Box::new(error) };
        let shape = self
            .input_shape
            .or(arch_shape)
            .ok_or_else(|| named(ModelError::Invalid("the input shape is unknown: pass --input-shape C,H,W".into())))?;
        let mut net = convert::convert(ann, shape, &self.dvs).map_err(named)?;
        if let Some(reset) = self.reset {
            net.layers.iter_mut().for_each(|l| l.reset = reset);
        }
        if self.discretize {
            discretize::discretize(&mut net);
        }
        if let Some(profile) = &profile {
            chip::validate(&net, profile).map_err(named)?;
            match &self.ordering {
                Ordering::Auto => {
                    mapping::map_auto(&mut net, profile).map_err(named)?;
                }
                Ordering::Manual(cores) => mapping::map_manual(&mut net, profile, cores).map_err(named)?,
            }
        }
        Ok(net)
    }
}
