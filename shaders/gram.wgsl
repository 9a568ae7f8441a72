// Gram matrices of B groups of K vectors: gram[g, k, l] = Σ_d G[gK + k, d] G[gK + l, d].
// The analysis eigen-decomposes these K × K matrices on the host instead of reading back and
// decomposing every dim × K matrix G: the right singular vectors and σ² come from the Gram.
// One invocation per entry with k ≤ l, which also writes the mirrored entry.

struct GramParams {
    points: u32,
    dim: u32,
    groups: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> prm: GramParams;
@group(0) @binding(1) var<storage, read> vectors: array<f32>;
@group(0) @binding(2) var<storage, read_write> gram: array<f32>;

// Workgroups: linear_groups(groups·K·K, 64); invocation id = (g·K + k)·K + l.
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let id = gid.x + gid.y * 65535u * 64u;
    let kk = prm.points * prm.points;
    if id >= prm.groups * kk {
        return;
    }
    let g = id / kk;
    let k = (id % kk) / prm.points;
    let l = id % prm.points;
    if l < k {
        return;
    }
    let a = (g * prm.points + k) * prm.dim;
    let b = (g * prm.points + l) * prm.dim;
    var acc = 0.0;
    for (var d = 0u; d < prm.dim; d++) {
        acc += vectors[a + d] * vectors[b + d];
    }
    gram[id] = acc;
    gram[(g * prm.points + l) * prm.points + k] = acc;
}
