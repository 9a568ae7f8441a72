// K perturbed copies of θ for each of B batches: P[s] = θ + δ(seed, stream, batch_g, k, d), with
// g = s / K, k = s % K, δ uniform (scale · U[0,1), the notebook's, not centred) or Gaussian
// (σ · N(0,1)). The counter-based PRNG makes the CPU reference draw the same numbers.
//! import codes
//! import prng

struct PerturbParams {
    // Perturbed sets (B · K) and K.
    sets: u32,
    points: u32,
    dim: u32,
    // PERTURB_UNIFORM or PERTURB_GAUSSIAN.
    kind: u32,
    scale: f32,
    seed_lo: u32,
    seed_hi: u32,
    stream: u32,
}

@group(0) @binding(0) var<uniform> prm: PerturbParams;
@group(0) @binding(1) var<storage, read> theta: array<f32>;
@group(0) @binding(2) var<storage, read> batch_ids: array<u32>;
@group(0) @binding(3) var<storage, read_write> perturbed: array<f32>;

// Four consecutive parameters per invocation: the set's batch and the hash of (seed, stream,
// batch, k) are shared by the four. Workgroups: (⌈dim / (4·WG_WIDE)⌉, sets, 1).
@compute @workgroup_size(WG_WIDE)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let d0 = gid.x * 4u;
    let s = gid.y;
    if d0 >= prm.dim || s >= prm.sets {
        return;
    }
    let seed = vec2<u32>(prm.seed_lo, prm.seed_hi);
    let batch = batch_ids[s / prm.points];
    let k = s % prm.points;
    for (var d = d0; d < min(d0 + 4u, prm.dim); d++) {
        var delta: f32;
        if prm.kind == PERTURB_UNIFORM {
            delta = prm.scale * prng_uniform(seed, prm.stream, batch, k, d);
        } else {
            delta = prm.scale * prng_normal(seed, prm.stream, batch, k, d);
        }
        perturbed[s * prm.dim + d] = theta[d] + delta;
    }
}
