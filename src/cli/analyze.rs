//! `steplens analyze`: the notebook's `calculate_main_singular_vector` and
//! `plot_projection_picture` over every batch, with pictures and files.

use std::{path::PathBuf, time::Instant};

use crate::data::Standardization;

use clap::Args;

use super::{DataArgs, OutArgs, ProblemArgs, args::AnalysisArgs, interrupted};
use crate::{
    Error, Result,
    analysis::{self, BatchAnalysis, Batches},
    data::npy,
    model::Model,
    report::{
        files::{OutDir, csv_num},
        plot::{self, Band, Chart, Series},
        progress::Progress,
    },
    train::Batching,
};
use crate::{
    report::record::{DataSummary, RunRecord},
    stats::quantile,
};

#[derive(Debug, Clone, Args)]
pub struct AnalyzeArgs {
    #[command(flatten)]
    pub problem: ProblemArgs,
    #[command(flatten)]
    pub analysis: AnalysisArgs,
    /// A run directory of `train`: analyse at its weights (else at the seeded initialisation).
    #[arg(long, value_name = "RUN_DIR")]
    pub weights: Option<PathBuf>,
    #[arg(long, default_value_t = 32, value_name = "B")]
    pub batch_size: usize,
    /// Which batches: `all`, `a..b` (half-open) or `i,j,k`.
    #[arg(long, default_value = "all", value_name = "SEL")]
    pub batches: String,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub output: OutArgs,
    /// The argument ids given on the command line (not defaults), filled in by the CLI: with
    /// `--weights`, only these may contradict the run's own settings (and are then refused).
    #[arg(skip)]
    pub explicit: Vec<String>,
}

/// What `analyze --weights` takes from a `train` run directory.
#[derive(Debug, Clone)]
pub struct RunDir {
    pub model: Model,
    pub theta: Vec<f32>,
    /// config.json's `data`: `train` (the dataset's name: MNIST's, an embedded set's or the
    /// path), `test`, `train_samples`, `features`.
    pub data: serde_json::Value,
    /// Whether the run standardised its data (a non-null `standardization` in config.json).
    pub standardized: bool,
}

impl RunDir {
    pub fn load(dir: &std::path::Path) -> Result<RunDir> {
        use crate::error::DataError;
        let config_path = dir.join("config.json");
        let text = std::fs::read_to_string(&config_path).map_err(|e| DataError::io(&config_path, e))?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| DataError::invalid(&config_path, format!("it is not JSON: {e}")))?;
        let model: Model = serde_json::from_value(value["model"].clone())
            .map_err(|e| DataError::invalid(&config_path, format!("it has no usable `model`: {e}")))?;
        let (_, w) = npy::read_f32(&dir.join("weights.npy"))?;
        let (_, b) = npy::read_f32(&dir.join("bias.npy"))?;
        if w.len() != model.outputs * model.p || b.len() != model.outputs {
            return Err(DataError::invalid(
                dir.join("weights.npy"),
                format!(
                    "weights.npy and bias.npy hold {} and {} values; the run's model needs {} and {}",
                    w.len(),
                    b.len(),
                    model.outputs * model.p,
                    model.outputs
                ),
            )
            .into());
        }
        for (file, values) in [("weights.npy", &w), ("bias.npy", &b)] {
            if let Some(i) = values.iter().position(|v| !v.is_finite()) {
                return Err(DataError::invalid(
                    dir.join(file),
                    format!("value {i} is {}: the run diverged, and its weights cannot be analysed", values[i]),
                )
                .into());
            }
        }
        let data = value["data"].clone();
        let standardized = !value["standardization"].is_null();
        Ok(RunDir { model, theta: [w, b].concat(), data, standardized })
    }

    /// The data arguments that reproduce the run's data: MNIST digits, an embedded set or the
    /// files it was trained on; `None` when config.json does not say.
    pub fn data_args(&self, base: &DataArgs) -> Option<DataArgs> {
        let train = self.data["train"].as_str()?;
        let mut args = base.clone();
        args.standardize = self.standardized;
        if let Some(list) = train.strip_prefix("mnist digits ").and_then(|r| r.strip_suffix(" (train)")) {
            args.digits = list.to_string();
        } else if let Some(e) = crate::data::Embedded::from_name(train) {
            args.dataset = Some(e);
        } else {
            args.data = Some(PathBuf::from(train));
            // A directory's own X_test.npy comes with it; any other test set is named.
            args.test_data = self.data["test"]
                .as_str()
                .filter(|t| std::path::Path::new(t).parent() != Some(std::path::Path::new(train)))
                .map(PathBuf::from);
        }
        Some(args)
    }
}

