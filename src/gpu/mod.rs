//! The wgpu engine. (being written)
