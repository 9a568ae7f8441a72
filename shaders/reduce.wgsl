// Sums `count` consecutive vec2 partials per set and scales them: out[s] = scale · Σ partials.
// Used for whole-set metrics (mean loss, accuracy) after `evaluate`.
//! import codes
//! import tree

struct ReduceParams {
    sets: u32,
    count: u32,
    scale: f32,
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> prm: ReduceParams;
@group(0) @binding(1) var<storage, read> partials: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read_write> totals: array<vec2<f32>>;

// One workgroup per set: workgroups (sets, 1, 1).
@compute @workgroup_size(WG_WIDE)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let s = wg.x;
    var acc = vec2<f32>(0.0);
    for (var k = lid; k < prm.count; k += WG_WIDE) {
        acc += partials[s * prm.count + k];
    }
    let total = tree_sum(acc, lid);
    if lid == 0u {
        totals[s] = prm.scale * total;
    }
}
