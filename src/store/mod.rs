//! Durable storage. A shopper message is acknowledged only after its event is in the store, so a
//! killed server loses nothing it acknowledged.
//!
//! [`ChatStore`] is the interface; [`SqliteStore`] the embedded default: one file under the data
//! directory, WAL mode, `synchronous = NORMAL` (a committed transaction survives the process being
//! killed; only a power loss can take the last ones). Migrations live in `migrations/` and are
//! applied in order, tracked by SQLite's `user_version`.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};

use crate::dialog::Conversation;
use crate::handoff::{self, Changes, Journal, JournalError, Snapshot};
use crate::server::auth::Role;
use crate::server::ws::Event;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("stored JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// A conversation as the store knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredConversation {
    pub id: String,
    pub shop: String,
    pub token: String,
    pub state: Option<Conversation>,
}

/// What the chat server keeps.
pub trait ChatStore: Send + Sync {
    /// A new conversation; `user` is a merchant-verified shopper id.
    fn open_conversation(
        &self,
        id: &str,
        shop: &str,
        token: &str,
        at: &str,
        user: Option<&str>,
    ) -> Result<()>;
    /// The newest conversation of a verified shopper in `shop`.
    fn conversation_of_user(&self, shop: &str, user: &str) -> Result<Option<String>>;
    /// Who may embed `shop`'s widget, and the secret its logged-in shoppers' ids are signed with.
    fn embed(&self, shop: &str) -> Result<Embed>;
    fn set_embed(&self, shop: &str, embed: &Embed) -> Result<()>;
    fn conversation(&self, id: &str) -> Result<Option<StoredConversation>>;
    fn save_state(&self, conv: &Conversation) -> Result<()>;
    /// Store events (with the client id of a shopper message), and the decision they carry, in
    /// one transaction; returns once they are durable.
    fn append(
        &self,
        conversation: &str,
        events: &[(Event, Option<String>)],
        decision: Option<&DecisionRecord>,
    ) -> Result<()>;
    /// A shop's stored decisions, oldest first, at most `limit` (the newest ones).
    fn decisions(&self, shop: &str, limit: usize) -> Result<Vec<DecisionRecord>>;
    /// A shop's conversations, newest first: (id, opened_at), at most `limit`.
    fn conversations(&self, shop: &str, limit: usize) -> Result<Vec<(String, String)>>;
    /// Events with a sequence number above `after`, in order.
    fn events_after(&self, conversation: &str, after: u64) -> Result<Vec<Event>>;
    /// The sequence number a shopper message with this client id got, if it was stored.
    fn ack_of(&self, conversation: &str, client_id: &str) -> Result<Option<u64>>;

    /// Keep a key (its hash) for `role`.
    fn add_key(&self, hash: &str, role: &Role, label: &str, at: &str) -> Result<()>;
    /// The role of the key with this hash.
    fn key_role(&self, hash: &str) -> Result<Option<Role>>;
    /// How many keys there are (`serve` creates demo keys in an empty store).
    fn key_count(&self) -> Result<usize>;
    /// A satisfaction rating for the question event `seq`. `false` if that question was rated.
    fn add_rating(&self, rating: &Rating) -> Result<bool>;
    /// Ratings of a shop's chats: (count, mean score).
    fn rating_summary(&self, shop: &str) -> Result<(usize, f64)>;
}

/// A shop's embedding settings.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Embed {
    /// Origins (`https://shop.example.com`) allowed to open the widget besides honeydesk's own.
    pub origins: Vec<String>,
    /// The HMAC key for shopper identities. Kept as is: verifying needs the key itself.
    #[serde(skip_serializing)]
    pub secret: Option<String>,
}

/// A decision as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionRecord {
    pub conversation: String,
    /// The shopper event it answered.
    pub seq: u64,
    pub shop: String,
    pub kind: String,
    pub reason: Option<String>,
    pub at: String,
    pub trace: crate::dialog::Trace,
}

