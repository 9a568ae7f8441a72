// The batched matmul: logits of many parameter sets on many groups of rows at once,
//   z[s, i, c] = Σ_j W_s[c, j] x[row(g, i), j] + b_s[c],   g = s / sets_per_group.
// Training uses one group (R runs on one batch); the analysis one group per batch with its K
// perturbed copies. One invocation per (set, sample) with a plain loop over the features and
// no workgroup memory: on CPU adapters (lavapipe) barriers cost more than the arithmetic, and on
// GPUs the rows stay in cache across the sets that share them.
//! import data

struct LogitsParams {
    // Parameter sets that share one group of rows.
    sets_per_group: u32,
    // Rows (samples) per group.
    rows: u32,
    classes: u32,
    // Parameters per set: the stride of theta.
    dim: u32,
    // First entry of the row table this dispatch reads, and the distance between groups' rows.
    table_offset: u32,
    group_stride: u32,
    // Total parameter sets.
    sets: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> prm: LogitsParams;
@group(0) @binding(1) var<storage, read> theta: array<f32>;
@group(0) @binding(2) var<storage, read> row_table: array<u32>;
@group(0) @binding(3) var<storage, read_write> logits: array<f32>;

// Workgroups: (⌈sets·rows/64⌉, 1, 1); invocation id = set·rows + sample.
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let id = gid.x + gid.y * 65535u * 64u;
    if id >= prm.sets * prm.rows {
        return;
    }
    let ps = id / prm.rows;
    let i = id % prm.rows;
    let g = ps / prm.sets_per_group;
    let row = row_table[prm.table_offset + g * prm.group_stride + i];
    let p = data_info.p;
    let base = ps * prm.dim;
    for (var c = 0u; c < prm.classes; c++) {
        let w = base + c * p;
        var acc = 0.0;
        for (var j = 0u; j < p; j++) {
            acc += theta[w + j] * feature_raw(row, j);
        }
        logits[id * prm.classes + c] = acc * feature_scale() + theta[base + prm.classes * p + c];
    }
}
