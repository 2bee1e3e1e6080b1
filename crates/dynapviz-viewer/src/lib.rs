//! The viewer: the dashboard of SynSense's `DynapcnnVisualizer` (DVS activity, spike counts,
//! readout picture, power) with every option of the original, its bugs fixed, and what its users
//! miss (pause, speed, latency and frame-rate figures, screenshots, headless PNG and SVG rendering).

pub mod app;
pub mod dashboard;
pub mod headless;
pub mod layout;
pub mod options;
pub mod raster;
pub mod svg;

pub use app::{ViewerError, has_display, run_window};
pub use dashboard::Dashboard;
pub use headless::{GifWriter, Headless};
pub use options::{OptionsError, Resolved, VizOptions};
