//! honeydesk: a customer-service chatbot runtime for online shops.
//!
//! # How a message travels
//! A shopper's message is normalized once ([`text`]), checked for risk signals first (life-care,
//! dangerous medicine, an elderly shopper, an angry dispute, an ask for a human), then classified by
//! the intent model ([`nlu`]) and matched against the merchant's FAQ; the dialogue engine answers,
//! asks a clarifying question, or hands off to a human queue, recording the evidence for its choice.
//!
//! # Layout
//! Lowest first; a module uses only its own layer and those below (`tests/layers.rs`,
//! ARCHITECTURE.md):
//! - [`domain`]: conversation, turn, event, role, handoff reason with its queue, the clock.
//! - [`text`]: the normalizer every stage shares (width, case, script, emoji, shop-talk filler).
//! - [`nlu`], [`knowledge`], [`risk`]: the intent models and their metrics, the merchant's FAQ,
//!   the risk detectors.
//! - [`dialog`], [`handoff`]: the decision for one message; queues, agents and assignment.
//! - [`store`]: durable conversations and events (SQLite).
//! - [`server`], [`eval`]: the HTTP/websocket front; replaying labelled data and measuring.
//! - [`config`]: the one typed configuration, read by the binary.
//!
//! The binary (`src/main.rs`) only parses the command line and calls into these modules.

pub mod config;
pub mod dialog;
pub mod domain;
pub mod eval;
pub mod handoff;
pub mod knowledge;
pub mod nlu;
pub mod risk;
pub mod runtime;
pub mod server;
pub mod store;
pub mod text;