/// A value as its flag spells it (`seed-compat`).
fn flag_value(v: impl clap::ValueEnum) -> String {
    v.to_possible_value().map_or_else(String::new, |p| p.get_name().to_string())
}

/// The data and model for `analyze --weights DIR`: the run's own, with flags given on the
/// command line allowed only where they agree with the run.
fn run_setup(
    args: &AnalyzeArgs,
    dir: &std::path::Path,
) -> Result<(crate::data::Data, Option<Standardization>, Model, Vec<f32>)> {
    let run = RunDir::load(dir)?;
    let given = |id: &str| args.explicit.iter().any(|e| e == id);
    let shown = dir.display();
    let name = |k: crate::model::ModelKind| flag_value(k);
    if given("model") && args.problem.model.model != run.model.kind {
        return Err(Error::usage(format!(
            "the run in {shown} trained --model {}; --model {} contradicts it (leave --model out with --weights)",
            name(run.model.kind),
            name(args.problem.model.model)
        )));
    }
    if given("loss") && args.problem.model.loss != run.model.loss {
        return Err(Error::usage(format!(
            "the run in {shown} trained with --loss {}; --loss {} contradicts it (leave --loss out with --weights)",
            flag_value(run.model.loss),
            flag_value(args.problem.model.loss)
        )));
    }
    if given("standardize") && !run.standardized {
        return Err(Error::usage(format!(
            "the run in {shown} trained on data that was not standardised; --standardize contradicts it"
        )));
    }
    let data_given = ["digits", "data", "test_data", "dataset"].iter().any(|id| given(id));
    let data_args = if data_given {
        let mut a = args.problem.data.clone();
        a.standardize |= run.standardized;
        a
    } else {
        run.data_args(&args.problem.data).ok_or_else(|| {
            Error::usage(format!(
                "the run in {shown} does not say what data it trained on: give --data, --dataset or --digits"
            ))
        })?
    };
    let (data, standardization) = data_args.load_for(run.model.kind)?;
    let m = run.model;
    let check = Model::for_data(m.kind, m.loss, &data.train)?;
    let trained_n = run.data["train_samples"].as_u64();
    if check.p != m.p || check.outputs != m.outputs || trained_n.is_some_and(|n| n != data.train.n as u64) {
        return Err(Error::usage(format!(
            "the run in {shown} was trained on {} ({} samples, {}, {} output(s)); the data given, {}, has {} samples, {} and would need {} output(s)",
            run.data["train"].as_str().unwrap_or("unknown data"),
            trained_n.map_or("?".into(), |n| n.to_string()),
            crate::report::table::count(m.p, "feature", "features"),
            m.outputs,
            data.train.name,
            data.train.n,
            crate::report::table::count(data.train.p, "feature", "features"),
            check.outputs
        )));
    }
    data.check_test(&m)?;
    Ok((data, standardization, m, run.theta))
}

pub const ANALYSIS_HEADER: &[&str] =
    &["batch", "sigma1", "sigma2", "sigma3", "explained1", "alpha", "beta", "r2", "lambda", "sigma2_over_sigma1"];

