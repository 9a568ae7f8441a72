//! `steplens compare`: the derived schedule against the schedules people use, on the same data,
//! seed, initialisation, batch order and epochs. Runs that share a rule train together on the
//! engine (one workgroup each in one dispatch).

use std::time::Instant;

use clap::Args;
use serde::Serialize;

use super::{
    DataArgs, DeviceArgs, ModelArgs, OutArgs,
    analyze::{AnalysisArgs, parse_block, parse_perturbation},
    schedule::ProcedureArgs,
    train::DataSummary,
};
use crate::{
    Error, Result,
    analysis::{Settings, SvdMethod},
    data::Data,
    engine::{Block, Engine, StepRule},
    local::{Aggregate, LocalConfig, LocalRun, Mode, Procedure, Tau, quantile, run_local},
    model::{Model, ModelKind},
    report::{
        files::{OutDir, csv_num},
        plot::{self, Chart, Series},
        progress::Progress,
        table::{Table, fmt_num},
    },
    schedule::Schedule,
    train::{Batching, HistoryRow, Trainer, diverged},
};

#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub device: DeviceArgs,
    #[command(flatten)]
    pub analysis: AnalysisArgs,
    #[command(flatten)]
    pub procedure: ProcedureArgs,
    #[arg(long, default_value_t = 6, value_name = "N")]
    pub epochs: usize,
    #[arg(long, default_value_t = 64, value_name = "B")]
    pub batch_size: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The constant-rate grid: A:B:R, R log-spaced rates from A to B.
    #[arg(long, default_value = "1e-3:10:8", value_name = "A:B:R")]
    pub grid: String,
    /// Epochs-to-target threshold [default: 1.05 × the best constant's final training loss].
    #[arg(long, value_name = "LOSS")]
    pub target_loss: Option<f64>,
    /// Variants of the derived schedule, `;`-separated: `local` (τ = inf), `local-tau:T`, or
    /// `local:key=value,…` with keys tau, aggregate, center (true/false), block, perturb, sample.
    #[arg(long, default_value = "local;local-tau:1;local:center=true,aggregate=max", value_name = "LIST")]
    pub local: String,
    #[command(flatten)]
    pub output: OutArgs,
}

/// One method's run.
#[derive(Debug, Clone, Serialize)]
pub struct MethodRun {
    pub name: String,
    /// constant, notebook, step, cosine, inv-t, range-test, sps, armijo, local.
    pub family: String,
    pub history: Vec<HistoryRow>,
    /// The rate of each epoch (the median step rate for adaptive rules).
    pub epoch_lrs: Vec<f64>,
    pub grad_evals: u64,
    pub loss_evals: u64,
    pub seconds: f64,
    /// For local runs: λ median, q1, q3, R² median and fallbacks per estimate.
    pub notes: Vec<String>,
    #[serde(skip)]
    pub local: Option<LocalRun>,
}

impl MethodRun {
    fn last(&self) -> &HistoryRow {
        self.history.last().expect("row 0 exists")
    }
    fn final_loss(&self) -> f64 {
        let l = self.last().train_loss;
        if diverged(self.last()) { f64::INFINITY } else { l }
    }
}

pub const COMPARE_HEADER: &[&str] = &[
    "name",
    "final_train_loss",
    "final_test_loss",
    "final_test_acc",
    "epochs_to_target",
    "grad_evals",
    "seconds",
    "loss_evals",
    "family",
    "lrs",
];

struct Context<'a> {
    args: &'a CompareArgs,
    data: &'a Data,
    model: Model,
    batching: Batching,
    theta0: Vec<f32>,
    quiet: bool,
}

