//! The benchmark suite of learning-rate schedules: every method of the comparison on several
//! datasets and models (members) over seeds, each method's final training loss as a ratio to
//! the member's tuned constant, and a leaderboard over members.

use serde::Serialize;

use crate::{
    Result,
    compare::{MethodSummary, Trial, roster, run_roster, summarize},
    data::{self, Data, Source},
    engine::Engine,
    local::LocalConfig,
    model::{InitKind, LossKind, Model, ModelKind},
    procedure::ProcedureName,
    report::table::{Table, fmt_num},
    stats::quantile,
    train::Batching,
};

/// One dataset and model of the suite.
#[derive(Debug, Clone)]
pub struct Member {
    /// `mnist01`, `mnist`, `breast_cancer`, `diabetes`, or the name given to an added set.
    pub dataset: String,
    pub model: ModelKind,
    pub source: Source,
    /// Z-score the features (and the least-squares target) with the training set's statistics.
    pub standardize: bool,
    pub epochs: usize,
    pub batch_size: usize,
}

impl Member {
    /// `dataset:model`.
    pub fn name(&self) -> String {
        format!("{}:{}", self.dataset, model_name(self.model))
    }
}

pub fn model_name(kind: ModelKind) -> &'static str {
    match kind {
        ModelKind::Softmax => "softmax",
        ModelKind::Logreg => "logreg",
        ModelKind::Lls => "lls",
    }
}

/// MNIST members train 6 epochs at batch 64 (the notebook's), the small sets 20 at batch 32.
pub const MNIST_EPOCHS: usize = 6;
pub const MNIST_BATCH: usize = 64;
pub const SMALL_EPOCHS: usize = 20;
pub const SMALL_BATCH: usize = 32;

/// The suite's scored members: MNIST 0/1 × {softmax, logreg, lls}, MNIST 0–9 softmax (from
/// `mnist`, the downloaded full set), breast_cancer (logreg) and diabetes (lls), standardised.
pub fn default_members(mnist: Source) -> Vec<Member> {
    let mnist01 = |model| Member {
        dataset: "mnist01".into(),
        model,
        source: Source::EmbeddedMnist01,
        standardize: false,
        epochs: MNIST_EPOCHS,
        batch_size: MNIST_BATCH,
    };
    let small = |e: data::Embedded| Member {
        dataset: e.name().into(),
        model: e.model(),
        source: Source::Embedded(e),
        standardize: true,
        epochs: SMALL_EPOCHS,
        batch_size: SMALL_BATCH,
    };
    vec![
        mnist01(ModelKind::Softmax),
        mnist01(ModelKind::Logreg),
        mnist01(ModelKind::Lls),
        Member {
            dataset: "mnist".into(),
            model: ModelKind::Softmax,
            source: mnist,
            standardize: false,
            epochs: MNIST_EPOCHS,
            batch_size: MNIST_BATCH,
        },
        small(data::Embedded::BreastCancer),
        small(data::Embedded::Diabetes),
    ]
}

/// What the suite runs on every member and seed.
pub struct SuiteSettings {
    pub seeds: Vec<u64>,
    pub grid: Vec<f64>,
    pub procedures: Vec<ProcedureName>,
    /// The local procedures' settings (`notebook`, `centred-max`); the seed is set per seed.
    pub local: LocalConfig,
    /// The cap of SPS and Armijo, and the procedures' bound.
    pub max_lr: f64,
    pub quiet: bool,
}

/// A member's results.
#[derive(Debug, Clone, Serialize)]
pub struct MemberResult {
    pub dataset: String,
    pub model: &'static str,
    pub epochs: usize,
    pub batch_size: usize,
    pub tuned_constant: String,
    pub summaries: Vec<MethodSummary>,
}

/// Makes an engine for a model on data with R runs.
pub type EngineMaker<'a> = dyn FnMut(Model, &Data, usize) -> Result<Box<dyn Engine>> + 'a;

