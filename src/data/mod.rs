//! Training data: the embedded MNIST 0/1 subset, the embedded small sets of the benchmark suite
//! (`breast_cancer`, `diabetes`), full MNIST downloaded into a cache, and user data from CSV or
//! `.npy` files. Everything ends up as a [`Dataset`]: n samples of p features
//! and one target per sample.

pub mod csv;
pub mod embedded;
pub mod idx;
pub mod mnist;
pub mod npy;
pub mod standardize;

pub use embedded::Embedded;
pub use standardize::{Standardization, standardize};

use std::path::PathBuf;

use crate::error::DataError;

/// The feature matrix, row-major [n, p]. MNIST stays u8 (scaled by 1/255 where it is used), so
/// full MNIST fits the GPU's storage-binding limit; user data is f32.
#[derive(Debug, Clone, PartialEq)]
pub enum Features {
    /// Pixel values 0..=255 that stand for value/255.
    U8(Vec<u8>),
    F32(Vec<f32>),
}

impl Features {
    pub fn len(&self) -> usize {
        match self {
            Features::U8(v) => v.len(),
            Features::F32(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Element `i` (row-major index) as the value the models see.
    #[inline]
    pub fn get(&self, i: usize) -> f64 {
        match self {
            Features::U8(v) => v[i] as f64 / 255.0,
            Features::F32(v) => v[i] as f64,
        }
    }
}

/// n samples, p features each, one target each.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// What the data is, for reports: `mnist digits 0,1 (train)`, a file name, …
    pub name: String,
    pub n: usize,
    pub p: usize,
    pub features: Features,
    /// Class indices 0..classes (as f32) for classification data, real values for regression.
    pub targets: Vec<f32>,
    /// `Some(k)` when every target is an integer class index in 0..k.
    pub classes: Option<usize>,
}

impl Dataset {
    /// Feature j of sample i, as the models see it.
    #[inline]
    pub fn x(&self, i: usize, j: usize) -> f64 {
        self.features.get(i * self.p + j)
    }
}

/// The number of classes when `targets` look like class indices: `Some(max + 1)` when every
/// target is an integer in 0..=1,000,000, else `None` (regression). Turns -0 into 0 so that
/// class targets compare equal however they were written.
pub fn detect_classes(targets: &mut [f32]) -> Option<usize> {
    let is_class = |t: f32| (0.0..=1_000_000.0).contains(&t) && t.fract() == 0.0;
    if targets.is_empty() || !targets.iter().all(|&t| is_class(t)) {
        return None;
    }
    let mut max = 0.0f32;
    for t in targets.iter_mut() {
        *t += 0.0;
        max = max.max(*t);
    }
    Some(max as usize + 1)
}

/// A training set and, where one exists, a test set with the same number of features.
#[derive(Debug, Clone)]
pub struct Data {
    pub train: Dataset,
    pub test: Option<Dataset>,
}

impl Data {
    /// Whether the test set's targets suit `model` as the training set's must: class indices
    /// for the classifiers, within the classes the model was built for (0 and 1 for logistic
    /// regression). A usage error naming the test data and what is wrong otherwise.
    pub fn check_test(&self, model: &crate::model::Model) -> crate::Result<()> {
        use crate::model::ModelKind;
        let Some(test) = &self.test else { return Ok(()) };
        let classes = match model.kind {
            ModelKind::Lls => return Ok(()),
            ModelKind::Softmax => model.outputs,
            ModelKind::Logreg => 2,
        };
        let name = &test.name;
        let what = match model.kind {
            ModelKind::Softmax => "softmax",
            _ => "logistic regression",
        };
        if let Some((i, t)) = test.targets.iter().enumerate().find(|(_, t)| !(t.fract() == 0.0 && **t >= 0.0)) {
            return Err(crate::Error::usage(format!(
                "the test data {name} has target {t} (sample {}), not a class index 0, 1, …: {what} needs classes in its test data too",
                i + 1
            )));
        }
        if let Some((i, t)) = test.targets.iter().enumerate().find(|(_, t)| **t >= classes as f32) {
            return Err(crate::Error::usage(format!(
                "the test data {name} has class {t} (sample {}) but the model has {classes} classes (0 to {}) from the training data {}",
                i + 1,
                classes - 1,
                self.train.name
            )));
        }
        Ok(())
    }
}

/// Where the data comes from (the CLI's `--digits`, `--data`, `--test-data`, `--cache-dir`, `--mirror`).
#[derive(Debug, Clone)]
pub enum Source {
    /// The MNIST 0/1 subset embedded in the binary (`data/`).
    EmbeddedMnist01,
    /// One of the small datasets embedded for the benchmark suite (no test set).
    Embedded(Embedded),
    /// MNIST restricted to `digits` (sorted, distinct); class k is the k-th digit of the list.
    Mnist { digits: Vec<u8>, cache_dir: PathBuf, mirrors: Vec<String> },
    /// A CSV file (last column the target) or a directory with `X.npy` and `y.npy`
    /// (and optionally `X_test.npy`, `y_test.npy`); `test` overrides the test set.
    User { train: PathBuf, test: Option<PathBuf> },
}

/// Load the data a source names, validating everything (the error names the file).
pub fn load(source: &Source) -> Result<Data, DataError> {
    match source {
        Source::EmbeddedMnist01 => mnist::embedded_01(),
        Source::Embedded(e) => e.load(),
        Source::Mnist { digits, cache_dir, mirrors } => mnist::load_digits(digits, cache_dir, mirrors),
        Source::User { train, test } => load_user(train, test.as_deref()),
    }
}

fn load_user(train: &std::path::Path, test: Option<&std::path::Path>) -> Result<Data, DataError> {
    let (train_set, dir_test) = if train.is_dir() { npy::load_dir(train)? } else { (csv::load(train)?, None) };
    let test_set = match test {
        Some(t) if t.is_dir() => Some(npy::load_dir(t)?.0),
        Some(t) => Some(csv::load(t)?),
        None => dir_test,
    };
    if let Some(t) = &test_set
        && t.p != train_set.p
    {
        return Err(DataError::invalid(
            PathBuf::from(&t.name),
            format!(
                "it has {} but the training data has {}",
                crate::report::table::count(t.p, "feature", "features"),
                train_set.p
            ),
        ));
    }
    Ok(Data { train: train_set, test: test_set })
}
