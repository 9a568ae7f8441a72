// The workgroup's sum tree, written once for the kernels that sum one value per thread (evaluate,
// reduce, train_epoch): WG_WIDE threads, pairs added at halving distances.
//! import codes

var<workgroup> tree: array<vec2<f32>, WG_WIDE>;

// Σ over the workgroup of each thread's `v`, returned to every thread as a uniform value; call
// it in uniform control flow.
fn tree_sum(v: vec2<f32>, lid: u32) -> vec2<f32> {
    tree[lid] = v;
    for (var half = WG_WIDE / 2u; half > 0u; half /= 2u) {
        workgroupBarrier();
        if lid < half {
            tree[lid] += tree[lid + half];
        }
    }
    return workgroupUniformLoad(&tree[0]);
}