pub fn run(args: &CompareArgs, quiet: bool) -> Result<()> {
    if args.epochs < 1 {
        return Err(Error::usage("--epochs must be at least 1"));
    }
    args.analysis.check()?;
    args.device.check()?;
    let grid = super::train::parse_sweep(&args.grid)?;
    let procedure = args.procedure.procedure()?;
    let data = args.data.load()?;
    let model = args.model.model(&data)?;
    let base_analysis = args.analysis.settings(&model, args.seed)?;
    let locals = parse_locals(&args.local, procedure, &base_analysis, args.procedure.sample, &model)?;
    let batching = Batching::new(data.train.n, args.batch_size, args.seed, false)?;
    if let Some(t) = args.target_loss
        && !(t.is_finite() && t > 0.0)
    {
        return Err(Error::usage("--target-loss must be a positive number"));
    }
    let name = format!("compare-{:?}", model.kind).to_lowercase();
    let out = args.output.open(&name)?;
    let cx = Context { args, data: &data, model, batching, theta0: model.init(args.model.init, args.seed), quiet };

    let mut runs = Vec::new();
    // 1. The constant grid and the notebook's 0.005, together.
    let mut constants: Vec<(String, String, Schedule)> = grid
        .iter()
        .map(|&lr| (format!("constant:{}", fmt_num(lr, 3)), "constant".to_string(), Schedule::Constant { lr }))
        .collect();
    constants.push(("notebook:0.005".into(), "notebook".into(), Schedule::Constant { lr: 0.005 }));
    runs.extend(train_table_group(&cx, &constants)?);
    let best = runs
        .iter()
        .filter(|r| r.family == "constant")
        .min_by(|a, b| a.final_loss().total_cmp(&b.final_loss()))
        .ok_or_else(|| Error::Runtime("the constant grid is empty".into()))?;
    let best_lr = best.epoch_lrs[0];
    // 2. Schedules based at the best constant, and the range test's suggestion.
    let (suggestion, range_evals) = range_test(&cx)?;
    let mut based = vec![
        (
            format!("step:{}", fmt_num(best_lr, 3)),
            "step".into(),
            Schedule::Step { lr: best_lr, gamma: 0.5, every: 2.max(args.epochs / 3) },
        ),
        (format!("cosine:{}", fmt_num(best_lr, 3)), "cosine".into(), Schedule::Cosine { lr: best_lr, min: 0.0 }),
        (format!("inv-t:{}", fmt_num(best_lr, 3)), "inv-t".into(), Schedule::InvT { lr: best_lr, k: 1.0 }),
    ];
    based.push((
        format!("range-test:{}", fmt_num(suggestion, 3)),
        "range-test".into(),
        Schedule::Constant { lr: suggestion },
    ));
    let mut group = train_table_group(&cx, &based)?;
    if let Some(rt) = group.last_mut() {
        rt.grad_evals += range_evals;
    }
    runs.extend(group);
    // 3. The adaptive rules.
    let max_lr = args.procedure.max_lr as f32;
    runs.push(train_rule(&cx, "sps", StepRule::Polyak { c: 0.5, max_lr }, 0.0)?);
    let growth = 2f32.powf(args.batch_size as f32 / data.train.n as f32);
    runs.push(train_rule(&cx, "armijo", StepRule::Armijo { c: 0.1, beta: 0.9, growth, max_lr }, 1.0)?);
    // 4. The derived schedules.
    for (label, cfg) in &locals {
        runs.push(train_local(&cx, label, cfg)?);
    }

    let target = args.target_loss.unwrap_or(
        1.05 * runs.iter().filter(|r| r.family == "constant").map(|r| r.final_loss()).fold(f64::INFINITY, f64::min),
    );
    write_compare(&out, &runs, target)?;
    plot_compare(&out, &runs, &model)?;
    let report = report_markdown(&cx, &runs, target, &out)?;
    out.write_text("report.md", &report)?;
    out.write_json(
        "config.json",
        &serde_json::json!({
            "command": "compare",
            "version": env!("CARGO_PKG_VERSION"),
            "model": model,
            "data": DataSummary::of(&data),
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "seed": args.seed,
            "grid": grid,
            "target_loss": target,
            "locals": locals.iter().map(|(l, c)| serde_json::json!({"name": l, "config": c})).collect::<Vec<_>>(),
        }),
    )?;
    print_compare(&runs, target);
    println!("wrote {}", out.path().display());
    Ok(())
}

