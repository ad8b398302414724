//! Integration tests of drover, one binary. Each module covers one surface.

mod config;
mod helpers;
mod runbooks;
