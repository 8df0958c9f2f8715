//! honeydesk's integration tests: one binary, a module per area (see STYLE.md).

mod admin;
mod agent;
mod browser;
mod common;
mod dialog;
mod e5;
mod embed;
mod encoder;
mod eval;
mod handoff;
mod intent;
mod knowledge;
mod layers;
mod net;
mod risk;
mod server;
mod ws;
