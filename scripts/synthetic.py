#!/usr/bin/env python3
"""Two datasets of our own making, for checking the schedule on data it was not designed on.

  synthetic_logreg.csv  2,000 × 20: two overlapping Gaussian classes (means ±0.35 along a random
                        direction, unit covariance) with 5% of the labels flipped: not separable.
  synthetic_lls.csv     1,000 × 12: features with standard deviations from 1 to 300 (condition
                        number ~1e5 before standardising, correlated pairs), y = Xθ* + noise.

Deterministic (seeded); only the standard library. Usage: python3 scripts/synthetic.py OUT_DIR
"""
import math
import random
import sys


def logreg(rng, n=2000, p=20):
    direction = [rng.gauss(0, 1) for _ in range(p)]
    norm = math.sqrt(sum(d * d for d in direction))
    direction = [d / norm for d in direction]
    rows = []
    for _ in range(n):
        y = rng.random() < 0.5
        x = [rng.gauss(0, 1) + (0.35 if y else -0.35) * d for d in direction]
        if rng.random() < 0.05:
            y = not y
        rows.append(x + [int(y)])
    return [f"x{j}" for j in range(p)] + ["target"], rows


def lls(rng, n=1000, p=12):
    scales = [300 ** (j / (p - 1)) for j in range(p)]
    theta = [rng.gauss(0, 1) for _ in range(p)]
    rows = []
    for _ in range(n):
        z = [rng.gauss(0, 1) for _ in range(p)]
        # Neighbouring features share half their signal: correlated pairs.
        x = [scales[j] * (z[j] + 0.5 * z[j - 1] if j else z[j]) for j in range(p)]
        y = sum(t * xi / s for t, xi, s in zip(theta, x, scales)) + rng.gauss(0, 0.5) + 3.0
        rows.append(x + [y])
    return [f"x{j}" for j in range(p)] + ["target"], rows


def write(path, header, rows):
    with open(path, "w") as f:
        f.write(",".join(header) + "\n")
        for r in rows:
            f.write(",".join(repr(v) if isinstance(v, float) else str(v) for v in r) + "\n")


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else "."
    write(f"{out}/synthetic_logreg.csv", *logreg(random.Random(20261201)))
    write(f"{out}/synthetic_lls.csv", *lls(random.Random(20261202)))
