//! Portability without the hardware: every shader (with its overrides resolved as the engine
//! resolves them) translates with naga to SPIR-V (Vulkan), MSL (Metal), HLSL (DX12) and GLSL
//! (GL); the SPIR-V is read back and validated again. A Metal or DX12 path that breaks fails here,
//! on a Linux machine.

use naga::{
    ShaderStage,
    back::{glsl, hlsl, msl, spv},
    valid::{Capabilities, ValidationFlags, Validator},
};
use steplens::gpu::kernel::{SHADERS, naga_module};

fn validate(module: &naga::Module) -> naga::valid::ModuleInfo {
    Validator::new(ValidationFlags::all(), Capabilities::default()).validate(module).expect("valid module")
}

#[test]
fn every_shader_translates_to_every_backend() {
    let mut translated = 0;
    for (name, _) in SHADERS {
        if name.ends_with("_subgroup") {
            continue; // needs subgroups: `subgroup_kernels_translate`
        }
        let module = naga_module(name).unwrap();
        let info = validate(&module);
        if !module.entry_points.iter().any(|e| e.name == "main") {
            continue; // a library of functions (shaders/shared/): checked through its importers
        }
        // The engine's specialisations: every loss, both feature encodings, both tile sizes.
        // Tile shapes (SET_TILE, TILE) the engine compiles: plain, one set × 4, and 4 × 4.
        let declares = |n: &str| module.overrides.iter().any(|(_, o)| o.name.as_deref() == Some(n));
        let tiles: &[(f64, f64)] = if declares("TILE") { &[(1.0, 1.0), (1.0, 4.0), (4.0, 4.0)] } else { &[(1.0, 1.0)] };
        for (model, x_u8, (set_tile, tile)) in loss_codes()
            .flat_map(|m| [0.0, 1.0].map(|x| (m, x)))
            .flat_map(|(m, x)| tiles.iter().map(move |&t| (m, x, t)))
        {
            let mut constants = naga::back::PipelineConstants::default();
            for o in module.overrides.iter().filter_map(|(_, o)| o.name.clone()) {
                let value = match o.as_str() {
                    "MODEL" => model as f64,
                    "X_U8" => x_u8,
                    "TILE" => tile,
                    "SET_TILE" => set_tile,
                    // residuals.wgsl: two rows of W and 16 samples, as the engine sets them (the
                    // two-class softmax with one sum a sample).
                    "CLASSES" => 2.0,
                    "SAMPLES" => steplens::gpu::kernels::Residuals::samples(model, 2, false) as f64,
                    "PAIR" => steplens::shader_source::codes::two_class_softmax(model, 2) as u8 as f64,
                    "ALIGNED" => x_u8,
                    "GAUSSIAN" => (model % 2) as f64,
                    other => panic!("{name}: an override the engine does not set: {other}"),
                };
                constants.insert(o.clone(), value);
            }
            let (m, i) = naga::back::pipeline_constants::process_overrides(
                &module,
                &info,
                Some((ShaderStage::Compute, "main")),
                &constants,
            )
            .unwrap_or_else(|e| panic!("{name}: overrides: {e}"));
            let what = format!("{name} (MODEL {model}, X_U8 {x_u8}, SET_TILE {set_tile}, TILE {tile})");
            let words = spv::write_vec(&m, &i, &spv::Options::default(), None)
                .unwrap_or_else(|e| panic!("{what}: SPIR-V: {e}"));
            let back = naga::front::spv::parse_u8_slice(bytemuck::cast_slice(&words), &Default::default())
                .unwrap_or_else(|e| panic!("{what}: SPIR-V does not parse back: {e}"));
            validate(&back);
            let entry = Some((ShaderStage::Compute, "main".to_string()));
            msl::write_string(
                &m,
                &i,
                &msl::Options::default(),
                &msl::PipelineOptions { entry_point: entry.clone(), ..Default::default() },
            )
            .unwrap_or_else(|e| panic!("{what}: MSL: {e}"));
            let hlsl_pipeline = hlsl::PipelineOptions { entry_point: entry.clone() };
            let hlsl_options = hlsl::Options::default();
            let mut text = String::new();
            hlsl::Writer::new(&mut text, &hlsl_options, &hlsl_pipeline)
                .write(&m, &i, None)
                .unwrap_or_else(|e| panic!("{what}: HLSL: {e}"));
            let glsl_options = glsl::Options { version: glsl::Version::Desktop(430), ..Default::default() };
            let glsl_pipeline = glsl::PipelineOptions {
                shader_stage: ShaderStage::Compute,
                entry_point: "main".into(),
                multiview: None,
            };
            let mut text = String::new();
            glsl::Writer::new(&mut text, &m, &i, &glsl_options, &glsl_pipeline, Default::default())
                .and_then(|mut w| w.write())
                .unwrap_or_else(|e| panic!("{what}: GLSL: {e}"));
            translated += 1;
        }
    }
    assert!(translated >= 12 * 8, "{translated} translations");
}

