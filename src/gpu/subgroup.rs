//! The subgroup training kernel for CPU adapters with subgroups (Vulkan lavapipe):
//! one subgroup of [`SUBGROUP_LANES`] lanes per run, no barriers, no workgroup memory; its WGSL
//! is generated per size by [`crate::shader_source::subgroup_train`].
//!
//! llvmpipe gives an invocation [`LOOP_CAP`] loop iterations in all, across all loops; past
//! them every loop silently runs once. The generated kernel unrolls every loop but three: the
//! step loop, the sample loop of each batch pass, and Armijo's backtracking loop, so the host
//! knows what a step costs ([`iterations_per_step`]) and splits an epoch into dispatches of one
//! pass that each stay under the cap ([`steps_per_dispatch`]).

use super::{
    context::GpuContext,
    kernel::{Kernel, Recording, composed_generated, groups_for},
    kernels::{EpochBindings, EpochParams, Evaluate, EvaluateParams, EvaluationBindings},
};
use crate::{
    Error, Result,
    engine::StepRule,
    shader_source::{SUBGROUP_LANES, SubgroupSpec, codes::WG_WIDE, subgroup_evaluate, subgroup_train},
};

/// Loop iterations llvmpipe allows one invocation, across all its loops (Mesa's
/// `LP_MAX_TGSI_LOOP_ITERATIONS`, measured: BENCHMARKS.md).
pub const LOOP_CAP: u64 = 65_535;

/// The most W entries a lane keeps in registers (spilled to the stack where the CPU has too few):
/// enough for 10-class softmax on MNIST's 784 features (1,120). The compile time of the unrolled
/// kernel grows with it (BENCHMARKS.md: a minute or more the first time at 1,120, then Mesa's disk
/// cache), so beyond it `auto` keeps the other paths.
pub const MAX_LANE_WEIGHTS: u32 = 2048;

/// Loop passes one step of one run can cost, at most, as llvmpipe counts them (measured, see
/// tests/kernels.rs): a loop costs one pass per iteration plus one for the test that ends it,
/// and a loop in a branch no lane takes still costs one pass (llvmpipe runs both sides of a
/// branch under lane masks), nested loops included. A step is the step loop's iteration, the
/// batch's sample loop (b + 1), and Armijo's backtracking loop: under the other rules one
/// masked pass of it and of its sample loop (2); under Armijo `max_backtracks` trials at worst,
/// each a pass and a sample loop (b + 2), and the test that ends the loop (1).
pub fn iterations_per_step(rule: StepRule, batch: usize, max_backtracks: u32) -> u64 {
    let pass = batch as u64 + 1;
    match rule {
        StepRule::Armijo { .. } => 1 + pass + max_backtracks as u64 * (1 + pass) + 1,
        _ => 1 + pass + 2,
    }
}

/// Steps per dispatch so that no invocation reaches `cap` loop passes; `None` when a single
/// step could (Armijo with a batch of several hundred samples).
pub fn steps_per_dispatch(rule: StepRule, batch: usize, max_backtracks: u32, cap: u64) -> Option<usize> {
    // n steps cost n × per + 1 (the test that ends the step loop), which must stay below the
    // cap: the pass that reaches it is the one llvmpipe cuts short.
    let per = cap.saturating_sub(2) / iterations_per_step(rule, batch, max_backtracks);
    (per >= 1).then_some(per as usize)
}

/// Why the subgroup kernel cannot run on this adapter, if it cannot.
pub fn adapter_unsupported(ctx: &GpuContext) -> Option<String> {
    match ctx.subgroup_sizes() {
        None => Some(format!(
            "{} ({:?}) has no subgroup operations: --kernels subgroup needs an adapter with subgroups (Vulkan lavapipe has them; GL does not)",
            ctx.info.name, ctx.info.backend
        )),
        Some((min, max)) if min < SUBGROUP_LANES => Some(format!(
            "{} has subgroups of {min}..{max} lanes: --kernels subgroup needs at least {SUBGROUP_LANES}",
            ctx.info.name
        )),
        _ => None,
    }
}

/// Whether `auto` picks the subgroup kernel: a CPU adapter whose subgroups are exactly
/// [`SUBGROUP_LANES`] wide (one workgroup is one subgroup, one vector of the CPU).
pub fn adapter_prefers(ctx: &GpuContext) -> bool {
    ctx.info.device_type == wgpu::DeviceType::Cpu && ctx.subgroup_sizes() == Some((SUBGROUP_LANES, SUBGROUP_LANES))
}

