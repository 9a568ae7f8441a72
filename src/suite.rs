//! The benchmark suite of learning-rate schedules: every method of the comparison on several
//! datasets and models (members) over seeds, each method's final training loss as a ratio to
//! the member's tuned constant, and a leaderboard over members.

use serde::{Deserialize, Serialize};

use crate::{
    Result,
    compare::{MethodRun, MethodSummary, Trial, roster, run_roster, summarize},
    data::{self, Data, Source},
    engine::Engine,
    local::LocalConfig,
    model::{InitKind, LossKind, Model, ModelKind},
    procedure::ProcedureName,
    report::files::OutDir,
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

    pub fn info(&self) -> MemberInfo {
        MemberInfo {
            dataset: self.dataset.clone(),
            model: model_name(self.model).to_string(),
            epochs: self.epochs,
            batch_size: self.batch_size,
            standardize: self.standardize,
        }
    }
}

/// What config.json records of a member, and all that merging shards needs of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberInfo {
    pub dataset: String,
    pub model: String,
    pub epochs: usize,
    pub batch_size: usize,
    pub standardize: bool,
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
    pub model: String,
    pub epochs: usize,
    pub batch_size: usize,
    pub tuned_constant: String,
    pub summaries: Vec<MethodSummary>,
}

/// Makes an engine for a model on data with R runs.
pub type EngineMaker<'a> = dyn FnMut(Model, &Data, usize) -> Result<Box<dyn Engine>> + 'a;

/// A member's data, model and batching, loaded once for all its seeds.
pub struct Loaded {
    pub data: Data,
    pub model: Model,
    pub batching: Batching,
}

impl Loaded {
    pub fn new(member: &Member) -> Result<Loaded> {
        let mut data = data::load(&member.source)?;
        if member.standardize {
            data::standardize(&mut data, member.model == ModelKind::Lls);
        }
        let model = Model::for_data(member.model, LossKind::Ce, &data.train)?;
        let batching = Batching::new(data.train.n, member.batch_size, 0, false)?;
        Ok(Loaded { data, model, batching })
    }

    /// Batch gradients of one constant-rate run.
    pub fn steps_per_run(&self, member: &Member) -> u64 {
        (member.epochs * self.batching.steps()) as u64
    }
}

/// One unit of the suite's work: every method of the roster on one member and seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Job {
    pub member: usize,
    pub seed: u64,
}

impl Job {
    /// The jobs in their fixed order: member by member, seed by seed.
    pub fn all(members: usize, seeds: &[u64]) -> Vec<Job> {
        (0..members).flat_map(|m| seeds.iter().map(move |&seed| Job { member: m, seed })).collect()
    }

    /// `mnist01:softmax seed 3`.
    pub fn name(&self, members: &[Member]) -> String {
        format!("{} seed {}", members[self.member].name(), self.seed)
    }
}

/// Every method of the roster on one member and seed (initialisation and batch order).
pub fn run_job(
    member: &Member,
    loaded: &Loaded,
    seed: u64,
    settings: &SuiteSettings,
    make: &mut EngineMaker,
) -> Result<Vec<MethodRun>> {
    let Loaded { data, model, batching } = loaded;
    let theta0 = model.init(InitKind::Xavier, seed);
    let mut engine = |runs: usize| -> Result<Box<dyn Engine>> {
        let mut e = make(*model, data, runs)?;
        e.set_params(&theta0.repeat(runs))?;
        Ok(e)
    };
    let mut local = settings.local.clone();
    local.analysis.seed = seed;
    let procedures = settings.procedures.iter().map(|n| (n.row_name().to_string(), n.spec(&local, seed))).collect();
    let mut trial = Trial {
        engine: &mut engine,
        batching: Batching { seed, ..*batching },
        epochs: member.epochs,
        max_lr: settings.max_lr as f32,
        quiet: settings.quiet,
    };
    let mut runs = run_roster(&mut trial, &roster(&settings.grid, procedures))?;
    runs.iter_mut().for_each(|r| r.seed = seed);
    Ok(runs)
}

/// A member's result from the runs of its seeds, in seed order.
pub fn finish_member(member: &MemberInfo, per_seed: &[Vec<MethodRun>], steps_per_run: u64) -> Result<MemberResult> {
    let (summaries, tuned) = summarize(per_seed, steps_per_run)?;
    Ok(MemberResult {
        dataset: member.dataset.clone(),
        model: member.model.clone(),
        epochs: member.epochs,
        batch_size: member.batch_size,
        tuned_constant: tuned,
        summaries,
    })
}

