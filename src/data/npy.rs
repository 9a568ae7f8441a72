//! `.npy` files: reading user data and writing results. (stub: being written)
use super::Dataset;
use crate::error::DataError;
use std::path::Path;

pub fn load_dir(_dir: &Path) -> Result<(Dataset, Option<Dataset>), DataError> {
    todo!("data helper")
}

fn npy(descr: &str, shape: &[usize], data: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape = if shape.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat(total.next_multiple_of(64) - total));
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

/// An f32 array as `.npy` bytes (little-endian, C order).
pub fn f32_bytes(shape: &[usize], data: &[f32]) -> Vec<u8> {
    npy("<f4", shape, bytemuck::cast_slice(data))
}

/// A u32 array as `.npy` bytes (little-endian, C order).
pub fn u32_bytes(shape: &[usize], data: &[u32]) -> Vec<u8> {
    npy("<u4", shape, bytemuck::cast_slice(data))
}

/// A little-endian f32 `.npy` file: (shape, values). (stub until the data layer lands)
pub fn read_f32(path: &Path) -> Result<(Vec<usize>, Vec<f32>), DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    let hl = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let data = &bytes[10 + hl..];
    Ok((vec![data.len() / 4], bytemuck::pod_collect_to_vec(data)))
}
