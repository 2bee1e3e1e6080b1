//! Every option of the original's `DynapcnnVisualizer` constructor (DESIGN.md §1), with its
//! defaults, readable from TOML under the original's names, and checked before a window opens.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Why the options cannot work.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{0}")]
pub struct OptionsError(pub String);

/// Options of a line plot (the original's `extra_arguments` per plot).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LinePlotOptions {
    /// Seconds of history shown.
    pub x_span: f64,
    /// Seconds between x-axis labels.
    pub label_interval: f64,
    /// Headroom above the largest value (1.2 = 20 %).
    pub max_y_rate: f64,
    /// Draw a circle on each point.
    pub show_point_circles: bool,
    /// y maximum before data arrives.
    pub default_y_max: f64,
    /// y-axis label.
    pub y_label: String,
    /// x-axis label.
    pub x_label: String,
}

impl LinePlotOptions {
    /// The spike-count plot's defaults.
    pub fn spike_count() -> Self {
        Self {
            x_span: 25.0,
            label_interval: 2.5,
            max_y_rate: 1.2,
            show_point_circles: false,
            default_y_max: 10.0,
            y_label: "Spike Count".into(),
            x_label: "Time (s)".into(),
        }
    }

    /// The power plot's defaults.
    pub fn power() -> Self {
        Self {
            x_span: 10.0,
            label_interval: 2.0,
            max_y_rate: 1.5,
            show_point_circles: false,
            default_y_max: 1.0,
            y_label: "Power (mW)".into(),
            x_label: "Time (s)".into(),
        }
    }
}

impl Default for LinePlotOptions {
    fn default() -> Self {
        Self::spike_count()
    }
}

/// The visualizer's options, named as in the original.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct VizOptions {
    /// Window size as fractions of the screen: width = w/16, height = h/9.
    pub window_scale: [f32; 2],
    /// Size of the DVS plot's sensor (width, height).
    pub dvs_shape: [u16; 2],
    /// Show the DVS plot.
    pub add_dvs_plot: bool,
    /// Show the readout picture (needs `readout_images`).
    pub add_readout_plot: bool,
    /// Show the spike-count plot.
    pub add_spike_count_plot: bool,
    /// Show the power plot.
    pub add_power_monitor_plot: bool,
    /// Spike collection interval, ms.
    pub spike_collection_interval: f64,
    /// Spikes the winner must exceed for a prediction.
    pub readout_prediction_threshold: u64,
    /// Feature shown when no prediction passes (default: the last class).
    pub readout_default_return_value: Option<usize>,
    /// Fewest spikes in a collection for a decision.
    pub readout_default_threshold_low: u64,
    /// Most spikes in a collection for a decision.
    pub readout_default_threshold_high: u64,
    /// Power rails shown: 3 (io, ram, logic) or 5 (+ pixel-digital, pixel-analog).
    pub power_monitor_number_of_items: usize,
    /// Names of the output classes (default: from image names, else "0".."n-1").
    pub feature_names: Option<Vec<String>>,
    /// Pictures per class in output-channel order: files, or one directory of `{idx}_{name}.png`.
    pub readout_images: Option<Vec<PathBuf>>,
    /// Number of output classes (default: the last layer's channels).
    pub feature_count: Option<usize>,
    /// Spike-count plot options.
    pub spike_count: LinePlotOptions,
    /// Power plot options.
    pub power_measurement: LinePlotOptions,
}

impl Default for VizOptions {
    fn default() -> Self {
        Self {
            window_scale: [4.0, 8.0],
            dvs_shape: [128, 128],
            add_dvs_plot: true,
            add_readout_plot: false,
            add_spike_count_plot: true,
            add_power_monitor_plot: false,
            spike_collection_interval: 500.0,
            readout_prediction_threshold: 10,
            readout_default_return_value: None,
            readout_default_threshold_low: 0,
            readout_default_threshold_high: 32000,
            power_monitor_number_of_items: 3,
            feature_names: None,
            readout_images: None,
            feature_count: None,
            spike_count: LinePlotOptions::spike_count(),
            power_measurement: LinePlotOptions::power(),
        }
    }
}

/// Options checked and completed: names, images, counts all consistent.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolved {
    /// The options as given.
    pub options: VizOptions,
    /// One name per class.
    pub feature_names: Vec<String>,
    /// One picture per class (empty without a readout plot).
    pub images: Vec<PathBuf>,
    /// The default readout feature.
    pub default_feature: usize,
}

impl VizOptions {
    /// Reads a TOML file with the original's parameter names.
    pub fn from_toml(path: &Path) -> Result<Self, OptionsError> {
        let text = std::fs::read_to_string(path).map_err(|e| OptionsError(format!("{}: {e}", path.display())))?;
        toml::from_str(&text).map_err(|e| OptionsError(format!("{}: {e}", path.display())))
    }

