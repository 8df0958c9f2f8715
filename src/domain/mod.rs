//! The words every other module shares: a conversation and its turns, the events a shopper sees,
//! who a key belongs to, why a conversation goes to a human (its queue and priority), and the
//! shop's clock.
//!
//! This is the lowest layer: it uses no other module of the crate, so `store/`, `server/`,
//! `dialog/` and `handoff/` can all speak of a [`Conversation`] or a [`Reason`] without importing
//! each other. `tests/layers.rs` keeps the direction of imports honest.

mod clock;
mod conversation;
mod event;
mod reason;
mod role;

pub use clock::{now, SHOP_OFFSET_SECONDS};
pub use conversation::{Conversation, DialogState, Owner, Speaker, Turn};
pub use event::{Event, HandoffInfo};
pub use reason::{Reason, QUEUES};
pub use role::Role;
