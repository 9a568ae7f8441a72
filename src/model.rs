//! The three models (softmax regression, logistic regression, least squares), all a linear map z = W x + b followed by a per-sample loss:
//!
//! | model     | outputs | loss of one sample                        | d loss / d z          |
//! |-----------|---------|-------------------------------------------|-----------------------|
//! | `softmax` | C       | −ln softmax(z)_y                          | softmax(z) − e_y      |
//! | seed-compat | C     | −ln softmax(softmax(z))_y (the notebook)  | J_softmaxᵀ (softmax(s) − e_y) |
//! | `logreg`  | 1       | −y ln σ(z) − (1−y) ln(1−σ(z))             | σ(z) − y              |
//! | `lls`     | 1       | (z − y)²                                  | 2 (z − y)             |
//!
//! The parameters of one model are one flat vector θ = [W row-major (outputs × p), b (outputs)],
//! the layout every kernel, the CPU reference and `weights.npy`/`bias.npy` share.

use serde::{Deserialize, Serialize};

use crate::{Error, Result, data::Dataset, prng, shader_source::codes};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// Softmax regression (multinomial logistic), mean cross-entropy.
    Softmax,
    /// Binary logistic regression, mean binary cross-entropy.
    Logreg,
    /// Linear least squares, (1/n)‖Xθ + β − y‖².
    Lls,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum LossKind {
    /// The correct cross-entropy of softmax(Wx+b).
    Ce,
    /// The notebook's "double softmax": CrossEntropyLoss applied to softmax outputs.
    SeedCompat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum InitKind {
    /// Xavier-uniform W (bound √(6/(p+C))), bias U(−1/√p, 1/√p), as the notebook and torch's Linear.
    Xavier,
    Zeros,
}

/// The per-sample loss a kernel specialises on (the WGSL override constant `MODEL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum LossCode {
    SoftmaxCe = codes::LOSS_SOFTMAX_CE,
    SoftmaxSeedCompat = codes::LOSS_SOFTMAX_SEED_COMPAT,
    Logistic = codes::LOSS_LOGISTIC,
    Squares = codes::LOSS_SQUARES,
}

/// A model bound to a data shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Model {
    pub kind: ModelKind,
    pub loss: LossKind,
    /// Features per sample.
    pub p: usize,
    /// Rows of W: the classes for softmax, 1 otherwise.
    pub outputs: usize,
}

/// The most classes the fused kernels hold in registers and workgroup memory.
pub const MAX_CLASSES: usize = codes::MAX_CLASSES as usize;

impl Model {
    /// The model for `kind` on `data`, checking that its targets suit the model.
    pub fn for_data(kind: ModelKind, loss: LossKind, data: &Dataset) -> Result<Model> {
        if loss == LossKind::SeedCompat && kind != ModelKind::Softmax {
            return Err(Error::usage("--loss seed-compat applies to --model softmax only"));
        }
        let outputs = match kind {
            ModelKind::Softmax => {
                let classes = data.classes.ok_or_else(|| {
                    Error::usage(format!(
                        "{} has targets that are not class indices 0, 1, 2, …: softmax needs classes (use --model lls for real targets)",
                        data.name
                    ))
                })?;
                if !(2..=MAX_CLASSES).contains(&classes) {
                    return Err(Error::usage(format!(
                        "{} has {classes} classes; softmax supports 2 to {MAX_CLASSES}",
                        data.name
                    )));
                }
                classes
            }
            ModelKind::Logreg => {
                if data.classes.is_none_or(|c| c > 2) {
                    return Err(Error::usage(format!("{} needs targets 0 and 1 for logistic regression", data.name)));
                }
                1
            }
            ModelKind::Lls => 1,
        };
        Ok(Model { kind, loss, p: data.p, outputs })
    }

    /// Number of parameters: outputs × (p + 1).
    pub fn dim(&self) -> usize {
        self.outputs * (self.p + 1)
    }

    pub fn loss_code(&self) -> LossCode {
        match (self.kind, self.loss) {
            (ModelKind::Softmax, LossKind::Ce) => LossCode::SoftmaxCe,
            (ModelKind::Softmax, LossKind::SeedCompat) => LossCode::SoftmaxSeedCompat,
            (ModelKind::Logreg, _) => LossCode::Logistic,
            (ModelKind::Lls, _) => LossCode::Squares,
        }
    }

    /// Whether accuracy means something (classification) for this model.
    pub fn has_accuracy(&self) -> bool {
        self.kind != ModelKind::Lls
    }

    /// Initial parameters, drawn from the counter PRNG stream `INIT` of `seed`.
    pub fn init(&self, init: InitKind, seed: u64) -> Vec<f32> {
        let mut theta = vec![0.0f32; self.dim()];
        if init == InitKind::Zeros {
            return theta;
        }
        let (c, p) = (self.outputs, self.p);
        let w_bound = (6.0 / (p + c) as f64).sqrt() as f32;
        let b_bound = (1.0 / (p as f64).sqrt()) as f32;
        for (i, t) in theta.iter_mut().enumerate() {
            let u = prng::uniform(seed, prng::stream::INIT, 0, 0, i as u32);
            let bound = if i < c * p { w_bound } else { b_bound };
            *t = bound * (2.0 * u - 1.0);
        }
        theta
    }
}
