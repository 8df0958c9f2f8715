//! Merchant actions: an HTTP webhook into the merchant's own system (order status, return
//! eligibility, logistics), called with the conversation's context and extracted values. The
//! merchant's reply is what the bot says; a timeout or error becomes a handoff with that reason.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What honeydesk POSTs to the merchant's URL, as JSON.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ActionRequest {
    pub action: String,
    pub shop: String,
    pub conversation: String,
    pub intent: String,
    /// `zh` or `en`: the language to answer in.
    pub lang: String,
    pub message: String,
    /// Extracted values: `order_number`, `phone`, `amount`, `date`.
    pub slots: BTreeMap<String, String>,
}

/// What the merchant answers, as JSON.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ActionReply {
    pub text: String,
    #[serde(default)]
    pub buttons: Vec<String>,
    #[serde(default)]
    pub link: Option<String>,
}

/// Call `url`. Every failure (refused, timeout, HTTP error status, a reply that is not the
/// expected JSON or has empty text) is an `Err` with a reason an agent can read.
pub fn call(url: &str, timeout: Duration, request: &ActionRequest) -> Result<ActionReply, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .build()
        .into();
    let response = agent
        .post(url)
        .send_json(request)
        .map_err(|e| format!("{} {url}: {e}", request.action))?;
    let reply: ActionReply = response
        .into_body()
        .read_json()
        .map_err(|e| format!("{} {url}: unreadable reply: {e}", request.action))?;
    if reply.text.trim().is_empty() {
        return Err(format!("{} {url}: the reply has no text", request.action));
    }
    Ok(reply)
}