/// A shopper's 1-5 rating of a chat an agent resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Rating {
    pub conversation: String,
    /// The event that asked for it.
    pub seq: u64,
    pub shop: String,
    pub agent: Option<String>,
    pub score: u8,
    pub at: String,
}

/// The migrations, in order.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/0001_conversations.sql"),
    include_str!("../../migrations/0002_handoff_and_keys.sql"),
    include_str!("../../migrations/0003_decisions.sql"),
    include_str!("../../migrations/0004_identity.sql"),
];

/// SQLite behind a mutex: writes are serialised by SQLite anyway, and a chat message is one small
/// transaction.
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

impl SqliteStore {
    /// Open (creating) `DATA_DIR/honeydesk.db` and bring its schema up to date.
    pub fn open(data_dir: &Path) -> Result<SqliteStore> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::Io {
            path: data_dir.display().to_string(),
            source,
        })?;
        let conn = Connection::open(data_dir.join("honeydesk.db"))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = conn.unchecked_transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", i as i64 + 1)?;
            tx.commit()?;
        }
        Ok(SqliteStore {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The schema version (the number of migrations applied).
    pub fn version(&self) -> Result<usize> {
        let v: i64 = self
            .conn()
            .pragma_query_value(None, "user_version", |r| r.get(0))?;
        Ok(v as usize)
    }
}

impl ChatStore for SqliteStore {
    fn open_conversation(
        &self,
        id: &str,
        shop: &str,
        token: &str,
        at: &str,
        user: Option<&str>,
    ) -> Result<()> {
        self.conn().execute(
            "INSERT INTO conversations (id, shop, token, opened_at, user) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![id, shop, token, at, user],
        )?;
        Ok(())
    }

    fn conversation_of_user(&self, shop: &str, user: &str) -> Result<Option<String>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT id FROM conversations WHERE shop = ?1 AND user = ?2
                 ORDER BY opened_at DESC LIMIT 1",
                params![shop, user],
                |r| r.get(0),
            )
            .optional()?)
    }

    fn embed(&self, shop: &str) -> Result<Embed> {
        let row = self
            .conn()
            .query_row(
                "SELECT origins, secret FROM shops WHERE id = ?1",
                params![shop],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?)),
            )
            .optional()?;
        Ok(match row {
            Some((origins, secret)) => Embed {
                origins: serde_json::from_str(&origins)?,
                secret,
            },
            None => Embed::default(),
        })
    }

    fn set_embed(&self, shop: &str, embed: &Embed) -> Result<()> {
        self.conn().execute(
            "INSERT INTO shops (id, origins, secret) VALUES (?1, ?2, ?3)
             ON CONFLICT(id) DO UPDATE SET origins = ?2, secret = ?3",
            params![shop, serde_json::to_string(&embed.origins)?, embed.secret],
        )?;
        Ok(())
    }

    fn conversation(&self, id: &str) -> Result<Option<StoredConversation>> {
        let row = self
            .conn()
            .query_row(
                "SELECT id, shop, token, state FROM conversations WHERE id = ?1",
                params![id],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, Option<String>>(3)?,
                    ))
                },
            )
            .optional()?;
        row.map(|(id, shop, token, state)| {
            Ok(StoredConversation {
                id,
                shop,
                token,
                state: state.map(|s| serde_json::from_str(&s)).transpose()?,
            })
        })
        .transpose()
    }

    fn save_state(&self, conv: &Conversation) -> Result<()> {
        let json = serde_json::to_string(conv)?;
        self.conn().execute(
            "UPDATE conversations SET state = ?2 WHERE id = ?1",
            params![conv.id, json],
        )?;
        Ok(())
    }

    fn append(
        &self,
        conversation: &str,
        events: &[(Event, Option<String>)],
        decision: Option<&DecisionRecord>,
    ) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for (event, client_id) in events {
            let body = serde_json::to_string(event)?;
            tx.execute(
                "INSERT INTO events (conversation, seq, client_id, body) VALUES (?1, ?2, ?3, ?4)",
                params![conversation, event.seq as i64, client_id, body],
            )?;
        }
        if let Some(d) = decision {
            tx.execute(
                "INSERT INTO decisions (conversation, seq, shop, kind, reason, at, trace)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    d.conversation,
                    d.seq as i64,
                    d.shop,
                    d.kind,
                    d.reason,
                    d.at,
                    serde_json::to_string(&d.trace)?
                ],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    fn decisions(&self, shop: &str, limit: usize) -> Result<Vec<DecisionRecord>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT conversation, seq, shop, kind, reason, at, trace FROM
               (SELECT * FROM decisions WHERE shop = ?1 ORDER BY at DESC, seq DESC LIMIT ?2)
             ORDER BY at, seq",
        )?;
        let rows = stmt.query_map(params![shop, limit as i64], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, String>(6)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (conversation, seq, shop, kind, reason, at, trace) = row?;
            out.push(DecisionRecord {
                conversation,
                seq: seq as u64,
                shop,
                kind,
                reason,
                at,
                trace: serde_json::from_str(&trace)?,
            });
        }
        Ok(out)
    }

    fn conversations(&self, shop: &str, limit: usize) -> Result<Vec<(String, String)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, opened_at FROM conversations WHERE shop = ?1 ORDER BY opened_at DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![shop, limit as i64], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    fn events_after(&self, conversation: &str, after: u64) -> Result<Vec<Event>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT body FROM events WHERE conversation = ?1 AND seq > ?2 ORDER BY seq")?;
        let rows = stmt.query_map(params![conversation, after as i64], |r| {
            r.get::<_, String>(0)
        })?;
        let mut out = Vec::new();
        for row in rows {
            out.push(serde_json::from_str(&row?)?);
        }
        Ok(out)
    }

    fn ack_of(&self, conversation: &str, client_id: &str) -> Result<Option<u64>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT seq FROM events WHERE conversation = ?1 AND client_id = ?2",
                params![conversation, client_id],
                |r| r.get::<_, i64>(0),
            )
            .optional()?
            .map(|s| s as u64))
    }

    fn add_key(&self, hash: &str, role: &Role, label: &str, at: &str) -> Result<()> {
        let (shop, agent) = match role {
            Role::Operator => (None, None),
            Role::Merchant { shop } => (Some(shop.as_str()), None),
            Role::Agent { agent } => (None, Some(agent.as_str())),
        };
        self.conn().execute(
            "INSERT INTO keys (hash, role, shop, agent, label, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![hash, role.name(), shop, agent, label, at],
        )?;
        Ok(())
    }

    fn key_role(&self, hash: &str) -> Result<Option<Role>> {
        let row = self
            .conn()
            .query_row(
                "SELECT role, shop, agent FROM keys WHERE hash = ?1",
                params![hash],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, Option<String>>(1)?,
                        r.get::<_, Option<String>>(2)?,
                    ))
                },
            )
            .optional()?;
        Ok(row.and_then(|(role, shop, agent)| match role.as_str() {
            "operator" => Some(Role::Operator),
            "merchant" => shop.map(|shop| Role::Merchant { shop }),
            "agent" => agent.map(|agent| Role::Agent { agent }),
            _ => None,
        }))
    }

    fn key_count(&self) -> Result<usize> {
        let n: i64 = self
            .conn()
            .query_row("SELECT count(*) FROM keys", [], |r| r.get(0))?;
        Ok(n as usize)
    }

    fn add_rating(&self, r: &Rating) -> Result<bool> {
        let n = self.conn().execute(
            "INSERT OR IGNORE INTO ratings (conversation, seq, shop, agent, score, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![r.conversation, r.seq as i64, r.shop, r.agent, r.score, r.at],
        )?;
        Ok(n == 1)
    }

    fn rating_summary(&self, shop: &str) -> Result<(usize, f64)> {
        let (n, mean): (i64, Option<f64>) = self.conn().query_row(
            "SELECT count(*), avg(score) FROM ratings WHERE shop = ?1",
            params![shop],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok((n as usize, mean.unwrap_or(0.0)))
    }
}

