use serde::{Deserialize, Serialize};

/// Whom a key belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum Role {
    Operator,
    Merchant { shop: String },
    Agent { agent: String },
}

impl Role {
    /// Whether this key may read and change `shop`'s FAQ, settings and numbers.
    pub fn may_manage(&self, shop: &str) -> bool {
        match self {
            Role::Operator => true,
            Role::Merchant { shop: own } => own == shop,
            Role::Agent { .. } => false,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Merchant { .. } => "merchant",
            Role::Agent { .. } => "agent",
        }
    }
}
