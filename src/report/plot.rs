//! PNG and SVG charts with plotters. (stub: being written)
