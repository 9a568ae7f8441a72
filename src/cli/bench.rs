//! `steplens bench`: how fast this adapter trains, sweeps and analyses, against the anchors of
//! measured elsewhere (quoted as ratios; BENCHMARKS.md says where), each figure the median of repeats after a
//! warm-up, GPU time from timestamp queries where the adapter has them.

use std::{path::PathBuf, time::Instant};

use clap::Args;
use serde::{Deserialize, Serialize};

use super::DeviceArgs;
use crate::{
    Error, Result,
    analysis::{self, Batches, Settings},
    engine::{Engine, EpochPlan, PerturbedRequest, StepRule},
    gpu::{GpuContext, GpuEngine},
    model::{InitKind, LossKind, Model, ModelKind},
    report::{
        files::write_atomic,
        progress::Progress,
        table::{Table, fmt_num},
    },
    stats::quantile,
    train::Batching,
};

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Timed repeats of each figure (after one warm-up); the median is reported.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub repeats: usize,
    /// Runs in the sweep figure [default: 1024, or 64 on CPU adapters].
    #[arg(long, value_name = "R")]
    pub sweep_runs: Option<usize>,
    /// Skip the analysis figure (minutes on CPU adapters).
    #[arg(long)]
    pub no_analysis: bool,
    /// Write the figures as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// PyTorch anchors measured on this machine (`scripts/anchors.py --json FILE`) instead of the
    /// figures measured elsewhere: ratios between two programs run side by side.
    #[arg(long, value_name = "FILE")]
    pub anchors: Option<PathBuf>,
}

/// The PyTorch anchors `scripts/anchors.py` measured on this machine (other fields it writes are
/// kept in its file, not here).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MeasuredAnchors {
    pub date: String,
    pub torch: String,
    pub threads: u32,
    /// The notebook's training loop, one epoch of MNIST 0/1 at b = 64.
    pub train_epoch_ms: f64,
    /// The analysis vectorised by hand, 395 batches at b = 32, K = 100.
    pub analysis_ms: f64,
}

impl MeasuredAnchors {
    fn read(path: &std::path::Path) -> Result<Self> {
        let what = path.display();
        let text = std::fs::read_to_string(path).map_err(|e| Error::usage(format!("--anchors {what}: {e}")))?;
        let a: MeasuredAnchors = serde_json::from_str(&text)
            .map_err(|e| Error::usage(format!("--anchors {what} is not the JSON scripts/anchors.py writes: {e}")))?;
        for (name, v) in [("train_epoch_ms", a.train_epoch_ms), ("analysis_ms", a.analysis_ms)] {
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::usage(format!("--anchors {what}: {name} must be a positive number of ms, not {v}")));
            }
        }
        Ok(a)
    }
}

#[derive(Debug, Serialize)]
pub struct BenchReport {
    pub adapter: String,
    pub backend: String,
    pub driver: String,
    pub device_type: String,
    /// The host's CPU (on a CPU adapter the figures are its: BENCHMARKS.md).
    pub host: String,
    pub date: String,
    pub version: String,
    pub repeats: usize,
    /// The kernels the training and sweep figures ran on (`--kernels auto` resolved).
    pub kernels: crate::gpu::KernelPath,
    /// Why `--kernels auto` resolved so (or that the path was forced).
    pub kernels_why: String,
    /// The first (warm-up) training epoch: it compiles the kernels built on first use (the
    /// subgroup kernel), which Mesa's shader disk cache makes fast on later starts.
    pub train_first_epoch_ms: f64,
    /// Softmax, MNIST 0/1, batch 64, 197 steps: wall-clock ms per epoch (submit to read-back).
    pub train_epoch_ms: f64,
    pub train_epoch_gpu_ms: Option<f64>,
    pub train_steps_per_s: f64,
    pub train_samples_per_s: f64,
    /// Whole-set evaluation of the one run (train and test sets, as `train` does after every
    /// epoch): wall-clock ms, median.
    pub evaluation_ms: f64,
    pub train_gflops: f64,
    pub sweep_runs: usize,
    pub sweep_epoch_ms: f64,
    /// Only when the sweep ran 1024 runs.
    pub sweep_1024_epoch_ms: Option<f64>,
    /// All 395 batches at b = 32, K = 100 (the default, residual path).
    pub analysis_all_batches_ms: Option<f64>,
    /// The warm-up analysis, with the residual kernel's compilation (Mesa's shader cache makes
    /// later starts fast).
    pub analysis_first_ms: Option<f64>,
    /// Of that: the host's f64 work (the small eigendecompositions, q and the projection pairs; the rest).
    pub analysis_host_ms: Option<f64>,
    /// Of that: the device's residuals of both perturbation sets and their read-back.
    pub analysis_gpu_and_readback_ms: Option<f64>,
    /// The CPU-seconds this process spent on that device work (median): on a CPU adapter the
    /// adapter's own work, which other load on the machine slows less than it slows wall time.
    pub analysis_device_cpu_s: Option<f64>,
    /// The kernel that computed the residuals, and why it was chosen.
    pub analysis_kernel: Option<crate::engine::KernelChoice>,
    /// `--anchors`: the PyTorch figures measured on this machine that the ratios are against.
    pub measured_anchors: Option<MeasuredAnchors>,
    pub copy_gb_per_s: f64,
}

