//! Subcommands too large to sit in `main.rs`.

pub mod chat;
pub mod encoder;
pub mod eval;
pub mod faq;
pub mod report;
pub mod risk;
pub mod serve;
pub mod train;
