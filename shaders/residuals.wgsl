// The analysis' per-sample residuals of K perturbed copies of θ, in one pass (the sums are in
// shared/residual.wgsl), with δ_k drawn here from the counter PRNG and base = θ·x̃ of the batch
// computed once by the host (`residual::base_logits`). Why: on CPU adapters (lavapipe) every
// per-lane storage load is a gather and loads set the speed. Drawing δ costs no load, no
// perturbed copy of θ is written or read, and one word of four u8 pixels feeds 4·CLASSES
// multiply-adds (logits.wgsl's tiles: 8 loads per 64). The block gradient G = X̃ᵀR is never formed: the host takes σ and q from R and
// the batch's features (`crate::residual`). Adapters with subgroups of at least 8 lanes take
// the generated residuals_subgroup (src/shader_source/residuals.rs), which shares each pixel load
// between 8 lanes.
//! import residual

// Workgroups: linear_groups(groups·⌈rows/SAMPLES⌉·K, 64); id = (g·tiles + tile)·K + k, so the
// lanes of one subgroup are perturbations of the same samples.
@compute @workgroup_size(WG_1D)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let id = flat_id(gid);
    let tiles = (prm.rows + SAMPLES - 1u) / SAMPLES;
    if id >= prm.groups * tiles * prm.points {
        return;
    }
    let k = id % prm.points;
    let tile = id / prm.points % tiles;
    let g = id / (prm.points * tiles);
    let i0 = tile * SAMPLES;
    let prefix = delta_prefix(g, k);
    var rows = tile_rows(g, i0);
    var acc: array<f32, RESIDUAL_ACC>; // [class][sample], or [sample] with PAIR
    for (var j = 0u; j < data_info.p; j += 4u) {
        let d = deltas4(prefix, j);
        let d_pair = d[1] - d[0];
        for (var t = 0u; t < SAMPLES; t++) {
            let x = features4(rows[t], j);
            if PAIR {
                acc[t] += dot(d_pair, x);
            } else {
                for (var c = 0u; c < CLASSES; c++) {
                    acc[c * SAMPLES + t] += dot(d[c], x);
                }
            }
        }
    }
    write_residuals(g, k, i0, prefix, &rows, &acc);
}