/// `local`, `local-tau:T`, `local:key=value,…`; `;`-separated.
fn parse_locals(
    text: &str,
    base: Procedure,
    analysis: &Settings,
    sample: Option<usize>,
    model: &Model,
) -> Result<Vec<(String, LocalConfig)>> {
    let mut out = Vec::new();
    for spec in text.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        let bad = |why: &str| Error::usage(format!("--local `{spec}`: {why}"));
        let mut procedure = base;
        let mut settings = analysis.clone();
        let mut sample = sample.or(Some(40));
        let opts = if spec == "local" {
            ""
        } else if let Some(t) = spec.strip_prefix("local-tau:") {
            procedure.tau = Tau::parse(t)?;
            ""
        } else if let Some(o) = spec.strip_prefix("local:") {
            o
        } else {
            return Err(bad("use local, local-tau:T or local:key=value,…"));
        };
        for kv in opts.split(',').filter(|s| !s.is_empty()) {
            let (k, v) = kv.split_once('=').ok_or_else(|| bad("expected key=value"))?;
            match k.trim() {
                "tau" => procedure.tau = Tau::parse(v)?,
                "aggregate" => procedure.aggregate = Aggregate::parse(v)?,
                "center" => settings.center = v.trim().parse().map_err(|_| bad("center is true or false"))?,
                "block" => settings.block = parse_block(v)?,
                "perturb" => settings.perturbation = parse_perturbation(v)?,
                "sample" => sample = Some(v.trim().parse().map_err(|_| bad("sample is a whole number"))?),
                other => return Err(bad(&format!("unknown key `{other}`"))),
            }
        }
        if let Block::Row(c) = settings.block
            && c >= model.outputs
        {
            return Err(bad("that block row does not exist"));
        }
        settings.method = SvdMethod::Gram;
        let label = spec.to_string();
        out.push((label, LocalConfig { procedure, analysis: settings, mode: Mode::Epoch, sample, epochs: 0 }));
    }
    Ok(out)
}

fn engine(cx: &Context, runs: usize) -> Result<Box<dyn Engine>> {
    let mut e = cx.args.device.engine(cx.model, cx.data, runs, true)?;
    e.set_params(&cx.theta0.repeat(runs))?;
    Ok(e)
}

/// Table-rate runs trained side by side.
fn train_table_group(cx: &Context, methods: &[(String, String, Schedule)]) -> Result<Vec<MethodRun>> {
    let started = Instant::now();
    let epochs = cx.args.epochs;
    let mut e = engine(cx, methods.len())?;
    let mut trainer = Trainer::new(e.as_mut(), vec![cx.batching])?;
    let steps = trainer.steps();
    let mut histories: Vec<Vec<HistoryRow>> = trainer.initial()?.into_iter().map(|r| vec![r]).collect();
    let bar = Progress::with_quiet(epochs as u64, &format!("{} runs", methods.len()), cx.quiet);
    for epoch in 1..=epochs {
        let lrs: Vec<f32> = methods.iter().flat_map(|(_, _, s)| s.step_lrs(epoch, epochs, steps)).collect();
        for (r, mut out) in trainer.epoch(epoch, &lrs, StepRule::Table)?.into_iter().enumerate() {
            out.row.lr = methods[r].2.epoch_lr(epoch, epochs);
            histories[r].push(out.row);
        }
        bar.inc(1);
    }
    bar.finish();
    let seconds = started.elapsed().as_secs_f64();
    Ok(methods
        .iter()
        .zip(histories)
        .map(|((name, family, s), history)| MethodRun {
            name: name.clone(),
            family: family.clone(),
            epoch_lrs: (1..=epochs).map(|ep| s.epoch_lr(ep, epochs)).collect(),
            history,
            grad_evals: (epochs * steps) as u64,
            loss_evals: 0,
            seconds: seconds / methods.len() as f64,
            notes: Vec::new(),
            local: None,
        })
        .collect())
}

