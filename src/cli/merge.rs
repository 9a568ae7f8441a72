//! `steplens merge`: the shard directories of a sharded run, checked to belong together and
//! combined into the outputs the unsharded run writes.

use std::path::PathBuf;

use clap::Args;

use super::OutArgs;
use crate::{Error, Result};

#[derive(Debug, Clone, Args)]
pub struct MergeArgs {
    /// The shard directories (`suite`, `compare` or `train --sweep-*` with `--shard K/N --out DIR`), every shard once.
    #[arg(required = true, value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
    #[command(flatten)]
    pub output: OutArgs,
}

pub fn run(args: &MergeArgs) -> Result<()> {
    for d in &args.dirs {
        if !d.join(crate::shard::MANIFEST).is_file() {
            return Err(Error::usage(format!("{} is not a shard directory: it has no shard.json", d.display())));
        }
    }
    let dirs: Vec<&std::path::Path> = args.dirs.iter().map(PathBuf::as_path).collect();
    let (manifest, jobs) = crate::shard::gather(&dirs)?;
    let out = args.output.open("merge")?;
    let count = jobs.len();
    match manifest.command.as_str() {
        "suite" => crate::suite::write_merged(&out, &manifest, jobs)?,
        "compare" => crate::report::comparison::write_merged(&out, &manifest, jobs)?,
        "sweep" => crate::report::sweep::write_merged(&out, &manifest, jobs)?,
        other => {
            return Err(Error::Runtime(format!("merge knows suite, compare and sweep shards, not {other} shards")));
        }
    }
    println!("merged {} shard(s), {count} job(s) into {}", dirs.len(), out.path().display());
    Ok(())
}
