//! `shaders/train_epoch.wgsl`, the fused epoch kernel, and what it shares with the generated
//! subgroup kernel: the parameters, the bindings and the split of an epoch into dispatches.

use bytemuck::{Pod, Zeroable};

use super::{Specialisation, compile};
use crate::{
    Result,
    gpu::{
        context::GpuContext,
        kernel::{Kernel, Recording},
    },
};

#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct EpochParams {
    pub runs: u32,
    pub steps: u32,
    pub batch: u32,
    pub classes: u32,
    pub dim: u32,
    pub tables: u32,
    pub rule: u32,
    pub max_backtracks: u32,
    pub armijo_c: f32,
    pub armijo_beta: f32,
    pub armijo_growth: f32,
    pub max_lr: f32,
    pub polyak_c: f32,
    pub first_step: u32,
    pub count: u32,
    pub _pad0: u32,
}

impl EpochParams {
    /// These parameters' steps (`first_step ..` `+ count`) in dispatches of at most `per` steps:
    /// what a driver's loop cap or early end of a long dispatch allows, all in one pass.
    pub fn dispatches(self, per: usize) -> impl Iterator<Item = EpochParams> {
        let (start, end) = (self.first_step as usize, (self.first_step + self.count) as usize);
        (start..end).step_by(per.max(1)).map(move |first| EpochParams {
            first_step: first as u32,
            count: per.min(end - first) as u32,
            ..self
        })
    }
}

/// What the epoch kernels (fused and subgroup) bind: the training data, every run's parameters,
/// the batch tables, the rates and the per-step statistics they write.
#[derive(Clone, Copy)]
pub struct EpochBindings<'a> {
    pub data: &'a wgpu::BindGroup,
    pub theta: &'a wgpu::Buffer,
    pub batches: &'a wgpu::Buffer,
    pub lrs: &'a wgpu::Buffer,
    pub stats: &'a wgpu::Buffer,
}

impl<'a> EpochBindings<'a> {
    /// `prm`'s steps on `kernel` in dispatches of at most `per` steps ([`EpochParams::dispatches`])
    /// of `groups` workgroups; `scratch` is bound between the rates and the statistics.
    pub fn record(
        self,
        rec: &mut Recording<'a>,
        kernel: &'a Kernel,
        (prm, per, groups): (EpochParams, usize, u32),
        scratch: Option<&'a wgpu::Buffer>,
    ) -> Result<()> {
        let mut buffers = vec![self.theta, self.batches, self.lrs];
        buffers.extend(scratch);
        buffers.push(self.stats);
        for p in prm.dispatches(per) {
            rec.dispatch(kernel, &p, &buffers, Some(self.data), [groups, 1, 1])?;
        }
        Ok(())
    }
}

/// `shaders/train_epoch.wgsl`: a whole epoch of every run, one workgroup per run.
pub struct TrainEpoch(Kernel);

impl TrainEpoch {
    pub fn new(ctx: &GpuContext, data: &wgpu::BindGroupLayout, spec: &Specialisation) -> Result<Self> {
        Ok(TrainEpoch(compile::<EpochParams>(ctx, data, "train_epoch", spec)?))
    }

    /// `prm`'s steps of every run in dispatches of at most `per` steps ([`EpochParams::dispatches`]);
    /// `grads` is the kernel's scratch for each run's gradient.
    pub fn encode<'a>(
        &'a self,
        rec: &mut Recording<'a>,
        (prm, per): (EpochParams, usize),
        b: EpochBindings<'a>,
        grads: &'a wgpu::Buffer,
    ) -> Result<()> {
        b.record(rec, &self.0, (prm, per, prm.runs), Some(grads))
    }
}
