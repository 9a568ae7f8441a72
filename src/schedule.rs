//! Learning-rate schedules `train` accepts: `--lr H`, or `--schedule SPEC|FILE` with
//! `constant:H`, `step:H,gamma=G,every=E`, `cosine:H[,min=M]`, `inv-t:H[,k=K]`, or a CSV file
//! with the header `epoch,lr` (one row per epoch, 1-based; more columns are allowed) or
//! `epoch,step,lr` (both 1-based; a rate holds from its step until the next row, every epoch
//! starts with a row at step 1), as `steplens schedule` writes.

use std::{fmt, path::Path};

use serde::Serialize;

use crate::{Error, Result, error::DataError};

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Schedule {
    Constant {
        lr: f64,
    },
    /// lr · gamma^⌊(epoch−1)/every⌋.
    Step {
        lr: f64,
        gamma: f64,
        every: usize,
    },
    /// min + (lr − min)(1 + cos(π (epoch−1)/epochs))/2.
    Cosine {
        lr: f64,
        min: f64,
    },
    /// lr / (1 + k (epoch−1)).
    InvT {
        lr: f64,
        k: f64,
    },
    /// Rates per epoch (`changes` empty), or (step, rate) changes within each epoch, from a file.
    Table {
        source: String,
        per_epoch: Vec<f64>,
        changes: Vec<Vec<(usize, f64)>>,
    },
}

/// A number for a message: short, exponent form for extremes (never a 308-digit decimal).
fn show(v: f64) -> String {
    crate::report::table::fmt_num(v, 6)
}

/// The largest learning rate: the GPU computes in f32.
pub const MAX_LR: f64 = f32::MAX as f64;
/// The smallest learning rate: the smallest normal f32 (smaller ones are subnormal, which GPUs
/// may flush to 0, or 0 outright).
pub const MIN_LR: f64 = f32::MIN_POSITIVE as f64;

/// Why `v` cannot be a learning rate, if it cannot: not positive, not finite, beyond f32 or
/// below its smallest normal number.
pub fn lr_problem(v: f64) -> Option<String> {
    if !(v.is_finite() && v > 0.0) {
        Some(format!("{} is not a positive finite number", show(v)))
    } else if v > MAX_LR {
        Some(format!("{} is beyond f32, the GPU's precision (at most {})", show(v), show(MAX_LR)))
    } else if v < MIN_LR {
        Some(format!("{} is 0 or subnormal in f32, the GPU's precision (at least {})", show(v), show(MIN_LR)))
    } else {
        None
    }
}

fn check_lr(what: &str, v: f64) -> Result<f64> {
    match lr_problem(v) {
        None => Ok(v),
        Some(why) => Err(Error::usage(format!("{what} must be a positive number within f32: {why}"))),
    }
}

fn number(spec: &str, text: &str) -> Result<f64> {
    text.trim()
        .parse::<f64>()
        .map_err(|_| Error::usage(format!("malformed schedule `{spec}`: `{text}` is not a number")))
}

impl Schedule {
    pub fn constant(lr: f64) -> Result<Schedule> {
        Ok(Schedule::Constant { lr: check_lr("the learning rate", lr)? })
    }

