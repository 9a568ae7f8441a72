//! IDX files (MNIST's format), gzip-compressed or raw. (stub: being written)
