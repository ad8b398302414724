//! Integration tests of drover, one binary. Each module covers one surface.

mod helpers;
mod runbooks;
