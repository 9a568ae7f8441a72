//! Numbers the WGSL kernels and the Rust code share, defined once here: the shaders import them
//! as the generated module `codes` (`//! import codes`, see [`wgsl`]) and the Rust code names
//! these constants, so the two cannot disagree.

/// Loss codes, the `MODEL` override (`model::LossCode`'s discriminants).
pub const LOSS_SOFTMAX_CE: u32 = 0;
pub const LOSS_SOFTMAX_SEED_COMPAT: u32 = 1;
pub const LOSS_LOGISTIC: u32 = 2;
pub const LOSS_SQUARES: u32 = 3;
/// Step-rule codes of the epoch kernels' parameters (`engine::StepRule::code`).
pub const RULE_TABLE: u32 = 0;
pub const RULE_POLYAK: u32 = 1;
pub const RULE_ARMIJO: u32 = 2;
/// Workgroups along x of a 1-D dispatch before it continues along y (WebGPU's limit on one
/// dimension).
pub const DISPATCH_ROW: u32 = 65535;
/// The workgroup size of the 1-D kernels.
pub const WG_1D: u32 = 64;

/// Every shared number by its WGSL name.
pub const ALL: [(&str, u32); 9] = [
    ("LOSS_SOFTMAX_CE", LOSS_SOFTMAX_CE),
    ("LOSS_SOFTMAX_SEED_COMPAT", LOSS_SOFTMAX_SEED_COMPAT),
    ("LOSS_LOGISTIC", LOSS_LOGISTIC),
    ("LOSS_SQUARES", LOSS_SQUARES),
    ("RULE_TABLE", RULE_TABLE),
    ("RULE_POLYAK", RULE_POLYAK),
    ("RULE_ARMIJO", RULE_ARMIJO),
    ("DISPATCH_ROW", DISPATCH_ROW),
    ("WG_1D", WG_1D),
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
