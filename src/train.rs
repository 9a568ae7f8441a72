//! Training runs. (being written)
