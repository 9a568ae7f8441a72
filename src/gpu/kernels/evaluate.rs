//! `shaders/evaluate.wgsl` and `shaders/reduce.wgsl`: whole-set sums, from either evaluation
//! kernel's partial sums.

use bytemuck::{Pod, Zeroable};

use super::{Specialisation, compile};
use crate::{
    Result,
    gpu::{
        context::GpuContext,
        kernel::{Kernel, Recording, groups_for},
    },
    shader_source::codes::WG_WIDE,
};

#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct EvaluateParams {
    pub sets: u32,
    pub classes: u32,
    pub dim: u32,
    pub groups: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct ReduceParams {
    pub sets: u32,
    pub count: u32,
    pub scale: f32,
    pub _pad0: u32,
}

/// What an evaluation binds: a data set (`n` samples), every set's parameters, the partial sums'
/// scratch ([`Evaluate::partials_size`]) and the totals it writes.
#[derive(Clone, Copy)]
pub struct EvaluationBindings<'a> {
    pub data: &'a wgpu::BindGroup,
    pub n: usize,
    pub theta: &'a wgpu::Buffer,
    pub partials: &'a wgpu::Buffer,
    pub totals: &'a wgpu::Buffer,
}

/// `shaders/evaluate.wgsl` + `shaders/reduce.wgsl`: whole-set mean loss and accuracy per set.
pub struct Evaluate {
    partial: Kernel,
    reduce: Kernel,
}

impl Evaluate {
    pub fn new(ctx: &GpuContext, data: &wgpu::BindGroupLayout, spec: &Specialisation) -> Result<Self> {
        Ok(Evaluate {
            partial: compile::<EvaluateParams>(ctx, data, "evaluate", spec)?,
            reduce: compile::<ReduceParams>(ctx, data, "reduce", spec)?,
        })
    }

    /// Bytes of the partial-sum buffer for `sets` sets over `n` samples.
    pub fn partials_size(sets: u32, n: usize) -> u64 {
        sets as u64 * groups_for(n, WG_WIDE) as u64 * 8
    }

    /// totals[set] = (Σ loss, number correct) over the `n` samples of `data`.
    pub fn encode<'a>(
        &'a self,
        rec: &mut Recording<'a>,
        (sets, classes, dim): (u32, u32, u32),
        b: EvaluationBindings<'a>,
    ) -> Result<()> {
        let prm = EvaluateParams { sets, classes, dim, groups: groups_for(b.n, WG_WIDE) };
        self.encode_with(&self.partial, rec, prm, b)
    }

    /// As [`Evaluate::encode`], the partial sums from `partial` (this kernel's or a generated
    /// one with the same parameters and bindings), one workgroup per range of samples
    /// (`prm.groups` of them) and set.
    pub fn encode_with<'a>(
        &'a self,
        partial: &'a Kernel,
        rec: &mut Recording<'a>,
        prm: EvaluateParams,
        b: EvaluationBindings<'a>,
    ) -> Result<()> {
        let (sets, groups) = (prm.sets, prm.groups);
        rec.dispatch(partial, &prm, &[b.theta, b.partials], Some(b.data), [groups, sets, 1])?;
        // Sums, not means: the host divides in f64 (accuracy then is an exact count over n).
        let prm = ReduceParams { sets, count: groups, scale: 1.0, _pad0: 0 };
        rec.dispatch(&self.reduce, &prm, &[b.partials, b.totals], None, [sets, 1, 1])
    }
}
