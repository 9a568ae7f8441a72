// Per-sample loss and scaled derivative with respect to the logits (softmax cross-entropy,
// the notebook's double softmax, the sigmoid's, least squares': the override MODEL):
//   dz[s, i, :] = scale · d loss_i / d z,   loss[offset + s·rows + i] = loss_i.
// scale = 1/b gives the gradient of the batch's mean loss.
//! import codes
//! import data
//! import loss

struct DlogitsParams {
    sets_per_group: u32,
    rows: u32,
    classes: u32,
    table_offset: u32,
    // Total parameter sets (groups · sets_per_group).
    sets: u32,
    scale: f32,
    // Distance between groups' rows in the row table.
    group_stride: u32,
    // Where this dispatch's losses start in `losses` (training keeps every step's losses).
    loss_offset: u32,
}

@group(0) @binding(0) var<uniform> prm: DlogitsParams;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> row_table: array<u32>;
@group(0) @binding(3) var<storage, read_write> dlogits: array<f32>;
@group(0) @binding(4) var<storage, read_write> losses: array<f32>;

// One thread per (set, sample): workgroups linear_groups(sets·rows, 64).
@compute @workgroup_size(WG_1D)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let id = flat_id(gid);
    if id >= prm.sets * prm.rows {
        return;
    }
    let ps = id / prm.rows;
    let i = id % prm.rows;
    let g = ps / prm.sets_per_group;
    let row = row_table[prm.table_offset + g * prm.group_stride + i];
    let base = id * prm.classes;
    var z: array<f32, MAX_CLASSES>;
    for (var c = 0u; c < prm.classes; c++) {
        z[c] = logits[base + c];
    }
    let l = loss_and_dlogits(&z, prm.classes, targets[row]);
    for (var c = 0u; c < prm.classes; c++) {
        dlogits[base + c] = prm.scale * z[c];
    }
    losses[prm.loss_offset + id] = l.loss;
}