/// The kernels with subgroup operations: the generated subgroup training kernel, one
/// specialisation per load mode and loss, and the generated `residuals_subgroup` with every loss,
/// feature encoding and perturbation, validated with naga's subgroup capability and translated to SPIR-V
/// (read back and validated again), MSL 2.1 and HLSL SM 6.0 (the first versions with subgroup
/// operations). GL has no subgroups: the engine never takes these kernels there.
#[test]
fn subgroup_kernels_translate() {
    use steplens::{
        gpu::kernel::{composed_generated, parse},
        shader_source::{SubgroupSpec, residuals_subgroup, subgroup_train},
    };
    let mut cases = Vec::new();
    let specs = [(784, 2, 0, true), (36, 3, 1, true), (36, 1, 2, false), (5, 1, 3, true), (33, 10, 0, false)];
    for (p, classes, model, x_u8) in specs {
        let spec = SubgroupSpec { p, classes, model, x_u8 };
        let composed = composed_generated("train_subgroup", &subgroup_train(&spec, 1 + classes % 2)).unwrap();
        cases.push((format!("{spec:?}"), "train_subgroup", composed, vec![("MODEL", model as f64)]));
    }
    for (model, x_u8) in loss_codes().flat_map(|m| [false, true].map(|x| (m, x))) {
        // Two classes (the two-class softmax: one sum for 32 samples; else 16 samples) and three
        // (10: a remainder of the accumulators).
        let classes = 2 + model % 2;
        let pair = steplens::shader_source::codes::two_class_softmax(model, classes);
        let samples = steplens::gpu::kernels::Residuals::samples(model, classes, true);
        let overrides = vec![
            ("MODEL", model as f64),
            ("X_U8", x_u8 as u8 as f64),
            ("CLASSES", classes as f64),
            ("SAMPLES", samples as f64),
            ("PAIR", pair as u8 as f64),
            ("ALIGNED", x_u8 as u8 as f64),
            ("GAUSSIAN", (model % 2) as f64),
        ];
        let what = format!("residuals_subgroup (MODEL {model}, X_U8 {x_u8})");
        let composed = composed_generated("residuals_subgroup", &residuals_subgroup(classes, samples, pair)).unwrap();
        cases.push((what, "residuals_subgroup", composed, overrides));
    }
    for (what, name, composed, overrides) in cases {
        translate_with_subgroups(&what, &parse(name, &composed).unwrap(), &composed.source, &overrides);
    }
}

/// One module with subgroup operations, its overrides set, through every backend that has them.
fn translate_with_subgroups(what: &str, module: &naga::Module, source: &str, overrides: &[(&str, f64)]) {
    let caps = Capabilities::SUBGROUP;
    let validator = || {
        let mut v = Validator::new(ValidationFlags::all(), caps);
        v.subgroup_stages(naga::valid::ShaderStages::COMPUTE)
            .subgroup_operations(naga::valid::SubgroupOperationSet::all());
        v
    };
    let info = validator().validate(module).unwrap_or_else(|e| panic!("{what}: {}", e.emit_to_string(source)));
    let mut constants = naga::back::PipelineConstants::default();
    for o in module.overrides.iter().filter_map(|(_, o)| o.name.clone()) {
        let value = overrides.iter().find(|(n, _)| *n == o).map(|(_, v)| *v);
        constants
            .insert(o.clone(), value.unwrap_or_else(|| panic!("{what}: an override the engine does not set: {o}")));
    }
    let (m, i) = naga::back::pipeline_constants::process_overrides(
        module,
        &info,
        Some((ShaderStage::Compute, "main")),
        &constants,
    )
    .unwrap_or_else(|e| panic!("{what}: overrides: {e}"));
    let spv_options = spv::Options { lang_version: (1, 3), ..Default::default() };
    let words = spv::write_vec(&m, &i, &spv_options, None).unwrap_or_else(|e| panic!("{what}: SPIR-V: {e}"));
    let back = naga::front::spv::parse_u8_slice(bytemuck::cast_slice(&words), &Default::default())
        .unwrap_or_else(|e| panic!("{what}: SPIR-V does not parse back: {e}"));
    validator().validate(&back).unwrap_or_else(|e| panic!("{what}: SPIR-V read back: {e}"));
    let entry = Some((ShaderStage::Compute, "main".to_string()));
    let msl_options = msl::Options { lang_version: (2, 1), ..Default::default() };
    msl::write_string(&m, &i, &msl_options, &msl::PipelineOptions { entry_point: entry.clone(), ..Default::default() })
        .unwrap_or_else(|e| panic!("{what}: MSL: {e}"));
    let hlsl_options = hlsl::Options { shader_model: hlsl::ShaderModel::V6_0, ..Default::default() };
    let mut text = String::new();
    hlsl::Writer::new(&mut text, &hlsl_options, &hlsl::PipelineOptions { entry_point: entry })
        .write(&m, &i, None)
        .unwrap_or_else(|e| panic!("{what}: HLSL: {e}"));
}

/// Every loss code the engine can set (`MODEL`), from the shared definitions.
fn loss_codes() -> impl Iterator<Item = u32> {
    steplens::shader_source::codes::ALL.into_iter().filter(|(n, _)| n.starts_with("LOSS_")).map(|(_, v)| v)
}
