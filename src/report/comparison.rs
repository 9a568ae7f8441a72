//! How comparisons are shown: the summary columns `compare.csv` and `suite.csv` share, the
//! summary table, the training-loss and rate pictures (median over seeds, quartile band), and
//! every output of `compare` — written alike by `compare` and by `merge` from its shards.

use serde::{Deserialize, Serialize};

use crate::{
    Result,
    compare::{MethodRun, MethodSummary, summarize},
    model::ModelKind,
    report::{
        files::{OutDir, csv_num},
        plot::{self, Band, Chart, Series},
        table::{Table, fmt_num},
    },
    stats::quantile,
};

/// The columns of a method's summary, in compare.csv and suite.csv alike.
pub const SUMMARY_HEADER: &[&str] = &[
    "dataset",
    "model",
    "method",
    "seeds",
    "diverged_seeds",
    "ratio_median",
    "ratio_q1",
    "ratio_q3",
    "test_loss_median",
    "grad_evals_ratio",
    "family",
    "final_train_loss_median",
    "final_train_loss_q1",
    "final_train_loss_q3",
    "test_acc_median",
    "grad_evals",
    "loss_evals",
    "seconds",
];

/// The summary columns of one method.
pub fn summary_cells(dataset: &str, model: &str, s: &MethodSummary) -> Vec<String> {
    vec![
        dataset.to_string(),
        model.to_string(),
        s.name.clone(),
        s.seeds.to_string(),
        s.diverged_seeds.to_string(),
        csv_num(s.ratio_median),
        csv_num(s.ratio_q1),
        csv_num(s.ratio_q3),
        csv_num(s.test_loss_median),
        csv_num(s.grad_evals_ratio),
        s.family.clone(),
        csv_num(s.loss_median),
        csv_num(s.loss_q1),
        csv_num(s.loss_q3),
        csv_num(s.test_acc_median),
        csv_num(s.grad_evals),
        csv_num(s.loss_evals),
        format!("{:.3}", s.seconds),
    ]
}

/// The summaries as a table: ratio to the tuned constant with its quartiles, losses, cost.
pub fn summary_table(summaries: &[MethodSummary]) -> Table {
    let mut t = Table::new([
        "method",
        "ratio (median)",
        "q1 – q3",
        "diverged",
        "final train loss",
        "test loss",
        "test acc",
        "grad evals ×",
        "seconds",
    ]);
    for s in summaries {
        t.row(vec![
            s.name.clone(),
            ratio(s.ratio_median),
            format!("{} – {}", ratio(s.ratio_q1), ratio(s.ratio_q3)),
            format!("{}/{}", s.diverged_seeds, s.seeds),
            if s.loss_median.is_finite() { fmt_num(s.loss_median, 4) } else { "diverged".into() },
            fmt_num(s.test_loss_median, 4),
            fmt_num(s.test_acc_median, 4),
            fmt_num(s.grad_evals_ratio, 3),
            format!("{:.1}", s.seconds),
        ]);
    }
    t
}

/// A ratio as shown in tables (`∞` for divergence).
pub fn ratio(r: f64) -> String {
    if r.is_infinite() { "∞".into() } else { fmt_num(r, 3) }
}

/// `curves` and `lr`: the tuned constant, the notebook's rate and every method that is not a
/// grid constant (the rest of the grid is in the table; 18 lines cannot be told apart), each as
/// the median over seeds with the quartile band. Diverged runs are marked in the legend.
pub fn plot_comparison(out: &OutDir, per_seed: &[Vec<MethodRun>], tuned: &str, model: ModelKind) -> Result<()> {
    let model_name = match model {
        ModelKind::Softmax => "Softmax regression",
        ModelKind::Logreg => "Logistic regression",
        ModelKind::Lls => "Least squares",
    };
    let seeds = per_seed.len();
    let over = if seeds > 1 { format!(" (median and quartiles over {seeds} seeds)") } else { String::new() };
    let mut curves =
        Chart::new(format!("{model_name}: training loss{over}"), "epoch", "train loss (whole set)").log_y();
    let mut lrs = Chart::new(format!("{model_name}: learning rate{over}"), "epoch", "learning rate").log_y();
    for (m, first) in per_seed[0].iter().enumerate() {
        if first.family == "constant" && first.label() != tuned {
            continue;
        }
        let runs: Vec<&MethodRun> = per_seed.iter().map(|s| &s[m]).collect();
        let diverged = runs.iter().filter(|r| r.diverged()).count();
        let name = if seeds > 1 { first.name.clone() } else { first.label() };
        let label = match (first.label() == tuned, diverged) {
            (true, _) => format!("{name} (tuned constant)"),
            (false, 0) => name,
            (false, d) => format!("{name} (diverged on {d} of {seeds})"),
        };
        let loss = |r: &MethodRun, e: usize| r.history.get(e).map_or(f64::NAN, |h| h.train_loss);
        let lr = |r: &MethodRun, e: usize| r.history.get(e).map_or(f64::NAN, |h| h.lr);
        let epochs = first.history.len() - 1;
        for (chart, value) in [(&mut curves, &loss as &dyn Fn(&MethodRun, usize) -> f64), (&mut lrs, &lr)] {
            let at = |e: usize, q: f64| quantile(runs.iter().map(|r| value(r, e)).collect(), q);
            let median: Vec<(f64, f64)> = (1..=epochs).map(|e| (e as f64, at(e, 0.5))).collect();
            let lower: Vec<(f64, f64)> = (1..=epochs).map(|e| (e as f64, at(e, 0.25))).collect();
            let upper: Vec<(f64, f64)> = (1..=epochs).map(|e| (e as f64, at(e, 0.75))).collect();
            chart.series.push(Series::line_points(&label, median));
            if seeds > 1 {
                chart.bands.push(Band::new("", lower, upper));
            }
        }
    }
    plot::save(&curves, Some(&out.file("curves.png")), Some(&out.file("curves.svg")))?;
    plot::save(&lrs, Some(&out.file("lr.png")), Some(&out.file("lr.svg")))
}

