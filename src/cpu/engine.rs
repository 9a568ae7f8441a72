//! [`CpuEngine`]: the [`Engine`] in f64 on the host, from the kernel twins.

use super::kernels;
use crate::{
    Error, Result,
    data::{Data, Dataset},
    engine::{
        AnalysisChunk, DirectionFn, Engine, EngineInfo, EpochOutcome, EpochPlan, Evaluation, Metrics,
        PerturbedRequest,
    },
    gpu::engine::check_plan,
    model::Model,
};

pub struct CpuEngine {
    model: Model,
    data: Data,
    runs: usize,
    /// runs × dim, in f64.
    theta: Vec<f64>,
}

impl CpuEngine {
    pub fn new(model: Model, data: &Data, runs: usize) -> CpuEngine {
        CpuEngine { model, data: data.clone(), runs, theta: vec![0.0; runs * model.dim()] }
    }

    fn metrics(&self, set: &Dataset) -> Vec<Metrics> {
        let m = &self.model;
        kernels::evaluate(m.loss_code(), set, &self.theta, m.outputs, m.dim())
            .into_iter()
            .map(|(loss, acc)| Metrics { loss, acc: if m.has_accuracy() { acc } else { f64::NAN } })
            .collect()
    }

    pub fn data(&self) -> &Data {
        &self.data
    }
}

impl Engine for CpuEngine {
    fn info(&self) -> EngineInfo {
        EngineInfo {
            device: "cpu".into(),
            adapter: "f64 CPU reference".into(),
            backend: "cpu".into(),
            driver: format!("steplens {}", env!("CARGO_PKG_VERSION")),
            device_type: "Cpu".into(),
        }
    }

    fn model(&self) -> Model {
        self.model
    }

    fn runs(&self) -> usize {
        self.runs
    }

    fn set_params(&mut self, theta: &[f32]) -> Result<()> {
        if theta.len() != self.theta.len() {
            return Err(Error::usage(format!("expected {} parameters, got {}", self.theta.len(), theta.len())));
        }
        self.theta = theta.iter().map(|&t| t as f64).collect();
        Ok(())
    }

    fn params(&mut self) -> Result<Vec<f32>> {
        Ok(self.theta.iter().map(|&t| t as f32).collect())
    }

    fn evaluate(&mut self) -> Result<Evaluation> {
        Ok(Evaluation { train: self.metrics(&self.data.train), test: self.data.test.as_ref().map(|t| self.metrics(t)) })
    }

    fn run_epoch(&mut self, plan: &EpochPlan) -> Result<EpochOutcome> {
        check_plan(plan, self.runs, self.data.train.n)?;
        let code = self.model.loss_code();
        let steps = kernels::train_epoch(code, &self.data.train, &mut self.theta, plan, self.model.outputs);
        let params = plan.read_params.then(|| self.theta.iter().map(|&t| t as f32).collect());
        Ok(EpochOutcome { steps, eval: self.evaluate()?, params })
    }

    fn perturbed_gradients(&mut self, _req: &PerturbedRequest) -> Result<Vec<f32>> {
        Err(Error::Runtime("not yet".into()))
    }

    fn project(&mut self, _req: &PerturbedRequest, _q: &[f32]) -> Result<Vec<f32>> {
        Err(Error::Runtime("not yet".into()))
    }

    fn analyze(
        &mut self,
        _svd: &PerturbedRequest,
        _project: &PerturbedRequest,
        _direction: &mut DirectionFn,
    ) -> Result<AnalysisChunk> {
        Err(Error::Runtime("not yet".into()))
    }
}
