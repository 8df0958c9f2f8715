//! What operators tune per shop: thresholds, risk switches, reception mode and business hours,
//! with platform defaults, read from one typed TOML file (`honeydesk.toml`).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use chrono::{DateTime, FixedOffset, NaiveTime, Timelike};
use serde::{Deserialize, Serialize};

use super::DialogError;
use crate::risk::RiskSwitches;

/// How a shop receives shoppers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case", tag = "mode")]
pub enum Reception {
    /// The bot answers; humans take what it hands off.
    #[default]
    BotFirst,
    /// Humans answer when one is online; the bot covers when none is.
    HumanFirst,
    /// This share of new conversations (0..=1) goes to humans, the rest to the bot.
    Ratio { human_share: f32 },
}

/// Opening hours in the shop's time, and what the bot says outside them instead of handing off.
/// Life-care is handed off at any hour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusinessHours {
    /// `09:00`
    pub open: String,
    /// `22:00`
    pub close: String,
    pub closed_message_zh: String,
    pub closed_message_en: String,
}

impl BusinessHours {
    fn parse(t: &str) -> Option<NaiveTime> {
        NaiveTime::parse_from_str(t, "%H:%M").ok()
    }

    /// Whether `now` is inside opening hours (a window past midnight, 20:00–02:00, works).
    pub fn is_open(&self, now: DateTime<FixedOffset>) -> bool {
        let (Some(open), Some(close)) = (Self::parse(&self.open), Self::parse(&self.close)) else {
            return true;
        };
        let t = NaiveTime::from_hms_opt(now.hour(), now.minute(), 0).expect("valid time");
        if open <= close {
            open <= t && t < close
        } else {
            t >= open || t < close
        }
    }
}

/// One shop's settings, complete.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    /// Lowest calibrated intent probability the bot acts on.
    pub intent_threshold: f32,
    /// The best candidate must beat the runner-up by this much, or the bot asks which one.
    pub ambiguity_gap: f32,
    /// Lowest FAQ retrieval score (0..=1) the bot answers with.
    pub faq_threshold: f32,
    /// Lowest FAQ score the bot answers with when the intent model, confident on its own, names
    /// the same intent as the entry's standard question: two independent readings agreeing.
    pub faq_agree_threshold: f32,
    /// Unhelpful bot turns in a row (fallbacks, "没用") before a handoff.
    pub unhelpful_limit: u32,
    pub risk: RiskSwitches,
    pub reception: Reception,
    pub hours: Option<BusinessHours>,
    /// Merchant webhooks by action name (`order_status = "https://erp.example.com/hd/status"`).
    pub actions: BTreeMap<String, String>,
    /// How long a webhook may take before the chat goes to a human instead.
    pub action_timeout_ms: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            intent_threshold: 0.45,
            ambiguity_gap: 0.1,
            faq_threshold: 0.45,
            faq_agree_threshold: 0.2,
            unhelpful_limit: 2,
            risk: RiskSwitches::default(),
            reception: Reception::default(),
            hours: None,
            actions: BTreeMap::new(),
            action_timeout_ms: 3000,
        }
    }
}

/// A shop's overrides: every field optional, unset ones fall back to the platform default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyOverride {
    pub intent_threshold: Option<f32>,
    pub ambiguity_gap: Option<f32>,
    pub faq_threshold: Option<f32>,
    pub faq_agree_threshold: Option<f32>,
    pub unhelpful_limit: Option<u32>,
    pub risk: Option<RiskSwitches>,
    pub reception: Option<Reception>,
    pub hours: Option<BusinessHours>,
    pub actions: Option<BTreeMap<String, String>>,
    pub action_timeout_ms: Option<u64>,
}

/// `honeydesk.toml`: platform defaults and per-shop overrides.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DialogConfig {
    pub defaults: Policy,
    pub shops: HashMap<String, PolicyOverride>,
}

