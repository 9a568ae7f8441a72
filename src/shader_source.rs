//! The WGSL "preprocessor": one directive, `//! import NAME`, which inlines `shaders/NAME.wgsl`
//! once. It is shared with `build.rs` (through `#[path]`), so the build validates exactly the
//! source the engine compiles, and naga's error positions map back to the original file and line.

/// A shader after imports were inlined, with the origin of every line.
#[derive(Debug, Clone)]
pub struct Composed {
    pub source: String,
    /// For each line of `source`: the file it came from and its 1-based line there.
    pub origins: Vec<(String, usize)>,
}

impl Composed {
    /// `file:line` of a 1-based line of the composed source.
    pub fn locate(&self, line: usize) -> String {
        match self.origins.get(line.saturating_sub(1)) {
            Some((file, l)) if file.starts_with('<') => format!("{file}:{l}"),
            Some((file, l)) => format!("shaders/{file}.wgsl:{l}"),
            None => format!("<composed>:{line}"),
        }
    }
}

const IMPORT: &str = "//! import ";

/// Numbers the WGSL kernels and the Rust code share, defined once here: the shaders import them
/// as the generated module `codes` (`//! import codes`, see [`codes_wgsl`]) and the Rust code
/// names these constants, so the two cannot disagree.
pub mod codes {
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
    /// Accumulators (samples × classes) of one invocation of `residuals.wgsl`: the host picks its
    /// samples per invocation from it. Measured on lavapipe (softmax, two classes): 16 samples
    /// 0.95 CPU-s for one perturbation set of the 395 batches, 8 and 32: 1.2 (BENCHMARKS.md).
    pub const RESIDUAL_ACC: u32 = 32;

    /// Every shared number by its WGSL name.
    pub const ALL: [(&str, u32); 10] = [
        ("LOSS_SOFTMAX_CE", LOSS_SOFTMAX_CE),
        ("LOSS_SOFTMAX_SEED_COMPAT", LOSS_SOFTMAX_SEED_COMPAT),
        ("LOSS_LOGISTIC", LOSS_LOGISTIC),
        ("LOSS_SQUARES", LOSS_SQUARES),
        ("RULE_TABLE", RULE_TABLE),
        ("RULE_POLYAK", RULE_POLYAK),
        ("RULE_ARMIJO", RULE_ARMIJO),
        ("DISPATCH_ROW", DISPATCH_ROW),
        ("WG_1D", WG_1D),
        ("RESIDUAL_ACC", RESIDUAL_ACC),
    ];
}

/// The generated module `codes`: [`codes::ALL`] as WGSL constants, and the flat invocation id
/// of a 1-D dispatch that wraps into y.
pub fn codes_wgsl() -> String {
    let mut s = String::from("// Generated from shader_source::codes: numbers shared with the Rust code.\n");
    for (name, value) in codes::ALL {
        s.push_str(&format!("const {name}: u32 = {value}u;\n"));
    }
    s.push_str("fn flat_id(gid: vec3<u32>) -> u32 {\n    return gid.x + gid.y * DISPATCH_ROW * WG_1D;\n}\n");
    s
}

/// Inline the imports of shader `name`; `read(name)` gives a file's text.
pub fn compose(name: &str, read: &dyn Fn(&str) -> Option<String>) -> Result<Composed, String> {
    let mut out = Composed { source: String::new(), origins: Vec::new() };
    let mut seen = Vec::new();
    inline(name, read, &mut seen, &mut out)?;
    Ok(out)
}

fn inline(
    name: &str,
    read: &dyn Fn(&str) -> Option<String>,
    seen: &mut Vec<String>,
    out: &mut Composed,
) -> Result<(), String> {
    if seen.iter().any(|s| s == name) {
        return Ok(());
    }
    seen.push(name.to_string());
    let text = if name == "codes" {
        codes_wgsl()
    } else {
        read(name).ok_or_else(|| format!("shader `{name}` is imported but shaders/{name}.wgsl does not exist"))?
    };
    for (i, line) in text.lines().enumerate() {
        if let Some(dep) = line.trim().strip_prefix(IMPORT) {
            inline(dep.trim(), read, seen, out)?;
        } else {
            out.source.push_str(line);
            out.source.push('\n');
            out.origins.push((name.to_string(), i + 1));
        }
    }
    Ok(())
}