/// The LR range test (fastai, Lightning): ~100 steps with the rate growing exponentially from
/// 1e-7 to 10, the loss smoothed (EMA 0.98, debiased), the suggestion where it falls fastest
/// against log(rate). Returns (suggestion, steps spent).
fn range_test(cx: &Context) -> Result<(f64, u64)> {
    let steps = 100.min(cx.batching.steps());
    let (lo, hi) = (1e-7f64, 10f64);
    let lrs: Vec<f32> =
        (0..steps).map(|i| (lo * (hi / lo).powf(i as f64 / (steps - 1).max(1) as f64)) as f32).collect();
    let mut e = engine(cx, 1)?;
    let mut trainer = Trainer::new(e.as_mut(), vec![cx.batching])?;
    let out = trainer.steps_of(1, 0..steps, &lrs, StepRule::Table, false)?.remove(0);
    let losses: Vec<f64> = out.steps.iter().map(|s| s.loss as f64).collect();
    Ok((range_suggestion(&lrs, &losses), steps as u64))
}

/// Lightning's rule: smooth, stop once the loss exceeds 4× its best, take the steepest descent
/// (the most negative difference of the smoothed loss), skipping the first 10 points.
pub fn range_suggestion(lrs: &[f32], losses: &[f64]) -> f64 {
    let mut smooth = Vec::with_capacity(losses.len());
    let (mut avg, mut best) = (0.0, f64::INFINITY);
    for (i, &l) in losses.iter().enumerate() {
        if !l.is_finite() {
            break;
        }
        avg = 0.98 * avg + 0.02 * l;
        let s = avg / (1.0 - 0.98f64.powi(i as i32 + 1));
        if s > 4.0 * best {
            break;
        }
        best = best.min(s);
        smooth.push(s);
    }
    let skip = 10.min(smooth.len().saturating_sub(2));
    let steepest = (skip + 1..smooth.len())
        .min_by(|&a, &b| (smooth[a] - smooth[a - 1]).total_cmp(&(smooth[b] - smooth[b - 1])))
        .unwrap_or(0);
    lrs[steepest] as f64
}

/// SPS or Armijo: one run, the rule choosing each step's rate.
fn train_rule(cx: &Context, name: &str, rule: StepRule, h0: f32) -> Result<MethodRun> {
    let started = Instant::now();
    let epochs = cx.args.epochs;
    let mut e = engine(cx, 1)?;
    let mut trainer = Trainer::new(e.as_mut(), vec![cx.batching])?;
    let steps = trainer.steps();
    let mut history = trainer.initial()?;
    let (mut epoch_lrs, mut loss_evals) = (Vec::new(), 0u64);
    let mut h = h0;
    let bar = Progress::with_quiet(epochs as u64, name, cx.quiet);
    for epoch in 1..=epochs {
        let mut out = trainer.epoch(epoch, &vec![h; steps], rule)?.remove(0);
        let step_lrs: Vec<f64> = out.steps.iter().map(|s| s.lr as f64).collect();
        if let StepRule::Armijo { growth, max_lr, .. } = rule {
            h = (out.steps.last().map_or(h, |s| s.lr) * growth).min(max_lr);
        }
        loss_evals += out.steps.iter().map(|s| s.trials as u64).sum::<u64>();
        out.row.lr = quantile(step_lrs.clone(), 0.5);
        epoch_lrs.push(out.row.lr);
        history.push(out.row);
        bar.inc(1);
    }
    bar.finish();
    Ok(MethodRun {
        name: name.into(),
        family: name.into(),
        history,
        epoch_lrs,
        grad_evals: (epochs * steps) as u64,
        loss_evals,
        seconds: started.elapsed().as_secs_f64(),
        notes: Vec::new(),
        local: None,
    })
}

