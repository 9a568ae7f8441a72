//! Every `#[repr(C)]` parameter struct matches its WGSL struct as naga lays it out (size and
//! member offsets), and every shader in `shaders/` is compiled into the binary.

use std::mem::{offset_of, size_of};

use steplens::{
    gpu::{
        kernel::{SHADERS, composed_generated, parse, struct_layout, wgsl_struct_layout},
        kernels::*,
    },
    shader_source::{SHARED, SubgroupSpec, subgroup_train},
};

macro_rules! layout {
    ($shader:literal, $wgsl:literal, $ty:ty, [$($field:ident),* $(,)?]) => {{
        layout!(@check wgsl_struct_layout($shader, $wgsl).unwrap(), $wgsl, $ty, [$($field),*])
    }};
    (@check $layout:expr, $wgsl:literal, $ty:ty, [$($field:ident),* $(,)?]) => {{
        let (size, members) = $layout;
        assert_eq!(size as usize, size_of::<$ty>(), "{}: size", $wgsl);
        let rust: Vec<(&str, usize)> = vec![$((stringify!($field), offset_of!($ty, $field))),*];
        assert_eq!(members.len(), rust.len(), "{}: member count", $wgsl);
        for ((wname, woff), (rname, roff)) in members.iter().zip(&rust) {
            assert_eq!(wname.trim_start_matches('_'), rname.trim_start_matches('_'), "{}: member order", $wgsl);
            assert_eq!(*woff as usize, *roff, "{}.{}: offset", $wgsl, wname);
        }
    }};
}

#[test]
fn parameter_structs_match_wgsl() {
    layout!(
        "logits",
        "LogitsParams",
        LogitsParams,
        [sets_per_group, rows, classes, dim, table_offset, group_stride, sets, _pad2]
    );
    layout!(
        "dlogits",
        "DlogitsParams",
        DlogitsParams,
        [sets_per_group, rows, classes, table_offset, sets, scale, group_stride, loss_offset]
    );
    layout!(
        "weight_grad",
        "WeightGradParams",
        WeightGradParams,
        [sets_per_group, rows, classes, table_offset, c0, nrows, with_bias, out_dim, group_stride, sets, _pad1, _pad2]
    );
    layout!("sgd_update", "SgdParams", SgdParams, [sets, dim, lr_stride, lr_index]);
    layout!("evaluate", "EvaluateParams", EvaluateParams, [sets, classes, dim, groups]);
    layout!("reduce", "ReduceParams", ReduceParams, [sets, count, scale, _pad0]);
    layout!(
        "train_epoch",
        "EpochParams",
        EpochParams,
        [
            runs,
            steps,
            batch,
            classes,
            dim,
            tables,
            rule,
            max_backtracks,
            armijo_c,
            armijo_beta,
            armijo_growth,
            max_lr,
            polyak_c,
            first_step,
            count,
            _pad0
        ]
    );
    // The generated subgroup kernel shares the fused kernel's parameters: every load mode, every loss.
    for (p, classes, model, x_u8) in [(784, 2, 0, true), (36, 3, 1, true), (36, 1, 2, false), (5, 1, 3, true)] {
        let spec = SubgroupSpec { p, classes, model, x_u8 };
        let composed = composed_generated("train_subgroup", &subgroup_train(&spec, 1 + p % 2)).unwrap();
        let module = parse("train_subgroup", &composed).unwrap();
        layout!(
            @check struct_layout(&module, "EpochParams").unwrap(),
            "EpochParams",
            EpochParams,
            [
                runs,
                steps,
                batch,
                classes,
                dim,
                tables,
                rule,
                max_backtracks,
                armijo_c,
                armijo_beta,
                armijo_growth,
                max_lr,
                polyak_c,
                first_step,
                count,
                _pad0
            ]
        );
    }
    layout!("perturb", "PerturbParams", PerturbParams, [sets, points, dim, kind, scale, seed_lo, seed_hi, stream]);
    layout!("project", "ProjectParams", ProjectParams, [points, block_dim, dim, p, classes, c0, nrows, sets]);
    layout!(
        "residuals",
        "ResidualParams",
        ResidualParams,
        [points, rows, groups, kind, scale, seed_lo, seed_hi, stream, grad_scale, _pad0, _pad1, _pad2]
    );
}

