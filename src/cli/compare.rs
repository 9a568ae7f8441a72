//! `steplens compare`: the learning-rate procedures against the schedules people use, on the
//! same data, initialisation, batch order and epochs, over `--seeds` seeds.

use clap::Args;

use super::{
    OutArgs, ProblemArgs,
    args::{AnalysisArgs, ProcedureArgs, RunArgs, Setup},
};
use crate::{
    Error, Result,
    compare::{MethodRun, MethodSummary, Trial, roster, run_roster, summarize},
    engine::{Block, Engine},
    local::{LocalConfig, Mode, Tau},
    procedure::{ProcedureSpec, parse_procedures},
    rates::parse_grid,
    report::{
        comparison::{SUMMARY_HEADER, plot_comparison, summary_cells, summary_table},
        table::fmt_num,
    },
    train::Batching,
};

#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    #[command(flatten)]
    pub problem: ProblemArgs,
    #[command(flatten)]
    pub analysis: AnalysisArgs,
    #[command(flatten)]
    pub procedure: ProcedureArgs,
    #[command(flatten)]
    pub run: RunArgs,
    /// Seeds seed .. seed+N−1: every method on each (initialisation and batch order), reported
    /// as the median and quartiles over seeds.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub seeds: usize,
    /// The constant-rate grid: A:B:R, R log-spaced rates from A to B.
    #[arg(long, default_value = "1e-3:10:8", value_name = "A:B:R")]
    pub grid: String,
    /// Epochs-to-target threshold [default: 1.05 × the tuned constant's median final training loss].
    #[arg(long, value_name = "LOSS")]
    pub target_loss: Option<f64>,
    /// The named procedures to compare, `,`-separated (`none` for none).
    #[arg(long, default_value = "pcg,notebook,centred-max", value_name = "LIST")]
    pub procedures: String,
    /// More variants of the accurate-local-problem procedure, `;`-separated: `local` (τ = inf),
    /// `local-tau:T`, or `local:key=value,…` with keys tau, aggregate, center (true/false),
    /// block, perturb, sample (40 unless given).
    #[arg(long, default_value = "", value_name = "LIST")]
    pub local: String,
    #[command(flatten)]
    pub output: OutArgs,
}

/// `local`, `local-tau:T`, `local:key=value,…`; `;`-separated.
fn parse_locals(text: &str, base: &LocalConfig, outputs: usize) -> Result<Vec<(String, ProcedureSpec)>> {
    let mut out = Vec::new();
    for spec in text.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        let bad = |why: &str| Error::usage(format!("--local `{spec}`: {why}"));
        let mut cfg = base.clone();
        let opts = if spec == "local" {
            ""
        } else if let Some(t) = spec.strip_prefix("local-tau:") {
            cfg.procedure.tau = Tau::parse(t)?;
            ""
        } else if let Some(o) = spec.strip_prefix("local:") {
            o
        } else {
            return Err(bad("use local, local-tau:T or local:key=value,…"));
        };
        for kv in opts.split(',').filter(|s| !s.is_empty()) {
            let (k, v) = kv.split_once('=').ok_or_else(|| bad("expected key=value"))?;
            match k.trim() {
                "tau" => cfg.procedure.tau = Tau::parse(v)?,
                "aggregate" => cfg.procedure.aggregate = v.parse()?,
                "center" => cfg.analysis.center = v.trim().parse().map_err(|_| bad("center is true or false"))?,
                "block" => cfg.analysis.block = v.parse()?,
                "perturb" => cfg.analysis.perturbation = v.parse()?,
                "sample" => match v.trim().parse() {
                    Ok(0) | Err(_) => return Err(bad("sample is a whole number of batches, at least 1")),
                    Ok(n) => cfg.sample = Some(n),
                },
                other => return Err(bad(&format!("unknown key `{other}`"))),
            }
        }
        if let Block::Row(c) = cfg.analysis.block
            && c >= outputs
        {
            return Err(bad("that block row does not exist"));
        }
        out.push((spec.to_string(), ProcedureSpec::Local(cfg)));
    }
    Ok(out)
}

/// Batches the local procedures of `compare` analyse per estimate unless `--sample` says otherwise.
const COMPARE_SAMPLE: usize = 40;