fn train_local(cx: &Context, label: &str, cfg: &LocalConfig) -> Result<MethodRun> {
    let started = Instant::now();
    let mut e = engine(cx, 1)?;
    let cfg = LocalConfig { epochs: cx.args.epochs, ..cfg.clone() };
    let bar = Progress::with_quiet(cfg.epochs as u64, label, cx.quiet);
    let result = run_local(e.as_mut(), &cx.batching, &cfg, &mut |_| {
        bar.inc(1);
        Ok(())
    });
    bar.finish();
    // A diverged derived schedule is a result to report, not an error.
    let run = match result {
        Ok(r) => r,
        Err(failed) => match *failed {
            (Error::Diverged { .. }, r) => r,
            (e, _) => return Err(e),
        },
    };
    let mut history = run.rows.clone();
    while history.len() <= cfg.epochs {
        let nan = HistoryRow::new(
            history.len(),
            f64::NAN,
            crate::engine::Metrics { loss: f64::INFINITY, acc: f64::NAN },
            None,
            0.0,
        );
        history.push(nan);
    }
    let notes = run
        .schedule
        .iter()
        .map(|s| {
            let e = &s.estimate;
            format!(
                "epoch {}: lr {}, λ median {} (q1 {}, q3 {}), R² median {}, {} of {} batches fell back",
                s.epoch,
                fmt_num(e.lr, 3),
                fmt_num(e.lambda_median, 3),
                fmt_num(e.lambda_q1, 3),
                fmt_num(e.lambda_q3, 3),
                fmt_num(e.r2_median, 2),
                e.fallbacks,
                e.batches
            )
        })
        .collect();
    Ok(MethodRun {
        name: label.into(),
        family: "local".into(),
        epoch_lrs: run.schedule.iter().map(|s| s.estimate.lr).collect(),
        history,
        grad_evals: run.grad_evals,
        loss_evals: 0,
        seconds: started.elapsed().as_secs_f64(),
        notes,
        local: Some(run),
    })
}

fn epochs_to_target(run: &MethodRun, target: f64) -> Option<usize> {
    run.history.iter().skip(1).find(|r| r.train_loss <= target).map(|r| r.epoch)
}

fn write_compare(out: &OutDir, runs: &[MethodRun], target: f64) -> Result<()> {
    let rows = runs.iter().map(|r| {
        let l = r.last();
        vec![
            r.name.clone(),
            csv_num(if diverged(l) { f64::INFINITY } else { l.train_loss }),
            csv_num(l.test_loss),
            csv_num(l.test_acc),
            epochs_to_target(r, target).map(|e| e.to_string()).unwrap_or_default(),
            r.grad_evals.to_string(),
            format!("{:.3}", r.seconds),
            r.loss_evals.to_string(),
            r.family.clone(),
            r.epoch_lrs.iter().map(|&v| csv_num(v)).collect::<Vec<_>>().join(" "),
        ]
    });
    out.write_csv("compare.csv", COMPARE_HEADER, rows)?;
    out.write_json("compare.json", &runs)
}

/// `curves` and `lr`: the best constant of the grid, the notebook's rate and every other method
/// (the rest of the grid is in the table; 18 lines in one chart cannot be told apart). Diverged
/// runs keep their legend entry, marked as such.
fn plot_compare(out: &OutDir, runs: &[MethodRun], model: &Model) -> Result<()> {
    let best = runs
        .iter()
        .filter(|r| r.family == "constant" && r.final_loss().is_finite())
        .min_by(|a, b| a.final_loss().total_cmp(&b.final_loss()))
        .map(|r| r.name.clone());
    let shown = runs.iter().filter(|r| r.family != "constant" || Some(&r.name) == best.as_ref());
    let model_name = match model.kind {
        ModelKind::Softmax => "Softmax regression",
        ModelKind::Logreg => "Logistic regression",
        ModelKind::Lls => "Least squares",
    };
    let mut curves = Chart::new(format!("{model_name}: training loss"), "epoch", "train loss (whole set)").log_y();
    let mut lrs = Chart::new(format!("{model_name}: learning rate"), "epoch", "learning rate").log_y();
    for r in shown {
        let label = match (Some(&r.name) == best.as_ref(), r.final_loss().is_finite()) {
            (true, _) => format!("{} (best constant)", r.name),
            (false, false) => format!("{} (diverged)", r.name),
            (false, true) => r.name.clone(),
        };
        curves = curves.with_series(Series::line_points(
            &label,
            r.history.iter().skip(1).map(|h| (h.epoch as f64, h.train_loss)).collect(),
        ));
        lrs = lrs.with_series(Series::line_points(
            &label,
            r.epoch_lrs.iter().enumerate().map(|(i, &v)| ((i + 1) as f64, v)).collect(),
        ));
    }
    plot::save(&curves, Some(&out.file("curves.png")), Some(&out.file("curves.svg")))?;
    plot::save(&lrs, Some(&out.file("lr.png")), Some(&out.file("lr.svg")))
}