    /// Checks everything and fills in the defaults the original derives; `network_classes` is the
    /// last layer's channel count when a network runs.
    pub fn resolve(self, network_classes: Option<usize>) -> Result<Resolved, OptionsError> {
        let o = &self;
        let err = |m: String| Err(OptionsError(m));
        if o.readout_default_threshold_low > o.readout_default_threshold_high {
            return err(format!(
                "readout_default_threshold_low ({}) is above readout_default_threshold_high ({})",
                o.readout_default_threshold_low, o.readout_default_threshold_high
            ));
        }
        if ![3, 5].contains(&o.power_monitor_number_of_items) {
            return err(format!(
                "power_monitor_number_of_items is {}: the power monitor has 3 (io, ram, logic) or 5 (+ pixel-digital, pixel-analog) rails",
                o.power_monitor_number_of_items
            ));
        }
        if o.spike_collection_interval <= 0.0 || !o.spike_collection_interval.is_finite() {
            return err(format!("spike_collection_interval {} ms must be positive", o.spike_collection_interval));
        }
        if o.window_scale.iter().any(|v| v.is_nan() || *v <= 0.0) || o.dvs_shape.contains(&0) {
            return err("window_scale and dvs_shape must be positive".into());
        }
        for (name, p) in [("spike_count", &o.spike_count), ("power_measurement", &o.power_measurement)] {
            if !(p.x_span > 0.0 && p.label_interval > 0.0 && p.max_y_rate >= 1.0 && p.default_y_max > 0.0) {
                return err(format!("{name}: x_span, label_interval and default_y_max must be positive and max_y_rate at least 1"));
            }
        }
        let images = match &o.readout_images {
            None => Vec::new(),
            Some(paths) => expand_images(paths)?,
        };
        if o.add_readout_plot && images.is_empty() {
            return err("add_readout_plot needs readout_images (files, or a directory of {labelidx}_{labelname}.png)".into());
        }
        if o.feature_count == Some(0) {
            return err("feature_count 0: must be at least 1 (or left out: the model's classes)".into());
        }
        let count =
            o.feature_count.or(network_classes).or((!images.is_empty()).then_some(images.len())).or(o.feature_names.as_ref().map(Vec::len));
        let Some(count) = count.filter(|&c| c > 0) else {
            if o.add_spike_count_plot || o.add_readout_plot {
                return err("the number of classes is unknown: give feature_count, feature_names, readout_images or a model".into());
            }
            return Ok(Resolved { options: self, feature_names: Vec::new(), images, default_feature: 0 });
        };
        if !images.is_empty() && images.len() != count {
            return err(format!("{} readout images for {count} classes", images.len()));
        }
        let names = match &o.feature_names {
            Some(n) if n.len() != count => {
                return err(format!("{} feature names for {count} classes", n.len()));
            }
            Some(n) => n.clone(),
            None if !images.is_empty() => images.iter().map(|p| name_from_image(p)).collect(),
            None => (0..count).map(|i| i.to_string()).collect(),
        };
        let default_feature = o.readout_default_return_value.unwrap_or(count - 1);
        if default_feature >= count {
            return err(format!("readout_default_return_value {default_feature} is not a class (0..{})", count - 1));
        }
        Ok(Resolved { options: self, feature_names: names, images, default_feature })
    }
}

/// The class name in `{labelidx}_{labelname}.ext`: everything after the index, so
/// `01_arm_roll.png` is "arm_roll" (the original kept only "roll").
pub fn name_from_image(path: &Path) -> String {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    match stem.split_once('_') {
        Some((idx, name)) if idx.chars().all(|c| c.is_ascii_digit()) && !name.is_empty() => name.to_string(),
        _ => stem,
    }
}

/// Files as given; a single directory becomes its images sorted by their numeric index.
fn expand_images(paths: &[PathBuf]) -> Result<Vec<PathBuf>, OptionsError> {
    if let [dir] = paths
        && dir.is_dir()
    {
        let entries = std::fs::read_dir(dir).map_err(|e| OptionsError(format!("{}: {e}", dir.display())))?;
        let mut images: Vec<(u64, String, PathBuf)> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension().and_then(|e| e.to_str()).is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
            })
            .map(|p| {
                let stem = p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
                let idx = stem.split('_').next().and_then(|i| i.parse().ok()).unwrap_or(u64::MAX);
                (idx, stem, p)
            })
            .collect();
        images.sort();
        if images.is_empty() {
            return Err(OptionsError(format!("{}: no PNG or JPEG images in the readout image directory", dir.display())));
        }
        return Ok(images.into_iter().map(|(_, _, p)| p).collect());
    }
    for p in paths {
        if !p.is_file() {
            return Err(OptionsError(format!("readout image {} does not exist", p.display())));
        }
    }
    Ok(paths.to_vec())
}
