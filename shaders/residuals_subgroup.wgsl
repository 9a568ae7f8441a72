// residuals.wgsl (the same residuals, the sums in shared/residual.wgsl) for adapters with
// subgroups of at least SUBGROUP_LANES lanes: one workgroup is one subgroup whose lanes are
// perturbations k of the same samples, and each pixel word is loaded by one lane and handed to
// the others with subgroupBroadcast. Why: on lavapipe a storage load costs the same per lane
// whether the lanes read one address or eight, so residuals.wgsl, where all eight lanes load the
// same word, pays eight loads for one; here each lane loads a different word and a broadcast is
// a register shuffle. No barriers, no workgroup memory.
//! import residual

// Multiply-adds of the 4 features at j with the pixels `x` of the tile's samples.
fn multiply_add(acc: ptr<function, array<f32, RESIDUAL_ACC>>, prefix: u32, j: u32, x: ptr<function, array<vec4<f32>, RESIDUAL_ACC>>) {
    let d = deltas4(prefix, j);
    for (var t = 0u; t < SAMPLES; t++) {
        for (var c = 0u; c < CLASSES; c++) {
            (*acc)[c * SAMPLES + t] += dot(d[c], (*x)[t]);
        }
    }
}

// Workgroups: groups·⌈rows/SAMPLES⌉·⌈K/SUBGROUP_LANES⌉, wrapped into y past DISPATCH_ROW; workgroup
// (g·tiles + tile)·⌈K/lanes⌉ + kg, perturbation k = kg·lanes + lane (lanes past K compute and
// write nothing, so every lane takes part in every broadcast).
@compute @workgroup_size(SUBGROUP_LANES)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {
    let id = wid.x + wid.y * DISPATCH_ROW;
    let tiles = (prm.rows + SAMPLES - 1u) / SAMPLES;
    let kgroups = (prm.points + SUBGROUP_LANES - 1u) / SUBGROUP_LANES;
    if id >= prm.groups * tiles * kgroups {
        return;
    }
    let k = id % kgroups * SUBGROUP_LANES + lane;
    let tile = id / kgroups % tiles;
    let g = id / (kgroups * tiles);
    let i0 = tile * SAMPLES;
    let p = data_info.p;
    let prefix = delta_prefix(g, k);
    var rows = tile_rows(g, i0);
    var acc: array<f32, RESIDUAL_ACC>; // [class][sample]
    var own: array<vec4<f32>, RESIDUAL_ACC>;
    var x: array<vec4<f32>, RESIDUAL_ACC>;
    for (var j = 0u; j < p; j += 4u * SUBGROUP_LANES) {
        // This lane's word of every sample: features j + 4·lane .. + 3 (zero past the row).
        let col = j + 4u * lane;
        for (var t = 0u; t < SAMPLES; t++) {
            own[t] = select(vec4<f32>(0.0), features4(rows[t], col), col < p);
        }
        // The broadcast lane must be a constant: one block per lane of SUBGROUP_LANES = 8.
        for (var t = 0u; t < SAMPLES; t++) { x[t] = subgroupBroadcast(own[t], 0u); }
        multiply_add(&acc, prefix, j, &x);
        for (var t = 0u; t < SAMPLES; t++) { x[t] = subgroupBroadcast(own[t], 1u); }
        multiply_add(&acc, prefix, j + 4u, &x);
        for (var t = 0u; t < SAMPLES; t++) { x[t] = subgroupBroadcast(own[t], 2u); }
        multiply_add(&acc, prefix, j + 8u, &x);
        for (var t = 0u; t < SAMPLES; t++) { x[t] = subgroupBroadcast(own[t], 3u); }
        multiply_add(&acc, prefix, j + 12u, &x);
        for (var t = 0u; t < SAMPLES; t++) { x[t] = subgroupBroadcast(own[t], 4u); }
        multiply_add(&acc, prefix, j + 16u, &x);
        for (var t = 0u; t < SAMPLES; t++) { x[t] = subgroupBroadcast(own[t], 5u); }
        multiply_add(&acc, prefix, j + 20u, &x);
        for (var t = 0u; t < SAMPLES; t++) { x[t] = subgroupBroadcast(own[t], 6u); }
        multiply_add(&acc, prefix, j + 24u, &x);
        for (var t = 0u; t < SAMPLES; t++) { x[t] = subgroupBroadcast(own[t], 7u); }
        multiply_add(&acc, prefix, j + 28u, &x);
    }
    if k < prm.points {
        write_residuals(g, k, i0, prefix, &rows, &acc);
    }
}