/// Shader `name` whose text `text` was generated on the host (its lines' origin is
/// `<generated name>`), with its imports inlined like any file's.
pub fn compose_generated(name: &str, text: &str, read: &dyn Fn(&str) -> Option<String>) -> Result<Composed, String> {
    let mut out = Composed { source: String::new(), origins: Vec::new() };
    let mut seen = vec![name.to_string()];
    let generated = format!("<generated {name}>");
    for (i, line) in text.lines().enumerate() {
        if let Some(dep) = line.trim().strip_prefix(IMPORT) {
            inline(dep.trim(), read, &mut seen, &mut out)?;
        } else {
            out.source.push_str(line);
            out.source.push('\n');
            out.origins.push((generated.clone(), i + 1));
        }
    }
    Ok(out)
}

/// Lanes of the subgroup training kernel: one workgroup of this many invocations, one subgroup,
/// trains one run (lavapipe's fixed subgroup size).
pub const SUBGROUP_LANES: u32 = 8;

/// How the subgroup kernel loads a sample's features: per lane, one load per unit of
/// [`SubgroupSpec::quads_per_unit`] × 4 features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FeatureLoad {
    /// u8 pixels, rows of a multiple of 16: one `vec4<u32>` load = 16 pixels (4 quads).
    U8Vec4,
    /// u8 pixels, rows of a multiple of 4: one word = 4 pixels.
    U8Word,
    /// f32 features, rows of a multiple of 4: one `vec4` load = 4 features.
    F32Vec4,
    /// Anything else (rows not word-aligned): 4 scalar loads, masked past the row's end.
    Scalar,
}

/// The sizes a subgroup training kernel is generated for: features, rows of W, the loss
/// (`MODEL` of shaders/loss.wgsl) and the feature encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SubgroupSpec {
    pub p: u32,
    pub classes: u32,
    pub model: u32,
    pub x_u8: bool,
}

impl SubgroupSpec {
    pub fn load(&self) -> FeatureLoad {
        match (self.x_u8, self.p.is_multiple_of(16), self.p.is_multiple_of(4)) {
            (true, true, _) => FeatureLoad::U8Vec4,
            (true, false, true) => FeatureLoad::U8Word,
            (false, _, true) => FeatureLoad::F32Vec4,
            _ => FeatureLoad::Scalar,
        }
    }

    /// Quads (4 features, one `vec4<f32>`) per load unit.
    pub fn quads_per_unit(&self) -> u32 {
        if self.load() == FeatureLoad::U8Vec4 { 4 } else { 1 }
    }

    /// Load units per sample row.
    pub fn units(&self) -> u32 {
        self.p.div_ceil(4 * self.quads_per_unit())
    }

    /// Units each lane owns (lane l owns units l, l + 8, l + 16, …).
    pub fn slots(&self) -> u32 {
        self.units().div_ceil(SUBGROUP_LANES)
    }

    /// Two-class softmax (either loss) needs only W₁ − W₀: the loss depends on the
    /// logits' difference, its derivatives are opposite (d₀ = −d₁), so SGD leaves W₀ + W₁ as it
    /// is and moves W₁ − W₀ by −2h·g₁. The kernels keep that difference alone in registers.
    pub fn pair(&self) -> bool {
        self.classes == 2 && self.model <= 1
    }

    /// Rows of W the kernels keep in registers: 1 for the two-class softmax, else every row.
    pub fn rows(&self) -> u32 {
        if self.pair() { 1 } else { self.classes }
    }

    /// Entries of W each lane keeps in registers (and as many gradient entries).
    pub fn lane_weights(&self) -> u32 {
        self.rows() * self.slots() * self.quads_per_unit() * 4
    }
}

