//! [`GpuEngine`]: the [`Engine`] on a wgpu device.

use std::sync::OnceLock;

use bytemuck::cast_slice;

use super::{
    context::GpuContext,
    kernels::{
        Dlogits, Evaluate, Logits, Perturb, Project, Residuals, SgdUpdate, Specialisation, TrainEpoch, WeightGrad,
    },
    subgroup::{SubgroupEvaluate, SubgroupTrain},
};
use crate::{
    Error, Result,
    data::Dataset,
    engine::{Engine, EngineInfo, EpochOutcome, EpochPlan, Evaluation, PerturbedRequest, StepRule},
    model::Model,
};

mod analysis;
mod buffers;
mod epoch;
mod evaluation;

pub use buffers::{GpuData, texture_rows};
pub use epoch::{KernelPath, epoch_params};

/// The engine's kernels, each compiled on its first use: a command pays for the pipelines it
/// runs, not for all of them (lavapipe translates every pipeline it creates, Mesa's shader cache
/// or not: most of `train`'s start-up, BENCHMARKS.md).
struct Kernels {
    spec: Specialisation,
    logits: OnceLock<Logits>,
    dlogits: OnceLock<Dlogits>,
    weight_grad: OnceLock<WeightGrad>,
    sgd: OnceLock<SgdUpdate>,
    evaluate: OnceLock<Evaluate>,
    train_epoch: OnceLock<TrainEpoch>,
    perturb: OnceLock<Perturb>,
    project: OnceLock<Project>,
    /// The analysis' fused residuals (specialised per model and perturbation kind).
    residuals: Option<Residuals>,
}

impl Kernels {
    fn new(spec: Specialisation) -> Kernels {
        Kernels {
            spec,
            logits: OnceLock::new(),
            dlogits: OnceLock::new(),
            weight_grad: OnceLock::new(),
            sgd: OnceLock::new(),
            evaluate: OnceLock::new(),
            train_epoch: OnceLock::new(),
            perturb: OnceLock::new(),
            project: OnceLock::new(),
            residuals: None,
        }
    }
}

/// The kernel in `cell`, compiled by `make` the first time.
fn compiled<K>(cell: &OnceLock<K>, make: impl FnOnce() -> Result<K>) -> Result<&K> {
    match cell.get() {
        Some(kernel) => Ok(kernel),
        None => {
            let kernel = make()?;
            Ok(cell.get_or_init(|| kernel))
        }
    }
}

/// `fn NAME(&self) -> Result<&KIND>`: the engine's kernel in `kernels.FIELD`, compiled on first use.
macro_rules! kernel_accessors {
    ($($name:ident: $field:ident, $kind:ty;)*) => {
        impl GpuEngine {
            $(fn $name(&self) -> Result<&$kind> {
                compiled(&self.kernels.$field, || <$kind>::new(&self.ctx, &self.data_layout, &self.kernels.spec))
            })*
        }
    };
}

kernel_accessors! {
    logits_kernel: logits, Logits;
    dlogits_kernel: dlogits, Dlogits;
    weight_grad_kernel: weight_grad, WeightGrad;
    sgd_kernel: sgd, SgdUpdate;
    evaluate_kernel: evaluate, Evaluate;
    train_epoch_kernel: train_epoch, TrainEpoch;
    perturb_kernel: perturb, Perturb;
    project_kernel: project, Project;
}

pub struct GpuEngine {
    ctx: GpuContext,
    model: Model,
    runs: usize,
    path: KernelPath,
    kernels: Kernels,
    /// The group-1 layout, for kernels compiled on first use.
    data_layout: wgpu::BindGroupLayout,
    x_u8: bool,
    /// The subgroup kernel, compiled on the first epoch that runs on it.
    subgroup: Option<SubgroupTrain>,
    /// The subgroup evaluation, compiled on the first evaluation that runs on it.
    subgroup_eval: Option<SubgroupEvaluate>,
    loop_cap: u64,
    train: GpuData,
    /// The training set on the host: the analysis forms its batches' sample Gram matrices
    /// from it in f64 (the device's f32 would not be exact).
    host_train: Dataset,
    test: Option<GpuData>,
    theta: wgpu::Buffer,
    grads: wgpu::Buffer,
    partials: wgpu::Buffer,
    totals_train: wgpu::Buffer,
    totals_test: wgpu::Buffer,
    last_gpu_ms: std::cell::Cell<Option<f64>>,
}

/// The interface the driver and the analysis use; training and evaluation live in `epoch` and
/// `evaluation`, the device state in `buffers`.
impl Engine for GpuEngine {
    fn kernel_choice(&self, rule: StepRule, steps: usize, batch_size: usize) -> Option<crate::engine::KernelChoice> {
        let (path, why) = GpuEngine::kernel_choice(self, rule, 1, steps, batch_size);
        let path = serde_json::to_value(path).ok()?.as_str()?.to_string();
        Some(crate::engine::KernelChoice { path, why })
    }

    fn analysis_kernel(&self) -> Option<crate::engine::KernelChoice> {
        Some(self.residual_kernel_choice())
    }

    fn info(&self) -> EngineInfo {
        self.ctx.engine_info()
    }

    fn model(&self) -> Model {
        self.model
    }

    fn runs(&self) -> usize {
        self.runs
    }

    fn set_params(&mut self, theta: &[f32]) -> Result<()> {
        if theta.len() != self.runs * self.model.dim() {
            return Err(Error::usage(format!(
                "expected {} parameters, got {}",
                self.runs * self.model.dim(),
                theta.len()
            )));
        }
        self.ctx.queue.write_buffer(&self.theta, 0, cast_slice(theta));
        self.ctx.check()
    }

    fn params(&mut self) -> Result<Vec<f32>> {
        let bytes = (self.runs * self.model.dim() * 4) as u64;
        let out = self.ctx.submit_and_read(self.ctx.encoder(), &[(&self.theta, 0, bytes)])?;
        Ok(cast_slice(&out[0]).to_vec())
    }

    fn evaluate(&mut self) -> Result<Evaluation> {
        self.evaluation()
    }

    fn run_epoch(&mut self, plan: &EpochPlan) -> Result<EpochOutcome> {
        self.epoch(plan)
    }

    fn perturbed_gradients(&mut self, req: &PerturbedRequest) -> Result<Vec<f32>> {
        GpuEngine::perturbed_gradients(self, req)
    }

    fn gradients(&mut self, sets: &[f32], batch: &[u32]) -> Result<Vec<f32>> {
        GpuEngine::gradients(self, sets, batch)
    }

    fn project(&mut self, req: &PerturbedRequest, q: &[f32]) -> Result<Vec<f32>> {
        GpuEngine::project(self, req, q)
    }

    fn perturbed_residuals(&mut self, req: &PerturbedRequest) -> Result<Vec<f64>> {
        Ok(GpuEngine::perturbed_residuals(self, req)?.iter().map(|&v| v as f64).collect())
    }

    fn train_set(&self) -> &Dataset {
        &self.host_train
    }
}