/// Every method on every seed of one member.
pub fn run_member(member: &Member, settings: &SuiteSettings, make: &mut EngineMaker) -> Result<MemberResult> {
    let mut data = data::load(&member.source)?;
    if member.standardize {
        data::standardize(&mut data, member.model == ModelKind::Lls);
    }
    let model = Model::for_data(member.model, LossKind::Ce, &data.train)?;
    let base = Batching::new(data.train.n, member.batch_size, 0, false)?;
    let mut per_seed = Vec::new();
    for &seed in &settings.seeds {
        let theta0 = model.init(InitKind::Xavier, seed);
        let mut engine = |runs: usize| -> Result<Box<dyn Engine>> {
            let mut e = make(model, &data, runs)?;
            e.set_params(&theta0.repeat(runs))?;
            Ok(e)
        };
        let mut local = settings.local.clone();
        local.analysis.seed = seed;
        let procedures = settings.procedures.iter().map(|n| (n.row_name().to_string(), n.spec(&local, seed))).collect();
        let mut trial = Trial {
            engine: &mut engine,
            batching: Batching { seed, ..base },
            epochs: member.epochs,
            max_lr: settings.max_lr as f32,
            quiet: settings.quiet,
        };
        let mut runs = run_roster(&mut trial, &roster(&settings.grid, procedures))?;
        runs.iter_mut().for_each(|r| r.seed = seed);
        per_seed.push(runs);
        if crate::interrupt::interrupted() {
            return Err(crate::Error::Interrupted { completed: per_seed.len() });
        }
    }
    let (summaries, tuned) = summarize(&per_seed, (member.epochs * base.steps()) as u64)?;
    Ok(MemberResult {
        dataset: member.dataset.clone(),
        model: model_name(member.model),
        epochs: member.epochs,
        batch_size: member.batch_size,
        tuned_constant: tuned,
        summaries,
    })
}

/// One method over the members.
#[derive(Debug, Clone, Serialize)]
pub struct Standing {
    pub method: String,
    /// The largest of the members' median ratios (+∞ if a member's median run diverged).
    pub worst_ratio: f64,
    pub median_ratio: f64,
    pub diverged_runs: usize,
    pub runs: usize,
    /// The median over members of the gradient evaluations ÷ one constant-rate run.
    pub cost: f64,
}

/// The leaderboard: methods by their worst-case median ratio over members (grid constants
/// other than each member's tuned one are left out: they are the reference, not methods).
pub fn standings(results: &[MemberResult]) -> Vec<Standing> {
    let names: Vec<String> = results
        .first()
        .map(|r| r.summaries.iter().filter(|s| s.family != "constant").map(|s| s.name.clone()).collect())
        .unwrap_or_default();
    let mut rows: Vec<Standing> = names
        .iter()
        .map(|name| {
            let of: Vec<&MethodSummary> =
                results.iter().filter_map(|r| r.summaries.iter().find(|s| &s.name == name)).collect();
            let ratios: Vec<f64> = of.iter().map(|s| s.ratio_median).collect();
            Standing {
                method: name.clone(),
                worst_ratio: ratios.iter().copied().fold(0.0, f64::max),
                median_ratio: crate::stats::quantile_with_inf(ratios, 0.5),
                diverged_runs: of.iter().map(|s| s.diverged_seeds).sum(),
                runs: of.iter().map(|s| s.seeds).sum(),
                cost: quantile(of.iter().map(|s| s.grad_evals_ratio).collect(), 0.5),
            }
        })
        .collect();
    rows.sort_by(|a, b| a.worst_ratio.total_cmp(&b.worst_ratio));
    rows
}

/// leaderboard.md: the standings, then one table per member.
pub fn leaderboard_markdown(results: &[MemberResult], seeds: usize, heading: &str) -> String {
    let ratio = crate::report::comparison::ratio;
    let mut s = format!(
        "{heading}\n\nFinal whole-training-set loss ÷ the member's tuned constant (the grid rate with the lowest median \
         over {seeds} seed(s)); median over seeds, a diverged run counts as ∞. Cost: gradient evaluations (every \
         estimate included) ÷ one constant-rate run.\n\n"
    );
    let mut t = Table::new(["method", "worst ratio", "median ratio", "diverged runs", "cost ×"]);
    for r in standings(results) {
        t.row(vec![
            r.method.clone(),
            ratio(r.worst_ratio),
            ratio(r.median_ratio),
            format!("{}/{}", r.diverged_runs, r.runs),
            fmt_num(r.cost, 3),
        ]);
    }
    s.push_str(&t.to_markdown());
    for m in results {
        s.push_str(&format!(
            "\n### {}:{} ({} epochs, batch {}; tuned constant {})\n\n",
            m.dataset, m.model, m.epochs, m.batch_size, m.tuned_constant
        ));
        s.push_str(&crate::report::comparison::summary_table(&m.summaries).to_markdown());
    }
    s
}