fn table(runs: &[MethodRun], target: f64) -> Table {
    let mut t = Table::new([
        "method",
        "final train loss",
        "final test loss",
        "test acc",
        "epochs to target",
        "grad evals",
        "seconds",
    ]);
    for r in runs {
        let l = r.last();
        t.row(vec![
            r.name.clone(),
            if diverged(l) { "diverged".into() } else { fmt_num(l.train_loss, 4) },
            fmt_num(l.test_loss, 4),
            fmt_num(l.test_acc, 4),
            epochs_to_target(r, target).map(|e| e.to_string()).unwrap_or_else(|| "-".into()),
            r.grad_evals.to_string(),
            format!("{:.1}", r.seconds),
        ]);
    }
    t
}

fn print_compare(runs: &[MethodRun], target: f64) {
    print!("{}", table(runs, target));
    println!("target loss {}", fmt_num(target, 4));
}

fn report_markdown(cx: &Context, runs: &[MethodRun], target: f64, out: &OutDir) -> Result<String> {
    let best = runs
        .iter()
        .filter(|r| r.family == "constant")
        .min_by(|a, b| a.final_loss().total_cmp(&b.final_loss()))
        .expect("grid");
    let notebook = runs.iter().find(|r| r.family == "notebook").expect("notebook run");
    let overall = runs.iter().min_by(|a, b| a.final_loss().total_cmp(&b.final_loss())).expect("runs");
    let mut s = String::new();
    s.push_str(&format!(
        "# {:?} on {}: the derived schedule against the usual ones\n\n{} epochs, batch {}, seed {}, the same initialisation and batch order for every method. Whole-set losses after each epoch. Target loss for *epochs to target*: {}.\n\n",
        cx.model.kind,
        cx.data.train.name,
        cx.args.epochs,
        cx.args.batch_size,
        cx.args.seed,
        fmt_num(target, 4)
    ));
    s.push_str(&table(runs, target).to_markdown());
    s.push_str("\n![training loss](curves.png)\n\n![learning rate](lr.png)\n\n## What the numbers say\n\n");
    s.push_str(&format!(
        "The best constant rate of the grid is {} (final training loss {}); the best method overall is {} ({}). The notebook's constant 0.005 ends at {}.\n\n",
        best.name,
        fmt_num(best.final_loss(), 4),
        overall.name,
        fmt_num(overall.final_loss(), 4),
        fmt_num(notebook.final_loss(), 4)
    ));
    for r in runs.iter().filter(|r| r.family == "local") {
        let ratio = r.final_loss() / best.final_loss();
        let verdict = if !r.final_loss().is_finite() {
            "diverged".to_string()
        } else if ratio <= 1.0 {
            format!("matches or beats the best constant of the grid (×{} its loss)", fmt_num(ratio, 3))
        } else if ratio <= 1.10 {
            format!("is within 10% of the best constant (×{})", fmt_num(ratio, 3))
        } else {
            format!("ends ×{} the best constant's loss", fmt_num(ratio, 3))
        };
        let vs_notebook = if r.final_loss() < notebook.final_loss() { "beats" } else { "does not beat" };
        s.push_str(&format!("- **{}** {verdict} and {vs_notebook} the notebook's 0.005, with no tuning.", r.name));
        if let Some(run) = &r.local {
            let lam: Vec<f64> = run.schedule.iter().map(|e| e.estimate.lambda_median).collect();
            let r2: Vec<f64> = run.schedule.iter().map(|e| e.estimate.r2_median).collect();
            let fb: usize = run.schedule.iter().map(|e| e.estimate.fallbacks).sum();
            let tot: usize = run.schedule.iter().map(|e| e.estimate.batches).sum();
            let spread: Vec<f64> = run
                .schedule
                .iter()
                .map(|e| (e.estimate.lambda_q3 - e.estimate.lambda_q1) / e.estimate.lambda_median.abs())
                .collect();
            s.push_str(&format!(
                " Its median curvature along q went {} → {} over the epochs, the median R² of the projection line stayed between {} and {}, the interquartile spread of λ was {}–{} times the median, and {fb} of {tot} analysed batches fell back to τ/--max-lr. ",
                fmt_num(*lam.first().unwrap_or(&f64::NAN), 3),
                fmt_num(*lam.last().unwrap_or(&f64::NAN), 3),
                fmt_num(r2.iter().copied().fold(f64::INFINITY, f64::min), 2),
                fmt_num(r2.iter().copied().fold(f64::NEG_INFINITY, f64::max), 2),
                fmt_num(spread.iter().copied().fold(f64::INFINITY, f64::min), 2),
                fmt_num(spread.iter().copied().fold(f64::NEG_INFINITY, f64::max), 2),
            ));
            s.push_str(&explain(run, cx.args.procedure.max_lr, !r.final_loss().is_finite()));
        }
        s.push('\n');
    }
    s.push_str("\nPer-estimate details of the derived schedules:\n\n");
    for r in runs.iter().filter(|r| r.family == "local") {
        s.push_str(&format!("- {}:\n", r.name));
        for n in &r.notes {
            s.push_str(&format!("  - {n}\n"));
        }
    }
    s.push_str(&format!(
        "\nFiles: compare.csv, compare.json, curves.png/svg, lr.png/svg in `{}`.\n",
        out.path().display()
    ));
    Ok(s)
}