/// The subgroup training kernel for `spec`, generated with every size baked in and every loop
/// but the step, sample and backtracking loops unrolled (llvmpipe counts loop iterations against
/// a cap, BENCHMARKS.md; the host's arithmetic in `gpu::subgroup` counts exactly those three).
///
/// One workgroup of [`SUBGROUP_LANES`] invocations, one subgroup, trains `runs` runs (1, or
/// more for sweeps whose runs share their batches: they share each sample's loads) through the
/// dispatch's steps without barriers or workgroup memory: lane l keeps W's entries of the
/// features of its units in registers, forms partial logits that `subgroupAdd` completes, every
/// lane computes the same loss derivatives, and each lane updates its own slice. The parameters,
/// bindings and per-step statistics are those of shaders/train_epoch.wgsl; workgroup g trains
/// runs g·runs .. g·runs + runs − 1 (those below `prm.runs`).
pub fn subgroup_train(spec: &SubgroupSpec, runs: u32) -> String {
    use std::fmt::Write;
    let SubgroupSpec { p, classes: c, model, x_u8 } = *spec;
    let (load, q, k) = (spec.load(), spec.quads_per_unit(), spec.slots());
    let mut s = String::new();
    let w = &mut s;
    macro_rules! out { ($($t:tt)*) => { let _ = writeln!(w, $($t)*); } }
    out!("// Generated by steplens::shader_source::subgroup_train: P = {p}, C = {c}, MODEL = {model}, {load:?} loads,");
    out!("// {runs} run(s) per workgroup.");
    header(w, spec);
    out!(
        "struct EpochParams {{ runs: u32, steps: u32, batch: u32, classes: u32, dim: u32, tables: u32, rule: u32, \
         max_backtracks: u32, armijo_c: f32, armijo_beta: f32, armijo_growth: f32, max_lr: f32, polyak_c: f32, \
         first_step: u32, count: u32, _pad0: u32 }}"
    );
    out!("@group(0) @binding(0) var<uniform> prm: EpochParams;");
    out!("@group(0) @binding(1) var<storage, read_write> theta: array<f32>;");
    out!("@group(0) @binding(2) var<storage, read> batches: array<u32>;");
    out!("@group(0) @binding(3) var<storage, read> lrs: array<f32>;");
    out!("@group(0) @binding(4) var<storage, read_write> stats: array<f32>;");
    data_bindings(w, spec);
    out!("fn w_put(i: u32, j: u32, v: f32) {{ if j < P {{ theta[i] = v; }} }}");
    let scale = if x_u8 { "(1.0 / 255.0)" } else { "1.0" };
    // Names: w{R}_{C}_{K}_{Q}, g… for run R of the group, row C, unit K, quad Q; x_{K}_{Q}.
    let quads = || (0..k).flat_map(move |kk| (0..q).map(move |qq| (kk, qq)));
    let rows = spec.rows();
    let all = || (0..rows).flat_map(move |cc| quads().map(move |(kk, qq)| (cc, kk, qq)));
    let rr = || 0..runs;
    // The step moves the registers by −hh·g: hh = 2h for W₁ − W₀ (its gradient is 2 g₁).
    let factor = if spec.pair() { "2.0 * " } else { "" };

    out!("@compute @workgroup_size({SUBGROUP_LANES})");
    out!("fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lane: u32) {{");
    for r in rr() {
        // Not clamped to the last run: llvmpipe ran the whole kernel ~8× slower with
        // `min(wg.x…, prm.runs - 1u)` here (measured). Past the last run, reads of θ, the rates
        // and the statistics are clamped by the bounds checks, and nothing is written.
        out!("    let run{r} = wg.x * {runs}u + {r}u;");
        out!("    let ok{r} = run{r} < prm.runs;");
    }
    out!("    let table = run0 % prm.tables;");
    lane_slice(w, spec, true, runs);
    for r in rr() {
        out!("    var h_prev{r} = 0.0;");
    }
    out!("    for (var s = prm.first_step; s < prm.first_step + prm.count; s++) {{");
    out!("        let row_base = (table * prm.steps + s) * prm.batch;");
    out!("        let inv_b = 1.0 / f32(prm.batch);");
    for r in rr() {
        for (cc, kk, qq) in all() {
            out!("        g{r}_{cc}_{kk}_{qq} = vec4<f32>(0.0);");
        }
        for cc in 0..rows {
            out!("        gb{r}_{cc} = 0.0;");
        }
        out!("        var total{r} = 0.0;");
    }
    out!("        for (var i = 0u; i < prm.batch; i++) {{");
    sample(w, spec, scale, false, true, runs);
    for r in rr() {
        out!("            total{r} += loss{r};");
        for cc in 0..rows {
            // The difference row's gradient is class 1's (g₁; the step applies it twice).
            let src = if spec.pair() { 1 } else { cc };
            out!("            let e{r}_{cc} = d{r}_{src} * inv_b;");
            for (kk, qq) in quads() {
                out!("            g{r}_{cc}_{kk}_{qq} = fma(vec4<f32>(e{r}_{cc}), x_{kk}_{qq}, g{r}_{cc}_{kk}_{qq});");
            }
            out!("            gb{r}_{cc} += e{r}_{cc};");
        }
    }
    out!("        }}");
    for r in rr() {
        if x_u8 {
            for (cc, kk, qq) in all() {
                out!("        g{r}_{cc}_{kk}_{qq} *= {scale};");
            }
        }
        out!("        let f{r} = total{r} / f32(prm.batch);");
        out!("        var h{r} = lrs[run{r} * prm.steps + s];");
        out!("        var gsq{r} = 0.0;");
        out!("        var trials{r} = 0u;");
    }
    out!("        if prm.rule != {}u {{", codes::RULE_TABLE);
    for r in rr() {
        out!("            var sq{r} = vec4<f32>(0.0);");
        for (cc, kk, qq) in all() {
            out!("            sq{r} = fma(g{r}_{cc}_{kk}_{qq}, g{r}_{cc}_{kk}_{qq}, sq{r});");
        }
        out!("            gsq{r} = subgroupAdd(dot(sq{r}, ONE));");
        for cc in 0..rows {
            out!("            gsq{r} += gb{r}_{cc} * gb{r}_{cc};");
        }
        if spec.pair() {
            out!("            gsq{r} *= 2.0; // ‖g₀‖² + ‖g₁‖² with g₀ = −g₁");
        }
    }
    out!("        }}");
    out!("        if prm.rule == {}u {{", codes::RULE_POLYAK);
    for r in rr() {
        out!("            h{r} = prm.max_lr;");
        out!("            if gsq{r} > 0.0 {{ h{r} = min(f{r} / (prm.polyak_c * gsq{r}), prm.max_lr); }}");
    }
    out!("        }} else if prm.rule == {}u {{", codes::RULE_ARMIJO);
    for r in rr() {
        out!("            if s > 0u {{");
        out!(
            "                // The previous step's rate: this invocation's, or the last dispatch's from the statistics."
        );
        out!("                var prev = h_prev{r};");
        out!("                if s == prm.first_step {{ prev = stats[(run{r} * prm.steps + s - 1u) * 4u + 1u]; }}");
        out!("                h{r} = min(prev * prm.armijo_growth, prm.max_lr);");
        out!("            }}");
        out!("            var done{r} = !ok{r};");
    }
    out!("            // Every run backtracks until it accepts; the loop ends when all have.");
    out!("            for (var tr = 0u; tr < prm.max_backtracks; tr++) {{");
    for r in rr() {
        out!("                let hh{r} = {factor}h{r};");
        out!("                var trial{r} = 0.0;");
    }
    out!("                for (var i = 0u; i < prm.batch; i++) {{");
    sample(w, spec, scale, true, true, runs);
    for r in rr() {
        out!("                    trial{r} += loss{r};");
    }
    out!("                }}");
    for r in rr() {
        out!("                if !done{r} {{");
        out!("                    trials{r} += 1u;");
        out!("                    if trial{r} / f32(prm.batch) <= f{r} - prm.armijo_c * h{r} * gsq{r} {{");
        out!("                        done{r} = true;");
        out!("                    }} else {{");
        out!("                        h{r} *= prm.armijo_beta;");
        out!("                    }}");
        out!("                }}");
    }
    let all_done: Vec<String> = rr().map(|r| format!("done{r}")).collect();
    out!("                if {} {{ break; }}", all_done.join(" && "));
    out!("            }}");
    out!("        }}");
    for r in rr() {
        out!("        h_prev{r} = h{r};");
        out!("        let hh{r} = {factor}h{r};");
        for (cc, kk, qq) in all() {
            out!("        w{r}_{cc}_{kk}_{qq} -= hh{r} * g{r}_{cc}_{kk}_{qq};");
        }
        for cc in 0..rows {
            out!("        b{r}_{cc} -= hh{r} * gb{r}_{cc};");
        }
    }
    out!("        if lane == 0u {{");
    for r in rr() {
        out!("            if ok{r} {{");
        out!("                let o = (run{r} * prm.steps + s) * 4u;");
        out!("                stats[o] = f{r};");
        out!("                stats[o + 1u] = h{r};");
        out!("                stats[o + 2u] = gsq{r};");
        out!("                // trials + 1: the host checks every step ran (a zeroed entry means it did not).");
        out!("                stats[o + 3u] = f32(trials{r}) + 1.0;");
        out!("            }}");
    }
    out!("        }}");
    out!("    }}");
    let comps = ["x", "y", "z", "w"];
    for r in rr() {
        out!("    if ok{r} {{");
        if spec.pair() {
            // W₀ and W₁ from θ (unchanged during the dispatch), and how far the difference moved:
            // u = ((W₁ − W₀) at the start − the difference now) / 2: SGD moved W₀ by +u, W₁ by −u.
            for (kk, qq) in quads() {
                let e =
                    |row: u32, o: u32| format!("w_at(base{r} + {}u + j_{kk}_{qq} + {o}u, j_{kk}_{qq} + {o}u)", row * p);
                out!("        let o0_{kk}_{qq} = vec4<f32>({}, {}, {}, {});", e(0, 0), e(0, 1), e(0, 2), e(0, 3));
                out!("        let o1_{kk}_{qq} = vec4<f32>({}, {}, {}, {});", e(1, 0), e(1, 1), e(1, 2), e(1, 3));
                out!("        let u_{kk}_{qq} = ((o1_{kk}_{qq} - o0_{kk}_{qq}) - w{r}_0_{kk}_{qq}) * 0.5;");
                for (o, comp) in comps.iter().enumerate() {
                    let j = format!("j_{kk}_{qq} + {o}u");
                    out!("        w_put(base{r} + {j}, {j}, o0_{kk}_{qq}.{comp} + u_{kk}_{qq}.{comp});");
                    out!("        w_put(base{r} + {p}u + {j}, {j}, o1_{kk}_{qq}.{comp} - u_{kk}_{qq}.{comp});");
                }
            }
            out!("        if lane == 0u {{");
            out!("            let c0 = theta[base{r} + {}u];", 2 * p);
            out!("            let c1 = theta[base{r} + {}u];", 2 * p + 1);
            out!("            let ub = ((c1 - c0) - b{r}_0) * 0.5;");
            out!("            theta[base{r} + {}u] = c0 + ub;", 2 * p);
            out!("            theta[base{r} + {}u] = c1 - ub;", 2 * p + 1);
            out!("        }}");
        } else {
            for (cc, kk, qq) in all() {
                for (o, comp) in comps.iter().enumerate() {
                    out!(
                        "        w_put(base{r} + {}u + j_{kk}_{qq} + {o}u, j_{kk}_{qq} + {o}u, w{r}_{cc}_{kk}_{qq}.{comp});",
                        cc * p
                    );
                }
            }
            out!("        if lane == 0u {{");
            for cc in 0..c {
                out!("            theta[base{r} + {}u] = b{r}_{cc};", c * p + cc);
            }
            out!("        }}");
        }
        out!("    }}");
    }
    out!("}}");
    s
}

