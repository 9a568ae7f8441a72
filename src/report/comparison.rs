//! How comparisons are shown: the summary columns `compare.csv` and `suite.csv` share, the
//! summary table, and the training-loss and rate pictures (median over seeds, quartile band).

use crate::{
    Result,
    compare::{MethodRun, MethodSummary},
    model::{Model, ModelKind},
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
pub fn plot_comparison(out: &OutDir, per_seed: &[Vec<MethodRun>], tuned: &str, model: &Model) -> Result<()> {
    let model_name = match model.kind {
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

/// The suite's picture: a performance profile (Dolan & Moré, 2002) of the median ratios — for
/// each method, the fraction of members on which its median final loss is within a factor τ of
/// the tuned constant's, against τ (log scale; τ = 1 is the tuned constant itself). A method
/// whose curve reaches 1 at small τ is good everywhere; diverged members never count.
pub fn suite_chart(results: &[crate::suite::MemberResult]) -> Chart {
    let mut chart = Chart::new(
        format!("Performance profile over {} member(s): median ratio to the tuned constant", results.len()),
        "τ (final loss ÷ tuned constant's, median over seeds)",
        "fraction of members within τ",
    )
    .log_x();
    let Some(first) = results.first() else { return chart };
    let ratios_of = |name: &str| -> Vec<f64> {
        results.iter().filter_map(|r| r.summaries.iter().find(|s| s.name == name)).map(|s| s.ratio_median).collect()
    };
    let all: Vec<f64> = results.iter().flat_map(|r| r.summaries.iter().map(|s| s.ratio_median)).collect();
    let top = all.iter().copied().filter(|v| v.is_finite()).fold(1.0, f64::max) * 1.5;
    let bottom = all.iter().copied().filter(|v| v.is_finite() && *v > 0.0).fold(1.0, f64::min) / 1.5;
    for s in first.summaries.iter().filter(|s| s.family != "constant") {
        let mut r = ratios_of(&s.name);
        r.sort_by(f64::total_cmp);
        let n = r.len() as f64;
        let mut points = vec![(bottom, 0.0)];
        for (i, &v) in r.iter().enumerate().filter(|(_, v)| v.is_finite()) {
            points.push((v, i as f64 / n));
            points.push((v, (i + 1) as f64 / n));
        }
        let last = points.last().map_or(0.0, |p| p.1);
        points.push((top, last));
        chart = chart.with_series(Series::line(&s.name, points));
    }
    chart.with_series(Series::line("τ = 1 (the tuned constant)", vec![(1.0, 0.0), (1.0, 1.0)]))
}
