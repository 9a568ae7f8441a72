// Temporary: time the analysis pieces on the current adapter.
use std::time::Instant;
use steplens::{engine::*, gpu::*, model::*, prng};

fn main() {
    let d = steplens::data::mnist::embedded_01().unwrap();
    let model = Model::for_data(ModelKind::Softmax, LossKind::Ce, &d.train).unwrap();
    let theta = model.init(InitKind::Xavier, 0);
    let ctx = GpuContext::new(&AdapterRequest::default()).unwrap();
    let mut g = GpuEngine::new(ctx, model, &d, 1, KernelPath::Fused).unwrap();
    let b = 32;
    let nb = 32;
    let rows: Vec<u32> = prng::permutation(d.train.n, 0, 0)[..nb * b].to_vec();
    let ids: Vec<u32> = (0..nb as u32).collect();
    let req = PerturbedRequest { theta: &theta, batches: &rows, batch_ids: &ids, batch_size: b, points: 100, perturbation: Perturbation::Uniform { scale: 0.01 }, seed: 0, stream: 3, block: Block::Row(0), grad_scale: -1.0 };
    for _ in 0..2 {
        let t = Instant::now();
        g.perturbed_gradients(&req).unwrap();
        println!("perturbed_gradients {nb} batches: {:?}", t.elapsed());
        let t = Instant::now();
        g.analyze(&req, &req, false, &mut |raw, _| Ok(vec![0.01; raw.len() / 100])).unwrap();
        println!("analyze {nb} batches: {:?}", t.elapsed());
    }
}