/// The median of the finite values.
fn median(v: Vec<f64>) -> f64 {
    quantile(v, 0.5)
}

/// Fails when a stop was requested (Ctrl-C, SIGTERM): the figures are one report, written only
/// complete, so nothing is kept.
fn check_stop() -> Result<()> {
    if crate::interrupt::interrupted() {
        return Err(Error::Stopped { done: "part of the measurements; no report was printed or written".into() });
    }
    Ok(())
}

pub fn run(args: &BenchArgs, quiet: bool) -> Result<()> {
    if args.repeats < 1 {
        return Err(Error::usage("--repeats must be at least 1"));
    }
    if args.sweep_runs == Some(0) {
        return Err(Error::usage("--sweep-runs must be at least 1"));
    }
    args.device.check()?;
    let measured_anchors = args.anchors.as_deref().map(MeasuredAnchors::read).transpose()?;
    if args.device.device == super::DeviceChoice::Cpu {
        return Err(Error::usage(
            "bench measures a GPU adapter against the anchors; the f64 CPU reference (--device cpu) is not benchmarked",
        ));
    }
    let data = crate::data::mnist::embedded_01()?;
    let model = Model::for_data(ModelKind::Softmax, LossKind::Ce, &data.train)?;
    let ctx = || GpuContext::new(&args.device.request());
    let probe = ctx()?;
    let info = probe.engine_info();
    let is_cpu = probe.info.device_type == wgpu::DeviceType::Cpu;
    let limits_max_binding = probe.limits.max_storage_buffer_binding_size;
    let copy_gb_per_s = copy_bandwidth(&probe)?;
    drop(probe);
    let batching = Batching::new(data.train.n, 64, 0, false)?;
    let steps = batching.steps();
    let total = args.repeats.saturating_mul(if args.no_analysis { 2 } else { 3 }).saturating_add(2);
    let bar = Progress::with_quiet(total as u64, "bench", quiet);

    // Training: one run.
    let mut engine = GpuEngine::new(ctx()?, model, &data, 1, args.device.kernels)?;
    engine.set_params(&model.init(InitKind::Xavier, 0))?;
    let (kernels, kernels_why) = engine.kernel_choice(StepRule::Table, 1, steps, 64);
    let (train_ms, train_gpu, first_ms) = time_epochs(&mut engine, &batching, 1, args.repeats, &bar)?;
    let evaluation_ms = time_evaluation(&mut engine, args.repeats)?;
    let flops = steps as f64 * 64.0 * model.outputs as f64 * model.p as f64 * 4.0;

    // Sweep: R runs in one dispatch.
    let runs = args.sweep_runs.unwrap_or(if is_cpu { 64 } else { 1024 });
    let max_runs = (limits_max_binding / 4 / model.dim() as u64) as usize;
    if runs > max_runs {
        return Err(Error::usage(format!(
            "--sweep-runs {runs} is more than this adapter holds: at most {max_runs} runs of {} parameters fit its largest storage binding",
            model.dim()
        )));
    }
    let mut sweep = GpuEngine::new(ctx()?, model, &data, runs, args.device.kernels)?;
    sweep.set_params(&model.init(InitKind::Xavier, 0).repeat(runs))?;
    let (sweep_ms, _, _) = time_epochs(&mut sweep, &batching, runs, args.repeats, &bar)?;
    drop(sweep);

    // Analysis: every batch of b = 32 at K = 100.
    let analysis = if args.no_analysis { None } else { Some(time_analysis(&mut engine, &data, args.repeats, &bar)?) };
    bar.finish();
    let report = BenchReport {
        adapter: info.adapter,
        backend: info.backend,
        driver: info.driver,
        device_type: info.device_type,
        host: host_cpu(),
        date: crate::report::files::utc_stamp(
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        ),
        version: env!("CARGO_PKG_VERSION").into(),
        repeats: args.repeats,
        kernels,
        kernels_why,
        train_first_epoch_ms: first_ms,
        train_epoch_ms: train_ms,
        train_epoch_gpu_ms: train_gpu,
        train_steps_per_s: steps as f64 / (train_ms / 1e3),
        train_samples_per_s: (steps * 64) as f64 / (train_ms / 1e3),
        evaluation_ms,
        train_gflops: flops / (train_ms / 1e3) / 1e9,
        sweep_runs: runs,
        sweep_epoch_ms: sweep_ms,
        sweep_1024_epoch_ms: (runs == 1024).then_some(sweep_ms),
        analysis_all_batches_ms: analysis.map(|a| a.total),
        analysis_first_ms: analysis.map(|a| a.first),
        analysis_host_ms: analysis.map(|a| a.total - a.device),
        analysis_gpu_and_readback_ms: analysis.map(|a| a.device),
        analysis_device_cpu_s: analysis.and_then(|a| a.device_cpu_s),
        analysis_kernel: (!args.no_analysis).then(|| engine.residual_kernel_choice()),
        measured_anchors,
        copy_gb_per_s,
    };
    print_report(&report, is_cpu);
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report).map_err(|e| Error::Runtime(e.to_string()))?;
        write_atomic(path, text.as_bytes())?;
    }
    Ok(())
}

