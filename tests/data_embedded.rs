//! The small datasets embedded for the benchmark suite, and standardisation.

use std::path::Path;

use steplens::data::{self, Data, Dataset, Embedded, Features, Source, mnist::sha256_hex, standardize};

/// The checksums of `../shared/datasets/SHA256SUMS`, copied here: the files in `data/` are the
/// published copies, byte for byte.
const SHA256SUMS: [(&str, &str); 2] = [
    ("breast_cancer.csv", "2b70df2cfc0cb63de6f9d81907e9459a919df54fbe1c0d48ff7e449b17ad3c70"),
    ("diabetes.csv", "bf55ec72b3698a462454f0d75e26957d7536d17fe3b6729f2371d19bb0c86cea"),
];

#[test]
fn files_are_the_published_copies_and_embedded_as_they_are() {
    for (file, sha) in SHA256SUMS {
        let bytes = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("data").join(file)).unwrap();
        assert_eq!(sha256_hex(&bytes), sha, "data/{file}");
        let e = Embedded::ALL.into_iter().find(|e| e.file_name() == file).unwrap();
        assert_eq!(e.bytes(), &bytes[..], "the embedded {file}");
    }
}

#[test]
fn embedded_sets_load_with_their_shapes() {
    let bc = data::load(&Source::Embedded(Embedded::BreastCancer)).unwrap();
    assert_eq!((bc.train.n, bc.train.p, bc.train.classes), (569, 30, Some(2)));
    assert!(bc.test.is_none());
    assert_eq!(bc.train.name, "breast_cancer");
    // First row of the file: 17.99,10.38,…,0.1189,0
    assert_eq!(bc.train.x(0, 0), 17.99f32 as f64);
    assert_eq!(bc.train.x(0, 29), 0.1189f32 as f64);
    assert_eq!(bc.train.targets[0], 0.0);
    assert_eq!(bc.train.targets.iter().filter(|&&t| t == 1.0).count(), 357, "357 benign");
    let db = data::load(&Source::Embedded(Embedded::Diabetes)).unwrap();
    assert_eq!((db.train.n, db.train.p, db.train.classes), (442, 10, None));
    assert_eq!(db.train.targets[..2], [151.0, 75.0]);
    assert_eq!(Embedded::BreastCancer.name(), "breast_cancer");
    assert_eq!(Embedded::Diabetes.name(), "diabetes");
    assert_eq!(Embedded::from_name("diabetes"), Some(Embedded::Diabetes));
    assert_eq!(Embedded::from_name("digits"), None);
}

fn set(rows: &[&[f32]], targets: &[f32], classes: Option<usize>) -> Dataset {
    Dataset {
        name: "t".into(),
        n: rows.len(),
        p: rows[0].len(),
        features: Features::F32(rows.concat()),
        targets: targets.to_vec(),
        classes,
    }
}

fn column(d: &Dataset, j: usize) -> Vec<f64> {
    (0..d.n).map(|i| d.x(i, j)).collect()
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let m = v.iter().sum::<f64>() / v.len() as f64;
    (m, (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64).sqrt())
}

#[test]
fn standardize_uses_the_training_statistics() {
    let train =
        set(&[&[1.0, 5.0, -2.0], &[3.0, 5.0, 0.0], &[5.0, 5.0, 8.0], &[7.0, 5.0, 2.0]], &[1.0, 2.0, 3.0, 6.0], None);
    let test = set(&[&[4.0, 9.0, 2.0], &[10.0, 5.0, -8.0]], &[0.0, 3.0], None);
    let mut d = Data { train, test: Some(test) };
    let s = standardize(&mut d, true);
    // Feature 0: mean 4, population std √5; feature 1 constant; feature 2: mean 2, std √(58/4·…).
    assert_eq!(s.mean[..2], [4.0, 5.0]);
    assert!((s.std[0] - 5f64.sqrt()).abs() < 1e-12);
    assert_eq!(s.std[1], 0.0);
    for j in [0, 2] {
        let (m, sd) = mean_std(&column(&d.train, j));
        assert!(m.abs() < 1e-6 && (sd - 1.0).abs() < 1e-6, "train column {j}: mean {m}, std {sd}");
    }
    assert!(column(&d.train, 1).iter().all(|&v| v == 0.0), "a constant column becomes 0");
    let (tm, ts) = (s.target_mean.unwrap(), s.target_std.unwrap());
    assert_eq!(tm, 3.0);
    let (m, sd) = mean_std(&d.train.targets.iter().map(|&t| t as f64).collect::<Vec<_>>());
    assert!(m.abs() < 1e-6 && (sd - 1.0).abs() < 1e-6);
    // The test set: the training set's numbers, not its own.
    let test = d.test.as_ref().unwrap();
    assert_eq!(test.x(0, 0), ((4.0 - 4.0) / 5f64.sqrt()) as f32 as f64);
    assert_eq!(test.x(1, 0), ((10.0 - 4.0) / 5f64.sqrt()) as f32 as f64);
    assert_eq!(test.x(0, 1), 0.0, "constant in training: 0 in the test set too, whatever its value");
    assert_eq!(test.x(1, 2), ((-8.0 - s.mean[2]) / s.std[2]) as f32 as f64);
    assert_eq!(test.targets[1], ((3.0 - tm) / ts) as f32);
    assert_eq!(d.train.classes, None);
}

#[test]
fn standardize_keeps_class_targets_and_converts_pixels() {
    let mut d = data::load(&Source::EmbeddedMnist01).unwrap();
    let targets = d.train.targets.clone();
    let s = standardize(&mut d, false);
    assert!(s.target_mean.is_none() && s.target_std.is_none());
    assert_eq!(d.train.targets, targets, "a classifier's targets stay class indices");
    assert_eq!(d.train.classes, Some(2));
    assert!(matches!(d.train.features, Features::F32(_)));
    assert!(matches!(d.test.as_ref().unwrap().features, Features::F32(_)));
    // Pixel (0, 0) is 0 everywhere in MNIST: constant, so 0.
    assert_eq!(s.std[0], 0.0);
    let j = 14 * 28 + 14;
    let (m, sd) = mean_std(&column(&d.train, j));
    assert!(m.abs() < 1e-5 && (sd - 1.0).abs() < 1e-5, "centre pixel: mean {m}, std {sd}");
}

#[test]
fn standardized_embedded_sets() {
    for e in Embedded::ALL {
        let mut d = e.load().unwrap();
        let s = standardize(&mut d, e == Embedded::Diabetes);
        assert_eq!(s.mean.len(), d.train.p);
        for j in 0..d.train.p {
            let (m, sd) = mean_std(&column(&d.train, j));
            assert!(m.abs() < 1e-5 && (sd - 1.0).abs() < 1e-5, "{e} column {j}: mean {m}, std {sd}");
        }
        assert_eq!(d.train.classes, if e == Embedded::BreastCancer { Some(2) } else { None });
    }
}