pub fn run(args: &CompareArgs, quiet: bool) -> Result<()> {
    args.analysis.check()?;
    args.problem.device.check()?;
    if args.seeds < 1 || args.seeds > crate::rates::MAX_RUNS {
        return Err(Error::usage(format!("--seeds must be between 1 and {}", crate::rates::MAX_RUNS)));
    }
    if let Some(t) = args.target_loss
        && !(t.is_finite() && t > 0.0)
    {
        return Err(Error::usage("--target-loss must be a positive number"));
    }
    let grid = parse_grid("--grid", &args.grid)?;
    let names = parse_procedures(&args.procedures)?;
    let procedure = args.procedure.procedure()?;
    let out = args.output.open(&format!("compare-{:?}", args.problem.model.model).to_lowercase())?;
    let setup = args.run.setup(&args.problem)?;
    let local = LocalConfig {
        procedure,
        analysis: args.analysis.settings(&setup.model, args.run.seed)?,
        mode: Mode::Epoch,
        sample: args.procedure.sample.or(Some(COMPARE_SAMPLE)),
    };
    let locals = parse_locals(&args.local, &local, setup.model.outputs)?;
    let seeds: Vec<u64> = (0..args.seeds as u64).map(|i| args.run.seed + i).collect();
    let (mut per_seed, mut interrupted) = (Vec::new(), None);
    for &seed in &seeds {
        let procedures: Vec<(String, ProcedureSpec)> = names
            .iter()
            .map(|n| (n.row_name().to_string(), n.spec(&with_seed(&local, seed), seed)))
            .chain(locals.iter().map(|(l, s)| (l.clone(), reseed(s, seed))))
            .collect();
        if args.run.reshuffle && procedures.iter().any(|(_, p)| p.needs_fixed_order()) {
            return Err(Error::usage(
                "--reshuffle: the pcg procedure compares each batch with itself one epoch earlier, so it needs the batches \
                 in the same order every epoch",
            ));
        }
        match compare_seed(args, &setup, seed, &grid, procedures, quiet) {
            Ok(runs) => per_seed.push(runs),
            // Stopped: report the seeds that finished (if any), then exit 130.
            Err(Error::Interrupted { .. }) if !per_seed.is_empty() => {
                interrupted = Some(per_seed.len());
                break;
            }
            Err(e) => return Err(e),
        }
    }
    let steps = (args.run.epochs * setup.batching.steps()) as u64;
    let (summaries, tuned) = summarize(&per_seed, steps)?;
    let tuned_median = summaries.iter().find(|s| s.name == tuned).map_or(f64::NAN, |s| s.loss_median);
    let target = args.target_loss.unwrap_or(1.05 * tuned_median);
    let dataset = dataset_name(&setup);
    let model = format!("{:?}", setup.model.kind).to_lowercase();
    let rows = summaries.iter().zip(&per_seed[0]).map(|(s, r0)| {
        let mut cells = summary_cells(&dataset, &model, s);
        cells.push(epochs_to_target(&per_seed, s, target));
        cells.push(r0.epoch_lrs().iter().map(|&v| crate::report::files::csv_num(v)).collect::<Vec<_>>().join(" "));
        cells
    });
    let mut header = SUMMARY_HEADER.to_vec();
    header.extend(["epochs_to_target", "lrs"]);
    out.write_csv("compare.csv", &header, rows)?;
    out.write_json(
        "compare.json",
        &serde_json::json!({ "summaries": summaries, "tuned_constant": tuned, "runs": per_seed }),
    )?;
    plot_comparison(&out, &per_seed, &tuned, &setup.model)?;
    out.write_text("report.md", &report_markdown(args, &setup, &per_seed, &summaries, &tuned, target))?;
    let record = args
        .run
        .record("compare", &setup, &args.problem, None)
        .with("seeds", &seeds[..per_seed.len()])
        .with("grid", &grid)
        .with("target_loss", target)
        .with(
            "procedures",
            per_seed[0].iter().filter_map(|r| r.procedure.as_ref().map(|_| &r.name)).collect::<Vec<_>>(),
        )
        .with("local", &local);
    out.write_json("config.json", &record)?;
    print!("{}", summary_table(&summaries));
    println!("tuned constant {tuned}; target loss {}", fmt_num(target, 4));
    println!("wrote {}", out.path().display());
    match interrupted {
        Some(done) => Err(Error::Stopped {
            done: format!("{done} of {} seeds, written to {}", seeds.len(), out.path().display()),
        }),
        None => Ok(()),
    }
}

fn with_seed(local: &LocalConfig, seed: u64) -> LocalConfig {
    let mut c = local.clone();
    c.analysis.seed = seed;
    c
}

fn reseed(spec: &ProcedureSpec, seed: u64) -> ProcedureSpec {
    match spec {
        ProcedureSpec::Local(c) => ProcedureSpec::Local(with_seed(c, seed)),
        ProcedureSpec::Pcg(c) => ProcedureSpec::Pcg(crate::pcg::PcgConfig { seed, ..*c }),
    }
}

/// The short name of the data (`mnist01` for the embedded default).
pub fn dataset_name(setup: &Setup) -> String {
    let name = &setup.data.train.name;
    if name.starts_with("mnist digits 0,1") { "mnist01".into() } else { name.clone() }
}

/// Every method of the roster on one seed (initialisation and batch order).
fn compare_seed(
    args: &CompareArgs,
    setup: &Setup,
    seed: u64,
    grid: &[f64],
    procedures: Vec<(String, ProcedureSpec)>,
    quiet: bool,
) -> Result<Vec<MethodRun>> {
    let theta0 = setup.model.init(args.problem.model.init, seed);
    let mut make = |runs: usize| -> Result<Box<dyn Engine>> {
        let mut e = args.problem.device.engine(setup.model, &setup.data, runs, true)?;
        e.set_params(&theta0.repeat(runs))?;
        Ok(e)
    };
    let mut trial = Trial {
        engine: &mut make,
        batching: Batching { seed, ..setup.batching },
        epochs: args.run.epochs,
        max_lr: args.procedure.max_lr as f32,
        quiet,
    };
    let mut runs = run_roster(&mut trial, &roster(grid, procedures))?;
    runs.iter_mut().for_each(|r| r.seed = seed);
    Ok(runs)
}

/// The median over seeds of the first epoch whose training loss is at most `target` (`-` when
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
    args: &CompareArgs,
    setup: &Setup,
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
        setup.model.kind,
        setup.data.train.name,
        args.run.epochs,
        args.run.batch_size,
        seeds,
        args.run.seed,
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
            && let Some(p) = &run.procedure
        {
            s.push_str(&format!(" Seed {}: {}", run.seed, p.explain(run.diverged())));
        }
        s.push('\n');
    }
    s.push_str("\nPer-estimate details of the procedures (first seed):\n\n");
    for r in per_seed[0].iter().filter(|r| r.procedure.is_some()) {
        s.push_str(&format!("- {}:\n", r.name));
        for n in &r.notes {
            s.push_str(&format!("  - {n}\n"));
        }
    }
    s.push_str("\nFiles: compare.csv (one row per method), compare.json (every run of every seed), curves.png/svg, lr.png/svg.\n");
    s
}
