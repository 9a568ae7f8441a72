// Per-sample losses and their derivatives with respect to the logits z, specialised
// per pipeline by the override MODEL. The CPU twin is `cpu::loss`.

//! import codes

// LOSS_SOFTMAX_CE, LOSS_SOFTMAX_SEED_COMPAT (the notebook's double softmax), LOSS_LOGISTIC or LOSS_SQUARES.
override MODEL: u32 = LOSS_SOFTMAX_CE;

struct SampleLoss {
    loss: f32,
    // 1 when the prediction is right, 0 otherwise (0 for regression).
    correct: f32,
}

// ln(1 + x) for x ≥ 0, accurate where 1 + x rounds to 1 (WGSL has no log1p).
fn log1p_pos(x: f32) -> f32 {
    if x < 1e-4 {
        return x * (1.0 - x * (0.5 - x / 3.0));
    }
    return log(1.0 + x);
}

// The loss of a sample with logits z[0..c) and target t; replaces z by d loss / d z.
fn loss_and_dlogits(z: ptr<function, array<f32, MAX_CLASSES>>, c: u32, t: f32) -> SampleLoss {
    switch MODEL {
        case LOSS_SOFTMAX_CE: {
            return softmax_ce(z, c, t);
        }
        case LOSS_SOFTMAX_SEED_COMPAT: {
            return softmax_seed_compat(z, c, t);
        }
        case LOSS_LOGISTIC: {
            return logistic(z, t);
        }
        default: {
            return squares(z, t);
        }
    }
}

// Replaces z by softmax(z); returns (index of the max, ln Σ_k exp(z_k − max)).
fn softmax_in_place(z: ptr<function, array<f32, MAX_CLASSES>>, c: u32) -> vec2<f32> {
    var top = 0u;
    for (var k = 1u; k < c; k++) {
        if (*z)[k] > (*z)[top] {
            top = k;
        }
    }
    let m = (*z)[top];
    // Σ over the other classes, so ln(1 + rest) keeps its precision for confident predictions.
    var rest = 0.0;
    for (var k = 0u; k < c; k++) {
        let e = exp((*z)[k] - m);
        (*z)[k] = e;
        if k != top {
            rest += e;
        }
    }
    let total = 1.0 + rest;
    for (var k = 0u; k < c; k++) {
        (*z)[k] = (*z)[k] / total;
    }
    return vec2<f32>(f32(top), log1p_pos(rest));
}

fn softmax_ce(z: ptr<function, array<f32, MAX_CLASSES>>, c: u32, t: f32) -> SampleLoss {
    let y = u32(t);
    var m = (*z)[0];
    for (var k = 1u; k < c; k++) {
        m = max(m, (*z)[k]);
    }
    let gap = m - (*z)[y];
    let s = softmax_in_place(z, c);
    (*z)[y] -= 1.0;
    return SampleLoss(s.y + gap, f32(u32(s.x) == y));
}

// The notebook's model returns softmax(z) and CrossEntropyLoss applies log-softmax again.
fn softmax_seed_compat(z: ptr<function, array<f32, MAX_CLASSES>>, c: u32, t: f32) -> SampleLoss {
    let y = u32(t);
    let s = softmax_in_place(z, c); // z now holds the probabilities q
    var q = *z;
    var m = q[0];
    for (var k = 1u; k < c; k++) {
        m = max(m, q[k]);
    }
    let gap = m - q[y];
    var r = q;
    let s2 = softmax_in_place(&r, c); // r = softmax(q)
    r[y] -= 1.0; // d loss / d q
    var qg = 0.0;
    for (var k = 0u; k < c; k++) {
        qg += q[k] * r[k];
    }
    for (var k = 0u; k < c; k++) {
        (*z)[k] = q[k] * (r[k] - qg); // the softmax Jacobian applied to d loss / d q
    }
    return SampleLoss(s2.y + gap, f32(u32(s.x) == y));
}

fn logistic(z: ptr<function, array<f32, MAX_CLASSES>>, t: f32) -> SampleLoss {
    let v = (*z)[0];
    let e = exp(-abs(v));
    // σ(v) without overflow on either side.
    var h = 1.0 / (1.0 + e);
    if v < 0.0 {
        h = e / (1.0 + e);
    }
    (*z)[0] = h - t;
    let loss = max(v, 0.0) - t * v + log1p_pos(e);
    return SampleLoss(loss, f32((v > 0.0) == (t > 0.5)));
}

fn squares(z: ptr<function, array<f32, MAX_CLASSES>>, t: f32) -> SampleLoss {
    let r = (*z)[0] - t;
    (*z)[0] = 2.0 * r;
    return SampleLoss(r * r, 0.0);
}
