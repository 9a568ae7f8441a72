// The batched matmul: logits of many parameter sets on many groups of rows at once,
//   z[s, i, c] = Σ_j W_s[c, j] x[row(g, i), j] + b_s[c],   g = s / sets_per_group.
// Training uses one group (R runs on one batch); the analysis one group per batch with its K
// perturbed copies. Tiled 16 × 16: a tile of (set, class) rows of W against a tile of samples.
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
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> prm: LogitsParams;
@group(0) @binding(1) var<storage, read> theta: array<f32>;
@group(0) @binding(2) var<storage, read> row_table: array<u32>;
@group(0) @binding(3) var<storage, read_write> logits: array<f32>;

const TILE: u32 = 16u;
var<workgroup> w_tile: array<array<f32, 17>, 16>;
var<workgroup> x_tile: array<array<f32, 17>, 16>;

// Workgroups: (⌈rows/16⌉, ⌈sets_per_group·classes/16⌉, groups).
@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let g = wg.z;
    let p = data_info.p;
    let m_count = prm.sets_per_group * prm.classes;
    // This thread's output: (set, class) row m, sample i.
    let m = wg.y * TILE + lid.y;
    let i = wg.x * TILE + lid.x;
    // This thread's loads: W row wm, sample xi, column k0 + lid.x.
    let wm = wg.y * TILE + lid.y;
    let xi = wg.x * TILE + lid.y;
    let w_base = (g * prm.sets_per_group + wm / prm.classes) * prm.dim + (wm % prm.classes) * p;
    var x_row = 0u;
    if xi < prm.rows {
        x_row = row_table[prm.table_offset + g * prm.group_stride + xi];
    }
    var acc = 0.0;
    for (var k0 = 0u; k0 < p; k0 += TILE) {
        let k = k0 + lid.x;
        var w = 0.0;
        if wm < m_count && k < p {
            w = theta[w_base + k];
        }
        w_tile[lid.y][lid.x] = w;
        var x = 0.0;
        if xi < prm.rows && k < p {
            x = feature(x_row, k);
        }
        x_tile[lid.y][lid.x] = x;
        workgroupBarrier();
        for (var kk = 0u; kk < TILE; kk++) {
            acc += w_tile[lid.y][kk] * x_tile[lid.x][kk];
        }
        workgroupBarrier();
    }
    if m < m_count && i < prm.rows {
        let ps = g * prm.sets_per_group + m / prm.classes;
        let c = m % prm.classes;
        let bias = theta[ps * prm.dim + prm.classes * p + c];
        logits[(ps * prm.rows + i) * prm.classes + c] = acc + bias;
    }
}
