//! Whole-set evaluation, and the one submit that ends every epoch and evaluation: the pass, its
//! timing where the adapter has timestamps, and the read-back of the evaluation totals.

use bytemuck::cast_slice;

use super::{GpuEngine, KernelPath};
use crate::{
    Result,
    engine::{Evaluation, Metrics},
    gpu::{
        kernel::Recording,
        kernels::EvaluationBindings,
        subgroup::{self, SubgroupEvaluate},
    },
};

impl GpuEngine {
    /// Evaluate every run on the train and test sets.
    pub(super) fn evaluation(&mut self) -> Result<Evaluation> {
        self.prepare_evaluation()?;
        let mut rec = Recording::new(&self.ctx);
        self.record_evaluation(&mut rec)?;
        Ok(self.finish(rec, &[])?.1)
    }

    /// Whether evaluations run on the subgroup evaluation kernel: with `--kernels auto` or
    /// `subgroup`, where `auto` would take the subgroup training kernel for this model (the
    /// adapter and the registers' budget; evaluation has no loop-cap concern).
    fn subgroup_evaluation(&self) -> bool {
        matches!(self.path, KernelPath::Auto | KernelPath::Subgroup)
            && subgroup::adapter_prefers(&self.ctx)
            && self.subgroup_spec().lane_weights() <= subgroup::MAX_LANE_WEIGHTS
            && self.textured()
    }

    /// Compile the subgroup evaluation if evaluations run on it and it is not compiled yet.
    pub(super) fn prepare_evaluation(&mut self) -> Result<()> {
        if self.subgroup_evaluation() && self.subgroup_eval.is_none() {
            self.subgroup_eval = Some(SubgroupEvaluate::new(&self.ctx, &self.data_layout, self.subgroup_spec())?);
        }
        Ok(())
    }

    /// Record the whole-set evaluations of every run, the train set's then the test set's (the
    /// partial sums are reused: dispatches in one pass run in order).
    pub(super) fn record_evaluation<'a>(&'a self, rec: &mut Recording<'a>) -> Result<()> {
        let (runs, classes, dim) = self.dims();
        let k = self.evaluate_kernel()?;
        let sub = self.subgroup_eval.as_ref().filter(|_| self.subgroup_evaluation());
        let test = self.test.as_ref().map(|t| (t, &self.totals_test));
        for (set, totals) in std::iter::once((&self.train, &self.totals_train)).chain(test) {
            let (theta, partials) = (&self.theta, &self.partials);
            let b = EvaluationBindings { data: &set.bind, n: set.n, theta, partials, totals };
            match sub {
                Some(sub) => sub.encode(rec, k, runs, b)?,
                None => k.encode(rec, (runs, classes, dim), b)?,
            }
        }
        Ok(())
    }

    /// Record `rec`, then read back `ranges` and the evaluation totals in one submit. Where the
    /// adapter has timestamp queries the pass is timed ([`GpuEngine::last_gpu_ms`]).
    pub(super) fn finish(
        &self,
        rec: Recording,
        extra: &[(&wgpu::Buffer, u64, u64)],
    ) -> Result<(Vec<Vec<u8>>, Evaluation)> {
        let mut encoder = self.ctx.encoder();
        let timer = self.ctx.timestamps.then(|| {
            let set = self.ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("pass time"),
                ty: wgpu::QueryType::Timestamp,
                count: 2,
            });
            let resolved = self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("pass time"),
                size: 16,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            });
            (set, resolved)
        });
        let writes = timer.as_ref().map(|(set, _)| wgpu::ComputePassTimestampWrites {
            query_set: set,
            beginning_of_pass_write_index: Some(0),
            end_of_pass_write_index: Some(1),
        });
        rec.encode(&self.ctx, &mut encoder, writes)?;
        if let Some((set, resolved)) = &timer {
            encoder.resolve_query_set(set, 0..2, resolved, 0);
        }
        let bytes = self.runs as u64 * 8;
        let mut ranges = extra.to_vec();
        ranges.push((&self.totals_train, 0, bytes));
        ranges.push((&self.totals_test, 0, bytes));
        if let Some((_, resolved)) = &timer {
            ranges.push((resolved, 0, 16));
        }
        let mut out = self.ctx.submit_and_read(encoder, &ranges)?;
        self.last_gpu_ms.set(timer.map(|_| {
            let raw = out.pop().unwrap_or_default();
            let ticks: Vec<u64> = bytemuck::pod_collect_to_vec(&raw);
            let period = self.ctx.queue.get_timestamp_period() as f64;
            ticks.get(1).zip(ticks.first()).map_or(f64::NAN, |(b, a)| b.wrapping_sub(*a) as f64 * period / 1e6)
        }));
        let test = out.pop().unwrap_or_default();
        let train = out.pop().unwrap_or_default();
        let eval = Evaluation {
            train: self.metrics(&train, self.train.n),
            test: self.test.as_ref().map(|t| self.metrics(&test, t.n)),
        };
        Ok((out, eval))
    }

    /// GPU time of the last epoch's or evaluation's pass, in ms, where the adapter has timestamps.
    pub fn last_gpu_ms(&self) -> Option<f64> {
        self.last_gpu_ms.get()
    }

    /// Means over the `n` samples from the device's sums.
    fn metrics(&self, totals: &[u8], n: usize) -> Vec<Metrics> {
        let v: &[f32] = cast_slice(totals);
        let n = n as f64;
        let acc = |c: f32| if self.model.has_accuracy() { c as f64 / n } else { f64::NAN };
        v.chunks(2).map(|t| Metrics { loss: t[0] as f64 / n, acc: acc(t[1]) }).collect()
    }
}