/// Why the subgroup kernel cannot train these sizes, if it cannot.
pub fn sizes_unsupported(spec: &SubgroupSpec, rule: StepRule, batch: usize, max_backtracks: u32) -> Option<String> {
    if spec.lane_weights() > MAX_LANE_WEIGHTS {
        return Some(format!(
            "the subgroup kernel keeps at most {MAX_LANE_WEIGHTS} weights per lane; {} classes × {} features need {}",
            spec.classes,
            spec.p,
            spec.lane_weights()
        ));
    }
    if steps_per_dispatch(rule, batch, max_backtracks, LOOP_CAP).is_none() {
        return Some(format!(
            "one step at batch size {batch} ({} loop iterations at worst) exceeds the adapter's {LOOP_CAP} per dispatch",
            iterations_per_step(rule, batch, max_backtracks)
        ));
    }
    None
}

/// Runs per workgroup when a sweep's runs share their batches: they share each sample's loads
/// and unpacking, at `SWEEP_GROUP` times the registers.
pub const SWEEP_GROUP: u32 = 2;

/// Runs per workgroup for `runs` runs on `tables` batch tables: [`SWEEP_GROUP`] where they all
/// share one table and the registers allow it, else 1.
pub fn runs_per_group(spec: &SubgroupSpec, runs: usize, tables: usize) -> u32 {
    let fits = spec.lane_weights() * SWEEP_GROUP <= MAX_LANE_WEIGHTS;
    if runs > 1 && tables == 1 && fits { SWEEP_GROUP } else { 1 }
}

/// A generated kernel `name` with parameters `P`, on an adapter that has the subgroups it needs.
fn generated<P>(
    ctx: &GpuContext,
    data: &wgpu::BindGroupLayout,
    name: &'static str,
    text: &str,
    spec: &SubgroupSpec,
) -> Result<Kernel> {
    if let Some(why) = adapter_unsupported(ctx) {
        return Err(Error::usage(why));
    }
    let composed = composed_generated(name, text)?;
    Kernel::from_source(ctx, data, name, composed, size_of::<P>(), &[("MODEL", spec.model as f64)])
}

/// The generated kernel for one specialisation and number of runs per workgroup.
pub struct SubgroupTrain {
    pub spec: SubgroupSpec,
    pub runs_per_group: u32,
    kernel: Kernel,
}

impl SubgroupTrain {
    pub fn new(
        ctx: &GpuContext,
        data: &wgpu::BindGroupLayout,
        spec: SubgroupSpec,
        runs_per_group: u32,
    ) -> Result<SubgroupTrain> {
        let text = subgroup_train(&spec, runs_per_group);
        let kernel = generated::<EpochParams>(ctx, data, "train_subgroup", &text, &spec)?;
        Ok(SubgroupTrain { spec, runs_per_group, kernel })
    }

    /// Steps `prm.first_step ..` `+ prm.count` of every run, in dispatches of at most `per` steps,
    /// all in `rec`'s one pass. With several runs per workgroup, the runs must share one batch
    /// table (`prm.tables == 1`).
    pub fn encode<'a>(
        &'a self,
        rec: &mut Recording<'a>,
        (prm, per): (EpochParams, usize),
        b: EpochBindings<'a>,
    ) -> Result<()> {
        b.record(rec, &self.kernel, (prm, per, prm.runs.div_ceil(self.runs_per_group)), None)
    }
}

/// The generated whole-set evaluation ([`crate::shader_source::subgroup_evaluate`]).
pub struct SubgroupEvaluate {
    pub spec: SubgroupSpec,
    kernel: Kernel,
}

impl SubgroupEvaluate {
    pub fn new(ctx: &GpuContext, data: &wgpu::BindGroupLayout, spec: SubgroupSpec) -> Result<SubgroupEvaluate> {
        let kernel = generated::<EvaluateParams>(ctx, data, "evaluate_subgroup", &subgroup_evaluate(&spec), &spec)?;
        Ok(SubgroupEvaluate { spec, kernel })
    }

