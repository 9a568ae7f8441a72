//! `steplens validate`: every kernel, a training run and a few batches of the analysis on every
//! adapter wgpu can see, against the f64 CPU reference and against each other.

use std::path::PathBuf;

use clap::Args;
use serde::Serialize;

use crate::{
    Error, Result,
    engine::{Engine, EpochPlan, StepRule},
    gpu::{AdapterRequest, GpuContext, GpuEngine, KernelPath, context::adapters},
    model::{InitKind, LossKind, Model, ModelKind},
    report::{
        files::write_atomic,
        table::{Table, fmt_num},
    },
    train::Batching,
    validate::{self, Check, RUN_TOL},
};

#[derive(Debug, Clone, Args)]
pub struct ValidateArgs {
    /// Backends to validate (comma list) [default: every backend wgpu was built with].
    #[arg(long, value_name = "LIST")]
    pub backend: Option<String>,
    /// Only adapters whose name contains NAME.
    #[arg(long, value_name = "NAME")]
    pub adapter: Option<String>,
    /// Also write the results as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct AdapterReport {
    adapter: String,
    backend: String,
    driver: String,
    device_type: String,
    checks: Vec<Check>,
}

pub fn run(args: &ValidateArgs, quiet: bool) -> Result<()> {
    let request = AdapterRequest {
        backend: Some(args.backend.clone().unwrap_or_else(|| "vulkan,metal,dx12,gl".into())),
        name: args.adapter.clone(),
    };
    let found = adapters(&request)?;
    if found.is_empty() {
        return Err(Error::gpu("no adapter to validate: wgpu sees none for these backends"));
    }
    let mnist = crate::data::mnist::embedded_01()?;
    let mut reports = Vec::new();
    let mut runs: Vec<(String, Vec<f32>)> = Vec::new();
    // An adapter is the unit of work: a stop request (Ctrl-C, SIGTERM) is honoured between two,
    // and the adapters finished are reported.
    for adapter in &found {
        if crate::interrupt::interrupted() {
            break;
        }
        let info = adapter.get_info();
        if !quiet {
            eprintln!("steplens: validating {} ({:?})", info.name, info.backend);
        }
        let open = || GpuContext::from_adapter(adapter);
        let mut checks = match open() {
            Ok(ctx) => validate::kernel_checks(&ctx),
            Err(e) => vec![Check::failed("open the device", e.to_string())],
        };
        checks.extend(validate::training_checks(&open));
        checks.extend(validate::subgroup_checks(&open));
        checks.push(
            open().and_then(validate::analysis_check).unwrap_or_else(|e| Check::failed("analysis", e.to_string())),
        );
        match open().and_then(|ctx| mnist_run(ctx, &mnist, KernelPath::Fused)) {
            Ok(theta) => {
                // The subgroup kernel on the same epoch, where the adapter has it.
                let sub = open().and_then(|ctx| match crate::gpu::subgroup::adapter_unsupported(&ctx) {
                    None => mnist_run(ctx, &mnist, KernelPath::Subgroup).map(Some),
                    Some(_) => Ok(None),
                });
                match sub {
                    Ok(Some(s)) => {
                        let r: Vec<f64> = theta.iter().map(|&v| v as f64).collect();
                        let e = validate::rel_err(&s, &r);
                        checks.push(Check {
                            name: "MNIST epoch, subgroup vs fused kernel".into(),
                            max_error: e,
                            tolerance: RUN_TOL,
                            passed: e <= RUN_TOL,
                            note: None,
                        });
                    }
                    Ok(None) => {}
                    Err(e) => checks.push(Check::failed("MNIST epoch, subgroup kernel", e.to_string())),
                }
                runs.push((format!("{} ({:?})", info.name, info.backend), theta));
            }
            Err(e) => checks.push(Check::failed("MNIST epoch", e.to_string())),
        }
        reports.push(AdapterReport {
            adapter: info.name.clone(),
            backend: format!("{:?}", info.backend),
            driver: format!("{} {}", info.driver, info.driver_info).trim().to_string(),
            device_type: format!("{:?}", info.device_type),
            checks,
        });
    }
    // Adapters against each other: one MNIST epoch's parameters.
    for (i, (name, theta)) in runs.iter().enumerate() {
        for (other, reference) in runs.iter().skip(i + 1) {
            let r: Vec<f64> = reference.iter().map(|&v| v as f64).collect();
            let e = validate::rel_err(theta, &r);
            let check = Check {
                name: format!("MNIST epoch vs {other}"),
                max_error: e,
                tolerance: RUN_TOL,
                passed: e <= RUN_TOL,
                note: None,
            };
            if let Some(rep) = reports.iter_mut().find(|r| name.starts_with(&r.adapter)) {
                rep.checks.push(check);
            }
        }
    }
    print_reports(&reports);
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&reports).map_err(|e| Error::Runtime(e.to_string()))?;
        write_atomic(path, text.as_bytes())?;
    }
    let failed: usize = reports.iter().map(|r| r.checks.iter().filter(|c| !c.passed).count()).sum();
    if reports.len() < found.len() {
        return Err(Error::Stopped {
            done: format!(
                "validating {} of {} adapters ({failed} failed check(s) among them)",
                reports.len(),
                found.len()
            ),
        });
    }
    if failed > 0 {
        return Err(Error::Runtime(format!("{failed} validation check(s) failed")));
    }
    Ok(())
}

