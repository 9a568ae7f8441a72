// The projection picture: for every perturbed set s of group g = s / K,
//   pairs[s] = (q_g · (θ + δ_s)|block, q_g · G[s]),
// with the block (rows c0 .. c0 + nrows of W, optionally their biases) read out of the full
// perturbed parameter vector. One invocation per set with a plain loop over the block: no
// workgroup memory, no barriers (on lavapipe a barrier-tree reduction cost 3× more).
//! import codes

struct ProjectParams {
    points: u32,
    // Entries of the block (q and G rows) and of a full parameter vector.
    block_dim: u32,
    dim: u32,
    p: u32,
    classes: u32,
    c0: u32,
    nrows: u32,
    // Perturbed sets in all (groups · K).
    sets: u32,
}

@group(0) @binding(0) var<uniform> prm: ProjectParams;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> perturbed: array<f32>;
@group(0) @binding(3) var<storage, read> grads: array<f32>;
@group(0) @binding(4) var<storage, read_write> pairs: array<vec2<f32>>;

// Index in θ of block entry e.
fn theta_index(e: u32) -> u32 {
    let w_entries = prm.nrows * prm.p;
    if e < w_entries {
        return prm.c0 * prm.p + e;
    }
    return prm.classes * prm.p + prm.c0 + (e - w_entries);
}

// Workgroups: linear_groups(sets, 64); invocation id = set.
@compute @workgroup_size(WG_1D)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let s = flat_id(gid);
    if s >= prm.sets {
        return;
    }
    let g = s / prm.points;
    var acc = vec2<f32>(0.0);
    for (var e = 0u; e < prm.block_dim; e++) {
        let qe = q[g * prm.block_dim + e];
        acc += qe * vec2<f32>(perturbed[s * prm.dim + theta_index(e)], grads[s * prm.block_dim + e]);
    }
    pairs[s] = acc;
}