    /// A spec (`cosine:0.5,min=0.01`) or, when `text` names an existing file, a CSV schedule.
    pub fn parse(text: &str) -> Result<Schedule> {
        if Path::new(text).is_file() {
            return Schedule::from_file(Path::new(text));
        }
        if Path::new(text).is_dir() {
            return Err(Error::usage(format!(
                "--schedule {text} is a directory: give a schedule file (a CSV with the columns epoch and lr, as `steplens schedule` writes as schedule.csv) or a spec like cosine:0.5"
            )));
        }
        let (kind, rest) = text.split_once(':').ok_or_else(|| {
            Error::usage(format!(
                "malformed schedule `{text}`: use constant:H, step:H,gamma=G,every=E, cosine:H[,min=M], inv-t:H[,k=K] or a CSV file (no such file exists)"
            ))
        })?;
        let mut parts = rest.split(',');
        let lr = check_lr("the schedule's learning rate", number(text, parts.next().unwrap_or(""))?)?;
        let mut opts = Vec::new();
        for part in parts {
            let (k, v) = part.split_once('=').ok_or_else(|| {
                Error::usage(format!("malformed schedule `{text}`: expected key=value, got `{part}`"))
            })?;
            opts.push((k.trim().to_string(), number(text, v)?));
        }
        let take = |key: &str, default: Option<f64>, opts: &mut Vec<(String, f64)>| -> Result<f64> {
            match opts.iter().position(|(k, _)| k == key) {
                Some(i) => Ok(opts.remove(i).1),
                None => {
                    default.ok_or_else(|| Error::usage(format!("malformed schedule `{text}`: `{key}=` is required")))
                }
            }
        };
        let schedule = match kind.trim() {
            "constant" => Schedule::Constant { lr },
            "step" => {
                let gamma = take("gamma", None, &mut opts)?;
                let every = take("every", None, &mut opts)?;
                if !(gamma > 0.0 && gamma.is_finite()) || every < 1.0 || every.fract() != 0.0 {
                    return Err(Error::usage(format!(
                        "malformed schedule `{text}`: gamma must be positive and every a whole number ≥ 1"
                    )));
                }
                Schedule::Step { lr, gamma, every: every as usize }
            }
            "cosine" => {
                let min = take("min", Some(0.0), &mut opts)?;
                if !(0.0..=lr).contains(&min) {
                    return Err(Error::usage(format!(
                        "malformed schedule `{text}`: min must be between 0 and the learning rate"
                    )));
                }
                Schedule::Cosine { lr, min }
            }
            "inv-t" => {
                let k = take("k", Some(1.0), &mut opts)?;
                if !(k >= 0.0 && k.is_finite()) {
                    return Err(Error::usage(format!("malformed schedule `{text}`: k must be ≥ 0")));
                }
                Schedule::InvT { lr, k }
            }
            other => {
                return Err(Error::usage(format!(
                    "unknown schedule `{other}` in `{text}`: use constant, step, cosine, inv-t or a CSV file"
                )));
            }
        };
        if let Some((k, _)) = opts.first() {
            return Err(Error::usage(format!("malformed schedule `{text}`: unknown option `{k}`")));
        }
        Ok(schedule)
    }

    /// A CSV schedule file.
    pub fn from_file(path: &Path) -> Result<Schedule> {
        let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
        parse_table(&text, path)
    }

    /// Checks the schedule covers `epochs` epochs of `steps` steps, and that every epoch's rate
    /// is a usable f32 (a decaying schedule may underflow to 0, a growing one overflow).
    pub fn check(&self, epochs: usize, steps: usize) -> Result<()> {
        if !matches!(self, Schedule::Table { .. }) {
            // Rates change monotonically, except cosine's, which never leaves [min, lr]: the
            // first and last epochs bound them all.
            for epoch in [1, epochs.max(1)] {
                let lr = self.epoch_lr(epoch, epochs.max(1));
                if let Some(why) = lr_problem(lr) {
                    return Err(Error::usage(format!(
                        "the schedule {self} gives epoch {epoch} of {epochs} a learning rate the GPU cannot use: {why}"
                    )));
                }
            }
        }
        if let Schedule::Table { source, per_epoch, changes } = self {
            if per_epoch.len() < epochs {
                return Err(Error::usage(format!(
                    "{source} has learning rates for {}, the run needs {epochs} epochs",
                    crate::report::table::count(per_epoch.len(), "epoch", "epochs")
                )));
            }
            let last_step = changes.iter().take(epochs).flatten().map(|c| c.0).max().unwrap_or(1);
            if last_step > steps {
                return Err(Error::usage(format!(
                    "{source} changes the rate at step {last_step}, the run has {steps} steps per epoch"
                )));
            }
        }
        Ok(())
    }

    /// The rate of epoch `epoch` (1-based) of `epochs` (its first step's, for step tables).
    pub fn epoch_lr(&self, epoch: usize, epochs: usize) -> f64 {
        let e = (epoch - 1) as f64;
        match self {
            Schedule::Constant { lr } => *lr,
            Schedule::Step { lr, gamma, every } => lr * gamma.powi(((epoch - 1) / every) as i32),
            Schedule::Cosine { lr, min } => {
                min + (lr - min) * (1.0 + (std::f64::consts::PI * e / epochs as f64).cos()) / 2.0
            }
            Schedule::InvT { lr, k } => lr / (1.0 + k * e),
            Schedule::Table { per_epoch, .. } => per_epoch[epoch - 1],
        }
    }

