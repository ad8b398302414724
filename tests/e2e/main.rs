//! Integration tests of drover, one binary. Each module covers one surface.

mod cli;
mod cloud;
mod config;
mod console;
mod crash;
mod daemon;
mod engine;
mod evidence;
mod ha;
mod helpers;
mod killpoints;
mod layout;
mod plan;
mod runbooks;
mod safety;
mod sim;
