//! `steplens merge`: the shard directories of a sharded run, checked to belong together and
//! combined into the outputs the unsharded run writes.

use std::path::PathBuf;

use clap::Args;

use super::OutArgs;
use crate::{Error, Result};

#[derive(Debug, Clone, Args)]
pub struct MergeArgs {
    /// The shard directories (`suite --shard K/N --out DIR`), every shard once.
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
    let out = args.output.open("merge")?;
    crate::suite::merge(&dirs, &out)
}