/// Median wall-clock (and GPU) ms of training epochs without evaluation, after a warm-up, and
/// the warm-up's wall-clock ms.
fn time_epochs(
    engine: &mut GpuEngine,
    batching: &Batching,
    runs: usize,
    repeats: usize,
    bar: &Progress,
) -> Result<(f64, Option<f64>, f64)> {
    let batches = batching.epoch(1);
    let lrs = vec![0.005f32; runs * batching.steps()];
    let plan = EpochPlan {
        batches: &batches,
        batch_size: batching.batch_size,
        steps: batching.steps(),
        lrs: &lrs,
        rule: StepRule::Table,
        read_params: false,
        evaluate: false,
    };
    let (mut wall, mut gpu, mut first) = (Vec::new(), Vec::new(), 0.0);
    for i in 0..=repeats {
        check_stop()?;
        let t = Instant::now();
        engine.run_epoch(&plan)?;
        if i == 0 {
            first = t.elapsed().as_secs_f64() * 1e3;
        } else {
            wall.push(t.elapsed().as_secs_f64() * 1e3);
            gpu.extend(engine.last_gpu_ms());
        }
        bar.inc(1);
    }
    Ok((median(wall), (!gpu.is_empty()).then(|| median(gpu)), first))
}

/// Median wall-clock ms of a whole-set evaluation (train and test sets), after a warm-up.
fn time_evaluation(engine: &mut GpuEngine, repeats: usize) -> Result<f64> {
    let mut wall = Vec::new();
    for i in 0..=repeats {
        let t = Instant::now();
        engine.evaluate()?;
        if i > 0 {
            wall.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    Ok(median(wall))
}

/// The whole analysis' figures, medians after a warm-up.
#[derive(Debug, Clone, Copy)]
struct AnalysisTimes {
    total: f64,
    /// The device's share: its residuals of both perturbation sets in the analysis' chunks of 64
    /// batches, read back.
    device: f64,
    /// CPU-seconds of the process during the device's share.
    device_cpu_s: Option<f64>,
    /// The warm-up, with the residual kernel's compilation.
    first: f64,
}

/// [`AnalysisTimes`] of the 395 batches at b = 32, K = 100.
fn time_analysis(
    engine: &mut GpuEngine,
    data: &crate::data::Data,
    repeats: usize,
    bar: &Progress,
) -> Result<AnalysisTimes> {
    let batching = Batching::new(data.train.n, 32, 0, false)?;
    let table = batching.epoch(1);
    let batches = Batches { table: &table, batch_size: 32, n: data.train.n };
    let which: Vec<usize> = (0..batching.steps()).collect();
    let settings = Settings::notebook(0);
    let theta = engine.model().init(InitKind::Xavier, 0);
    let (mut total, mut device, mut cpu) = (Vec::new(), Vec::new(), Vec::new());
    // A warm-up first: it compiles the residual kernel (from Mesa's shader cache on later starts).
    let t = Instant::now();
    analysis::analyze(engine, &theta, &batches, &which, &settings, 64, &mut |_| {})?;
    let first = t.elapsed().as_secs_f64() * 1e3;
    for _ in 0..repeats {
        check_stop()?;
        let t = Instant::now();
        analysis::analyze(engine, &theta, &batches, &which, &settings, 64, &mut |_| {})?;
        total.push(t.elapsed().as_secs_f64() * 1e3);
        let (t, cpu0) = (Instant::now(), process_cpu_seconds());
        for ids in which.chunks(64) {
            let rows: Vec<u32> = ids.iter().flat_map(|&i| table[i * 32..(i + 1) * 32].iter().copied()).collect();
            let batch_ids: Vec<u32> = ids.iter().map(|&i| i as u32).collect();
            for stream in [crate::prng::stream::PERTURB_SVD, crate::prng::stream::PERTURB_PROJECT] {
                let req = PerturbedRequest {
                    theta: &theta,
                    batches: &rows,
                    batch_ids: &batch_ids,
                    batch_size: 32,
                    points: settings.points,
                    perturbation: settings.perturbation,
                    seed: settings.seed,
                    stream,
                    block: settings.block,
                    grad_scale: -32.0 / data.train.n as f32,
                };
                std::hint::black_box(engine.perturbed_residuals(&req)?);
            }
        }
        device.push(t.elapsed().as_secs_f64() * 1e3);
        cpu.extend(cpu0.zip(process_cpu_seconds()).map(|(a, b)| b - a));
        bar.inc(1);
    }
    Ok(AnalysisTimes {
        total: median(total),
        device: median(device),
        device_cpu_s: (!cpu.is_empty()).then(|| median(cpu)),
        first,
    })
}

/// The host's CPU in words: model, threads, and its widest x86 vector extension where Linux says.
/// On a CPU adapter the figures are the CPU's: lavapipe's storage loads, for one, went through
/// the stack one lane at a time on an AVX2 host without AVX-512 (BENCHMARKS.md, 2026-12-02).
fn host_cpu() -> String {
    let threads = std::thread::available_parallelism().map_or(0, |t| t.get());
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |key: &str| {
        info.lines().find_map(|l| l.split_once(':').filter(|(k, _)| k.trim() == key).map(|(_, v)| v.trim().to_string()))
    };
    let model = field("model name").unwrap_or_else(|| "an unknown CPU".into());
    let flags = field("flags").unwrap_or_default();
    let has = |f: &str| flags.split_whitespace().any(|x| x == f);
    let vectors = if flags.is_empty() {
        "vector extensions unknown"
    } else if has("avx512f") {
        "AVX-512"
    } else if has("avx2") {
        "AVX2, no AVX-512"
    } else {
        "no AVX2"
    };
    format!("{model}, {threads} threads, {vectors}")
}

/// User and system CPU-seconds of this process, its threads included (the adapter's, on a CPU
/// adapter), where the platform says.
fn process_cpu_seconds() -> Option<f64> {
    #[cfg(unix)]
    {
        let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
        // SAFETY: getrusage writes the struct it is given and nothing else.
        if unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) } == 0 {
            // SAFETY: initialised (zeroed, then written by a successful call).
            let u = unsafe { usage.assume_init() };
            let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
            return Some(secs(u.ru_utime) + secs(u.ru_stime));
        }
    }
    None
}

