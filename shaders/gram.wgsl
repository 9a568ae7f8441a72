// Gram matrices of B groups of K vectors: gram[g, k, l] = Σ_d G[gK + k, d] G[gK + l, d].
// The analysis eigen-decomposes these K × K matrices on the host instead of reading back and
// decomposing every dim × K matrix G: the right singular vectors and σ² come from the Gram.

struct GramParams {
    points: u32,
    dim: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> prm: GramParams;
@group(0) @binding(1) var<storage, read> vectors: array<f32>;
@group(0) @binding(2) var<storage, read_write> gram: array<f32>;

const TILE: u32 = 16u;
var<workgroup> a_tile: array<array<f32, 17>, 16>;
var<workgroup> b_tile: array<array<f32, 17>, 16>;

// Workgroups: (⌈K/16⌉, ⌈K/16⌉, B).
@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let g = wg.z;
    let k_out = wg.y * TILE + lid.y;
    let l_out = wg.x * TILE + lid.x;
    // Loads: a_tile[r][c] = G[k = wg.y·16 + r, d0 + c], b_tile[r][c] = G[l = wg.x·16 + r, d0 + c].
    let ka = wg.y * TILE + lid.y;
    let lb = wg.x * TILE + lid.y;
    var acc = 0.0;
    for (var d0 = 0u; d0 < prm.dim; d0 += TILE) {
        let d = d0 + lid.x;
        var a = 0.0;
        var b = 0.0;
        if d < prm.dim {
            if ka < prm.points {
                a = vectors[(g * prm.points + ka) * prm.dim + d];
            }
            if lb < prm.points {
                b = vectors[(g * prm.points + lb) * prm.dim + d];
            }
        }
        a_tile[lid.y][lid.x] = a;
        b_tile[lid.y][lid.x] = b;
        workgroupBarrier();
        for (var dd = 0u; dd < TILE; dd++) {
            acc += a_tile[lid.y][dd] * b_tile[lid.x][dd];
        }
        workgroupBarrier();
    }
    if k_out < prm.points && l_out < prm.points {
        gram[(g * prm.points + k_out) * prm.points + l_out] = acc;
    }
}