/// The results of every member all of whose seeds' jobs are in `jobs` (indexed as [`Job::all`]),
/// in member order.
pub fn finished_members(
    members: &[MemberInfo],
    seeds: usize,
    jobs: &std::collections::BTreeMap<usize, crate::shard::JobResult>,
) -> Result<Vec<MemberResult>> {
    let mut out = Vec::new();
    for (m, info) in members.iter().enumerate() {
        let of_member: Vec<&crate::shard::JobResult> =
            (m * seeds..(m + 1) * seeds).filter_map(|i| jobs.get(&i)).collect();
        if of_member.len() == seeds {
            let per_seed: Vec<Vec<MethodRun>> = of_member.iter().map(|j| j.runs.clone()).collect();
            out.push(finish_member(info, &per_seed, of_member[0].steps_per_run)?);
        }
    }
    Ok(out)
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

/// suite.csv, suite.json, leaderboard.md and the picture, after every member.
pub fn write_suite(out: &OutDir, results: &[MemberResult], seeds: usize) -> Result<()> {
    let rows = results
        .iter()
        .flat_map(|m| m.summaries.iter().map(|s| crate::report::comparison::summary_cells(&m.dataset, &m.model, s)));
    out.write_csv("suite.csv", crate::report::comparison::SUMMARY_HEADER, rows)?;
    out.write_json("suite.json", &results)?;
    out.write_text("leaderboard.md", &leaderboard_markdown(results, seeds, "# steplens suite: leaderboard"))?;
    let chart = crate::report::comparison::suite_chart(results);
    crate::report::plot::save(&chart, Some(&out.file("suite.png")), Some(&out.file("suite.svg")))
}

/// Writes what an unsharded suite writes, from the jobs of its shards.
pub fn write_merged(out: &OutDir, manifest: &crate::shard::Manifest, jobs: Vec<crate::shard::JobResult>) -> Result<()> {
    let field = |k: &str| manifest.settings.get(k).cloned().unwrap_or_default();
    let members: Vec<MemberInfo> = serde_json::from_value(field("members"))
        .map_err(|e| crate::Error::Runtime(format!("the shards' settings name no members: {e}")))?;
    let seeds = field("seeds").as_array().map_or(0, Vec::len);
    let jobs: std::collections::BTreeMap<usize, crate::shard::JobResult> =
        jobs.into_iter().map(|j| (j.index, j)).collect();
    out.write_json("config.json", &manifest.settings)?;
    let results = finished_members(&members, seeds, &jobs)?;
    write_suite(out, &results, seeds)
}

/// Makes an engine for a model on data with R runs, from any thread (one per adapter).
pub type SharedMaker<'a> = dyn Fn(Model, &Data, usize) -> Result<Box<dyn Engine>> + Sync + 'a;

/// Runs the jobs `pending` (indices into `jobs`) with one worker thread per maker (one per
/// adapter), each taking the next job from a shared queue; `on_done` sees each finished job on
/// the calling thread (to write it). A failure or a stop request stops the workers from taking
/// more jobs; the jobs already finished have been passed to `on_done`.
pub fn run_jobs(
    members: &[Member],
    jobs: &[Job],
    pending: Vec<usize>,
    settings: &SuiteSettings,
    makers: &[&SharedMaker],
    on_done: &mut dyn FnMut(crate::shard::JobResult, f64) -> Result<()>,
) -> Result<()> {
    use std::sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
        mpsc,
    };
    let queue = Mutex::new(std::collections::VecDeque::from(pending));
    let stop = AtomicBool::new(false);
    let (tx, rx) = mpsc::channel::<Result<(crate::shard::JobResult, f64)>>();
    std::thread::scope(|scope| {
        for make in makers {
            let (tx, queue, stop) = (tx.clone(), &queue, &stop);
            scope.spawn(move || {
                let mut loaded: Option<(usize, Loaded)> = None;
                loop {
                    if stop.load(Ordering::SeqCst) || crate::interrupt::interrupted() {
                        return;
                    }
                    let Some(index) = queue.lock().map_or(None, |mut q| q.pop_front()) else { return };
                    let result = run_one(members, jobs, index, settings, *make, &mut loaded);
                    if tx.send(result).is_err() {
                        return;
                    }
                }
            });
        }
        drop(tx);
        let mut failure = None;
        for result in rx {
            let handled = result.and_then(|(job, seconds)| on_done(job, seconds));
            if let Err(e) = handled {
                stop.store(true, Ordering::SeqCst);
                failure.get_or_insert(e);
            }
        }
        match failure {
            Some(e) => Err(e),
            None if crate::interrupt::interrupted() => Err(crate::Error::Interrupted { completed: 0 }),
            None => Ok(()),
        }
    })
}

/// One job on the calling thread, its member's data loaded once per run of jobs of that member.
fn run_one(
    members: &[Member],
    jobs: &[Job],
    index: usize,
    settings: &SuiteSettings,
    make: &SharedMaker,
    loaded: &mut Option<(usize, Loaded)>,
) -> Result<(crate::shard::JobResult, f64)> {
    let started = std::time::Instant::now();
    let job = jobs[index];
    let member = &members[job.member];
    if loaded.as_ref().is_none_or(|(m, _)| *m != job.member) {
        *loaded = Some((job.member, Loaded::new(member)?));
    }
    let (_, data) = loaded.as_ref().expect("loaded above");
    let adapter = std::cell::RefCell::new(String::new());
    let mut recording = |model: Model, d: &Data, runs: usize| {
        let engine = make(model, d, runs)?;
        let info = engine.info();
        *adapter.borrow_mut() = format!("{} ({})", info.adapter, info.backend);
        Ok(engine)
    };
    let runs = run_job(member, data, job.seed, settings, &mut recording)?;
    let result = crate::shard::JobResult {
        runs,
        ..crate::shard::JobResult::new(index, job.name(members), adapter.into_inner(), data.steps_per_run(member))
    };
    Ok((result, started.elapsed().as_secs_f64()))
}