    /// The rate of each of the `steps` steps of epoch `epoch` (1-based).
    pub fn step_lrs(&self, epoch: usize, epochs: usize, steps: usize) -> Vec<f32> {
        match self {
            Schedule::Table { changes, .. } if !changes.is_empty() => {
                let mut out = Vec::with_capacity(steps);
                let rows = &changes[epoch - 1];
                for (i, &(step, lr)) in rows.iter().enumerate() {
                    let until = rows.get(i + 1).map_or(steps, |next| next.0 - 1).min(steps);
                    out.extend(std::iter::repeat_n(lr as f32, until.saturating_sub(step - 1)));
                }
                out
            }
            _ => vec![self.epoch_lr(epoch, epochs) as f32; steps],
        }
    }
}

/// `x` as the shortest decimal that reads back as `x`, in exponent form outside [1e-5, 1e16).
fn num(x: f64) -> String {
    crate::report::files::csv_num(x)
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Shortest round-trip decimals, exponent form for extremes: `inv-t:0.1,k=1e300`.
            Schedule::Constant { lr } => write!(f, "constant:{}", num(*lr)),
            Schedule::Step { lr, gamma, every } => write!(f, "step:{},gamma={},every={every}", num(*lr), num(*gamma)),
            Schedule::Cosine { lr, min } => write!(f, "cosine:{},min={}", num(*lr), num(*min)),
            Schedule::InvT { lr, k } => write!(f, "inv-t:{},k={}", num(*lr), num(*k)),
            Schedule::Table { source, .. } => write!(f, "{source}"),
        }
    }
}