pub fn run(args: &AnalyzeArgs, quiet: bool) -> Result<()> {
    args.analysis.check()?;
    args.problem.device.check()?;
    // Before any work: the directory must be creatable, writable and not in use.
    let out = args.output.open("analyze")?;
    let (data, standardization, model, theta) = match &args.weights {
        Some(dir) => run_setup(args, dir)?,
        None => {
            let (data, standardization) = args.problem.data.load_for(args.problem.model.model)?;
            let m = args.problem.model.model(&data)?;
            let theta = m.init(args.problem.model.init, args.seed);
            (data, standardization, m, theta)
        }
    };
    let settings = args.analysis.settings(&model, args.seed)?;
    let batching = Batching::new(data.train.n, args.batch_size, args.seed, false)?;
    let which = analysis::parse_batches(&args.batches, batching.steps())?;
    check_distinct(&args.batches, &which)?;
    let mut engine = args.problem.device.engine(model, &data, 1, quiet)?;
    let table = batching.epoch(1);
    let batches = Batches { table: &table, batch_size: args.batch_size, n: data.train.n };
    let started = Instant::now();
    let bar = Progress::with_quiet(which.len() as u64, "analyze", quiet);
    // Chunks of batches are the unit of work: a stop request (Ctrl-C, SIGTERM) is honoured
    // between two of them, and the finished batches are written as a complete analysis.
    let mut results = Vec::with_capacity(which.len());
    for ids in which.chunks(ANALYSIS_CHUNK) {
        results.extend(analysis::analyze(
            engine.as_mut(),
            &theta,
            &batches,
            ids,
            &settings,
            ANALYSIS_CHUNK,
            &mut |k| bar.inc(k as u64),
        )?);
        if interrupted() && results.len() < which.len() {
            break;
        }
    }
    bar.finish();
    let seconds = started.elapsed().as_secs_f64();
    let config = RunRecord {
        command: "analyze".into(),
        version: env!("CARGO_PKG_VERSION"),
        model,
        init: args.weights.is_none().then_some(args.problem.model.init),
        data: DataSummary::of(&data),
        standardization,
        epochs: None,
        batch_size: args.batch_size,
        steps_per_epoch: None,
        seed: settings.seed,
        reshuffle: None,
        kernels: args.problem.device.kernels,
        kernels_resolved: engine.analysis_kernel(),
        engine: Some(engine.info()),
        details: serde_json::Map::new(),
    }
    .with("weights", args.weights.as_ref().map(|p| p.display().to_string()))
    .with("batches", results.len())
    .with("settings", &settings);
    out.write_json("config.json", &config)?;
    write_analysis(&out, &results, &table, args.batch_size)?;
    plot_analysis(&out, &results, &model, &data.train.name)?;
    let med = |f: &dyn Fn(&BatchAnalysis) -> f64| quantile(results.iter().map(f).collect(), 0.5);
    println!(
        "analysed {}: median λ {}, median R² {}, median explained1 {}, {:.2} s",
        crate::report::table::count(results.len(), "batch", "batches"),
        crate::report::table::fmt_num(med(&|r| r.lambda), 4),
        crate::report::table::fmt_num(med(&|r| r.r2), 4),
        crate::report::table::fmt_num(med(&|r| r.explained1), 4),
        seconds
    );
    if results.len() < which.len() {
        return Err(Error::Stopped {
            done: format!(
                "{} of {}; their analysis is complete in {}",
                results.len(),
                crate::report::table::count(which.len(), "batch", "batches"),
                out.path().display()
            ),
        });
    }
    println!("wrote {}", out.path().display());
    Ok(())
}

/// Refuses a batch list that names a batch twice: the analysis would repeat it and weigh it
/// twice in the averaged picture.
pub fn check_distinct(text: &str, which: &[usize]) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    match which.iter().find(|&&b| !seen.insert(b)) {
        Some(b) => {
            Err(Error::usage(format!("--batches `{text}` names batch {b} more than once: list each batch once")))
        }
        None => Ok(()),
    }
}

/// Batches analysed per dispatch, and between two polls of the stop request.
const ANALYSIS_CHUNK: usize = 32;

/// analysis.csv, q.npy, spectrum.npy, projection.npy, batches.npy.
pub fn write_analysis(out: &OutDir, results: &[BatchAnalysis], table: &[u32], b: usize) -> Result<()> {
    let rows = results.iter().map(|r| {
        let s = |i: usize| r.sigma.get(i).copied().unwrap_or(f64::NAN);
        vec![
            r.batch.to_string(),
            csv_num(s(0)),
            csv_num(s(1)),
            csv_num(s(2)),
            csv_num(r.explained1),
            csv_num(r.alpha),
            csv_num(r.beta),
            csv_num(r.r2),
            csv_num(r.lambda),
            csv_num(s(1) / s(0)),
        ]
    });
    out.write_csv("analysis.csv", ANALYSIS_HEADER, rows)?;
    let s = results.len();
    let bd = results.first().map_or(0, |r| r.q.len());
    let keep = results.first().map_or(0, |r| r.sigma.len());
    let k = results.first().map_or(0, |r| r.pairs.len());
    let q: Vec<f32> = results.iter().flat_map(|r| r.q.iter().copied()).collect();
    out.write("q.npy", &npy::f32_bytes(&[s, bd], &q))?;
    let spectrum: Vec<f32> = results.iter().flat_map(|r| r.sigma.iter().map(|&v| v as f32)).collect();
    out.write("spectrum.npy", &npy::f32_bytes(&[s, keep], &spectrum))?;
    let pairs: Vec<f32> = results.iter().flat_map(|r| r.pairs.iter().flatten().copied()).collect();
    out.write("projection.npy", &npy::f32_bytes(&[s, k, 2], &pairs))?;
    let rows: Vec<u32> = results.iter().flat_map(|r| table[r.batch * b..(r.batch + 1) * b].iter().copied()).collect();
    out.write("batches.npy", &npy::u32_bytes(&[s, b], &rows))
}

/// The projection picture's axes: what is plotted, x_k = q·(θ+δ_k) and
/// y_k = q·g_i(θ+δ_k) with g_i = −(b/n)∇f_i the batch's share of the gradient flow.
pub const PICTURE_X: &str = "x = q·(θ+δ)";
pub const PICTURE_Y: &str = "y = q·g_i(θ+δ),  g_i = −(b/n)∇f_i";

