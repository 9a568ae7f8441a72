// What the two residual kernels share (residuals.wgsl, and residuals_subgroup.wgsl where the
// adapter has subgroups): their parameters and bindings, the perturbation δ drawn from the counter
// PRNG (the numbers of perturb.wgsl), the batch's pixels and the residuals' output. For the set
// s = g·K + k (batch g, perturbation k) and sample i of batch g,
//   z[c] = base[g, i, c] + Σ_j δ_k[c, j] x[row(g, i), j] + δ_k[bias c],
//   residuals[s, i, :] = grad_scale · d loss_i / d z.
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
    // PERTURB_UNIFORM (scale · U[0,1)) or PERTURB_GAUSSIAN (scale · N(0,1)): the pipeline's GAUSSIAN.
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
// and the accumulators stay in registers, and an invocation's loop passes stay far under
// llvmpipe's cap of 65,535 an invocation (counted by the host).
override CLASSES: u32 = 1u;
override SAMPLES: u32 = 1u;
// u8 pixels whose rows start on a word (p a multiple of 4, as MNIST's 784): four features are
// always one word load. A constant because llvmpipe runs both sides of a branch under a mask:
// features4_raw's runtime test would pay its unaligned fallback's four gathers on every load
// (measured: 1.9 → 0.95 CPU-seconds for the 395 batches' residuals of one perturbation set).
override ALIGNED: bool = false;

// Features col .. col + 3 of `row` (zero past the row's end).
fn features4(row: u32, col: u32) -> vec4<f32> {
    if ALIGNED && X_U8 {
        let w = x_words[(row * data_info.p + col) >> 2u];
        return vec4<f32>((vec4<u32>(w) >> vec4<u32>(0u, 8u, 16u, 24u)) & vec4<u32>(0xffu));
    }
    return features4_raw(row, col);
}

// The counter prefix of perturbation k of batch g: δ_k[index] = delta(prefix, index).
fn delta_prefix(g: u32, k: u32) -> u32 {
    return prng_prefix(vec2<u32>(prm.seed_lo, prm.seed_hi), prm.stream, batch_ids[g], k);
}

// The perturbation's kind (prm.kind, checked by the host against the pipeline): a constant
// because llvmpipe cannot tell that a uniform's branch goes the same way in every lane and runs
// both sides under a mask, so every uniform δ would also pay Box–Muller's three hashes, log, cos
// and sqrt (measured: 0.82–0.98 s → 0.53 s of device work for the whole analysis).
override GAUSSIAN: bool = false;

fn delta(prefix: u32, index: u32) -> f32 {
    if GAUSSIAN {
        return prm.scale * prng_normal_from(prefix, index);
    }
    return prm.scale * prng_uniform_from(prefix, index);
}

// δ of features j .. j + 3 of every row of W. Past the last feature x is 0, so the indices that
// run into the next row (or the biases) multiply nothing.
fn deltas4(prefix: u32, j: u32) -> array<vec4<f32>, MAX_CLASSES> {
    var d: array<vec4<f32>, MAX_CLASSES>;
    for (var c = 0u; c < CLASSES; c++) {
        let at = c * data_info.p + j;
        d[c] = vec4<f32>(delta(prefix, at), delta(prefix, at + 1u), delta(prefix, at + 2u), delta(prefix, at + 3u));
    }
    return d;
}

// The training-set rows of samples i0 .. i0 + SAMPLES of batch g, clamped to the batch's last
// so that a partial tile reads valid memory.
fn tile_rows(g: u32, i0: u32) -> array<u32, RESIDUAL_ACC> {
    var rows: array<u32, RESIDUAL_ACC>;
    for (var t = 0u; t < SAMPLES; t++) {
        rows[t] = row_table[g * prm.rows + min(i0 + t, prm.rows - 1u)];
    }
    return rows;
}

// The residuals of perturbation k for the tile's samples, from acc[c·SAMPLES + t] = Σ_j δ·x_raw.
fn write_residuals(g: u32, k: u32, i0: u32, prefix: u32, rows: ptr<function, array<u32, RESIDUAL_ACC>>, acc: ptr<function, array<f32, RESIDUAL_ACC>>) {
    let p = data_info.p;
    for (var t = 0u; t < SAMPLES; t++) {
        let i = i0 + t;
        if i >= prm.rows {
            break;
        }
        var z: array<f32, MAX_CLASSES>;
        for (var c = 0u; c < CLASSES; c++) {
            let bias = delta(prefix, CLASSES * p + c);
            z[c] = base[(g * prm.rows + i) * CLASSES + c] + (*acc)[c * SAMPLES + t] * feature_scale() + bias;
        }
        _ = loss_and_dlogits(&z, CLASSES, targets[(*rows)[t]]);
        let out = ((g * prm.points + k) * prm.rows + i) * CLASSES;
        for (var c = 0u; c < CLASSES; c++) {
            residuals[out + c] = prm.grad_scale * z[c];
        }
    }
}
