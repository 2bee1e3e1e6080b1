//! `dynapviz eval`: labelled recordings (DVS128 Gesture layout) through the simulated chip and
//! the readout, and through the float ANN before conversion: accuracy, per-class recall,
//! confusion matrix, latency to the first correct readout; JSON and a PNG confusion matrix.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use anyhow::{Context, Result, bail};
use dynapviz_chip::{Config, Monitors, Simulator};
use dynapviz_events::GESTURE_CLASSES;
use dynapviz_streams::eval::{EvalSettings, Report, SampleResult, evaluate_file, for_each_window, labels_for, report};
use dynapviz_streams::nodes::readout::MajorityReadout;
use serde::Serialize;

use super::model::{ModelArgs, SimMode};

/// Evaluate a model on labelled recordings (`demo` = the built-in gesture model), beside its float ANN.
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
    /// Class names for the report (default: the built-in model's gesture names, or 0, 1, ...).
    #[arg(long, value_delimiter = ',')]
    feature_names: Option<Vec<String>>,
    /// Window of the float ANN's frames, ms: it is scored on the counts of consecutive windows.
    #[arg(long, default_value_t = 100.0, value_parser = parse_window_ms)]
    ann_window: f64,
    /// Print JSON (keys accuracy, per_class_recall, confusion, samples, ...).
    #[arg(long)]
    json: bool,
    /// Write the confusion matrix as a PNG.
    #[arg(long)]
    confusion_png: Option<PathBuf>,
    /// Write the confusion matrix as an SVG (vector, its numbers and names as text: for a paper).
    #[arg(long)]
    confusion_svg: Option<PathBuf>,
}

fn parse_window_ms(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (1.0..=3_600_000.0).contains(&v) => Ok(v),
        _ => Err(format!("`{s}` is not a window of 1 ms to 1 hour")),
    }
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
    let (net, (ann, _)) = if is_demo {
        (crate::builtin::network()?, crate::builtin::ann()?)
    } else {
        let model = args.model.model.as_deref().context("--model is required (a file, or `demo` for the built-in model)")?;
        (args.model.build()?, dynapviz_model::import::load(model, args.model.arch.as_deref())?)
    };
    let classes = net.classes();
    let mut names = class_names(is_demo, classes);
    if let Some(given) = &args.feature_names {
        anyhow::ensure!(given.len() == classes, "--feature-names has {} names for the model's {classes} classes", given.len());
        names.clone_from(given);
    }
    let mode = args.mode.mode(1000);
    let config = Config { mode, monitors: Monitors::of([net.layers.len()]), ..Config::default() };
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
    let settings = EvalSettings { class_of: &class_of, classes, collection_ms: args.spike_collection_interval, readout: &readout };
    // Recordings are independent: one simulator per thread, each taking the next file.
    let next = AtomicUsize::new(0);
    let done = AtomicU64::new(0);
    let threads = super::cores().min(files.len());
    let per_file: Vec<(usize, FileResults)> = std::thread::scope(|scope| -> Result<Vec<(usize, FileResults)>> {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| -> Result<Vec<(usize, FileResults)>> {
                    let mut sim = Simulator::new(&net, config.clone())?;
                    let mut out = Vec::new();
                    loop {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        let Some(f) = files.get(index) else { break };
                        let segments = dynapviz_events::read_labels(&labels_for(f))?;
                        let chip = evaluate_file(&mut sim, f, &segments, &settings, |n| {
                            bar.set_position((done.fetch_add(n * 8, Ordering::Relaxed) + n * 8).min(total));
                        })
                        .map_err(anyhow::Error::msg)?;
                        let ann = ann_results(&ann, f, &segments, net.dvs.input_shape, (args.ann_window * 1e3) as i64, &class_of)?;
                        out.push((index, FileResults { chip, ann }));
                    }
                    Ok(out)
                })
            })
            .collect();
        let mut all = Vec::new();
        for w in workers {
            all.extend(w.join().map_err(|_| anyhow::anyhow!("an evaluation thread panicked"))??);
        }
        Ok(all)
    })?;
    bar.finish_and_clear();
    let mut per_file = per_file;
    per_file.sort_by_key(|(i, _)| *i);
    let (chip, ann): (Vec<_>, Vec<_>) = per_file.into_iter().map(|(_, r)| (r.chip, r.ann)).unzip();
    let rep = report(chip.into_iter().flatten().collect(), classes);
    let ann_rep = report(ann.into_iter().flatten().collect(), classes);
    if args.confusion_png.is_some() || args.confusion_svg.is_some() {
        confusion_picture(&rep, &names, args.confusion_png.as_deref(), args.confusion_svg.as_deref())?;
    }
    if args.json {
        let json = EvalJson { report: &rep, ann_accuracy: ann_rep.accuracy, ann_per_class_recall: &ann_rep.per_class_recall };
        println!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(());
    }
    println!(
        "{} samples from {} recordings: accuracy {:.1} % on the simulated chip ({} mode); the float ANN before conversion: {:.1} %",
        rep.samples,
        files.len(),
        rep.accuracy * 100.0,
        if args.mode == SimMode::Event { "event" } else { "binned" },
        ann_rep.accuracy * 100.0
    );
    println!("  {:<28} {:>8} {:>8}", "class", "chip", "ANN");
    for (c, (r, a)) in rep.per_class_recall.iter().zip(&ann_rep.per_class_recall).enumerate() {
        let pct = |r: &Option<f64>| r.map_or("-".to_string(), |r| format!("{:.1} %", r * 100.0));
        println!("  {:<28} {:>8} {:>8}", names[c], pct(r), pct(a));
    }
    println!("confusion on the chip (rows: true, columns: predicted, last: no output):");
    for row in &rep.confusion {
        println!("  {}", row.iter().map(|v| format!("{v:>4}")).collect::<String>());
    }
    if let Some(l) = rep.median_latency_ms {
        println!("median latency to the first correct readout: {l:.0} ms");
    }
    Ok(())
}

