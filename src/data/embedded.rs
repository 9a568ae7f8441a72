//! Small public datasets embedded in the binary for the benchmark suite (`data/`, see
//! `data/README.md` for their sources and licences): `breast_cancer` (569 × 30, classes 0/1,
//! for `logreg`) and `diabetes` (442 × 10, a real target, for `lls`).
//!
//! They are CSV files read by [`super::csv`]; they have no test set. Their features are raw
//! values of very different scales: standardise them ([`super::standardize`]) before SGD.

use serde::Serialize;

use super::{Data, csv};
use crate::error::DataError;
use crate::model::ModelKind;

/// One of the embedded small datasets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Embedded {
    /// Breast Cancer Wisconsin (Diagnostic): 569 samples, 30 features, 0 malignant / 1 benign.
    #[value(name = "breast_cancer")]
    BreastCancer,
    /// Efron et al.'s diabetes data: 442 samples, 10 features, disease progression after a year.
    #[value(name = "diabetes")]
    Diabetes,
}

impl Embedded {
    /// Every embedded dataset.
    pub const ALL: [Embedded; 2] = [Embedded::BreastCancer, Embedded::Diabetes];

    /// The dataset's name: `breast_cancer`, `diabetes` (the `--dataset` value and the file stem).
    pub fn name(self) -> &'static str {
        match self {
            Embedded::BreastCancer => "breast_cancer",
            Embedded::Diabetes => "diabetes",
        }
    }

    /// The dataset named `name`, if there is one.
    pub fn from_name(name: &str) -> Option<Embedded> {
        Embedded::ALL.into_iter().find(|e| e.name() == name)
    }

    /// The file in `data/` it was embedded from.
    pub fn file_name(self) -> &'static str {
        match self {
            Embedded::BreastCancer => "breast_cancer.csv",
            Embedded::Diabetes => "diabetes.csv",
        }
    }

    /// The model the data is made for: `logreg` for breast_cancer, `lls` for diabetes.
    pub fn model(self) -> ModelKind {
        match self {
            Embedded::BreastCancer => ModelKind::Logreg,
            Embedded::Diabetes => ModelKind::Lls,
        }
    }

    /// The CSV bytes embedded in the binary.
    pub fn bytes(self) -> &'static [u8] {
        match self {
            Embedded::BreastCancer => include_bytes!("../../data/breast_cancer.csv"),
            Embedded::Diabetes => include_bytes!("../../data/diabetes.csv"),
        }
    }

    /// The data: every sample in the training set, no test set. The dataset is named
    /// [`Embedded::name`]. diabetes's target is a real quantity even though its values are
    /// whole numbers (25 to 346), so it has no classes.
    pub fn load(self) -> Result<Data, DataError> {
        let name = std::path::PathBuf::from(format!("(embedded) data/{}", self.file_name()));
        let mut train = csv::parse_known(self.bytes(), &name)?;
        train.name = self.name().to_string();
        if self.model() == ModelKind::Lls {
            train.classes = None;
        }
        Ok(Data { train, test: None })
    }
}

impl std::fmt::Display for Embedded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
