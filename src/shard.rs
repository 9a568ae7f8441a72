//! Cutting embarrassingly parallel work (the suite's members × seeds) into shards that separate
//! processes run — a cluster's job array, the GPUs of one host — and merging them back.
//!
//! The work is a fixed, documented list of jobs; shard K of N runs every job whose index is
//! ≡ K−1 (mod N) and writes a partial run directory: `shard.json` (K, N, the code version, the
//! settings every shard must share, its jobs) and one `jobs/<index>.json` per finished job. A
//! shard rerun with `--resume` skips the jobs whose files exist. `steplens merge` checks that the
//! shards belong together and writes what the unsharded run writes.

use std::{collections::BTreeMap, path::Path, str::FromStr};

use serde::{Deserialize, Serialize};

use crate::{
    Error, Result,
    compare::MethodRun,
    engine::{EngineInfo, KernelChoice},
    report::{files::OutDir, sweep::SweepRun},
};

/// `K/N`: shard K (1-based) of N.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub shard: usize,
    pub of: usize,
}

impl FromStr for Shard {
    type Err = Error;

    fn from_str(text: &str) -> Result<Shard> {
        let bad = || Error::usage(format!("--shard `{text}`: use K/N with 1 ≤ K ≤ N, e.g. 2/3"));
        let (k, n) = text.split_once('/').ok_or_else(bad)?;
        let (shard, of): (usize, usize) = (k.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
        if shard < 1 || shard > of {
            return Err(bad());
        }
        Ok(Shard { shard, of })
    }
}

impl Shard {
    /// Whether job `index` (0-based) is this shard's.
    pub fn owns(&self, index: usize) -> bool {
        index % self.of == self.shard - 1
    }
}

/// A job by its index in the fixed order and its name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobName {
    pub index: usize,
    pub name: String,
}

/// `shard.json`: what a shard is and what it must share with the others.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub command: String,
    pub version: String,
    pub shard: usize,
    pub of: usize,
    /// Every setting the shards must agree on (the unsharded run's config.json).
    pub settings: serde_json::Value,
    /// Every job of the whole run, in order (the shard runs those it owns).
    pub jobs: Vec<JobName>,
}

impl Manifest {
    /// Shard `shard` of the run of `command` with `settings` and the jobs named `jobs`, in order.
    pub fn new(
        command: &str,
        shard: Shard,
        settings: &impl Serialize,
        jobs: impl Iterator<Item = String>,
    ) -> Result<Manifest> {
        Ok(Manifest {
            command: command.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            shard: shard.shard,
            of: shard.of,
            settings: serde_json::to_value(settings).map_err(|e| Error::Runtime(e.to_string()))?,
            jobs: jobs.enumerate().map(|(index, name)| JobName { index, name }).collect(),
        })
    }
}

/// `jobs/<index>.json`: a finished job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobResult {
    pub index: usize,
    pub name: String,
    /// The adapter that ran it.
    pub adapter: String,
    /// Batch gradients of one constant-rate run of the job's member.
    pub steps_per_run: u64,
    /// The methods' runs of a suite or comparison job.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<MethodRun>,
    /// The runs of a sweep's block.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sweep: Vec<SweepRun>,
    /// The engine of a sweep's block and the kernels it resolved to (config.json records them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<EngineInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernels_resolved: Option<KernelChoice>,
}

impl JobResult {
    /// A finished job with nothing in it yet.
    pub fn new(index: usize, name: String, adapter: String, steps_per_run: u64) -> JobResult {
        JobResult {
            index,
            name,
            adapter,
            steps_per_run,
            runs: Vec::new(),
            sweep: Vec::new(),
            engine: None,
            kernels_resolved: None,
        }
    }
}

/// The runs of a sweep one job trains side by side: a sweep of R runs is the jobs 0 .. ⌈R/16⌉,
/// job j training runs 16j .. 16j+15 (enough runs per engine to share the data loads, small enough
/// that an interrupted shard loses little).
pub const SWEEP_JOB_RUNS: usize = 16;