/// The suite's picture: per member and method (constants aside, the tuned one is 1), the median
/// ratio to the tuned constant and its quartiles over seeds.
pub fn suite_chart(results: &[crate::suite::MemberResult]) -> plot::RatioChart {
    let methods: Vec<String> = results
        .first()
        .map(|r| r.summaries.iter().filter(|s| s.family != "constant").map(|s| s.name.clone()).collect())
        .unwrap_or_default();
    let spreads = methods
        .iter()
        .map(|name| {
            results
                .iter()
                .map(|r| r.summaries.iter().find(|s| &s.name == name).map(|s| [s.ratio_q1, s.ratio_median, s.ratio_q3]))
                .collect()
        })
        .collect();
    let seeds = results.iter().flat_map(|r| r.summaries.iter().map(|s| s.seeds)).max().unwrap_or(0);
    plot::RatioChart {
        title: format!("Final loss ÷ tuned constant's, {seeds} seed(s)"),
        members: results.iter().map(|r| format!("{}:{}", r.dataset, r.model)).collect(),
        methods,
        spreads,
    }
}

/// What the outputs of a comparison need besides its runs; config.json keeps it as `comparison`
/// so that `merge` writes what `compare` writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompareInfo {
    /// The short name of the data (`mnist01` for the embedded default).
    pub dataset: String,
    /// The training set's full name.
    pub data_name: String,
    pub model: ModelKind,
    pub epochs: usize,
    pub batch_size: usize,
    pub first_seed: u64,
    /// Batch gradients of one constant-rate run.
    pub steps_per_run: u64,
    /// `--target-loss`, when given.
    pub target_loss: Option<f64>,
}

/// What a written comparison found.
pub struct Written {
    pub summaries: Vec<MethodSummary>,
    pub tuned: String,
    pub target: f64,
}

/// Every output of a comparison over the seeds of `per_seed`: compare.csv, compare.json, the
/// pictures, report.md, and config.json (`settings` with the seeds that ran and the target loss).
pub fn write_comparison(
    out: &OutDir,
    settings: &serde_json::Value,
    info: &CompareInfo,
    per_seed: &[Vec<MethodRun>],
) -> Result<Written> {
    let (summaries, tuned) = summarize(per_seed, info.steps_per_run)?;
    let tuned_median = summaries.iter().find(|s| s.name == tuned).map_or(f64::NAN, |s| s.loss_median);
    let target = info.target_loss.unwrap_or(1.05 * tuned_median);
    let model = format!("{:?}", info.model).to_lowercase();
    let rows = summaries.iter().zip(&per_seed[0]).map(|(s, r0)| {
        let mut cells = summary_cells(&info.dataset, &model, s);
        cells.push(epochs_to_target(per_seed, s, target));
        cells.push(r0.epoch_lrs().iter().map(|&v| csv_num(v)).collect::<Vec<_>>().join(" "));
        cells
    });
    let mut header = SUMMARY_HEADER.to_vec();
    header.extend(["epochs_to_target", "lrs"]);
    out.write_csv("compare.csv", &header, rows)?;
    out.write_json(
        "compare.json",
        &serde_json::json!({ "summaries": summaries, "tuned_constant": tuned, "runs": per_seed }),
    )?;
    plot_comparison(out, per_seed, &tuned, info.model)?;
    out.write_text("report.md", &report_markdown(info, per_seed, &summaries, &tuned, target))?;
    let mut record = settings.clone();
    if let Some(map) = record.as_object_mut() {
        let seeds: Vec<u64> = per_seed.iter().map(|runs| runs[0].seed).collect();
        map.insert("seeds".into(), serde_json::json!(seeds));
        map.insert("target_loss".into(), serde_json::json!(target));
    }
    out.write_json("config.json", &record)?;
    Ok(Written { summaries, tuned, target })
}

