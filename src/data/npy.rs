//! `.npy` files: reading user data and writing results. (stub: being written)
use super::Dataset;
use crate::error::DataError;
use std::path::Path;

pub fn load_dir(_dir: &Path) -> Result<(Dataset, Option<Dataset>), DataError> {
    todo!("data helper")
}

/// An f32 array as `.npy` bytes (little-endian, C order).
pub fn f32_bytes(_shape: &[usize], _data: &[f32]) -> Vec<u8> {
    todo!("data helper")
}

/// A u32 array as `.npy` bytes (little-endian, C order).
pub fn u32_bytes(_shape: &[usize], _data: &[u32]) -> Vec<u8> {
    todo!("data helper")
}