impl Journal for SqliteStore {
    fn write(&self, changes: &Changes<'_>) -> std::result::Result<(), JournalError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for t in &changes.tickets {
            tx.execute(
                "INSERT INTO tickets (conversation, shop, queue, agent, body) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(conversation) DO UPDATE SET shop = ?2, queue = ?3, agent = ?4, body = ?5",
                params![t.conversation, t.shop, t.queue, t.agent, serde_json::to_string(t)?],
            )?;
        }
        for id in &changes.removed {
            tx.execute("DELETE FROM tickets WHERE conversation = ?1", params![id])?;
        }
        for a in &changes.agents {
            tx.execute(
                "INSERT INTO agents (id, shop, body) VALUES (?1, ?2, ?3)
                 ON CONFLICT(id) DO UPDATE SET shop = ?2, body = ?3",
                params![a.id, a.shop, serde_json::to_string(a)?],
            )?;
        }
        for c in &changes.conversations {
            // Only conversations the store opened have a row; others (POST /v1/message) are
            // kept in memory.
            tx.execute(
                "UPDATE conversations SET state = ?2 WHERE id = ?1",
                params![c.id, serde_json::to_string(c)?],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    fn load(&self) -> std::result::Result<Snapshot, JournalError> {
        let conn = self.conn();
        let mut snapshot = Snapshot::default();
        let mut stmt = conn.prepare("SELECT body FROM tickets")?;
        for body in stmt.query_map([], |r| r.get::<_, String>(0))? {
            snapshot
                .tickets
                .push(serde_json::from_str::<handoff::Ticket>(&body?)?);
        }
        let mut stmt = conn.prepare("SELECT body FROM agents ORDER BY id")?;
        for body in stmt.query_map([], |r| r.get::<_, String>(0))? {
            snapshot
                .agents
                .push(serde_json::from_str::<handoff::Agent>(&body?)?);
        }
        let mut stmt = conn.prepare(
            "SELECT c.state FROM conversations c JOIN tickets t ON t.conversation = c.id
             WHERE c.state IS NOT NULL",
        )?;
        for body in stmt.query_map([], |r| r.get::<_, String>(0))? {
            snapshot.conversations.push(serde_json::from_str(&body?)?);
        }
        Ok(snapshot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialog::Speaker;

    fn event(seq: u64, text: &str) -> Event {
        Event {
            seq,
            from: Speaker::Shopper,
            text: text.into(),
            buttons: vec![],
            handoff: None,
            link: None,
            rating_for: None,
            at: crate::knowledge::import::parse_time("2026-11-25 10:00", false).unwrap(),
        }
    }

    #[test]
    fn events_survive_reopening_and_retries_are_recognised() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = SqliteStore::open(dir.path()).unwrap();
            assert_eq!(s.version().unwrap(), MIGRATIONS.len());
            s.open_conversation("c1", "demo", "tok", "2026-11-25T10:00:00+08:00", None)
                .unwrap();
            s.append(
                "c1",
                &[
                    (event(1, "满多少包邮"), Some("m1".into())),
                    (event(2, "全店满99元包邮"), None),
                ],
                None,
            )
            .unwrap();
            let retry = s.append(
                "c1",
                &[
                    (event(3, "x"), None),
                    (event(4, "again"), Some("m1".into())),
                ],
                None,
            );
            assert!(retry.is_err(), "one seq per client id");
            assert_eq!(
                s.events_after("c1", 0).unwrap().len(),
                2,
                "a failed batch stores nothing"
            );
        }
        let s = SqliteStore::open(dir.path()).unwrap();
        let c = s.conversation("c1").unwrap().unwrap();
        assert_eq!((c.shop.as_str(), c.token.as_str()), ("demo", "tok"));
        let after = s.events_after("c1", 1).unwrap();
        assert_eq!(after.len(), 1);
        assert_eq!(after[0].text, "全店满99元包邮");
        assert_eq!(s.ack_of("c1", "m1").unwrap(), Some(1));
        assert_eq!(s.ack_of("c1", "m9").unwrap(), None);
        assert!(s.conversation("nope").unwrap().is_none());
    }
}