/// A CSV schedule: header `epoch,lr[,…]` or `epoch,step,lr[,…]`.
pub fn parse_table(text: &str, path: &Path) -> Result<Schedule> {
    let bad = |reason: String| Error::from(DataError::invalid(path, reason));
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines.next().ok_or_else(|| bad("it is empty".into()))?;
    let cols: Vec<&str> = header.split(',').map(str::trim).collect();
    let col = |name: &str| cols.iter().position(|c| *c == name);
    let (epoch_col, lr_col) = match (col("epoch"), col("lr")) {
        (Some(e), Some(l)) => (e, l),
        _ => return Err(bad(format!("the header must name the columns `epoch` and `lr`, got `{header}`"))),
    };
    let step_col = col("step");
    let mut per_epoch: Vec<f64> = Vec::new();
    let mut changes: Vec<Vec<(usize, f64)>> = Vec::new();
    for (i, line) in lines {
        let line_no = i + 1;
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        if cells.len() != cols.len() {
            return Err(bad(format!("line {line_no} has {} cells, the header has {}", cells.len(), cols.len())));
        }
        let num = |c: usize| -> Result<f64> {
            cells[c].parse::<f64>().map_err(|_| bad(format!("line {line_no}: `{}` is not a number", cells[c])))
        };
        let (epoch, lr) = (num(epoch_col)?, num(lr_col)?);
        if !(lr.is_finite() && lr > 0.0) {
            return Err(bad(format!("line {line_no}: the learning rate {} is not positive and finite", show(lr))));
        }
        if let Some(why) = lr_problem(lr) {
            return Err(bad(format!("line {line_no}: the learning rate is not usable: {why}")));
        }
        let step = match step_col {
            Some(sc) => num(sc)?,
            None => 1.0,
        };
        if epoch == (per_epoch.len() + 1) as f64 && step == 1.0 {
            per_epoch.push(lr);
            changes.push(vec![(1, lr)]);
            continue;
        }
        let last = changes.last_mut().filter(|_| step_col.is_some() && epoch == per_epoch.len() as f64);
        match last {
            Some(rows) if step.fract() == 0.0 && step > rows.last().map_or(0.0, |r| r.0 as f64) => {
                rows.push((step as usize, lr));
            }
            _ => {
                let want = if step_col.is_some() { " (or a later step of the current epoch)" } else { "" };
                return Err(bad(format!(
                    "line {line_no}: expected epoch {}{}, got epoch {epoch}{}",
                    per_epoch.len() + 1,
                    if step_col.is_some() { " step 1" } else { "" },
                    if step_col.is_some() { format!(" step {step}{want}") } else { String::new() }
                )));
            }
        }
    }
    if per_epoch.is_empty() {
        return Err(bad("it has no rows".into()));
    }
    if step_col.is_none() {
        changes.clear();
    }
    Ok(Schedule::Table { source: path.display().to_string(), per_epoch, changes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_give_the_documented_rates() {
        let s = Schedule::parse("step:1,gamma=0.5,every=2").unwrap();
        assert_eq!((1..=5).map(|e| s.epoch_lr(e, 5)).collect::<Vec<_>>(), [1.0, 1.0, 0.5, 0.5, 0.25]);
        let c = Schedule::parse("cosine:1,min=0.1").unwrap();
        assert!((c.epoch_lr(1, 4) - 1.0).abs() < 1e-12);
        assert!((c.epoch_lr(3, 4) - 0.55).abs() < 1e-12);
        let t = Schedule::parse("inv-t:2,k=1").unwrap();
        assert_eq!(t.epoch_lr(3, 9), 2.0 / 3.0);
        assert_eq!(Schedule::parse("constant:0.005").unwrap().epoch_lr(4, 6), 0.005);
    }

    #[test]
    fn rates_outside_f32_are_usage_errors_in_short_words() {
        for (spec, epochs, needle) in [
            ("constant:1e39", 1, "beyond f32"),
            ("constant:1e308", 1, "beyond f32"),
            ("constant:1e-45", 1, "subnormal"),
            ("inv-t:0.1,k=1e300", 2, "epoch 2 of 2"),
            ("step:1,gamma=1e-10,every=1", 5, "epoch 5 of 5"),
            ("step:1,gamma=1e10,every=1", 5, "beyond f32"),
        ] {
            let e = Schedule::parse(spec).and_then(|s| s.check(epochs, 10)).unwrap_err();
            let text = e.to_string();
            assert_eq!(e.exit_code(), 2, "{spec}: {text}");
            assert!(text.contains(needle), "{spec}: {text}");
            assert!(text.len() < 200 && !text.contains(&"0".repeat(20)), "{spec}: {text}");
        }
        assert!(Schedule::constant(1e39).is_err() && Schedule::constant(3e38).is_ok());
        assert_eq!(Schedule::parse("inv-t:0.1,k=1e300").unwrap().to_string(), "inv-t:0.1,k=1e300");
        assert_eq!(Schedule::constant(3e38).unwrap().to_string(), "constant:3e38");
        let t = parse_table("epoch,lr\n1,0.1\n2,1e308\n", Path::new("s.csv")).unwrap_err().to_string();
        assert!(t.contains("line 3") && t.contains("beyond f32") && t.len() < 200, "{t}");
        let d = Schedule::parse(env!("CARGO_MANIFEST_DIR")).unwrap_err().to_string();
        assert!(d.contains("is a directory"), "{d}");
    }

    #[test]
    fn malformed_specs_are_usage_errors() {
        for bad in [
            "constant:",
            "constant:-1",
            "constant:nan",
            "step:1,gamma=0.5",
            "cosine:1,min=2",
            "wobble:1",
            "constant:1,x=2",
            "step:1,gamma=0.5,every=0",
            "0.1",
        ] {
            let e = Schedule::parse(bad).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad}: {e}");
        }
    }

    #[test]
    fn csv_tables_per_epoch_and_per_step() {
        let p = Path::new("s.csv");
        let s = parse_table("epoch,lr,lambda_median\n1,0.5,3\n2,0.25,4\n", p).unwrap();
        assert_eq!(s.step_lrs(2, 2, 3), vec![0.25; 3]);
        s.check(2, 3).unwrap();
        assert!(s.check(3, 3).is_err());
        let s = parse_table("epoch,step,lr\n1,1,0.5\n1,3,0.4\n2,1,0.3\n2,2,0.2\n", p).unwrap();
        assert_eq!(s.step_lrs(1, 2, 4), vec![0.5, 0.5, 0.4, 0.4]);
        assert_eq!(s.step_lrs(2, 2, 2), vec![0.3, 0.2]);
        s.check(2, 3).unwrap();
        assert!(s.check(2, 2).is_err() && s.check(3, 3).is_err());
        assert!(parse_table("epoch,step,lr\n1,2,0.5\n", p).is_err());
        assert!(parse_table("epoch,step,lr\n1,1,0.5\n1,1,0.4\n", p).is_err());
        for bad in [
            "",
            "epoch,rate\n1,1\n",
            "epoch,lr\n1,-0.5\n",
            "epoch,lr\n2,0.5\n",
            "epoch,lr\n1,0.5,3\n",
            "epoch,lr\n1,abc\n",
        ] {
            assert!(parse_table(bad, p).is_err(), "{bad:?}");
        }
    }
}
