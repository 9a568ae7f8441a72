// Linear combinations of each group's K vectors: out[g, d] = Σ_k coef[g, k] G[gK + k, d].
// With coef = v₁/σ₁ from the Gram's top eigenvector this is the left singular vector q = G v₁/σ₁.

struct CombineParams {
    points: u32,
    dim: u32,
    groups: u32,
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> prm: CombineParams;
@group(0) @binding(1) var<storage, read> vectors: array<f32>;
@group(0) @binding(2) var<storage, read> coefs: array<f32>;
@group(0) @binding(3) var<storage, read_write> combined: array<f32>;

// Workgroups: (⌈dim/256⌉, groups, 1).
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let d = gid.x;
    let g = gid.y;
    if d >= prm.dim || g >= prm.groups {
        return;
    }
    var acc = 0.0;
    for (var k = 0u; k < prm.points; k++) {
        acc += coefs[g * prm.points + k] * vectors[(g * prm.points + k) * prm.dim + d];
    }
    combined[g * prm.dim + d] = acc;
}
