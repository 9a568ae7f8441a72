// Whole-set evaluation: the loss and correctness of every sample under every parameter set,
// summed per workgroup (a tree in workgroup memory); `reduce` adds the partial sums.
//! import codes
//! import data
//! import loss
//! import tree

struct EvaluateParams {
    sets: u32,
    classes: u32,
    dim: u32,
    // Workgroups per set along x: the stride of the partial sums.
    groups: u32,
}

@group(0) @binding(0) var<uniform> prm: EvaluateParams;
@group(0) @binding(1) var<storage, read> theta: array<f32>;
@group(0) @binding(2) var<storage, read_write> partials: array<vec2<f32>>;

// Workgroups: (⌈n/WG_WIDE⌉, sets, 1).
@compute @workgroup_size(WG_WIDE)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let s = wg.y;
    let row = wg.x * WG_WIDE + lid;
    let p = data_info.p;
    var result = vec2<f32>(0.0);
    if row < data_info.n {
        var z: array<f32, MAX_CLASSES>;
        let base = s * prm.dim;
        // Classes outer: the accumulator stays a register (an array indexed in the inner loop
        // would live in memory on CPU adapters).
        for (var c = 0u; c < prm.classes; c++) {
            var acc = 0.0;
            let w = base + c * p;
            // Four features at a time (one word load for four u8 pixels); past the last feature
            // x is 0 and θ's index is clamped to it.
            let last = p - 1u;
            for (var j = 0u; j < p; j += 4u) {
                let w4 = vec4<f32>(theta[w + j], theta[w + min(j + 1u, last)], theta[w + min(j + 2u, last)], theta[w + min(j + 3u, last)]);
                acc += dot(w4, features4_raw(row, j));
            }
            z[c] = acc * feature_scale() + theta[base + prm.classes * p + c];
        }
        let l = loss_and_dlogits(&z, prm.classes, targets[row]);
        result = vec2<f32>(l.loss, l.correct);
    }
    let total = tree_sum(result, lid);
    if lid == 0u {
        partials[s * prm.groups + wg.x] = total;
    }
}