    /// Sums over the `n` samples of `data` for every set, as [`Evaluate::encode`] (whose
    /// `reduce` adds this kernel's partial sums).
    pub fn encode<'a>(
        &'a self,
        rec: &mut Recording<'a>,
        reduce: &'a Evaluate,
        sets: u32,
        b: EvaluationBindings<'a>,
    ) -> Result<()> {
        // Ranges of at most WG_WIDE samples (one more loop pass each), as many as the other kernel's.
        let groups = groups_for(b.n, WG_WIDE).max(1);
        let (classes, p) = (self.spec.classes, self.spec.p);
        let prm = EvaluateParams { sets, classes, dim: classes * (p + 1), groups };
        reduce.encode_with(&self.kernel, rec, prm, b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARMIJO: StepRule = StepRule::Armijo { c: 0.1, beta: 0.9, growth: 1.2, max_lr: 1.0 };

    #[test]
    fn loop_cap_arithmetic() {
        // A table-rate step at b = 64: the step loop's pass, 65 of the sample loop, 2 of the
        // Armijo loop not taken.
        assert_eq!(iterations_per_step(StepRule::Table, 64, 200), 68);
        assert_eq!(iterations_per_step(StepRule::Polyak { c: 0.5, max_lr: 1.0 }, 64, 200), 68);
        // An MNIST 0/1 epoch (197 steps) fits one dispatch: 197 × 68 + 1 = 13,397 < 65,535; at most
        // 963 steps do (65,485), as lavapipe measured (tests/kernels.rs).
        assert_eq!(steps_per_dispatch(StepRule::Table, 64, 200, LOOP_CAP), Some(963));
        // Armijo at worst: 66 + 200 trials × 66 + 1 = 13,267 a step, 4 steps a dispatch (53,069).
        assert_eq!(iterations_per_step(ARMIJO, 64, 200), 13_267);
        assert_eq!(steps_per_dispatch(ARMIJO, 64, 200, LOOP_CAP), Some(4));
        // The cap is strict: a step of 65,533 passes fits (+ 1 = 65,534), one of 65,534 does not.
        assert_eq!(steps_per_dispatch(StepRule::Table, 65_529, 200, LOOP_CAP), Some(1));
        assert_eq!(steps_per_dispatch(StepRule::Table, 65_530, 200, LOOP_CAP), None);
        // A step that alone passes the cap cannot run: Armijo at b = 325 (201 × 327 + 1 > 65,533).
        assert_eq!(steps_per_dispatch(ARMIJO, 324, 200, LOOP_CAP), Some(1));
        assert_eq!(steps_per_dispatch(ARMIJO, 325, 200, LOOP_CAP), None);
        // One sample per batch: 5 passes a step, as measured; a small cap splits finely.
        assert_eq!(steps_per_dispatch(StepRule::Table, 1, 200, LOOP_CAP), Some(13_106));
        assert_eq!(steps_per_dispatch(StepRule::Table, 1, 200, 11), Some(1));
    }

    #[test]
    fn sizes_and_slices() {
        let spec = |p, classes, x_u8| SubgroupSpec { p, classes, model: 0, x_u8 };
        // MNIST: 49 vec4 loads of 16 pixels per row, 7 per lane (lane 0 owns the 49th); two
        // classes keep one row, W₁ − W₀, in registers.
        let mnist = spec(784, 2, true);
        assert_eq!((mnist.units(), mnist.slots(), mnist.rows(), mnist.lane_weights()), (49, 7, 1, 112));
        let three = spec(784, 3, true);
        assert_eq!((three.rows(), three.lane_weights()), (3, 336));
        assert!(SubgroupSpec { model: 1, ..mnist }.pair() && !SubgroupSpec { model: 2, classes: 1, ..mnist }.pair());
        // Sweeps whose runs share one batch table: two runs a workgroup where registers allow.
        assert_eq!(runs_per_group(&mnist, 64, 1), SWEEP_GROUP);
        assert_eq!(runs_per_group(&mnist, 64, 64), 1);
        assert_eq!(runs_per_group(&mnist, 1, 1), 1);
        assert_eq!(runs_per_group(&three, 64, 1), SWEEP_GROUP);
        assert!(sizes_unsupported(&mnist, StepRule::Table, 64, 200).is_none());
        // Ten classes on MNIST: 1,120 weights a lane fit the budget, twice that (two runs) does not.
        let ten = spec(784, 10, true);
        assert_eq!(ten.lane_weights(), 1120);
        assert!(sizes_unsupported(&ten, StepRule::Table, 64, 200).is_none());
        assert_eq!(runs_per_group(&ten, 64, 1), 1);
        // Twenty classes: beyond it.
        assert!(sizes_unsupported(&spec(784, 20, true), StepRule::Table, 64, 200).is_some());
        // 785 features: scalar loads, one quad per unit, 197 units.
        let odd = spec(785, 2, true);
        assert_eq!((odd.units(), odd.slots()), (197, 25));
        assert_eq!(spec(1, 2, false).units(), 1);
        assert_eq!(spec(36, 2, true).load(), crate::shader_source::FeatureLoad::U8Word);
        assert_eq!(spec(36, 2, false).load(), crate::shader_source::FeatureLoad::F32Vec4);
        assert!(sizes_unsupported(&mnist, ARMIJO, 325, 200).is_some());
    }
}
