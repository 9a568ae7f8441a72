// The batched matmul: logits of many parameter sets on many groups of rows at once,
//   z[s, i, c] = Σ_j W_s[c, j] x[row(g, i), j] + b_s[c],   g = s / sets_per_group.
// Training uses one group (R runs on one batch); the analysis one group per batch with its K
// perturbed copies. One invocation per (set, sample), or per 4 × 4 tile of them, with a plain
// loop over the features and no workgroup memory: on CPU adapters (lavapipe) barriers cost more
// than the arithmetic, and on GPUs the rows stay in cache across the sets that share them.
//! import codes
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

// Sets and rows per invocation: 1, or 4 where many sets share their rows (the analysis' K
// perturbed copies). A 4 × 4 tile makes 8 loads feed 16 multiply-adds instead of 2 loads per
// multiply-add: on CPU adapters every per-lane load is a scalar gather, so loads set the speed.
override TILE: u32 = 1u;

// Workgroups: linear_groups(groups·⌈sets_per_group/TILE⌉·⌈rows/TILE⌉, 64);
// invocation id = (g·set_tiles + set_tile)·row_tiles + row_tile.
@compute @workgroup_size(WG_1D)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let id = flat_id(gid);
    let set_tiles = (prm.sets_per_group + TILE - 1u) / TILE;
    let row_tiles = (prm.rows + TILE - 1u) / TILE;
    if id >= prm.sets / prm.sets_per_group * set_tiles * row_tiles {
        return;
    }
    let g = id / (set_tiles * row_tiles);
    let s0 = id / row_tiles % set_tiles * TILE;
    let i0 = id % row_tiles * TILE;
    let p = data_info.p;
    // The tile's rows and sets, clamped to the last one so partial tiles read valid memory.
    var rows: array<u32, MAX_TILE>;
    var bases: array<u32, MAX_TILE>;
    for (var a = 0u; a < TILE; a++) {
        rows[a] = row_table[prm.table_offset + g * prm.group_stride + min(i0 + a, prm.rows - 1u)];
        bases[a] = (g * prm.sets_per_group + min(s0 + a, prm.sets_per_group - 1u)) * prm.dim;
    }
    for (var c = 0u; c < prm.classes; c++) {
        var acc: array<f32, MAX_TILE * MAX_TILE>; // [set][row] of the tile
        // Four features at a time: past the last one x is 0, and θ's index is clamped to it.
        for (var j = 0u; j < p; j += 4u) {
            var x: array<vec4<f32>, MAX_TILE>;
            for (var a = 0u; a < TILE; a++) {
                x[a] = features4_raw(rows[a], j);
            }
            let last = p - 1u;
            for (var s = 0u; s < TILE; s++) {
                let w_row = bases[s] + c * p;
                let w = vec4<f32>(
                    theta[w_row + j],
                    theta[w_row + min(j + 1u, last)],
                    theta[w_row + min(j + 2u, last)],
                    theta[w_row + min(j + 3u, last)],
                );
                for (var a = 0u; a < TILE; a++) {
                    acc[s * MAX_TILE + a] += dot(w, x[a]);
                }
            }
        }
        for (var s = 0u; s < TILE; s++) {
            let ps = s0 + s;
            let bias = theta[bases[s] + prm.classes * p + c];
            for (var a = 0u; a < TILE; a++) {
                let i = i0 + a;
                if ps < prm.sets_per_group && i < prm.rows {
                    let out = ((g * prm.sets_per_group + ps) * prm.rows + i) * prm.classes + c;
                    logits[out] = acc[s * MAX_TILE + a] * feature_scale() + bias;
                }
            }
        }
    }
}
