// The gradient with respect to the parameters, from the logits' derivatives:
//   G[s, (c, j)] = Σ_i dz[s, i, c] x[row(g, i), j]   and   G[s, bias c] = Σ_i dz[s, i, c],
// for the rows c0 .. c0+nrows of W (one row is the notebook's `parameter_column`; all rows with
// the biases is θ's own layout). One invocation per output entry, a plain loop over the samples
// (consecutive invocations read consecutive features of a row; no barriers, see logits.wgsl).
//! import data

struct WeightGradParams {
    sets_per_group: u32,
    rows: u32,
    classes: u32,
    table_offset: u32,
    // First row of W and number of rows in the output.
    c0: u32,
    nrows: u32,
    // 1: append the nrows bias entries (the output's columns run to p + 1).
    with_bias: u32,
    // Output entries per set.
    out_dim: u32,
    // Distance between groups' rows in the row table.
    group_stride: u32,
    // Total parameter sets.
    sets: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> prm: WeightGradParams;
@group(0) @binding(1) var<storage, read> dlogits: array<f32>;
@group(0) @binding(2) var<storage, read> row_table: array<u32>;
@group(0) @binding(3) var<storage, read_write> grads: array<f32>;

// Workgroups: (⌈sets·out_dim/64⌉, …) as linear_groups; invocation id = set·out_dim + entry.
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let id = gid.x + gid.y * 65535u * 64u;
    if id >= prm.sets * prm.out_dim {
        return;
    }
    let ps = id / prm.out_dim;
    let e = id % prm.out_dim;
    let p = data_info.p;
    let w_entries = prm.nrows * p;
    var cl: u32;
    var j: u32;
    var bias = false;
    if e < w_entries {
        cl = e / p;
        j = e % p;
    } else {
        cl = e - w_entries;
        bias = true;
    }
    let g = ps / prm.sets_per_group;
    let table = prm.table_offset + g * prm.group_stride;
    let dz_base = ps * prm.rows * prm.classes + prm.c0 + cl;
    var acc = 0.0;
    if bias {
        for (var i = 0u; i < prm.rows; i++) {
            acc += dlogits[dz_base + i * prm.classes];
        }
    } else {
        for (var i = 0u; i < prm.rows; i++) {
            acc += dlogits[dz_base + i * prm.classes] * feature_raw(row_table[table + i], j);
        }
        acc *= feature_scale();
    }
    grads[id] = acc;
}
