// A whole epoch of SGD in one dispatch: workgroup r trains run r through every step of the
// epoch, forward, gradient and update fused, so an epoch costs one dispatch however many steps
// it has (an epoch is latency-bound: ~200 dependent steps of ~0.2 MFLOP each). R workgroups are
// R independent runs sharing the resident data: a learning-rate sweep is the same dispatch.
// Per step the rate comes from a table, or from the stochastic Polyak rule, or from Armijo
// backtracking on the batch (SLS). The unfused kernels (logits, dlogits, weight_grad,
// sgd_update) are the reference this kernel is tested against.
//! import codes
//! import data
//! import loss
//! import tree

struct EpochParams {
    runs: u32,
    steps: u32,
    batch: u32,
    classes: u32,
    dim: u32,
    // Batch tables; run r uses table r % tables.
    tables: u32,
    // RULE_TABLE, RULE_POLYAK (stochastic Polyak) or RULE_ARMIJO (Armijo backtracking).
    rule: u32,
    max_backtracks: u32,
    armijo_c: f32,
    armijo_beta: f32,
    armijo_growth: f32,
    max_lr: f32,
    polyak_c: f32,
    // This dispatch trains steps first_step .. first_step + count of the epoch; an epoch may be
    // split over several dispatches of one pass (Armijo's step size then restarts each dispatch).
    first_step: u32,
    count: u32,
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> prm: EpochParams;
@group(0) @binding(1) var<storage, read_write> theta: array<f32>;
@group(0) @binding(2) var<storage, read> batches: array<u32>;
@group(0) @binding(3) var<storage, read> lrs: array<f32>;
@group(0) @binding(4) var<storage, read_write> grads: array<f32>;
@group(0) @binding(5) var<storage, read_write> stats: array<f32>;

const WG: u32 = WG_WIDE;
// Samples per pass through workgroup memory, threads per sample in the forward pass
// (CHUNK · PARTS = WG) and classes per forward pass; the host counts the loops they make.
const CHUNK: u32 = EPOCH_CHUNK;
const PARTS: u32 = EPOCH_PARTS;
const CG: u32 = EPOCH_CLASS_GROUP;

var<workgroup> part_z: array<f32, CHUNK * PARTS * CG>; // [CHUNK][PARTS][CG] partial dot products
var<workgroup> z_sh: array<f32, CHUNK * MAX_CLASSES>; // [CHUNK][MAX_CLASSES] logits, then scaled d loss / d z
var<workgroup> rows_sh: array<u32, CHUNK>;

// Σ of one value per thread, returned to every thread as a uniform value.
fn workgroup_sum(v: f32, lid: u32) -> f32 {
    return tree_sum(vec2<f32>(v, 0.0), lid).x;
}

// The training-set rows of samples i0 .. i0 + n of the step into rows_sh.
fn load_rows(row_base: u32, i0: u32, n: u32, lid: u32) {
    if lid < n {
        rows_sh[lid] = batches[row_base + i0 + lid];
    }
    workgroupBarrier();
}

// Parameter k of the current run at θ − h·g (h = 0: at θ, without reading g).
fn param_at(k: u32, h: f32) -> f32 {
    if h != 0.0 {
        return theta[k] - h * grads[k];
    }
    return theta[k];
}

// Logits of the n samples in rows_sh into z_sh, at θ − h·g.
fn forward_chunk(base: u32, n: u32, h: f32, lid: u32) {
    let p = data_info.p;
    let i = lid / PARTS;
    let part = lid % PARTS;
    let span = (p + PARTS - 1u) / PARTS;
    let j_lo = min(p, part * span);
    let j_hi = min(p, j_lo + span);
    for (var cg = 0u; cg < prm.classes; cg += CG) {
        let nc = min(CG, prm.classes - cg);
        var acc: array<f32, CG>;
        if i < n {
            let row = rows_sh[i];
            for (var j = j_lo; j < j_hi; j++) {
                let x = feature_raw(row, j);
                for (var cc = 0u; cc < nc; cc++) {
                    acc[cc] += param_at(base + (cg + cc) * p + j, h) * x;
                }
            }
        }
        for (var cc = 0u; cc < CG; cc++) {
            part_z[(i * PARTS + part) * CG + cc] = acc[cc] * feature_scale();
        }
        workgroupBarrier();
        if lid < n {
            for (var cc = 0u; cc < nc; cc++) {
                var z = param_at(base + prm.classes * p + cg + cc, h);
                for (var q = 0u; q < PARTS; q++) {
                    z += part_z[(lid * PARTS + q) * CG + cc];
                }
                z_sh[lid * MAX_CLASSES + cg + cc] = z;
            }
        }
        workgroupBarrier();
    }
}

// Σ of the n samples' losses; leaves d loss / d z · (1/b) in z_sh.
fn chunk_loss(n: u32, lid: u32) -> f32 {
    var l = 0.0;
    if lid < n {
        var z: array<f32, MAX_CLASSES>;
        for (var c = 0u; c < prm.classes; c++) {
            z[c] = z_sh[lid * MAX_CLASSES + c];
        }
        let s = loss_and_dlogits(&z, prm.classes, targets[rows_sh[lid]]);
        l = s.loss;
        let inv_b = 1.0 / f32(prm.batch);
        for (var c = 0u; c < prm.classes; c++) {
            z_sh[lid * MAX_CLASSES + c] = z[c] * inv_b;
        }
    }
    return workgroup_sum(l, lid);
}

// grads (+)= Σ_i dz_i x_iᵀ over the chunk; each thread owns the parameters d ≡ lid (mod WG).
fn accumulate_grad(base: u32, n: u32, first: bool, lid: u32) {
    let p = data_info.p;
    for (var c = 0u; c < prm.classes; c++) {
        for (var j = lid; j < p; j += WG) {
            var g = 0.0;
            for (var i = 0u; i < n; i++) {
                g += z_sh[i * MAX_CLASSES + c] * feature_raw(rows_sh[i], j);
            }
            g *= feature_scale();
            let k = base + c * p + j;
            if first {
                grads[k] = g;
            } else {
                grads[k] += g;
            }
        }
    }
    for (var c = lid; c < prm.classes; c += WG) {
        var g = 0.0;
        for (var i = 0u; i < n; i++) {
            g += z_sh[i * MAX_CLASSES + c];
        }
        let k = base + prm.classes * p + c;
        if first {
            grads[k] = g;
        } else {
            grads[k] += g;
        }
    }
}

// Mean loss of the step's batch at θ − h·g; with `backward`, g ← its gradient (at h = 0).
fn batch_pass(base: u32, row_base: u32, h: f32, backward: bool, lid: u32) -> f32 {
    var total = 0.0;
    for (var i0 = 0u; i0 < prm.batch; i0 += CHUNK) {
        let n = min(CHUNK, prm.batch - i0);
        load_rows(row_base, i0, n, lid);
        forward_chunk(base, n, h, lid);
        total += chunk_loss(n, lid);
        if backward {
            accumulate_grad(base, n, i0 == 0u, lid);
        }
        workgroupBarrier();
    }
    return total / f32(prm.batch);
}

// ‖g‖² of the current run's gradient.
fn grad_norm_sq(base: u32, lid: u32) -> f32 {
    var mine = 0.0;
    for (var d = lid; d < prm.dim; d += WG) {
        let g = grads[base + d];
        mine += g * g;
    }
    return workgroup_sum(mine, lid);
}

// Workgroups: (runs, 1, 1).
@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let run = wg.x;
    let table = run % prm.tables;
    let base = run * prm.dim;
    // Armijo's trial rate carries over from the previous step, also across the dispatches an
    // epoch is cut into (that step's statistics were written by the previous dispatch).
    var h_prev = 0.0;
    if prm.first_step > 0u {
        h_prev = stats[(run * prm.steps + prm.first_step - 1u) * 4u + 1u];
    }
    for (var s = prm.first_step; s < prm.first_step + prm.count; s++) {
        let row_base = (table * prm.steps + s) * prm.batch;
        let f = batch_pass(base, row_base, 0.0, true, lid);
        storageBarrier();
        var h = lrs[run * prm.steps + s];
        var gsq = 0.0;
        var trials = 0u;
        if prm.rule != RULE_TABLE {
            gsq = grad_norm_sq(base, lid);
        }
        if prm.rule == RULE_POLYAK {
            h = prm.max_lr;
            if gsq > 0.0 {
                h = min(f / (prm.polyak_c * gsq), prm.max_lr);
            }
        } else if prm.rule == RULE_ARMIJO {
            if s > 0u {
                h = min(h_prev * prm.armijo_growth, prm.max_lr);
            }
            for (var t = 0u; t < prm.max_backtracks; t++) {
                let trial = batch_pass(base, row_base, h, false, lid);
                trials += 1u;
                if trial <= f - prm.armijo_c * h * gsq {
                    break;
                }
                h *= prm.armijo_beta;
            }
        }
        h_prev = h;
        for (var d = lid; d < prm.dim; d += WG) {
            theta[base + d] -= h * grads[base + d];
        }
        if lid == 0u {
            let o = (run * prm.steps + s) * 4u;
            stats[o] = f;
            stats[o + 1u] = h;
            stats[o + 2u] = gsq;
            // trials + 1: the host checks every step ran (a zeroed entry means it did not).
            stats[o + 3u] = f32(trials) + 1.0;
        }
        storageBarrier();
        workgroupBarrier();
    }
}
