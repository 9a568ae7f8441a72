// Centres each group's K vectors in place: G[gK + k, d] −= (1/K) Σ_l G[gK + l, d], so the Gram
// matrix of the centred vectors keeps its precision in f32 (σ₂/σ₁ is often ~0.01: centring an
// f32 Gram matrix afterwards would lose four digits to cancellation).

struct CenterParams {
    points: u32,
    dim: u32,
    groups: u32,
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> prm: CenterParams;
@group(0) @binding(1) var<storage, read_write> vectors: array<f32>;

// Workgroups: (⌈dim/256⌉, groups, 1).
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let d = gid.x;
    let g = gid.y;
    if d >= prm.dim || g >= prm.groups {
        return;
    }
    var sum = 0.0;
    for (var k = 0u; k < prm.points; k++) {
        sum += vectors[(g * prm.points + k) * prm.dim + d];
    }
    let mean = sum / f32(prm.points);
    for (var k = 0u; k < prm.points; k++) {
        vectors[(g * prm.points + k) * prm.dim + d] -= mean;
    }
}
