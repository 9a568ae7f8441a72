// The gradient with respect to the parameters, from the logits' derivatives:
//   G[s, (c, j)] = Σ_i dz[s, i, c] x[row(g, i), j]   and   G[s, bias c] = Σ_i dz[s, i, c],
// for the rows c0 .. c0+nrows of W (one row is the notebook's `parameter_column`; all rows with
// the biases is θ's own layout). Tiled 16 × 16 over (set·row, column), reducing over samples.
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
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> prm: WeightGradParams;
@group(0) @binding(1) var<storage, read> dlogits: array<f32>;
@group(0) @binding(2) var<storage, read> row_table: array<u32>;
@group(0) @binding(3) var<storage, read_write> grads: array<f32>;

const TILE: u32 = 16u;
var<workgroup> dz_tile: array<array<f32, 17>, 16>;
var<workgroup> x_tile: array<array<f32, 17>, 16>;

// Workgroups: (⌈(p + with_bias)/16⌉, ⌈sets_per_group·nrows/16⌉, groups).
@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let g = wg.z;
    let p = data_info.p;
    let cols = p + prm.with_bias;
    let m_count = prm.sets_per_group * prm.nrows;
    let m = wg.y * TILE + lid.y;
    let j = wg.x * TILE + lid.x;
    let ps = g * prm.sets_per_group + m / prm.nrows;
    let cl = m % prm.nrows;
    var acc = 0.0;
    for (var i0 = 0u; i0 < prm.rows; i0 += TILE) {
        // dz of (set·row m, sample i0 + lid.x).
        var dz = 0.0;
        if m < m_count && i0 + lid.x < prm.rows {
            dz = dlogits[(ps * prm.rows + i0 + lid.x) * prm.classes + prm.c0 + cl];
        }
        dz_tile[lid.y][lid.x] = dz;
        // x of (sample i0 + lid.y, column j).
        var x = 0.0;
        let xi = i0 + lid.y;
        if xi < prm.rows && j < cols {
            if j < p {
                x = feature(row_table[prm.table_offset + g * prm.group_stride + xi], j);
            } else {
                x = 1.0;
            }
        }
        x_tile[lid.y][lid.x] = x;
        workgroupBarrier();
        for (var ii = 0u; ii < TILE; ii++) {
            acc += dz_tile[lid.y][ii] * x_tile[ii][lid.x];
        }
        workgroupBarrier();
    }
    if m < m_count && j < cols {
        var e = cl * p + j;
        if j == p {
            e = prm.nrows * p + cl;
        }
        grads[ps * prm.out_dim + e] = acc;
    }
}