/// The median over seeds of the first epoch whose training loss is at most `target` (empty when
/// fewer than half the seeds reach it).
fn epochs_to_target(per_seed: &[Vec<MethodRun>], s: &MethodSummary, target: f64) -> String {
    let reached: Vec<f64> = per_seed
        .iter()
        .filter_map(|runs| runs.iter().find(|r| r.name == s.name || r.label() == s.name))
        .map(|r| r.history.iter().skip(1).find(|h| h.train_loss <= target).map_or(f64::INFINITY, |h| h.epoch as f64))
        .collect();
    let m = crate::stats::quantile_with_inf(reached, 0.5);
    if m.is_finite() { fmt_num(m, 3) } else { String::new() }
}

fn report_markdown(
    info: &CompareInfo,
    per_seed: &[Vec<MethodRun>],
    summaries: &[MethodSummary],
    tuned: &str,
    target: f64,
) -> String {
    let seeds = per_seed.len();
    let mut s = format!(
        "# {:?} on {}: the procedures against the usual schedules\n\n{} epochs, batch {}, {} seed(s) from {}, the same \
         initialisation and batch order for every method on a seed. Whole-set losses after each epoch. The tuned constant \
         is the grid rate with the lowest median final training loss over the seeds: {tuned}. Ratios are final training \
         losses ÷ its median (a diverged run counts as ∞); quartiles over seeds. Target loss for *epochs to target*: {}.\n\n",
        info.model,
        info.data_name,
        info.epochs,
        info.batch_size,
        seeds,
        info.first_seed,
        fmt_num(target, 4)
    );
    s.push_str(&summary_table(summaries).to_markdown());
    s.push_str("\n![training loss](curves.png)\n\n![learning rate](lr.png)\n\n## What the numbers say\n\n");
    let notebook = summaries.iter().find(|m| m.family == "notebook");
    for m in summaries.iter().filter(|m| m.family == "procedure") {
        let verdict = if m.diverged_seeds == m.seeds {
            "diverged on every seed".to_string()
        } else if m.ratio_median <= 1.0 {
            format!("matches or beats the tuned constant (median ×{})", fmt_num(m.ratio_median, 3))
        } else {
            format!("ends at a median ×{} the tuned constant's loss", fmt_num(m.ratio_median, 3))
        };
        let vs = match notebook {
            Some(n) if m.loss_median < n.loss_median => "beats the notebook's 0.005",
            Some(_) => "does not beat the notebook's 0.005",
            None => "",
        };
        s.push_str(&format!(
            "- **{}** {verdict}, {vs}, diverged on {} of {} seed(s), at {}× the gradient evaluations of one run.",
            m.name,
            m.diverged_seeds,
            m.seeds,
            fmt_num(m.grad_evals_ratio, 3)
        ));
        if let Some(run) = per_seed[0].iter().find(|r| r.name == m.name)
            && let Some(why) = &run.explanation
        {
            s.push_str(&format!(" Seed {}: {why}", run.seed));
        }
        s.push('\n');
    }
    s.push_str("\nPer-estimate details of the procedures (first seed):\n\n");
    for r in per_seed[0].iter().filter(|r| r.explanation.is_some()) {
        s.push_str(&format!("- {}:\n", r.name));
        for n in &r.notes {
            s.push_str(&format!("  - {n}\n"));
        }
    }
    s.push_str(
        "\nFiles: compare.csv (one row per method), compare.json (every run of every seed), curves.png/svg, lr.png/svg; \
         shard.json and jobs/ (one file per seed) let `--resume` continue an interrupted run.\n",
    );
    s
}

/// What `compare` writes, from the jobs (seeds) of its shards.
pub fn write_merged(out: &OutDir, manifest: &crate::shard::Manifest, jobs: Vec<crate::shard::JobResult>) -> Result<()> {
    let info: CompareInfo = serde_json::from_value(manifest.settings.get("comparison").cloned().unwrap_or_default())
        .map_err(|e| crate::Error::Runtime(format!("the shards' settings do not describe a comparison: {e}")))?;
    let per_seed: Vec<Vec<MethodRun>> = jobs.into_iter().map(|j| j.runs).collect();
    let written = write_comparison(out, &manifest.settings, &info, &per_seed)?;
    print!("{}", summary_table(&written.summaries));
    Ok(())
}
