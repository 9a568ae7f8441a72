//! Property tests: the parsers of untrusted files never panic, whatever the bytes, and the
//! writers' output reads back to what was written.

use proptest::prelude::*;
use steplens::data::idx::{self, Images};
use steplens::data::{Features, csv, npy};

fn config() -> ProptestConfig {
    ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() }
}

fn small_images() -> Images {
    Images { n: 3, rows: 4, cols: 5, pixels: (0..60).map(|i| (i * 7) as u8).collect() }
}

/// Valid IDX files, gzip and raw, of both kinds, to mutate.
fn valid_idx() -> Vec<Vec<u8>> {
    let images_gz = idx::images_gz(&small_images());
    let labels_gz = idx::labels_gz(&[0, 1, 1, 9]);
    let images_raw = idx::decompress(&images_gz, "x").unwrap();
    let labels_raw = idx::decompress(&labels_gz, "x").unwrap();
    vec![images_gz, labels_gz, images_raw, labels_raw]
}

fn valid_npy() -> Vec<Vec<u8>> {
    vec![npy::f32_bytes(&[2, 3], &[1.0, -2.0, 3.5, 0.0, 1e-3, 7.0]), npy::u32_bytes(&[4], &[0, 1, 2, 3])]
}

/// A mutation: positions (taken modulo the length) to overwrite, and where to cut the file.
fn mutate(mut bytes: Vec<u8>, edits: &[(usize, u8)], cut: Option<usize>) -> Vec<u8> {
    if !bytes.is_empty() {
        for &(pos, val) in edits {
            let k = pos % bytes.len();
            bytes[k] = val;
        }
    }
    if let Some(c) = cut {
        bytes.truncate(c % (bytes.len() + 1));
    }
    bytes
}

fn edits() -> impl Strategy<Value = Vec<(usize, u8)>> {
    prop::collection::vec((any::<usize>(), any::<u8>()), 0..4)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn idx_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = idx::parse_images(&bytes, "x");
        let _ = idx::parse_labels(&bytes, "x");
        let _ = idx::decompress(&bytes, "x");
    }

    #[test]
    fn idx_never_panics_on_mutated_files(which in 0..4usize, edits in edits(), cut in prop::option::of(any::<usize>())) {
        let bytes = mutate(valid_idx()[which].clone(), &edits, cut);
        if let Ok(images) = idx::parse_images(&bytes, "x") {
            prop_assert_eq!(images.pixels.len(), images.n * images.rows * images.cols);
        }
        if let Ok(labels) = idx::parse_labels(&bytes, "x") {
            prop_assert!(!labels.is_empty());
        }
    }

    #[test]
    fn idx_round_trip(n in 1..5usize, rows in 1..6usize, cols in 1..6usize, seed in any::<u8>()) {
        let pixels: Vec<u8> = (0..n * rows * cols).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect();
        let images = Images { n, rows, cols, pixels };
        prop_assert_eq!(idx::parse_images(&idx::images_gz(&images), "x").unwrap(), images.clone());
        prop_assert_eq!(idx::parse_labels(&idx::labels_gz(&images.pixels), "x").unwrap(), images.pixels);
    }

    #[test]
    fn csv_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = csv::parse(&bytes, "x.csv");
    }

    #[test]
    fn csv_never_panics_on_csv_like_text(text in "[0-9a-z,.eE+\\- \t\r\n]{0,200}") {
        if let Ok(d) = csv::parse(&text, "x.csv") {
            prop_assert_eq!(d.features.len(), d.n * d.p);
            prop_assert_eq!(d.targets.len(), d.n);
            prop_assert!(d.n > 0 && d.p > 0);
        }
    }

    #[test]
    fn csv_round_trip(rows in prop::collection::vec(prop::collection::vec(-1e6f32..1e6, 3), 1..8)) {
        let text: String = rows.iter().map(|r| format!("{}, {} ,{}\r\n", r[0], r[1], r[2])).collect();
        let d = csv::parse(format!("a,b,y\n{text}"), "x.csv").unwrap();
        let features: Vec<f32> = rows.iter().flat_map(|r| [r[0], r[1]]).collect();
        prop_assert_eq!(d.features, Features::F32(features));
        prop_assert_eq!(d.targets, rows.iter().map(|r| r[2] + 0.0).collect::<Vec<_>>());
    }

    #[test]
    fn npy_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = npy::parse(&bytes, "x.npy");
        let mut with_magic = b"\x93NUMPY\x01\x00".to_vec();
        with_magic.extend_from_slice(&bytes);
        let _ = npy::parse(&with_magic, "x.npy");
    }

    #[test]
    fn npy_never_panics_on_mutated_files(which in 0..2usize, edits in edits(), cut in prop::option::of(any::<usize>())) {
        let bytes = mutate(valid_npy()[which].clone(), &edits, cut);
        if let Ok(a) = npy::parse(&bytes, "x.npy") {
            prop_assert_eq!(a.data.len(), a.shape.iter().product::<usize>());
        }
    }

    #[test]
    fn npy_never_panics_on_header_like_text(header in "[{}()\\[\\]'\":, 0-9a-zA-Z<|>_\n]{0,120}") {
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(&[0; 16]);
        let _ = npy::parse(&bytes, "x.npy");
    }

    #[test]
    fn npy_round_trip(p in 1..5usize, data in prop::collection::vec(any::<f32>(), 0..20)) {
        let n = data.len() / p;
        let data = &data[..n * p];
        let a = npy::parse(&npy::f32_bytes(&[n, p], data), "x.npy").unwrap();
        prop_assert_eq!(a.shape, vec![n, p]);
        // Compare bits: NaN payloads must survive too.
        prop_assert_eq!(a.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), data.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
    }
}