/// Device copy bandwidth: a 64 MiB buffer-to-buffer copy, GB/s (read + write).
fn copy_bandwidth(ctx: &GpuContext) -> Result<f64> {
    let size = (64u64 << 20).min(ctx.limits.max_storage_buffer_binding_size);
    let a = ctx.buffer("copy source", size)?;
    let b = ctx.buffer("copy target", size)?;
    let mut best = f64::INFINITY;
    for _ in 0..4 {
        let mut enc = ctx.encoder();
        enc.copy_buffer_to_buffer(&a, 0, &b, 0, size);
        let t = Instant::now();
        ctx.submit_and_wait(enc)?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok(2.0 * size as f64 / best / 1e9)
}

fn print_report(r: &BenchReport, cpu: bool) {
    // The anchors: (H200, 2-core CPU), measured elsewhere with the same data and settings, unless
    // measured here (`--anchors`).
    let (mut train_anchor, burn_anchor, sweep_anchor, mut analysis_anchor) = if cpu {
        (
            ("the notebook's PyTorch loop on 2 CPU cores", 44.0),
            ("Burn 0.22 on wgpu, lavapipe 2 cores", 860.0),
            None,
            ("PyTorch vectorised on 2 CPU cores", 2600.0),
        )
    } else {
        (
            ("PyTorch as a CUDA graph on an H200", 5.7),
            ("Burn 0.22 on wgpu, H200", 94.0),
            Some(("PyTorch batched matmuls on an H200", 57.0)),
            ("PyTorch vectorised on an H200", 2200.0),
        )
    };
    if let Some(a) = &r.measured_anchors {
        train_anchor = ("the notebook's PyTorch loop, measured here", a.train_epoch_ms);
        analysis_anchor = ("PyTorch vectorised, measured here", a.analysis_ms);
    }
    let kernels = format!("{:?}", r.kernels).to_lowercase();
    println!("{} ({}, {}), {}, --kernels {kernels}", r.adapter, r.backend, r.driver, r.date);
    println!("host: {}", r.host);
    if let Some(a) = &r.measured_anchors {
        let at = format!("torch {}, {} threads, {}", a.torch, a.threads, a.date);
        println!("PyTorch anchors measured on this machine ({at}); Burn's measured elsewhere");
    }
    println!("kernels: {}; first epoch (with compiling) {} ms", r.kernels_why, fmt_num(r.train_first_epoch_ms, 4));
    let mut t = Table::new(["work", "ms", "GPU ms", "anchor", "anchor ms", "speed-up"]);
    let ratio = |anchor: f64, ms: f64| format!("×{}", fmt_num(anchor / ms, 3));
    t.row(vec![
        "train epoch (b=64, 197 steps)".into(),
        fmt_num(r.train_epoch_ms, 4),
        r.train_epoch_gpu_ms.map_or("-".into(), |v| fmt_num(v, 4)),
        train_anchor.0.into(),
        fmt_num(train_anchor.1, 3),
        ratio(train_anchor.1, r.train_epoch_ms),
    ]);
    t.row(vec![
        "".into(),
        "".into(),
        "".into(),
        burn_anchor.0.into(),
        fmt_num(burn_anchor.1, 3),
        ratio(burn_anchor.1, r.train_epoch_ms),
    ]);
    t.row(vec![
        "evaluation (train + test sets)".into(),
        fmt_num(r.evaluation_ms, 4),
        "-".into(),
        "-".into(),
        "-".into(),
        "-".into(),
    ]);
    let sweep_row = match sweep_anchor {
        Some((name, ms)) if r.sweep_runs == 1024 => vec![name.to_string(), fmt_num(ms, 3), ratio(ms, r.sweep_epoch_ms)],
        _ => vec!["-".into(), "-".into(), "-".into()],
    };
    let mut row = vec![format!("sweep epoch ({} runs)", r.sweep_runs), fmt_num(r.sweep_epoch_ms, 4), "-".into()];
    row.extend(sweep_row);
    t.row(row);
    if let Some(ms) = r.analysis_all_batches_ms {
        t.row(vec![
            "analysis (395 batches, K=100)".into(),
            fmt_num(ms, 4),
            "-".into(),
            analysis_anchor.0.into(),
            fmt_num(analysis_anchor.1, 3),
            ratio(analysis_anchor.1, ms),
        ]);
    }
    print!("{t}");
    println!(
        "train: {} steps/s, {} samples/s, {} GFLOP/s; device copy {} GB/s",
        fmt_num(r.train_steps_per_s, 4),
        fmt_num(r.train_samples_per_s, 4),
        fmt_num(r.train_gflops, 3),
        fmt_num(r.copy_gb_per_s, 3)
    );
    if let (Some(e), Some(g)) = (r.analysis_host_ms, r.analysis_gpu_and_readback_ms) {
        let cpu = r.analysis_device_cpu_s.map_or(String::new(), |c| format!(" ({} CPU-s)", fmt_num(c, 3)));
        println!("analysis: {} ms device work and read-back{cpu}, {} ms host f64 work", fmt_num(g, 4), fmt_num(e, 4));
    }
    if let Some(k) = &r.analysis_kernel {
        let first = r
            .analysis_first_ms
            .map_or(String::new(), |f| format!("; first analysis (with compiling) {} ms", fmt_num(f, 4)));
        println!("analysis kernel: {}: {}{first}", k.path, k.why);
    }
}