/// One sample of the batch loop: its features (shared by the group's runs), then per run R its
/// logits (at θ − hh·g when `trial`), `loss{R}`, `correct{R}` (1 when the prediction is right;
/// the evaluation's) and d loss / d z as `d{R}_0 .. d{R}_{C-1}`. With `from_batch`, the sample
/// is `batches[row_base + i]`, else the loop's `row`.
fn sample(w: &mut String, spec: &SubgroupSpec, scale: &str, trial: bool, from_batch: bool, runs: u32) {
    use std::fmt::Write;
    let SubgroupSpec { classes: c, model, .. } = *spec;
    let (q, k) = (spec.quads_per_unit(), spec.slots());
    let pad = if trial { "                    " } else { "            " };
    macro_rules! out { ($($t:tt)*) => { let _ = write!(w, "{pad}"); let _ = writeln!(w, $($t)*); } }
    if from_batch {
        out!("let row = batches[row_base + i];");
    }
    out!("let t = targets[row];");
    for kk in 0..k {
        match spec.load() {
            FeatureLoad::U8Vec4 => {
                out!("var xr_{kk} = vec4<u32>(0u);");
                out!("if u_{kk} < NU {{ xr_{kk} = x_vec[row * NU + u_{kk}]; }}");
                for (qq, comp) in ["x", "y", "z", "w"].iter().enumerate() {
                    out!("let x_{kk}_{qq} = vec4<f32>((vec4<u32>(xr_{kk}.{comp}) >> SH) & vec4<u32>(255u));");
                }
            }
            FeatureLoad::U8Word => {
                out!("var xw_{kk} = 0u;");
                out!("if u_{kk} < NU {{ let wi = row * NU + u_{kk}; xw_{kk} = x_vec[wi >> 2u][wi & 3u]; }}");
                out!("let x_{kk}_0 = vec4<f32>((vec4<u32>(xw_{kk}) >> SH) & vec4<u32>(255u));");
            }
            FeatureLoad::F32Vec4 => {
                out!("var x_{kk}_0 = vec4<f32>(0.0);");
                out!("if u_{kk} < NU {{ x_{kk}_0 = bitcast<vec4<f32>>(x_vec[row * NU + u_{kk}]); }}");
            }
            FeatureLoad::Scalar => {
                out!("var x_{kk}_0 = vec4<f32>(0.0);");
                for (o, comp) in ["x", "y", "z", "w"].iter().enumerate() {
                    out!("if j_{kk}_0 + {o}u < P {{ x_{kk}_0.{comp} = raw_at(row * P + j_{kk}_0 + {o}u); }}");
                }
            }
        }
    }
    let rows = spec.rows();
    let comps = ["x", "y", "z", "w"];
    for r in 0..runs {
        out!("var loss{r} = 0.0;");
        out!("var correct{r} = 0.0;");
        for cc in 0..c {
            out!("var d{r}_{cc} = 0.0;");
        }
        out!("{{");
        for cc in 0..rows {
            out!("var a_{cc} = vec4<f32>(0.0);");
            for kk in 0..k {
                for qq in 0..q {
                    let wq = if trial {
                        format!("(w{r}_{cc}_{kk}_{qq} - hh{r} * g{r}_{cc}_{kk}_{qq})")
                    } else {
                        format!("w{r}_{cc}_{kk}_{qq}")
                    };
                    out!("a_{cc} = fma({wq}, x_{kk}_{qq}, a_{cc});");
                }
            }
        }
        // The partial logits of the lanes, summed by the subgroup, four rows per vector.
        for m in 0..rows.div_ceil(4) {
            let parts: Vec<String> = (0..4)
                .map(|o| if m * 4 + o < rows { format!("dot(a_{}, ONE)", m * 4 + o) } else { "0.0".into() })
                .collect();
            out!("let sz_{m} = subgroupAdd(vec4<f32>({}));", parts.join(", "));
        }
        for cc in 0..rows {
            let bias = if trial { format!("(b{r}_{cc} - hh{r} * gb{r}_{cc})") } else { format!("b{r}_{cc}") };
            let name = if spec.pair() { 1 } else { cc };
            out!("let z_{name} = sz_{}.{} * {scale} + {bias};", cc / 4, comps[(cc % 4) as usize]);
        }
        if spec.pair() {
            out!("let z_0 = 0.0; // the loss sees only z₁ − z₀");
        }
        match model {
            0 | 1 => {
                out!("let y = u32(t);");
                softmax(w, pad, "z", "", c);
                if model == 0 {
                    out!("loss{r} = log1p_pos(rest) + (m - zy);");
                    for cc in 0..c {
                        out!("d{r}_{cc} = ex_{cc} / tot - select(0.0, 1.0, y == {cc}u);");
                    }
                } else {
                    // seed-compat: CE of softmax(q) with q = softmax(z), back through both.
                    for cc in 0..c {
                        out!("let q_{cc} = ex_{cc} / tot;");
                    }
                    softmax(w, pad, "q", "2", c);
                    for cc in 0..c {
                        out!("let r_{cc} = ex2_{cc} / tot2 - select(0.0, 1.0, y == {cc}u);");
                    }
                    let qg: Vec<String> = (0..c).map(|cc| format!("q_{cc} * r_{cc}")).collect();
                    out!("let qg = {};", qg.join(" + "));
                    for cc in 0..c {
                        out!("d{r}_{cc} = q_{cc} * (r_{cc} - qg);");
                    }
                    out!("loss{r} = log1p_pos(rest2) + (m2 - zy2);");
                }
                out!("correct{r} = select(0.0, 1.0, top == y);");
            }
            _ => {
                out!("var zl: array<f32, MAX_CLASSES>;");
                out!("zl[0] = z_0;");
                let f = if model == 2 { "logistic" } else { "squares" };
                out!("let sl = {f}(&zl, t);");
                out!("loss{r} = sl.loss;");
                out!("correct{r} = sl.correct;");
                out!("d{r}_0 = zl[0];");
            }
        }
        out!("}}");
    }
}