/// `Softmax regression on MNIST digits 0,1`, `… on breast_cancer`, `… on data.csv`: the
/// model and the data the pictures are of.
pub fn model_title(model: &Model, data: &str) -> String {
    let name = match model.kind {
        crate::model::ModelKind::Softmax => "Softmax regression",
        crate::model::ModelKind::Logreg => "Logistic regression",
        crate::model::ModelKind::Lls => "Linear least squares",
    };
    format!("{name} on {}", data_title(data))
}

/// A dataset's name for a title: MNIST's without the split, a file's without its directory.
fn data_title(name: &str) -> String {
    if let Some(rest) = name.strip_prefix("mnist ") {
        let rest = rest.trim_end_matches(" (train)");
        return format!("MNIST {rest}");
    }
    std::path::Path::new(name).file_name().map_or_else(|| name.to_string(), |f| f.to_string_lossy().into_owned())
}

/// projection.png/svg (averaged), projection-batch-<i>.png, spectrum.png, lambda.png; `data`
/// names the training data in the titles.
pub fn plot_analysis(out: &OutDir, results: &[BatchAnalysis], model: &Model, data: &str) -> Result<()> {
    let title = model_title(model, data);
    let avg: Vec<(f64, f64)> = analysis::averaged_pairs(results).iter().map(|p| (p[0], p[1])).collect();
    let chart = Chart::new(
        format!("{title}: projection averaged over {}", crate::report::table::count(results.len(), "batch", "batches")),
        PICTURE_X,
        PICTURE_Y,
    )
    .with_series(Series::points("", avg));
    plot::save(&chart, Some(&out.file("projection.png")), Some(&out.file("projection.svg")))?;
    for r in results.iter().take(3) {
        let pts = r.pairs.iter().map(|p| (p[0] as f64, p[1] as f64)).collect();
        let fit: Vec<(f64, f64)> = {
            let xs = r.pairs.iter().map(|p| p[0] as f64);
            let (lo, hi) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| (a.min(x), b.max(x)));
            vec![(lo, r.alpha + r.beta * lo), (hi, r.alpha + r.beta * hi)]
        };
        let chart = Chart::new(
            format!("{title}: batch {} (λ = {:.4}, R² = {:.3})", r.batch, r.lambda, r.r2),
            PICTURE_X,
            PICTURE_Y,
        )
        .with_series(Series::points("perturbed points", pts))
        .with_series(Series::line("least-squares line", fit));
        plot::save(&chart, Some(&out.file(&format!("projection-batch-{}.png", r.batch))), None)?;
    }
    let keep = results.first().map_or(0, |r| r.sigma.len());
    let column = |i: usize, q: f64| {
        let v: Vec<f64> = results.iter().map(|r| r.sigma.get(i).copied().unwrap_or(f64::NAN)).collect();
        quantile(v, q)
    };
    let curve = |q: f64| (0..keep).map(|i| ((i + 1) as f64, column(i, q))).collect::<Vec<_>>();
    let chart = Chart::new(format!("{title}: singular values of the perturbed gradients"), "index", "σ")
        .log_y()
        .with_series(Series::line_points("median over batches", curve(0.5)))
        .with_band(Band::new("quartiles", curve(0.25), curve(0.75)));
    plot::save(&chart, Some(&out.file("spectrum.png")), None)?;
    let lambdas = results.iter().map(|r| (r.batch as f64, r.lambda)).collect();
    let chart = Chart::new(format!("{title}: curvature along q per batch"), "batch", "λ_i = −(n/b)·β_i")
        .with_series(Series::points("λ_i", lambdas));
    plot::save(&chart, Some(&out.file("lambda.png")), None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{LossKind, ModelKind};

    #[test]
    fn titles_name_the_data_and_axes_what_is_plotted() {
        let m = |kind| Model { kind, loss: LossKind::Ce, p: 3, outputs: 1 };
        assert_eq!(
            model_title(&m(ModelKind::Softmax), "mnist digits 0,1 (train)"),
            "Softmax regression on MNIST digits 0,1"
        );
        assert_eq!(model_title(&m(ModelKind::Logreg), "breast_cancer"), "Logistic regression on breast_cancer");
        assert_eq!(model_title(&m(ModelKind::Lls), "/tmp/x/data.csv"), "Linear least squares on data.csv");
        assert!(PICTURE_Y.contains("q·g_i") && PICTURE_Y.contains("−(b/n)∇f_i"));
        assert!(!PICTURE_Y.contains("Π_q(∇f_i)"));
    }
}
