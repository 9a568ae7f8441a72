//! TEMPORARY stand-in until the report branch lands.
use std::path::{Path, PathBuf};

use crate::{Error, Result};

pub struct OutDir {
    path: PathBuf,
}

impl OutDir {
    pub fn create(path: &Path, _force: bool) -> Result<OutDir> {
        std::fs::create_dir_all(path).map_err(|e| Error::Write { path: path.into(), source: e })?;
        Ok(OutDir { path: path.into() })
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn write(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        let p = self.path.join(name);
        std::fs::write(&p, bytes).map_err(|e| Error::Write { path: p, source: e })
    }
    pub fn write_text(&mut self, name: &str, text: &str) -> Result<()> {
        self.write(name, text.as_bytes())
    }
    pub fn write_json<T: serde::Serialize + ?Sized>(&mut self, name: &str, v: &T) -> Result<()> {
        self.write(name, serde_json::to_string_pretty(v).unwrap_or_default().as_bytes())
    }
}

pub fn default_run_dir(prefix: &str) -> PathBuf {
    PathBuf::from("runs").join(prefix)
}
