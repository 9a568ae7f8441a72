//! Numbers the WGSL kernels and the Rust code share, defined once here: the shaders import them
//! as the generated module `codes` (`//! import codes`, see [`wgsl`]) and the Rust code names
//! these constants, so the two cannot disagree.

/// Loss codes, the `MODEL` override (`model::LossCode`'s discriminants).
pub const LOSS_SOFTMAX_CE: u32 = 0;
pub const LOSS_SOFTMAX_SEED_COMPAT: u32 = 1;
pub const LOSS_LOGISTIC: u32 = 2;
pub const LOSS_SQUARES: u32 = 3;
/// Whether a model of loss `code` with `classes` rows of W is the two-class softmax (either
/// loss): its loss depends on the logits' difference alone, which the subgroup training kernels
/// and the residual kernels exploit (they keep or sum W₁ − W₀, δ₁ − δ₀ alone).
pub fn two_class_softmax(code: u32, classes: u32) -> bool {
    classes == 2 && matches!(code, LOSS_SOFTMAX_CE | LOSS_SOFTMAX_SEED_COMPAT)
}
/// Step-rule codes of the epoch kernels' parameters (`engine::StepRule::code`).
pub const RULE_TABLE: u32 = 0;
pub const RULE_POLYAK: u32 = 1;
pub const RULE_ARMIJO: u32 = 2;
/// Perturbation kinds of the analysis kernels' parameters (`kind`; `gpu::kernels::PerturbParams`).
pub const PERTURB_UNIFORM: u32 = 0;
pub const PERTURB_GAUSSIAN: u32 = 1;
/// Workgroups along x of a 1-D dispatch before it continues along y (WebGPU's limit on one
/// dimension).
pub const DISPATCH_ROW: u32 = 65535;
/// The workgroup size of the 1-D kernels.
pub const WG_1D: u32 = 64;
/// Accumulators (samples × classes) of one invocation of `residuals.wgsl`: the host picks its
/// samples per invocation from it (the size was measured against 8 and 64: BENCHMARKS.md).
pub const RESIDUAL_ACC: u32 = 32;
/// The workgroup size of the wide kernels (evaluate, reduce, train_epoch, sgd_update): the width
/// of the sum tree (`shaders/shared/tree.wgsl`), and the samples or parameters one workgroup of
/// evaluate or sgd_update covers.
pub const WG_WIDE: u32 = 256;
/// Lanes of the subgroup kernels (one workgroup = one subgroup of this many lanes; adapters with
/// smaller subgroups do not take them).
pub const SUBGROUP_LANES: u32 = 8;
/// The most softmax classes: the size of a sample's logits in the loss library
/// (`model::MAX_CLASSES`).
pub const MAX_CLASSES: u32 = 16;
/// The fused epoch kernel's passes (`shaders/train_epoch.wgsl`, counted by the host against
/// llvmpipe's loop cap): samples per pass through workgroup memory, threads per sample in the
/// forward pass (the two make the workgroup), classes per forward pass.
pub const EPOCH_CHUNK: u32 = 64;
pub const EPOCH_PARTS: u32 = 4;
pub const EPOCH_CLASS_GROUP: u32 = 8;
const _: () = assert!(EPOCH_CHUNK * EPOCH_PARTS == WG_WIDE);
/// The tile (sets × rows or features) of the tiled variant of logits and weight_grad, and the
/// bound of their TILE and SET_TILE overrides.
pub const MAX_TILE: u32 = 4;
/// Texels per row of the dataset's texture (`gpu::engine::GpuData`): vec4<u32> word i of the
/// features is texel (i % width, i / width). A power of two within every adapter's 2-D limit
/// (WebGPU's downlevel minimum is 2,048).
pub const DATA_TEXTURE_WIDTH: u32 = 2048;

/// Every shared number by its WGSL name.
pub const ALL: [(&str, u32); 20] = [
    ("LOSS_SOFTMAX_CE", LOSS_SOFTMAX_CE),
    ("LOSS_SOFTMAX_SEED_COMPAT", LOSS_SOFTMAX_SEED_COMPAT),
    ("LOSS_LOGISTIC", LOSS_LOGISTIC),
    ("LOSS_SQUARES", LOSS_SQUARES),
    ("RULE_TABLE", RULE_TABLE),
    ("RULE_POLYAK", RULE_POLYAK),
    ("RULE_ARMIJO", RULE_ARMIJO),
    ("PERTURB_UNIFORM", PERTURB_UNIFORM),
    ("PERTURB_GAUSSIAN", PERTURB_GAUSSIAN),
    ("DISPATCH_ROW", DISPATCH_ROW),
    ("WG_1D", WG_1D),
    ("RESIDUAL_ACC", RESIDUAL_ACC),
    ("WG_WIDE", WG_WIDE),
    ("SUBGROUP_LANES", SUBGROUP_LANES),
    ("MAX_CLASSES", MAX_CLASSES),
    ("EPOCH_CHUNK", EPOCH_CHUNK),
    ("EPOCH_PARTS", EPOCH_PARTS),
    ("EPOCH_CLASS_GROUP", EPOCH_CLASS_GROUP),
    ("MAX_TILE", MAX_TILE),
    ("DATA_TEXTURE_WIDTH", DATA_TEXTURE_WIDTH),
];

/// The generated module `codes`: [`ALL`] as WGSL constants, and the flat invocation id
/// of a 1-D dispatch that wraps into y.
pub fn wgsl() -> String {
    let mut s = String::from("// Generated from shader_source::codes: numbers shared with the Rust code.\n");
    for (name, value) in ALL {
        s.push_str(&format!("const {name}: u32 = {value}u;\n"));
    }
    s.push_str("fn flat_id(gid: vec3<u32>) -> u32 {\n    return gid.x + gid.y * DISPATCH_ROW * WG_1D;\n}\n");
    s
}
