//! [`CpuEngine`]: the [`Engine`] in f64 on the host, from the kernel twins.

use super::kernels;
use crate::{
    Error, Result,
    data::{Data, Dataset},
    engine::{
        Block, Engine, EngineInfo, EpochOutcome, EpochPlan, Evaluation, Metrics, PerturbedRequest, RowGroups,
        check_gradients, check_perturbed, check_plan,
    },
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
            device_type: "CPU (f64 reference)".into(),
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
        let eval = if plan.evaluate { self.evaluate()? } else { Evaluation { train: Vec::new(), test: None } };
        Ok(EpochOutcome { steps, eval, params })
    }

    fn perturbed_gradients(&mut self, req: &PerturbedRequest) -> Result<Vec<f32>> {
        check_perturbed(req, &self.model, self.data.train.n)?;
        let (_, g) = kernels::perturbed_gradients(&self.model, &self.data.train, req);
        Ok(g.iter().map(|&v| v as f32).collect())
    }

    fn gradients(&mut self, sets: &[f32], batch: &[u32]) -> Result<Vec<f32>> {
        check_gradients(sets, batch, &self.model, self.data.train.n)?;
        let m = &self.model;
        let sets: Vec<f64> = sets.iter().map(|&v| v as f64).collect();
        let b = batch.len() as u32;
        let rows =
            RowGroups { groups: 1, sets_per_group: (sets.len() / m.dim()) as u32, rows: b, offset: 0, stride: b };
        let g = kernels::set_gradients(m, &self.data.train, &sets, rows, batch, 1.0 / b as f64, Block::All);
        Ok(g.iter().map(|&v| v as f32).collect())
    }

    fn project(&mut self, req: &PerturbedRequest, q: &[f32]) -> Result<Vec<f32>> {
        check_perturbed(req, &self.model, self.data.train.n)?;
        let q: Vec<f64> = q.iter().map(|&v| v as f64).collect();
        Ok(self.pairs(req, &q))
    }

    fn perturbed_residuals(&mut self, req: &PerturbedRequest) -> Result<Vec<f64>> {
        check_perturbed(req, &self.model, self.data.train.n)?;
        Ok(kernels::perturbed_residuals(&self.model, &self.data.train, req))
    }

    fn train_set(&self) -> &Dataset {
        &self.data.train
    }
}

impl CpuEngine {
    fn pairs(&self, req: &PerturbedRequest, q: &[f64]) -> Vec<f32> {
        let (perturbed, g) = kernels::perturbed_gradients(&self.model, &self.data.train, req);
        kernels::project(&self.model, req.block, q, &perturbed, &g, req.points).iter().map(|&v| v as f32).collect()
    }
}