/// Why a derived schedule did what it did, from its estimates.
fn explain(run: &LocalRun, max_lr: f64, diverged: bool) -> String {
    if diverged {
        let last = run.schedule.last().map(|e| e.estimate);
        return format!(
            "Why: it diverged at rate {} = 1/λ for λ ≈ {}: the curvature along q is not the sharpest curvature L of the batch Hessian, and a step 1/λ > 2/L is unstable along the sharpest direction. Without centring, q is almost the batch-gradient direction (σ₂/σ₁ ≈ 0.01), which sees an average curvature; centring G turns q into the top Hessian direction, whose 1/λ ≈ 1/L is stable.",
            last.map_or("-".into(), |e| fmt_num(e.lr, 3)),
            last.map_or("-".into(), |e| fmt_num(e.lambda_median, 3)),
        );
    }
    let capped = run.schedule.iter().filter(|e| e.estimate.lr >= max_lr * 0.999).count();
    let n = run.schedule.len();
    let mut why = Vec::new();
    if capped > 0 {
        why.push(format!(
            "in {capped} of {n} estimates the rate hit --max-lr {max_lr}: where λ is tiny (predictions saturate) or the fit is poor the Newton step 1/λ is unbounded, so the cap, not the geometry, set the rate"
        ));
    }
    let tiny = run.schedule.iter().filter(|e| e.estimate.lambda_median.abs() < 1e-3).count();
    if tiny > 0 {
        why.push(format!("the median curvature fell below 1e-3 in {tiny} of {n} estimates"));
    }
    if why.is_empty() {
        why.push("the curvature estimates were positive and fitted well enough (R² ≥ --min-r2), so the rate is the aggregate of the batches' accurate steps h_i(τ) along q".into());
    }
    format!("Why: {}.", why.join("; "))
}