/// A shard's run directory while it works: which shard, and the jobs finished so far (those of an
/// earlier, interrupted attempt included when resumed).
pub struct ShardDir<'o> {
    out: &'o OutDir,
    pub shard: Shard,
    pub done: BTreeMap<usize, JobResult>,
}

impl<'o> ShardDir<'o> {
    /// Opens the shard's directory (see [`open`]).
    pub fn open(out: &'o OutDir, manifest: &Manifest, resume: bool) -> Result<ShardDir<'o>> {
        let done = open(out, manifest, resume)?;
        Ok(ShardDir { out, shard: Shard { shard: manifest.shard, of: manifest.of }, done })
    }

    /// Whether this shard is the whole run (1/1): it writes the final outputs itself.
    pub fn whole(&self) -> bool {
        self.shard.of == 1
    }

    /// The jobs of `total` this shard still has to do, in order.
    pub fn pending(&self, total: usize) -> Vec<usize> {
        (0..total).filter(|&i| self.shard.owns(i) && !self.done.contains_key(&i)).collect()
    }

    /// Keeps a finished job (its file first, so that an interruption after this keeps it).
    pub fn keep(&mut self, result: JobResult, seconds: f64, quiet: bool) -> Result<()> {
        self.out.write_json(&job_file(result.index), &result)?;
        if !quiet {
            eprintln!("steplens: {} done in {seconds:.1} s on {}", result.name, result.adapter);
        }
        self.done.insert(result.index, result);
        Ok(())
    }

    /// The error of a shard stopped by Ctrl-C or SIGTERM.
    pub fn stopped(&self) -> Error {
        Error::Stopped {
            done: format!(
                "{} of the shard's jobs, kept in {} (--resume does the rest)",
                self.done.len(),
                self.out.path().display()
            ),
        }
    }

    /// What a partial shard says when it is done.
    pub fn report_partial(&self) {
        println!(
            "shard {}/{}: {} job(s) in {}; merge every shard with `steplens merge DIR… --out DIR`",
            self.shard.shard,
            self.shard.of,
            self.done.len(),
            self.out.path().display()
        );
    }
}

/// The one value of `field` every job agrees on, if they do (a sweep's engine, when all its
/// blocks ran on the same adapter).
pub fn common<T: PartialEq + Clone>(jobs: &[JobResult], field: impl Fn(&JobResult) -> Option<T>) -> Option<T> {
    let first = field(jobs.first()?)?;
    jobs.iter().all(|j| field(j).as_ref() == Some(&first)).then_some(first)
}

pub const MANIFEST: &str = "shard.json";

/// The file of job `index` inside a shard directory.
pub fn job_file(index: usize) -> String {
    format!("jobs/{index:05}.json")
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let text =
        std::fs::read_to_string(path).map_err(|e| Error::Runtime(format!("cannot read {}: {e}", path.display())))?;
    serde_json::from_str(&text)
        .map_err(|e| Error::Runtime(format!("{} is not a steplens shard file: {e}", path.display())))
}

/// The finished jobs of a shard directory, by index.
pub fn finished(dir: &Path) -> Result<BTreeMap<usize, JobResult>> {
    let mut out = BTreeMap::new();
    let jobs = dir.join("jobs");
    if !jobs.is_dir() {
        return Ok(out);
    }
    let mut names: Vec<_> = std::fs::read_dir(&jobs)
        .map_err(|e| Error::Runtime(format!("cannot read {}: {e}", jobs.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    names.sort();
    for path in names {
        let job: JobResult = read_json(&path)?;
        out.insert(job.index, job);
    }
    Ok(out)
}

/// Opens (or, with `resume`, reopens) a shard directory: writes `shard.json`, or checks that the
/// one there describes the same shard of the same run. Returns the jobs already finished.
pub fn open(out: &OutDir, manifest: &Manifest, resume: bool) -> Result<BTreeMap<usize, JobResult>> {
    let path = out.file(MANIFEST);
    if resume && path.exists() {
        let there: Manifest = read_json(&path)?;
        if &there != manifest {
            return Err(Error::usage(format!(
                "--resume: {} belongs to another run or shard (its shard.json differs in {})",
                out.path().display(),
                difference(&there, manifest)
            )));
        }
        return finished(out.path());
    }
    out.write_json(MANIFEST, manifest)?;
    Ok(BTreeMap::new())
}

/// The first field two manifests differ in, in words.
fn difference(a: &Manifest, b: &Manifest) -> String {
    if a.command != b.command {
        format!("the command ({} against {})", a.command, b.command)
    } else if a.version != b.version {
        format!("the steplens version ({} against {})", a.version, b.version)
    } else if (a.shard, a.of) != (b.shard, b.of) {
        format!("the shard ({}/{} against {}/{})", a.shard, a.of, b.shard, b.of)
    } else if a.settings != b.settings {
        let (x, y) = (a.settings.as_object(), b.settings.as_object());
        let key = x
            .zip(y)
            .and_then(|(x, y)| x.iter().find(|(k, v)| y.get(*k) != Some(v)).map(|(k, _)| k.clone()))
            .unwrap_or_else(|| "its settings".into());
        format!("the setting `{key}`")
    } else {
        "the job list".into()
    }
}

/// Every job of shard directories that belong together, each exactly once, in index order;
/// returns the common manifest (its shard fields those of the first) and the jobs.
pub fn gather(dirs: &[&Path]) -> Result<(Manifest, Vec<JobResult>)> {
    let mut manifests = Vec::new();
    for d in dirs {
        manifests.push((d, read_json::<Manifest>(&d.join(MANIFEST))?));
    }
    let (first_dir, first) =
        manifests.first().ok_or_else(|| Error::usage("merge needs at least one shard directory"))?;
    let mut seen_shards = BTreeMap::new();
    for (d, m) in &manifests {
        let same = Manifest { shard: first.shard, ..m.clone() };
        if same != *first {
            return Err(Error::Runtime(format!(
                "{} is not a shard of the same run as {}: they differ in {}",
                d.display(),
                first_dir.display(),
                difference(&same, first)
            )));
        }
        if let Some(other) = seen_shards.insert(m.shard, d) {
            return Err(Error::Runtime(format!(
                "{} and {} are both shard {}/{}",
                other.display(),
                d.display(),
                m.shard,
                m.of
            )));
        }
    }
    let mut jobs: BTreeMap<usize, JobResult> = BTreeMap::new();
    for (d, m) in &manifests {
        let shard = Shard { shard: m.shard, of: m.of };
        for (index, job) in finished(d)? {
            if !shard.owns(index) || index >= first.jobs.len() {
                return Err(Error::Runtime(format!(
                    "{} holds job {index}, which is not shard {}/{}'s",
                    d.display(),
                    m.shard,
                    m.of
                )));
            }
            jobs.insert(index, job);
        }
    }
    let missing: Vec<String> = first
        .jobs
        .iter()
        .filter(|j| !jobs.contains_key(&j.index))
        .map(|j| format!("{} ({}, shard {}/{})", j.index, j.name, j.index % first.of + 1, first.of))
        .collect();
    if !missing.is_empty() {
        let shown: Vec<&String> = missing.iter().take(5).collect();
        return Err(Error::Runtime(format!(
            "the shards do not hold every job: {} missing, e.g. job {}",
            missing.len(),
            shown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", job ")
        )));
    }
    Ok((first.clone(), jobs.into_values().collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_split_jobs_round_robin() {
        let s: Shard = "2/3".parse().unwrap();
        let mine: Vec<usize> = (0..8).filter(|&i| s.owns(i)).collect();
        assert_eq!(mine, [1, 4, 7]);
        for bad in ["0/3", "4/3", "3", "a/b", "1/0"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }
}
