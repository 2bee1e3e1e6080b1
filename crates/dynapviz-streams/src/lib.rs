//! Streams: where events come from (recorded files, live cameras over the network, a synthetic
//! DVS, the simulated chip), the processing nodes of the original's samna graph, and a pipeline
//! runtime whose display side never blocks its source.

pub mod eval;
pub mod gesture;
pub mod live;
pub mod nodes;
pub mod pipeline;
pub mod record;
pub mod rng;
pub mod session;
pub mod source;
pub mod synth;