/// Straight-line softmax of `{v}_0 ..`: the first maximum `m{sfx}` at `top{sfx}`, the target's
/// value `zy{sfx}`, `ex{sfx}_c` = exp(v_c − m), `rest{sfx}` = Σ over the other classes, and
/// `tot{sfx}` = 1 + rest (shaders/loss.wgsl's softmax_in_place, its loops written out).
fn softmax(w: &mut String, pad: &str, v: &str, sfx: &str, c: u32) {
    use std::fmt::Write;
    macro_rules! out { ($($t:tt)*) => { let _ = write!(w, "{pad}"); let _ = writeln!(w, $($t)*); } }
    out!("var top{sfx} = 0u;");
    out!("var m{sfx} = {v}_0;");
    out!("var zy{sfx} = {v}_0;");
    for cc in 1..c {
        out!("if {v}_{cc} > m{sfx} {{ top{sfx} = {cc}u; m{sfx} = {v}_{cc}; }}");
        out!("if y == {cc}u {{ zy{sfx} = {v}_{cc}; }}");
    }
    out!("var rest{sfx} = 0.0;");
    for cc in 0..c {
        out!("let ex{sfx}_{cc} = exp({v}_{cc} - m{sfx});");
        out!("if top{sfx} != {cc}u {{ rest{sfx} += ex{sfx}_{cc}; }}");
    }
    out!("let tot{sfx} = 1.0 + rest{sfx};");
}

