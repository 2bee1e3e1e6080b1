//! `dynapviz eval`: labelled recordings (DVS128 Gesture layout) through the simulated chip and
//! the readout: accuracy, per-class recall, confusion matrix, latency to the first correct
//! readout; JSON and a PNG confusion matrix.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use dynapviz_chip::{Config, Monitors, Simulator};
use dynapviz_streams::eval::{EvalSettings, Report, evaluate_file, labels_for, report};
use dynapviz_streams::nodes::readout::MajorityReadout;

use super::model::{ModelArgs, SimMode};

/// Evaluate a model on labelled recordings (`demo` = the built-in orientation network).
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// A recording with `NAME_labels.csv` beside it, or a directory of them.
    #[arg(long)]
    input: PathBuf,
    /// event or binned.
    #[arg(long, value_enum, default_value_t = SimMode::Event)]
    mode: SimMode,
    /// Output channel of each file label 1, 2, ... (default: label - 1).
    #[arg(long, value_delimiter = ',')]
    class_map: Option<Vec<usize>>,
    /// Readout collection interval, ms, for the latency figure.
    #[arg(long, default_value_t = 100.0)]
    spike_collection_interval: f64,
    /// Spikes the winner must exceed in a collection.
    #[arg(long, default_value_t = 2)]
    readout_prediction_threshold: u64,
    /// Print JSON (keys accuracy, per_class_recall, confusion, samples, ...).
    #[arg(long)]
    json: bool,
    /// Write the confusion matrix as a PNG.
    #[arg(long)]
    confusion_png: Option<PathBuf>,
}

fn recordings(input: &Path) -> Result<Vec<PathBuf>> {
    if input.is_file() {
        return Ok(vec![input.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(input)
        .with_context(|| format!("cannot read {}", input.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && !p.to_string_lossy().ends_with("_labels.csv") && labels_for(p).exists())
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("{}: no recordings with a NAME_labels.csv beside them", input.display());
    }
    Ok(files)
}

pub fn run(args: Args) -> Result<()> {
    let is_demo = args.model.model.as_deref().is_some_and(|m| m == Path::new("demo"));
    let net = if is_demo { super::demo::orientation_network()? } else { args.model.build()? };
    let classes = net.classes();
    let mode = args.mode.mode(1000);
    let mut sim = Simulator::new(&net, Config { mode, monitors: Monitors::of([net.layers.len()]), ..Config::default() })?;
    let readout = MajorityReadout::new(0, u64::MAX, args.readout_prediction_threshold, 0, classes)?;
    let class_map = args.class_map.clone();
    let class_of = move |label: u32| -> Option<usize> {
        let i = (label as usize).checked_sub(1)?;
        match &class_map {
            Some(m) => m.get(i).copied(),
            None => Some(i),
        }
        .filter(|&c| c < classes)
    };
    let files = recordings(&args.input)?;
    let total: u64 = files.iter().map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0)).sum();
    let bar = super::byte_progress(total, "evaluating");
    let mut results = Vec::new();
    let mut done = 0u64;
    for f in &files {
        let segments = dynapviz_events::read_labels(&labels_for(f))?;
        let settings = EvalSettings { class_of: &class_of, classes, collection_ms: args.spike_collection_interval, readout: &readout };
        let r = evaluate_file(&mut sim, f, &segments, &settings, |n| {
            done += n * 8;
            bar.set_position(done.min(total));
        })
        .map_err(anyhow::Error::msg)?;
        results.extend(r);
    }
    bar.finish_and_clear();
    let rep = report(results, classes);
    if let Some(png) = &args.confusion_png {
        confusion_png(&rep, &class_names(is_demo, classes), png)?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rep)?);
        return Ok(());
    }
    println!("{} samples from {} recordings: accuracy {:.1} %", rep.samples, files.len(), rep.accuracy * 100.0);
    let names = class_names(is_demo, classes);
    for (c, r) in rep.per_class_recall.iter().enumerate() {
        println!("  {:<16} recall {}", names[c], r.map_or("-".to_string(), |r| format!("{:.1} %", r * 100.0)));
    }
    println!("confusion (rows: true, columns: predicted, last: no output):");
    for row in &rep.confusion {
        println!("  {}", row.iter().map(|v| format!("{v:>4}")).collect::<String>());
    }
    if let Some(l) = rep.median_latency_ms {
        println!("median latency to the first correct readout: {l:.0} ms");
    }
    Ok(())
}

fn class_names(is_demo: bool, classes: usize) -> Vec<String> {
    if is_demo { super::demo::CLASSES.iter().map(|s| s.to_string()).collect() } else { (0..classes).map(|c| c.to_string()).collect() }
}

fn confusion_png(rep: &Report, names: &[String], path: &Path) -> Result<()> {
    let n = rep.confusion.len();
    let mut h = dynapviz_viewer::Headless::new(160 + 70 * (n + 1), 90 + 40 * n);
    let rgba = h.render_with(|ui| {
        let painter = ui.painter();
        let origin = ui.max_rect().min + egui::vec2(150.0, 60.0);
        let font = egui::FontId::proportional(13.0);
        painter.text(
            ui.max_rect().min + egui::vec2(8.0, 8.0),
            egui::Align2::LEFT_TOP,
            format!("accuracy {:.1} % over {} samples (rows: true, columns: predicted)", rep.accuracy * 100.0, rep.samples),
            font.clone(),
            egui::Color32::WHITE,
        );
        for (r, row) in rep.confusion.iter().enumerate() {
            let total: u64 = row.iter().sum::<u64>().max(1);
            painter.text(
                origin + egui::vec2(-8.0, 40.0 * r as f32 + 20.0),
                egui::Align2::RIGHT_CENTER,
                &names[r],
                font.clone(),
                egui::Color32::LIGHT_GRAY,
            );
            for (c, &v) in row.iter().enumerate() {
                let frac = v as f32 / total as f32;
                let rect = egui::Rect::from_min_size(origin + egui::vec2(70.0 * c as f32, 40.0 * r as f32), egui::vec2(68.0, 38.0));
                painter.rect_filled(
                    rect,
                    2.0,
                    egui::Color32::from_rgb((30.0 + 40.0 * frac) as u8, (40.0 + 150.0 * frac) as u8, (60.0 + 120.0 * frac) as u8),
                );
                painter.text(rect.center(), egui::Align2::CENTER_CENTER, v.to_string(), font.clone(), egui::Color32::WHITE);
            }
        }
        for (c, name) in names.iter().chain(std::iter::once(&"none".to_string())).enumerate() {
            painter.text(
                origin + egui::vec2(70.0 * c as f32 + 34.0, -10.0),
                egui::Align2::CENTER_BOTTOM,
                name,
                egui::FontId::proportional(11.0),
                egui::Color32::LIGHT_GRAY,
            );
        }
    });
    h.write_png(&rgba, path).map_err(anyhow::Error::msg)
}
