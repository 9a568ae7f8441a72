//! Every WGSL kernel against its f64 CPU twin, on fresh random inputs (never zeros) at awkward
//! sizes (1, 17, 33, 64, 784, 785 features; partial 4 × 4 tiles), outputs poisoned with NaN first
//! so unwritten elements show. Tolerance: normwise relative error ≤ 1e-5 (f32 arithmetic against f64). The checks live
//! in `steplens::validate`, which `steplens validate` runs on every adapter.

mod common;

use steplens::validate::{self, KERNEL_TOL};

#[test]
fn every_kernel_matches_its_cpu_twin() {
    let checks = validate::kernel_checks(&common::gpu());
    assert!(checks.len() >= 40, "{} checks", checks.len());
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| !c.passed || c.tolerance != KERNEL_TOL)
        .map(|c| format!("{}: error {:.2e} {}", c.name, c.max_error, c.note.clone().unwrap_or_default()))
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
}

#[test]
fn validation_runs_and_analysis_pass_here() {
    let ctx = || Ok(common::gpu());
    for c in validate::training_checks(&ctx) {
        assert!(c.passed, "{}: {:.2e} {:?}", c.name, c.max_error, c.note);
    }
    let c = validate::analysis_check(common::gpu()).unwrap();
    assert!(c.passed, "{}: {:.2e} {:?}", c.name, c.max_error, c.note);
}

/// The subgroup training kernel against its f64 twin: every loss and step rule, awkward sizes,
/// epochs split across dispatches, step statistics poisoned with NaN first.
#[test]
fn subgroup_kernel_matches_its_cpu_twin() {
    let ctx = common::gpu();
    let checks = validate::subgroup_checks(&ctx);
    if steplens::gpu::subgroup::adapter_unsupported(&ctx).is_some() {
        assert!(checks.is_empty());
        return;
    }
    let names: Vec<String> = validate::subgroup_cases().iter().map(|c| c.name()).collect();
    assert_eq!(checks.iter().map(|c| c.name.clone()).collect::<Vec<_>>(), names);
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| !c.passed || c.tolerance != KERNEL_TOL)
        .map(|c| format!("{}: error {:.2e} {}", c.name, c.max_error, c.note.clone().unwrap_or_default()))
        .collect();
    for c in &checks {
        eprintln!("{}: {:.2e}", c.name, c.max_error);
    }
    assert!(failed.is_empty(), "{failed:#?}");
}
