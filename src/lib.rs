//! honeydesk: a customer-service chatbot runtime for online shops.
//!
//! # How a message travels
//! A shopper's message is normalized once ([`text`]), checked for risk signals first (life-care,
//! dangerous medicine, an elderly shopper, an angry dispute, an ask for a human), then classified by
//! the intent model ([`nlu`]) and matched against the merchant's FAQ; the dialogue engine answers,
//! asks a clarifying question, or hands off to a human queue, recording the evidence for its choice.
//!
//! # Layout
//! - [`text`]: the normalizer every stage shares (width, case, script, emoji, shop-talk filler).
//! - [`nlu`]: labelled data, the tokenizer, the candle intent model and its training.
//! - [`eval`]: metrics over labelled data, shared by training (threshold choice) and `honeydesk eval`.
//! - [`config`]: the one typed configuration.
//! - [`server`]: the HTTP/websocket front.
//!
//! The binary (`src/main.rs`) only parses the command line and calls into these modules.

pub mod config;
pub mod dialog;
pub mod eval;
pub mod handoff;
pub mod knowledge;
pub mod nlu;
pub mod risk;
pub mod server;
pub mod store;
pub mod text;
