//! Makes the embedded MNIST digits 0/1 subset (`data/mnist01-*.gz`) from the original MNIST
//! files: verifies their SHA-256, keeps the images labelled 0 or 1 in their original order and
//! writes them as gzip IDX files with the best compression.
//!
//! ```text
//! cargo run --example make_mnist01 [-- SOURCE_DIR [OUT_DIR]]
//! ```
//! SOURCE_DIR defaults to `tests/fixtures/mnist`, OUT_DIR to `data` (both in the crate).
//! The library embeds the files it writes, so it only compiles when they exist: to make them
//! from nothing, create four empty placeholders first (`touch data/mnist01-{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz`).

use std::error::Error;
use std::path::{Path, PathBuf};

use steplens::data::idx::{self, Images};
use steplens::data::mnist::{EMBEDDED_FILES, FILES, sha256_hex};

fn main() -> Result<(), Box<dyn Error>> {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut args = std::env::args_os().skip(1).map(PathBuf::from);
    let src = args.next().unwrap_or_else(|| crate_dir.join("tests/fixtures/mnist"));
    let out = args.next().unwrap_or_else(|| crate_dir.join("data"));
    std::fs::create_dir_all(&out)?;
    for k in [0, 2] {
        let raw_images = verified(&src, k)?;
        let raw_labels = verified(&src, k + 1)?;
        let images = idx::parse_images(&raw_images, src.join(FILES[k].0))?;
        let labels = idx::parse_labels(&raw_labels, src.join(FILES[k + 1].0))?;
        let (images, labels) = zeros_and_ones(&images, &labels);
        std::fs::write(out.join(EMBEDDED_FILES[k]), idx::images_gz(&images))?;
        std::fs::write(out.join(EMBEDDED_FILES[k + 1]), idx::labels_gz(&labels))?;
        let ones = labels.iter().filter(|&&l| l == 1).count();
        println!("{}: {} images ({} zeros, {ones} ones)", EMBEDDED_FILES[k], images.n, images.n - ones);
    }
    Ok(())
}

/// The decompressed content of original file `k`, checked against its known SHA-256.
fn verified(src: &Path, k: usize) -> Result<Vec<u8>, Box<dyn Error>> {
    let path = src.join(FILES[k].0);
    let raw = idx::decompress(&std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?, &path)?;
    let actual = sha256_hex(&raw);
    if actual != FILES[k].1 {
        return Err(format!("{} has SHA-256 {actual}, expected {}", path.display(), FILES[k].1).into());
    }
    Ok(raw)
}

/// The images labelled 0 or 1 and their labels, in the original order.
fn zeros_and_ones(images: &Images, labels: &[u8]) -> (Images, Vec<u8>) {
    let p = images.pixels_per_image();
    let mut kept = Images { n: 0, rows: images.rows, cols: images.cols, pixels: Vec::new() };
    let mut kept_labels = Vec::new();
    for (image, &label) in images.pixels.chunks_exact(p).zip(labels) {
        if label <= 1 {
            kept.pixels.extend_from_slice(image);
            kept_labels.push(label);
            kept.n += 1;
        }
    }
    (kept, kept_labels)
}