/// One epoch of softmax on MNIST 0/1 (batch 64, lr 0.5) from the seeded initialisation.
fn mnist_run(ctx: GpuContext, data: &crate::data::Data, path: KernelPath) -> Result<Vec<f32>> {
    let model = Model::for_data(ModelKind::Softmax, LossKind::Ce, &data.train)?;
    let mut engine = GpuEngine::new(ctx, model, data, 1, path)?;
    engine.set_params(&model.init(InitKind::Xavier, 0))?;
    let batching = Batching::new(data.train.n, 64, 0, false)?;
    let batches = batching.epoch(1);
    let lrs = vec![0.5f32; batching.steps()];
    let plan = EpochPlan {
        batches: &batches,
        batch_size: 64,
        steps: batching.steps(),
        lrs: &lrs,
        rule: StepRule::Table,
        read_params: true,
        evaluate: false,
    };
    Ok(engine.run_epoch(&plan)?.params.unwrap_or_default())
}

fn print_reports(reports: &[AdapterReport]) {
    let mut t = Table::new(["adapter", "backend", "driver", "check", "max error", "tolerance", "result"]);
    for r in reports {
        // Kernels summarised in one row; the rest one row each.
        let (kernels, rest): (Vec<&Check>, Vec<&Check>) = r.checks.iter().partition(|c| {
            [
                "logits",
                "dlogits",
                "weight_grad",
                "sgd_update",
                "evaluate",
                "perturb",
                "residuals",
                "train_subgroup",
                "evaluate_subgroup",
            ]
            .iter()
            .any(|k| c.name.starts_with(k))
        });
        let worst = kernels.iter().map(|c| c.max_error).fold(0.0, f64::max);
        let failed = kernels.iter().filter(|c| !c.passed).count();
        let mut rows = vec![(
            format!("{} kernel checks", kernels.len()),
            worst,
            validate::KERNEL_TOL,
            failed == 0,
            if failed > 0 { format!("{failed} failed") } else { String::new() },
        )];
        rows.extend(
            rest.iter()
                .map(|c| (c.name.clone(), c.max_error, c.tolerance, c.passed, c.note.clone().unwrap_or_default())),
        );
        for (name, err, tol, ok, note) in rows {
            t.row(vec![
                r.adapter.clone(),
                r.backend.clone(),
                r.driver.clone(),
                name,
                fmt_num(err, 2),
                fmt_num(tol, 1),
                if ok { "pass".into() } else { format!("FAIL {note}") },
            ]);
        }
    }
    print!("{t}");
}
