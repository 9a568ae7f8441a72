// The dataset resident on the device: bind group 1, shared by every kernel that reads samples.
// Features are 32-bit words: four u8 pixels per word (standing for value/255, so full MNIST fits
// the storage-binding limit) or the bits of an f32, chosen per pipeline by the override X_U8.
// The same words are also a texture (x_texels, `GpuData::upload`): on llvmpipe a storage load
// fills a vector one lane at a time through the stack, where a texel fetch is a gather
// (BENCHMARKS.md: ×7–9 the lane loads a second on an AVX2 CPU).
//! import codes

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
// Texel t = vec4<u32> word t of x_words as array<vec4<u32>>, at (t % width, t / width).
@group(1) @binding(3) var x_texels: texture_2d<u32>;

// Four words of x_words from the texture: words 4t .. 4t + 3.
fn x_texel(t: u32) -> vec4<u32> {
    return textureLoad(x_texels, vec2<u32>(t % DATA_TEXTURE_WIDTH, t / DATA_TEXTURE_WIDTH), 0);
}

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

// Feature `col` of sample `row` before scaling, or 0 past the last feature.
fn feature_raw_or_zero(row: u32, col: u32) -> f32 {
    return select(0.0, feature_raw(row, min(col, data_info.p - 1u)), col < data_info.p);
}

// Features col .. col + 3 of sample `row` before scaling, 0 past the last feature. When the four
// pixels share a word (u8 data whose rows start on a word, as MNIST's 784 do) that is one load
// instead of four: on CPU adapters every load is a per-lane gather, and loads set the speed.
fn features4_raw(row: u32, col: u32) -> vec4<f32> {
    let p = data_info.p;
    let i = row * p + col;
    if X_U8 && (i & 3u) == 0u && col + 4u <= p {
        let w = x_words[i >> 2u];
        return vec4<f32>((vec4<u32>(w) >> vec4<u32>(0u, 8u, 16u, 24u)) & vec4<u32>(0xffu));
    }
    return vec4<f32>(
        feature_raw_or_zero(row, col),
        feature_raw_or_zero(row, col + 1u),
        feature_raw_or_zero(row, col + 2u),
        feature_raw_or_zero(row, col + 3u),
    );
}

// What feature_raw is multiplied by to give the feature.
fn feature_scale() -> f32 {
    if X_U8 {
        return 1.0 / 255.0;
    }
    return 1.0;
}
