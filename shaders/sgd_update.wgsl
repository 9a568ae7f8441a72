// The SGD step θ_s ← θ_s − h_s g_s for every parameter set s, h_s read from a learning-rate
// table (so a whole epoch of steps with per-step rates records without re-uploading anything).
//! import codes

struct SgdParams {
    sets: u32,
    dim: u32,
    // Entries per set in the learning-rate table, and the entry this step uses.
    lr_stride: u32,
    lr_index: u32,
}

@group(0) @binding(0) var<uniform> prm: SgdParams;
@group(0) @binding(1) var<storage, read_write> theta: array<f32>;
@group(0) @binding(2) var<storage, read> grads: array<f32>;
@group(0) @binding(3) var<storage, read> lrs: array<f32>;

// One thread per parameter: workgroups (⌈dim/WG_WIDE⌉, sets, 1).
@compute @workgroup_size(WG_WIDE)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let d = gid.x;
    let s = gid.y;
    if d >= prm.dim || s >= prm.sets {
        return;
    }
    let h = lrs[s * prm.lr_stride + prm.lr_index];
    let k = s * prm.dim + d;
    theta[k] = theta[k] - h * grads[k];
}
