// The dataset resident on the device: bind group 1, shared by every kernel that reads samples.
// Features are 32-bit words: four u8 pixels per word (standing for value/255, so full MNIST fits
// the storage-binding limit) or the bits of an f32, chosen per pipeline by the override X_U8.

override X_U8: bool = true;

struct DataInfo {
    // Samples in the set.
    n: u32,
    // Features per sample.
    p: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(1) @binding(0) var<uniform> data_info: DataInfo;
@group(1) @binding(1) var<storage, read> x_words: array<u32>;
@group(1) @binding(2) var<storage, read> targets: array<f32>;

// Feature `col` of sample `row`.
fn feature(row: u32, col: u32) -> f32 {
    return feature_raw(row, col) * feature_scale();
}

// Feature `col` of sample `row` before scaling: the pixel value 0..255, or the f32 itself.
// Dot products sum raw features and scale once at the end: one multiply per sum instead of a
// division per element (on CPU adapters the division dominated the inner loops).
fn feature_raw(row: u32, col: u32) -> f32 {
    let i = row * data_info.p + col;
    if X_U8 {
        return f32((x_words[i >> 2u] >> ((i & 3u) * 8u)) & 0xffu);
    }
    return bitcast<f32>(x_words[i]);
}

// What feature_raw is multiplied by to give the feature.
fn feature_scale() -> f32 {
    if X_U8 {
        return 1.0 / 255.0;
    }
    return 1.0;
}
