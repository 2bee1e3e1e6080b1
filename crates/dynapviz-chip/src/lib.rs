//! The chip when there is no chip: an event-driven model of a DYNAP-CNN / Speck chip and a
//! binned mode that reproduces sinabs' simulation bit for bit, with counters and a power
//! estimate. Input: a mapped, discretized [`dynapviz_model::Network`] and DVS events.

mod aligned;
mod batch;
mod binned;
mod cascade;
mod decimator;
pub mod dvs;
mod lanes;
pub mod layer;
mod leak;
mod peak;
pub mod power;
mod sim;
mod stages;
mod window;

pub use decimator::OutputDecimator;
pub use lanes::Kernel;
pub use power::{Coefficients, IDLE_PERIODS_IN_FULL, PowerMean, PowerSample, RAILS};
pub use sim::{
    BusyModel, Config, GAP_SLICE_SPIKES, InputCounters, LayerCounters, MAX_LEADING_BINS, MAX_POWER_RATE_HZ, MAX_TIME_US, Mode, Monitors,
    SimError, Simulator, Spike, first_bin,
};
