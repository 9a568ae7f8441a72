//! MNIST: the embedded 0/1 subset and the full set downloaded into a cache. (stub: being written)
use super::Data;
use crate::error::DataError;
use std::path::Path;

pub const DEFAULT_MIRRORS: &[&str] = &["https://ossci-datasets.s3.amazonaws.com/mnist/"];

pub fn embedded_01() -> Result<Data, DataError> {
    todo!("data helper")
}

pub fn load_digits(_digits: &[u8], _cache: &Path, _mirrors: &[String]) -> Result<Data, DataError> {
    todo!("data helper")
}