/// build.rs lists the shaders: every file of `shaders/` and `shaders/shared/`, kernels first, each
/// kernel with an entry point and no library with one.
#[test]
fn every_shader_file_is_embedded() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let stems = |dir: &std::path::Path, prefix: &str| {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "wgsl"))
            .map(|p| format!("{prefix}{}", p.file_stem().unwrap().to_string_lossy()))
            .collect();
        names.sort();
        names
    };
    let mut files = stems(&root, "");
    files.extend(stems(&root.join(SHARED), &format!("{SHARED}/")));
    let embedded: Vec<String> = SHADERS.iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(files, embedded, "build.rs lists shaders/*.wgsl, then shaders/shared/*.wgsl");
    for (name, text) in SHADERS {
        let library = name.starts_with(&format!("{SHARED}/"));
        assert_eq!(!library, text.contains("fn main("), "{name}: kernels have `main`, libraries do not");
    }
}

/// The numbers Rust and WGSL share come from one place: the generated `codes` module holds every
/// one with its Rust value (read back by naga), the Rust enums take their values from it, and no
/// shader writes one of them as a literal.
#[test]
fn shared_codes_have_one_definition() {
    use steplens::{engine::StepRule, model::LossCode, shader_source::codes};
    let module = naga::front::wgsl::parse_str(&steplens::shader_source::codes_wgsl()).unwrap();
    let mut found = std::collections::BTreeMap::new();
    for (_, c) in module.constants.iter() {
        if let naga::Expression::Literal(naga::Literal::U32(v)) = module.global_expressions[c.init] {
            found.insert(c.name.clone().unwrap(), v);
        }
    }
    let want: std::collections::BTreeMap<String, u32> = codes::ALL.iter().map(|(n, v)| (n.to_string(), *v)).collect();
    assert_eq!(found, want);
    let losses = [LossCode::SoftmaxCe, LossCode::SoftmaxSeedCompat, LossCode::Logistic, LossCode::Squares];
    let names = ["LOSS_SOFTMAX_CE", "LOSS_SOFTMAX_SEED_COMPAT", "LOSS_LOGISTIC", "LOSS_SQUARES"];
    for (code, name) in losses.iter().zip(names) {
        assert_eq!(*code as u32, want[name], "{name}");
    }
    let table = StepRule::Table;
    let polyak = StepRule::Polyak { c: 0.5, max_lr: 1.0 };
    let armijo = StepRule::Armijo { c: 0.1, beta: 0.9, growth: 1.0, max_lr: 1.0 };
    assert_eq!(
        [table.code(), polyak.code(), armijo.code()],
        [codes::RULE_TABLE, codes::RULE_POLYAK, codes::RULE_ARMIJO]
    );
    // No shader hard-codes the dispatch arithmetic or a code where the named constant belongs.
    for (name, text) in SHADERS {
        for literal in
            ["65535u", "workgroup_size(64)", "case 0u", "case 1u", "case 2u", "rule == 1u", "rule == 2u", "rule != 0u"]
        {
            assert!(!text.contains(literal), "shaders/{name}.wgsl writes `{literal}`: use the shared constant");
        }
    }
}

/// Array sizes in WGSL are named constants (those the host shares from `codes`), never literals:
/// a size changed in one place changes wherever it is used, and the host's arithmetic with it.
#[test]
fn no_shader_sizes_an_array_with_a_literal() {
    let spec = SubgroupSpec { p: 784, classes: 3, model: 0, x_u8: true };
    let generated = [
        ("train_subgroup".to_string(), subgroup_train(&spec, 1)),
        ("evaluate_subgroup".to_string(), steplens::shader_source::subgroup_evaluate(&spec)),
    ];
    let files = SHADERS.iter().map(|(n, t)| (format!("shaders/{n}.wgsl"), t.to_string()));
    for (name, text) in files.chain(generated) {
        for (at, _) in text.match_indices("array<") {
            // The size is what follows the element type's top-level comma, if anything does.
            let rest = &text[at + "array<".len()..];
            let (mut depth, mut size) = (0, None);
            for (i, ch) in rest.char_indices() {
                match ch {
                    '<' => depth += 1,
                    '>' if depth == 0 => break,
                    '>' => depth -= 1,
                    ',' if depth == 0 => {
                        size = Some(rest[i + 1..].trim_start());
                        break;
                    }
                    _ => {}
                }
            }
            if let Some(size) = size {
                assert!(
                    !size.starts_with(|c: char| c.is_ascii_digit()),
                    "{name} sizes an array with a literal: {}",
                    &text[at..at + 30]
                );
            }
        }
    }
}
