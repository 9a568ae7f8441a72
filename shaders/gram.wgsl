// Gram matrices of B groups of K vectors: gram[g, k, l] = Σ_d G[gK + k, d] G[gK + l, d].
// The analysis eigen-decomposes these K × K matrices on the host instead of reading back and
// decomposing every dim × K matrix G: the right singular vectors and σ² come from the Gram.
//! import codes

struct GramParams {
    points: u32,
    dim: u32,
    groups: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> prm: GramParams;
@group(0) @binding(1) var<storage, read> vectors: array<f32>;
@group(0) @binding(2) var<storage, read_write> gram: array<f32>;

// Each invocation computes a 4 × 4 tile of one Gram matrix (tiles on and above the diagonal,
// mirrored on write): 8 loads feed 16 multiply-adds, where one entry per invocation needed 2 loads
// per multiply-add. On CPU adapters (lavapipe) every per-lane load is a scalar gather, so loads,
// not arithmetic, set the speed; on GPUs the tile also cuts the traffic through the caches.
const T: u32 = 4u;

// Row `k` of group `g` (clamped to the last row, so partial tiles read valid memory).
fn vector_start(g: u32, k: u32) -> u32 {
    return (g * prm.points + min(k, prm.points - 1u)) * prm.dim;
}

// Row k of the tile: gram[g, k, l .. l + 4] and its mirror, where inside the matrix.
fn write_row(g: u32, k: u32, l: u32, v: vec4<f32>) {
    if k >= prm.points {
        return;
    }
    for (var b = 0u; b < T; b++) {
        if l + b < prm.points {
            gram[(g * prm.points + k) * prm.points + l + b] = v[b];
            gram[(g * prm.points + l + b) * prm.points + k] = v[b];
        }
    }
}

// First tile of tile-row r in the row-major upper triangle of an n × n grid of tiles.
fn row_start(r: u32, n: u32) -> u32 {
    return r * n - r * (r - 1u) / 2u;
}

// Tile (row, column), row ≤ column, of index t of the upper triangle of an n × n grid: the
// closed form from the quadratic, corrected by one where f32 rounding lands on a neighbour.
fn triangle_tile(t: u32, n: u32) -> vec2<u32> {
    let b = f32(2u * n + 1u);
    var r = u32(max(0.0, floor((b - sqrt(max(0.0, b * b - 8.0 * f32(t)))) * 0.5)));
    r = min(r, n - 1u);
    if row_start(r, n) > t {
        r -= 1u;
    } else if r + 1u < n && row_start(r + 1u, n) <= t {
        r += 1u;
    }
    return vec2<u32>(r, r + t - row_start(r, n));
}

// Workgroups: linear_groups(groups·tiles·(tiles + 1)/2, 64) with tiles = ⌈K/4⌉: only tiles on
// and above the diagonal are enumerated, so no lane idles on a mirrored tile.
@compute @workgroup_size(WG_1D)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let id = flat_id(gid);
    let tiles = (prm.points + T - 1u) / T;
    let per_group = tiles * (tiles + 1u) / 2u;
    if id >= prm.groups * per_group {
        return;
    }
    let g = id / per_group;
    let tile = triangle_tile(id % per_group, tiles) * T;
    let k = tile.x;
    let l = tile.y;
    let a = vec4<u32>(vector_start(g, k), vector_start(g, k + 1u), vector_start(g, k + 2u), vector_start(g, k + 3u));
    let b = vec4<u32>(vector_start(g, l), vector_start(g, l + 1u), vector_start(g, l + 2u), vector_start(g, l + 3u));
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var d = 0u; d < prm.dim; d++) {
        let u = vec4<f32>(vectors[a.x + d], vectors[a.y + d], vectors[a.z + d], vectors[a.w + d]);
        let v = vec4<f32>(vectors[b.x + d], vectors[b.y + d], vectors[b.z + d], vectors[b.w + d]);
        acc0 += u.x * v;
        acc1 += u.y * v;
        acc2 += u.z * v;
        acc3 += u.w * v;
    }
    write_row(g, k, l, acc0);
    write_row(g, k + 1u, l, acc1);
    write_row(g, k + 2u, l, acc2);
    write_row(g, k + 3u, l, acc3);
}