/// Constants shared by the generated kernels.
fn header(w: &mut String, spec: &SubgroupSpec) {
    use std::fmt::Write;
    let SubgroupSpec { p, classes: c, .. } = *spec;
    macro_rules! out { ($($t:tt)*) => { let _ = writeln!(w, $($t)*); } }
    out!(
        "// {} unit(s) of {} quad(s) per lane. The loss of C = 1 models comes from shaders/loss.wgsl;",
        spec.slots(),
        spec.quads_per_unit()
    );
    out!("// softmax's is written out here without loops (its twin is the same cpu::loss).");
    out!("//! import loss");
    out!("const P: u32 = {p}u;");
    out!("const C: u32 = {c}u;");
    out!("const DIM: u32 = {}u;", c * (p + 1));
    out!("const NU: u32 = {}u;", spec.units());
    out!("const SH = vec4<u32>(0u, 8u, 16u, 24u);");
    out!("const ONE = vec4<f32>(1.0);");
}

/// The dataset's group 1 (shaders/data.wgsl's, with the words read as `vec4<u32>`) and the
/// loads of θ and single features.
fn data_bindings(w: &mut String, spec: &SubgroupSpec) {
    use std::fmt::Write;
    macro_rules! out { ($($t:tt)*) => { let _ = writeln!(w, $($t)*); } }
    out!("struct DataInfo {{ n: u32, p: u32, _pad0: u32, _pad1: u32 }}");
    out!("@group(1) @binding(0) var<uniform> data_info: DataInfo;");
    out!("@group(1) @binding(1) var<storage, read> x_vec: array<vec4<u32>>;");
    out!("@group(1) @binding(2) var<storage, read> targets: array<f32>;");
    out!("// θ entry i holding feature j of a row of W (0 past the row's end: units no lane has).");
    out!("fn w_at(i: u32, j: u32) -> f32 {{ if j < P {{ return theta[i]; }} return 0.0; }}");
    if spec.x_u8 {
        out!("// Raw pixel i of the set (0..255): byte i of the words.");
        out!("fn raw_at(i: u32) -> f32 {{ return f32((x_vec[i >> 4u][(i >> 2u) & 3u] >> ((i & 3u) * 8u)) & 0xffu); }}");
    } else {
        out!("fn raw_at(i: u32) -> f32 {{ return bitcast<f32>(x_vec[i >> 2u][i & 3u]); }}");
    }
}