/// What one recording gave: the chip's verdict on each segment, and the float ANN's.
struct FileResults {
    chip: Vec<SampleResult>,
    ann: Vec<SampleResult>,
}

/// The JSON output: the chip's report with the float ANN's accuracy beside it.
#[derive(Serialize)]
struct EvalJson<'a> {
    #[serde(flatten)]
    report: &'a Report,
    ann_accuracy: f64,
    ann_per_class_recall: &'a [Option<f64>],
}

/// The float ANN on each segment: its rectified outputs on the event counts of consecutive
/// windows, summed, which is what the chip's output layer counts as spikes. The accuracy before
/// conversion, discretization and the chip's neurons.
fn ann_results(
    ann: &dynapviz_model::Ann,
    file: &Path,
    segments: &[dynapviz_events::Segment],
    shape: [usize; 3],
    window_us: i64,
    class_of: &(dyn Fn(u32) -> Option<usize> + Sync),
) -> Result<Vec<SampleResult>> {
    let mut scores: Vec<Vec<f32>> = vec![Vec::new(); segments.len()];
    for_each_window(file, segments, shape, window_us, |k, frame| {
        if class_of(segments[k].class).is_none() {
            return Ok(());
        }
        let input = dynapviz_model::Tensor::new(shape.to_vec(), frame.to_vec()).ok_or("frame shape")?;
        let y = dynapviz_model::forward::forward(ann, &input).map_err(|e| e.to_string())?;
        let s = &mut scores[k];
        s.resize(y.len(), 0.0);
        s.iter_mut().zip(y).for_each(|(s, v)| *s += v.max(0.0));
        Ok(())
    })
    .map_err(anyhow::Error::msg)?;
    let mut out = Vec::new();
    for (seg, scores) in segments.iter().zip(scores) {
        let Some(label) = class_of(seg.class) else { continue };
        let best = scores.iter().copied().fold(0.0f32, f32::max);
        let predicted = (best > 0.0).then(|| scores.iter().position(|&v| v == best)).flatten();
        out.push(SampleResult { file: file.display().to_string(), label, predicted, counts: Vec::new(), latency_us: None });
    }
    Ok(out)
}

fn class_names(is_demo: bool, classes: usize) -> Vec<String> {
    if is_demo { GESTURE_CLASSES.iter().map(|s| s.to_string()).collect() } else { (0..classes).map(|c| c.to_string()).collect() }
}

