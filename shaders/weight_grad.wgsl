// The gradient with respect to the parameters, from the logits' derivatives:
//   G[s, (c, j)] = Σ_i dz[s, i, c] x[row(g, i), j]   and   G[s, bias c] = Σ_i dz[s, i, c],
// for the rows c0 .. c0+nrows of W (one row is the notebook's `parameter_column`; all rows with
// the biases is θ's own layout). One invocation per output entry, or per tile of 4 sets × 4
// features, a plain loop over the samples (consecutive invocations read consecutive features of
// a row; no barriers, see logits.wgsl).
//! import codes
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

// Sets and features per invocation: SET_TILE sets (4 where many sets share their rows, as in the
// analysis, else 1) × TILE consecutive features of one row of W. 4 × 4 makes 8 loads feed 16
// multiply-adds instead of 2 loads per multiply-add (see logits.wgsl); 1 × 4 shares each sample's
// row index and d loss / d z between 4 features. Bias entries take one invocation per (set tile, row).
override SET_TILE: u32 = 1u;
override TILE: u32 = 1u;

// Workgroups: linear_groups(groups·⌈sets_per_group/SET_TILE⌉·tiles_per_set, 64) where
// tiles_per_set = nrows·⌈p/TILE⌉ (+ nrows with the biases); id = (g·set_tiles + set_tile)·tiles_per_set + t.
@compute @workgroup_size(WG_1D)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let id = flat_id(gid);
    let p = data_info.p;
    let j_tiles = (p + TILE - 1u) / TILE;
    let w_tiles = prm.nrows * j_tiles;
    let tiles_per_set = w_tiles + select(0u, prm.nrows, prm.with_bias == 1u);
    let set_tiles = (prm.sets_per_group + SET_TILE - 1u) / SET_TILE;
    if id >= prm.sets / prm.sets_per_group * set_tiles * tiles_per_set {
        return;
    }
    let g = id / (set_tiles * tiles_per_set);
    let s0 = id / tiles_per_set % set_tiles * SET_TILE;
    let t = id % tiles_per_set;
    let bias = t >= w_tiles;
    let cl = select(t / j_tiles, t - w_tiles, bias);
    let j0 = select(t % j_tiles * TILE, 0u, bias);
    let table = prm.table_offset + g * prm.group_stride;
    // d loss / d z of the tile's sets (clamped to the last set) for row c0 + cl of W.
    var dz_base: array<u32, MAX_TILE>;
    for (var s = 0u; s < SET_TILE; s++) {
        let ps = g * prm.sets_per_group + min(s0 + s, prm.sets_per_group - 1u);
        dz_base[s] = ps * prm.rows * prm.classes + prm.c0 + cl;
    }
    var acc: array<f32, MAX_TILE * MAX_TILE>; // [set][feature] of the tile
    for (var i = 0u; i < prm.rows; i++) {
        let row = row_table[table + i];
        // The tile's features of this sample (one word load for four u8 pixels), 1 for a bias.
        var x = vec4<f32>(feature_raw(row, j0), 0.0, 0.0, 0.0);
        if TILE == 4u {
            x = features4_raw(row, j0);
        }
        x = select(x, vec4<f32>(1.0), bias);
        for (var s = 0u; s < SET_TILE; s++) {
            let dz = dlogits[dz_base[s] + i * prm.classes];
            for (var a = 0u; a < TILE; a++) {
                acc[s * MAX_TILE + a] += dz * x[a];
            }
        }
    }
    let scale = select(feature_scale(), 1.0, bias);
    for (var s = 0u; s < SET_TILE; s++) {
        let ps = s0 + s;
        let out = (g * prm.sets_per_group + ps) * prm.out_dim;
        for (var a = 0u; a < select(TILE, 1u, bias); a++) {
            let j = j0 + a;
            if ps < prm.sets_per_group && j < p {
                grads[out + select(cl * p + j, prm.nrows * p + cl, bias)] = acc[s * MAX_TILE + a] * scale;
            }
        }
    }
}