/// In `main`: the lane's units `u_K`, their first features `j_K_Q`, and for each run R of the
/// group (`run{R}`) its θ offset `base{R}`, its slice of W (`w{R}_C_K_Q`; W₁ − W₀ alone for the
/// two-class softmax) and biases (`b{R}_C`, every lane holds every bias); with `train`, as
/// variables with their gradients (`g{R}_C_K_Q`, `gb{R}_C`).
fn lane_slice(w: &mut String, spec: &SubgroupSpec, train: bool, runs: u32) {
    use std::fmt::Write;
    let SubgroupSpec { p, classes: c, .. } = *spec;
    let (q, k) = (spec.quads_per_unit(), spec.slots());
    macro_rules! out { ($($t:tt)*) => { let _ = writeln!(w, $($t)*); } }
    let decl = if train { "var" } else { "let" };
    for kk in 0..k {
        out!("    let u_{kk} = lane + {}u;", kk * SUBGROUP_LANES);
        for qq in 0..q {
            out!("    let j_{kk}_{qq} = (u_{kk} * {q}u + {qq}u) * 4u;");
        }
    }
    for r in 0..runs {
        out!("    let base{r} = run{r} * DIM;");
        let quad = |row: u32, kk: u32, qq: u32| {
            let e = |o: u32| format!("w_at(base{r} + {}u + j_{kk}_{qq} + {o}u, j_{kk}_{qq} + {o}u)", row * p);
            format!("vec4<f32>({}, {}, {}, {})", e(0), e(1), e(2), e(3))
        };
        for cc in 0..spec.rows() {
            for kk in 0..k {
                for qq in 0..q {
                    let value = if spec.pair() {
                        format!("{} - {}", quad(1, kk, qq), quad(0, kk, qq))
                    } else {
                        quad(cc, kk, qq)
                    };
                    out!("    {decl} w{r}_{cc}_{kk}_{qq} = {value};");
                    if train {
                        out!("    var g{r}_{cc}_{kk}_{qq} = vec4<f32>(0.0);");
                    }
                }
            }
            let bias = if spec.pair() {
                format!("theta[base{r} + {}u] - theta[base{r} + {}u]", c * p + 1, c * p)
            } else {
                format!("theta[base{r} + {}u]", c * p + cc)
            };
            out!("    {decl} b{r}_{cc} = {bias};");
            if train {
                out!("    var gb{r}_{cc} = 0.0;");
            }
        }
    }
}