impl DialogConfig {
    /// Read and validate a config file.
    pub fn load(path: &Path) -> Result<DialogConfig, DialogError> {
        let text = std::fs::read_to_string(path).map_err(|e| DialogError::Config {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::parse(&text).map_err(|reason| DialogError::Config {
            path: path.display().to_string(),
            reason,
        })
    }

    pub fn parse(text: &str) -> Result<DialogConfig, String> {
        let config: DialogConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        let check = |who: &str, p: &Policy| -> Result<(), String> {
            for (name, v) in [
                ("intent_threshold", p.intent_threshold),
                ("ambiguity_gap", p.ambiguity_gap),
                ("faq_threshold", p.faq_threshold),
                ("faq_agree_threshold", p.faq_agree_threshold),
            ] {
                if !(0.0..=1.0).contains(&v) {
                    return Err(format!("{who}: {name} must be between 0 and 1, got {v}"));
                }
            }
            if let Reception::Ratio { human_share } = p.reception {
                if !(0.0..=1.0).contains(&human_share) {
                    return Err(format!("{who}: human_share must be between 0 and 1"));
                }
            }
            for (name, url) in &p.actions {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(format!(
                        "{who}: action '{name}' needs an http(s) URL, got '{url}'"
                    ));
                }
            }
            if let Some(h) = &p.hours {
                if BusinessHours::parse(&h.open).is_none()
                    || BusinessHours::parse(&h.close).is_none()
                {
                    return Err(format!("{who}: hours must look like 09:00"));
                }
            }
            Ok(())
        };
        check("defaults", &self.defaults)?;
        for shop in self.shops.keys() {
            check(&format!("shops.{shop}"), &self.policy(shop))?;
        }
        Ok(())
    }

    /// Set the fields `change` gives in `shop`'s section of the TOML file at `path`, keeping
    /// everything else as written (comments included), and check the result is still a valid
    /// config before writing it. A running `serve` picks the change up with the next message.
    pub fn write_override(
        path: &Path,
        shop: &str,
        change: &PolicyOverride,
    ) -> Result<DialogConfig, DialogError> {
        let bad = |reason: String| DialogError::Config {
            path: path.display().to_string(),
            reason,
        };
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(bad(e.to_string())),
        };
        let mut doc: toml_edit::DocumentMut = text.parse().map_err(|e| bad(format!("{e}")))?;
        let shops = doc
            .entry("shops")
            .or_insert_with(|| {
                let mut t = toml_edit::Table::new();
                t.set_implicit(true);
                toml_edit::Item::Table(t)
            })
            .as_table_mut()
            .ok_or_else(|| bad("`shops` is not a table".into()))?;
        let table = shops
            .entry(shop)
            .or_insert_with(|| toml_edit::Item::Table(toml_edit::Table::new()))
            .as_table_mut()
            .ok_or_else(|| bad(format!("`shops.{shop}` is not a table")))?;
        // The change as TOML (unset fields are left out), merged key by key.
        let round = |x: Option<f32>| x.map(|x| ((x as f64) * 100.0).round() / 100.0);
        let mut fields = toml::Table::try_from(change).map_err(|e| bad(e.to_string()))?;
        for (name, v) in [
            ("intent_threshold", round(change.intent_threshold)),
            ("ambiguity_gap", round(change.ambiguity_gap)),
            ("faq_threshold", round(change.faq_threshold)),
            ("faq_agree_threshold", round(change.faq_agree_threshold)),
        ] {
            if let Some(v) = v {
                fields.insert(name.into(), toml::Value::Float(v));
            }
        }
        let fields: toml_edit::DocumentMut = toml::to_string(&fields)
            .map_err(|e| bad(e.to_string()))?
            .parse()
            .map_err(|e| bad(format!("{e}")))?;
        for (key, item) in fields.iter() {
            table[key] = item.clone();
        }
        let out = doc.to_string();
        let config = DialogConfig::parse(&out).map_err(bad)?;
        std::fs::write(path, out).map_err(|e| bad(e.to_string()))?;
        Ok(config)
    }

    /// Whether `shop` has any merchant webhook in force ([`Self::policy`]'s `actions`, without
    /// building the whole policy).
    pub fn has_actions(&self, shop: &str) -> bool {
        !self.defaults.actions.is_empty()
            || self
                .shops
                .get(shop)
                .and_then(|o| o.actions.as_ref())
                .is_some_and(|a| !a.is_empty())
    }

    /// The complete policy in force for `shop`.
    pub fn policy(&self, shop: &str) -> Policy {
        let mut p = self.defaults.clone();
        if let Some(o) = self.shops.get(shop) {
            if let Some(v) = o.intent_threshold {
                p.intent_threshold = v;
            }
            if let Some(v) = o.ambiguity_gap {
                p.ambiguity_gap = v;
            }
            if let Some(v) = o.faq_threshold {
                p.faq_threshold = v;
            }
            if let Some(v) = o.faq_agree_threshold {
                p.faq_agree_threshold = v;
            }
            if let Some(v) = o.unhelpful_limit {
                p.unhelpful_limit = v;
            }
            if let Some(v) = &o.risk {
                p.risk = v.clone();
            }
            if let Some(v) = o.reception {
                p.reception = v;
            }
            if o.hours.is_some() {
                p.hours = o.hours.clone();
            }
            if let Some(a) = &o.actions {
                p.actions.extend(a.clone());
            }
            if let Some(v) = o.action_timeout_ms {
                p.action_timeout_ms = v;
            }
        }
        p
    }
}
