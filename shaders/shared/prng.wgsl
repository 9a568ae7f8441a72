// Counter-based random numbers, the twin of `src/prng.rs`: every number is a pure function of
// (seed, stream, a, b, index), a chain of PCG output permutations, one link per counter word.
// `prng_prefix` hashes (seed, stream, a, b) once; a kernel that draws many indices of one
// (batch, point) then pays one link per number (`prng::Counter` on the host).

fn pcg_hash(v: u32) -> u32 {
    let state = v * 747796405u + 2891336453u;
    let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
    return (word >> 22u) ^ word;
}

fn prng_prefix(seed: vec2<u32>, stream: u32, a: u32, b: u32) -> u32 {
    var h = pcg_hash(seed.x);
    h = pcg_hash(h ^ seed.y);
    h = pcg_hash(h ^ stream);
    h = pcg_hash(h ^ a);
    return pcg_hash(h ^ b);
}

fn prng_hash(seed: vec2<u32>, stream: u32, a: u32, b: u32, index: u32) -> u32 {
    return pcg_hash(prng_prefix(seed, stream, a, b) ^ index);
}

// Uniform in [0, 1) with 24 random bits (exact in f32, identical to the CPU's), from a prefix.
fn prng_uniform_from(prefix: u32, index: u32) -> f32 {
    return f32(pcg_hash(prefix ^ index) >> 8u) * (1.0 / 16777216.0);
}

// Standard normal by Box–Muller, from a prefix.
fn prng_normal_from(prefix: u32, index: u32) -> f32 {
    let u1 = 1.0 - prng_uniform_from(prefix, index * 2u);
    let u2 = prng_uniform_from(prefix, index * 2u + 1u);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

fn prng_uniform(seed: vec2<u32>, stream: u32, a: u32, b: u32, index: u32) -> f32 {
    return prng_uniform_from(prng_prefix(seed, stream, a, b), index);
}

fn prng_normal(seed: vec2<u32>, stream: u32, a: u32, b: u32, index: u32) -> f32 {
    return prng_normal_from(prng_prefix(seed, stream, a, b), index);
}