/// The whole-set evaluation for `spec` on CPU adapters with subgroups (the twin is
/// `cpu::kernels::evaluate`): workgroup (g, r), one subgroup, holds run r's W in registers as
/// the training kernel does and sums the loss and correctness of the g-th range of
/// ⌈n / groups⌉ consecutive samples into `partials[r · groups + g]`; shaders/reduce.wgsl adds
/// them. Its one loop (the samples of the range) stays far below llvmpipe's loop cap.
pub fn subgroup_evaluate(spec: &SubgroupSpec) -> String {
    use std::fmt::Write;
    let SubgroupSpec { p, classes: c, model, .. } = *spec;
    let mut s = String::new();
    let w = &mut s;
    macro_rules! out { ($($t:tt)*) => { let _ = writeln!(w, $($t)*); } }
    out!(
        "// Generated by steplens::shader_source::subgroup_evaluate: P = {p}, C = {c}, MODEL = {model}, {:?} loads,",
        spec.load()
    );
    header(w, spec);
    out!("struct EvaluateParams {{ sets: u32, classes: u32, dim: u32, groups: u32 }}");
    out!("@group(0) @binding(0) var<uniform> prm: EvaluateParams;");
    out!("@group(0) @binding(1) var<storage, read> theta: array<f32>;");
    out!("@group(0) @binding(2) var<storage, read_write> partials: array<vec2<f32>>;");
    data_bindings(w, spec);
    let scale = if spec.x_u8 { "(1.0 / 255.0)" } else { "1.0" };
    out!("// Workgroups: (groups, sets, 1).");
    out!("@compute @workgroup_size({SUBGROUP_LANES})");
    out!("fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lane: u32) {{");
    out!("    let run0 = wg.y;");
    lane_slice(w, spec, false, 1);
    out!("    let chunk = (data_info.n + prm.groups - 1u) / prm.groups;");
    out!("    let first = min(data_info.n, wg.x * chunk);");
    out!("    let end = min(data_info.n, first + chunk);");
    out!("    var acc = vec2<f32>(0.0);");
    out!("    for (var row = first; row < end; row++) {{");
    sample(w, spec, scale, false, false, 1);
    out!("            acc += vec2<f32>(loss0, correct0);");
    out!("    }}");
    out!("    if lane == 0u {{");
    out!("        partials[run0 * prm.groups + wg.x] = acc;");
    out!("    }}");
    out!("}}");
    s
}
