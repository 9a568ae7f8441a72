// The analysis' per-sample residuals of K perturbed copies of θ, in one pass: for the set
// s = g·K + k (batch g, perturbation k) and sample i of batch g,
//   z[c] = base[g, i, c] + Σ_j δ_k[c, j] x[row(g, i), j] + δ_k[bias c],
//   residuals[s, i, :] = grad_scale · d loss_i / d z,
// with δ_k drawn here from the counter PRNG (the numbers of perturb.wgsl, which this replaces in
// the analysis) and base = θ·x̃ of the batch computed once by logits.wgsl. Why: on CPU adapters
// (lavapipe) every per-lane storage load is a gather and loads set the speed. Drawing δ costs no
// load, no perturbed copy of θ is written or read, and one word of four u8 pixels feeds
// 4·CLASSES multiply-adds (logits.wgsl's tiles: 8 loads per 64). The block gradient G = X̃ᵀR is
// never formed: the host takes σ and q from R and the batch's features (`crate::residual`).
//! import codes
//! import data
//! import loss
//! import prng

struct ResidualParams {
    // K, and the samples per batch (b).
    points: u32,
    rows: u32,
    groups: u32,
    // Features of one row of W (p) are the data's; θ has CLASSES·(p + 1) entries.
    // 0: uniform (scale · U[0,1)), 1: Gaussian (scale · N(0,1)).
    kind: u32,
    scale: f32,
    seed_lo: u32,
    seed_hi: u32,
    stream: u32,
    // Multiplies d loss / d z: grad_scale/b of the request.
    grad_scale: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> prm: ResidualParams;
// [groups, rows, CLASSES]: θ·x̃ of every sample of every batch.
@group(0) @binding(1) var<storage, read> base: array<f32>;
@group(0) @binding(2) var<storage, read> batch_ids: array<u32>;
// groups × rows training-set indices.
@group(0) @binding(3) var<storage, read> row_table: array<u32>;
// [groups·K, rows, CLASSES].
@group(0) @binding(4) var<storage, read_write> residuals: array<f32>;

// The model's rows of W and the samples one invocation accumulates (SAMPLES·CLASSES ≤
// RESIDUAL_ACC, set from Rust): constants at pipeline creation, so the loops over them unroll
// and the accumulators stay in registers, and an invocation's loop passes stay near p/4 (far
// under llvmpipe's cap of 65,535 an invocation).
override CLASSES: u32 = 1u;
override SAMPLES: u32 = 1u;
// u8 pixels whose rows start on a word (p a multiple of 4, as MNIST's 784): four features are
// always one word load. A constant because llvmpipe runs both sides of a branch under a mask:
// features4_raw's runtime test would pay its unaligned fallback's four gathers on every load
// (measured: 1.9 → 0.95 CPU-seconds for the 395 batches' residuals of one perturbation set).
override ALIGNED: bool = false;

fn features4(row: u32, col: u32) -> vec4<f32> {
    if ALIGNED && X_U8 {
        let w = x_words[(row * data_info.p + col) >> 2u];
        return vec4<f32>((vec4<u32>(w) >> vec4<u32>(0u, 8u, 16u, 24u)) & vec4<u32>(0xffu));
    }
    return features4_raw(row, col);
}
fn delta(prefix: u32, index: u32) -> f32 {
    if prm.kind == 0u {
        return prm.scale * prng_uniform_from(prefix, index);
    }
    return prm.scale * prng_normal_from(prefix, index);
}

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
    let p = data_info.p;
    let prefix = prng_prefix(vec2<u32>(prm.seed_lo, prm.seed_hi), prm.stream, batch_ids[g], k);
    // The tile's rows, clamped to the batch's last so a partial tile reads valid memory.
    var rows: array<u32, RESIDUAL_ACC>;
    for (var t = 0u; t < SAMPLES; t++) {
        rows[t] = row_table[g * prm.rows + min(i0 + t, prm.rows - 1u)];
    }
    var acc: array<f32, RESIDUAL_ACC>; // [class][sample]
    for (var j = 0u; j < p; j += 4u) {
        // δ of features j .. j + 3 of every row of W. Past the last feature x is 0, so the
        // indices that run into the next row (or the biases) multiply nothing.
        var d: array<vec4<f32>, MAX_CLASSES>;
        for (var c = 0u; c < CLASSES; c++) {
            let at = c * p + j;
            d[c] = vec4<f32>(delta(prefix, at), delta(prefix, at + 1u), delta(prefix, at + 2u), delta(prefix, at + 3u));
        }
        for (var t = 0u; t < SAMPLES; t++) {
            let x = features4(rows[t], j);
            for (var c = 0u; c < CLASSES; c++) {
                acc[c * SAMPLES + t] += dot(d[c], x);
            }
        }
    }
    for (var t = 0u; t < SAMPLES; t++) {
        let i = i0 + t;
        if i >= prm.rows {
            break;
        }
        var z: array<f32, MAX_CLASSES>;
        for (var c = 0u; c < CLASSES; c++) {
            let bias = delta(prefix, CLASSES * p + c);
            z[c] = base[(g * prm.rows + i) * CLASSES + c] + acc[c * SAMPLES + t] * feature_scale() + bias;
        }
        _ = loss_and_dlogits(&z, CLASSES, targets[rows[t]]);
        let out = ((g * prm.points + k) * prm.rows + i) * CLASSES;
        for (var c = 0u; c < CLASSES; c++) {
            residuals[out + c] = prm.grad_scale * z[c];
        }
    }
}