/// The confusion matrix as a picture: a PNG to `png`, the same as SVG to `svg`. The row names
/// get the room the longest needs, and the column names are slanted, so that none is cut off
/// or runs into the next however long the class names are.
fn confusion_picture(rep: &Report, names: &[String], png: Option<&Path>, svg: Option<&Path>) -> Result<()> {
    use egui::{Align2, Color32, FontId, Rect, Shape, vec2};
    const CELL: egui::Vec2 = vec2(70.0, 40.0);
    let slant = -std::f32::consts::FRAC_PI_4;
    let title = format!("accuracy {:.1} % over {} samples (rows: true, columns: predicted)", rep.accuracy * 100.0, rep.samples);
    let columns: Vec<&str> = names.iter().map(String::as_str).chain(["none"]).collect();
    let (font, small) = (FontId::proportional(13.0), FontId::proportional(11.0));
    // The widths of the names, laid out by egui's own fonts before the canvas is sized.
    let (mut title_w, mut row_w, mut column_w, mut column_h) = (0.0f32, 0.0f32, 0.0f32, 0.0f32);
    dynapviz_viewer::Headless::new(64, 64).render_with(|ui| {
        let width = |text: &str, font: &FontId| ui.painter().layout_no_wrap(text.to_string(), font.clone(), Color32::WHITE).size();
        title_w = width(&title, &font).x;
        row_w = names.iter().map(|n| width(n, &font).x).fold(0.0, f32::max);
        for c in &columns {
            let size = width(c, &small);
            (column_w, column_h) = (column_w.max(size.x), column_h.max(size.y));
        }
    });
    let (cos, sin) = (slant.cos(), -slant.sin());
    let origin = vec2(16.0 + row_w + 8.0, 36.0 + (column_w + column_h) * sin + 8.0);
    let n = rep.confusion.len();
    let width = (origin.x + CELL.x * columns.len() as f32 + column_w * cos).max(16.0 + title_w) + 16.0;
    let height = origin.y + CELL.y * n as f32 + 16.0;
    let mut h = dynapviz_viewer::Headless::new(width.ceil() as usize, height.ceil() as usize);
    let (rgba, vector) = h.render_with_and_svg(|ui| {
        let painter = ui.painter();
        let top_left = ui.max_rect().min;
        let origin = top_left + origin;
        painter.text(top_left + vec2(8.0, 8.0), Align2::LEFT_TOP, &title, font.clone(), Color32::WHITE);
        for (r, row) in rep.confusion.iter().enumerate() {
            let total: u64 = row.iter().sum::<u64>().max(1);
            let y = CELL.y * r as f32;
            painter.text(origin + vec2(-8.0, y + CELL.y / 2.0), Align2::RIGHT_CENTER, &names[r], font.clone(), Color32::LIGHT_GRAY);
            for (c, &v) in row.iter().enumerate() {
                let frac = v as f32 / total as f32;
                let rect = Rect::from_min_size(origin + vec2(CELL.x * c as f32, y), CELL - vec2(2.0, 2.0));
                let shade = Color32::from_rgb((30.0 + 40.0 * frac) as u8, (40.0 + 150.0 * frac) as u8, (60.0 + 120.0 * frac) as u8);
                painter.rect_filled(rect, 2.0, shade);
                painter.text(rect.center(), Align2::CENTER_CENTER, v.to_string(), font.clone(), Color32::WHITE);
            }
        }
        // Each column's name rises to the right from above its centre.
        for (c, name) in columns.iter().enumerate() {
            let galley = painter.layout_no_wrap(name.to_string(), small.clone(), Color32::LIGHT_GRAY);
            let foot = origin + vec2(CELL.x * c as f32 + CELL.x / 2.0 - 6.0, -6.0);
            // The galley turns about its top-left corner: start that corner half a line above
            // the foot, across the slant, so that the line's middle runs through the foot.
            let at = foot - vec2(sin, cos) * (galley.size().y / 2.0);
            painter.add(Shape::Text(egui::epaint::TextShape::new(at, galley, Color32::LIGHT_GRAY).with_angle(slant)));
        }
    });
    if let Some(path) = svg {
        dynapviz_viewer::headless::write_svg(&vector, path).map_err(anyhow::Error::msg)?;
    }
    match png {
        Some(path) => h.write_png(&rgba, path).map_err(anyhow::Error::msg),
        None => Ok(()),
    }
}
