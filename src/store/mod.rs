//! Durable storage. A shopper message is acknowledged only after its event is in the store, so a
//! killed server loses nothing it acknowledged.
//!
//! [`ChatStore`] is the interface; [`SqliteStore`] the embedded default: one file under the data
//! directory, WAL mode, `synchronous = NORMAL` (a committed transaction survives the process being
//! killed; only a power loss can take the last ones). Migrations live in `migrations/` and are
//! applied in order, tracked by SQLite's `user_version`.
//!
//! Chat messages are written with group commit: [`ChatStore::append_then`] hands the batch to one
//! writer thread with its own connection, which takes every batch waiting and commits them in one
//! transaction (written again with a savepoint each if one fails, so a bad one fails alone);
//! each caller hears back after that commit. Under load one commit then carries many messages
//! instead of one, and the websocket's reads never wait behind a write. The handoff journal goes
//! through the same writer, in order, so queue changes never wait on SQLite's lock while holding
//! the queues'.
//!
//! Checkpoints (copying the WAL back into the database file, and its fsyncs) are mostly done by
//! a thread of their own, a passive checkpoint every 250 ms. Left to the writer alone, each
//! 1,000-page checkpoint copied and synced about 4 MB while every waiting ack waited with it
//! (`examples/load.rs --timeline` showed single seconds with p99 of 100–500 ms in otherwise
//! 5 ms runs). The writer still completes one every 1,000 pages, since a passive checkpoint
//! beside a writer that never pauses never catches the last frames and the WAL could never
//! start over (it grew to 880 MB in 60,000 messages); by then the checkpointer has copied and
//! synced nearly everything, so the writer's part is short.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};

use crate::dialog::Conversation;
use crate::domain::{Event, Role};
use crate::handoff::{self, Changes, Journal, JournalError, Snapshot};

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
    /// A group commit failed: every batch in it is lost, so each caller gets this.
    #[error("commit failed: {0}")]
    Commit(String),
    #[error("the store's writer thread is gone")]
    WriterGone,
}

/// Told once a batch given to [`ChatStore::append_then`] is durable, or why it is not.
pub type Done = Box<dyn FnOnce(Result<()>) + Send>;

/// Start `start` with a [`Done`] and block until it is called.
fn wait(start: impl FnOnce(Done)) -> Result<()> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    start(Box::new(move |r| {
        let _ = tx.send(r);
    }));
    rx.recv().unwrap_or(Err(StoreError::WriterGone))
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
    /// Store events (with the client id of a shopper message), the decision they carry and the
    /// conversation's state after it, all or nothing; `done` is called once they are durable
    /// (or with the error), possibly on another thread. It does not wait: an async caller
    /// awaits a channel that `done` fills.
    fn append_then(
        &self,
        conversation: &str,
        events: &[(Event, Option<String>)],
        decision: Option<&DecisionRecord>,
        state: Option<&Conversation>,
        done: Done,
    );
    /// `done` is called once everything handed to the store before this call is durable.
    fn barrier_then(&self, done: Done);
    /// [`ChatStore::barrier_then`], waiting for it.
    fn flush(&self) -> Result<()> {
        wait(|done| self.barrier_then(done))
    }
    /// [`ChatStore::append_then`], waiting for it.
    fn append(
        &self,
        conversation: &str,
        events: &[(Event, Option<String>)],
        decision: Option<&DecisionRecord>,
        state: Option<&Conversation>,
    ) -> Result<()> {
        wait(|done| self.append_then(conversation, events, decision, state, done))
    }
    /// A shop's stored decisions, oldest first, at most `limit` (the newest ones).
    fn decisions(&self, shop: &str, limit: usize) -> Result<Vec<DecisionRecord>>;
    /// A shop's conversations, newest first: (id, opened_at), at most `limit`.
    fn conversations(&self, shop: &str, limit: usize) -> Result<Vec<(String, String)>>;
    /// Events with a sequence number above `after`, in order.
    fn events_after(&self, conversation: &str, after: u64) -> Result<Vec<Event>>;
    /// Every client id of the conversation with the sequence number its message got: a session
    /// loaded from the store answers retries from this, without a query per message.
    fn acks(&self, conversation: &str) -> Result<std::collections::HashMap<String, u64>>;

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
    include_str!("../../migrations/0005_fewer_random_writes.sql"),
];

const SAVE_STATE: &str = "UPDATE conversations SET state = ?2 WHERE id = ?1";

/// A conversation's state as stored: everything but the transcript.
///
/// The transcript is already in `events`, one row per message. Storing it again in the state
/// rewrote the whole conversation with every message: under load, serialising and writing
/// transcripts that grow with each turn was about a tenth of the server's CPU (perf). It is
/// read back from the events instead ([`read_state`]).
#[derive(serde::Serialize)]
struct StateRow<'a> {
    id: &'a str,
    shop: &'a str,
    #[serde(flatten)]
    state: crate::dialog::DialogState,
}

fn state_json(c: &Conversation) -> serde_json::Result<String> {
    serde_json::to_string(&StateRow {
        id: &c.id,
        shop: &c.shop,
        state: c.dialog_state(),
    })
}

/// A stored state with its transcript: the conversation's events, each a turn (every turn the
/// engine and the agents add is stored as an event with the same speaker, text and time). A state
/// written before the transcript moved out keeps the turns it has.
fn read_state(conn: &Connection, json: &str) -> Result<Conversation> {
    let mut c: Conversation = serde_json::from_str(json)?;
    if c.turns.is_empty() {
        let mut stmt =
            conn.prepare_cached("SELECT body FROM events WHERE conversation = ?1 ORDER BY seq")?;
        for body in stmt.query_map(params![c.id], |r| r.get::<_, String>(0))? {
            let e: Event = serde_json::from_str(&body?)?;
            c.push_turn(e.from, e.text, e.at);
        }
    }
    Ok(c)
}

/// SQLite behind a mutex for everything but chat messages, which go to the group-commit writer.
pub struct SqliteStore {
    conn: Mutex<Connection>,
    writer: Mutex<std::sync::mpsc::Sender<Job>>,
    /// Dropped with the store, which tells the checkpointer thread to do a last checkpoint and
    /// end.
    _checkpointer: std::sync::mpsc::Sender<()>,
}

/// WAL pages after which the writer completes a checkpoint itself: SQLite's default. At 4,000
/// each of its checkpoints had more left to copy, and p99 at 4,000 messages/s was 123 and 225 ms
/// instead of 38 and 49 (`examples/load.rs --rate 4 --messages 40`).
const WRITER_CHECKPOINT_PAGES: i64 = 1000;

/// How often the checkpointer copies committed WAL pages into the database file.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// The checkpointer thread: a passive checkpoint every [`CHECKPOINT_EVERY`] (it never blocks the
/// writer or a reader; pages a reader still needs wait for the next one), and a truncating one
/// when the store is dropped.
fn checkpoint_loop(conn: Connection, stop: std::sync::mpsc::Receiver<()>) {
    use std::sync::mpsc::RecvTimeoutError;
    let checkpoint = |mode: &str| {
        let sql = format!("PRAGMA wal_checkpoint({mode})");
        if let Err(e) = conn.query_row(&sql, [], |_| Ok(())) {
            tracing::warn!(error = %e, "WAL checkpoint failed; the next one retries");
        }
    };
    loop {
        match stop.recv_timeout(CHECKPOINT_EVERY) {
            Err(RecvTimeoutError::Timeout) => checkpoint("PASSIVE"),
            Ok(()) => {}
            Err(RecvTimeoutError::Disconnected) => {
                checkpoint("TRUNCATE");
                return;
            }
        }
    }
}

/// What the writer thread is given, in the order it must be written.
enum Job {
    Append(Append),
    Journal(JournalWrite),
    /// Nothing to write: answered once everything before it is committed.
    Barrier(Done),
}

/// A [`DecisionRecord`] with its trace as JSON.
struct DecisionRow {
    conversation: String,
    seq: i64,
    shop: String,
    kind: String,
    reason: Option<String>,
    at: String,
    trace: String,
}

/// One handoff journal entry, serialised by the caller.
struct JournalWrite {
    /// (conversation, shop, queue, agent, JSON body)
    tickets: Vec<(String, String, String, Option<String>, String)>,
    removed: Vec<String>,
    /// (id, shop, JSON body)
    agents: Vec<(String, Option<String>, String)>,
    /// (id, state JSON)
    conversations: Vec<(String, String)>,
}

/// One batch for the writer, serialised by the caller.
struct Append {
    conversation: String,
    /// (seq, client id, JSON body)
    events: Vec<(i64, Option<String>, String)>,
    decision: Option<DecisionRow>,
    /// (conversation id, state JSON)
    state: Option<(String, String)>,
    done: Done,
}

/// Most batches one commit carries.
const GROUP_MAX: usize = 512;

/// How long a busy writer holds a group open for more messages. A commit writes every page it
/// touched, and each message lands on a page of its own in the events index (conversations
/// interleave), beside pages the others share: at 4,000 messages/s, committing whatever was
/// waiting gave 1.8 messages a commit and 19 KB written to disk per message; a 1 ms window gave
/// 7.5 messages a commit, 12 KB, and a tenth less server CPU (321 -> 290 µs a message).
const COMMIT_WINDOW: std::time::Duration = std::time::Duration::from_millis(1);

/// The writer thread: one transaction for everything waiting.
///
/// Jobs almost never fail, so the group is first written straight into the transaction, with no
/// savepoint per job: each savepoint is two more statements parsed and run, which was a tenth of
/// the server's CPU under load (perf). Only when a job fails is that transaction rolled back and
/// the group written again with a savepoint per job, so the bad one fails alone.
///
/// While messages come in faster than one at a time (the last commit carried more than one job),
/// a group stays open for up to [`COMMIT_WINDOW`] for more to join it; a lone message is written
/// at once.
fn write_groups(mut conn: Connection, jobs: std::sync::mpsc::Receiver<Job>) {
    let mut busy = false;
    while let Ok(first) = jobs.recv() {
        let mut group = vec![first];
        let until = std::time::Instant::now() + COMMIT_WINDOW;
        while group.len() < GROUP_MAX {
            let next = if busy {
                jobs.recv_timeout(until.saturating_duration_since(std::time::Instant::now()))
                    .ok()
            } else {
                jobs.try_recv().ok()
            };
            match next {
                Some(job) => group.push(job),
                None => break,
            }
        }
        busy = group.len() > 1;
        let results = match write_group(&mut conn, &group, false) {
            Ok(Some(results)) => Ok(results),
            // A job failed and the optimistic transaction is gone: once more, job by job.
            Ok(None) => write_group(&mut conn, &group, true).map(|r| r.expect("savepoints")),
            Err(e) => Err(e),
        };
        // A failed commit stores nothing of the group: everyone hears so.
        let results = results.unwrap_or_else(|e| {
            group
                .iter()
                .map(|_| Err(StoreError::Commit(e.to_string())))
                .collect()
        });
        for (job, r) in group.into_iter().zip(results) {
            match job {
                Job::Append(a) => (a.done)(r),
                Job::Barrier(done) => done(r),
                Job::Journal(_) => {
                    if let Err(e) = r {
                        // Nobody waits on a journal write; the error must not go unseen.
                        tracing::error!(error = %e, "handoff state not written to the journal");
                    }
                }
            }
        }
    }
}

/// Write and commit `group` in one transaction. Without savepoints the first failing job rolls
/// the whole transaction back and `None` is returned (nothing written); with them, a failing job
/// is rolled back alone and its error is its result.
fn write_group(
    conn: &mut Connection,
    group: &[Job],
    savepoints: bool,
) -> Result<Option<Vec<Result<()>>>> {
    let write = |c: &Connection, job: &Job| match job {
        Job::Append(a) => write_one(c, a),
        Job::Journal(j) => write_journal(c, j),
        Job::Barrier(_) => Ok(()),
    };
    let mut tx = conn.transaction()?;
    let mut results = Vec::with_capacity(group.len());
    for job in group {
        if savepoints {
            let mut sp = tx.savepoint()?;
            let r = write(&sp, job);
            if r.is_ok() {
                sp.commit()?;
            } else {
                sp.rollback()?;
            }
            results.push(r);
        } else if write(&tx, job).is_err() {
            // Dropping the transaction rolls it back.
            return Ok(None);
        } else {
            results.push(Ok(()));
        }
    }
    tx.commit()?;
    Ok(Some(results))
}

fn write_journal(tx: &Connection, j: &JournalWrite) -> Result<()> {
    for (conversation, shop, queue, agent, body) in &j.tickets {
        tx.prepare_cached(
            "INSERT INTO tickets (conversation, shop, queue, agent, body) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(conversation) DO UPDATE SET shop = ?2, queue = ?3, agent = ?4, body = ?5",
        )?
        .execute(params![conversation, shop, queue, agent, body])?;
    }
    for id in &j.removed {
        tx.prepare_cached("DELETE FROM tickets WHERE conversation = ?1")?
            .execute(params![id])?;
    }
    for (id, shop, body) in &j.agents {
        tx.prepare_cached(
            "INSERT INTO agents (id, shop, body) VALUES (?1, ?2, ?3)
             ON CONFLICT(id) DO UPDATE SET shop = ?2, body = ?3",
        )?
        .execute(params![id, shop, body])?;
    }
    // Only conversations the store opened have a row; others (POST /v1/message) are kept in
    // memory.
    for (id, json) in &j.conversations {
        tx.prepare_cached(SAVE_STATE)?.execute(params![id, json])?;
    }
    Ok(())
}

fn write_one(tx: &Connection, job: &Append) -> Result<()> {
    for (seq, client_id, body) in &job.events {
        tx.prepare_cached(
            "INSERT INTO events (conversation, seq, client_id, body) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![job.conversation, seq, client_id, body])?;
    }
    if let Some((id, json)) = &job.state {
        tx.prepare_cached(SAVE_STATE)?.execute(params![id, json])?;
    }
    if let Some(d) = &job.decision {
        tx.prepare_cached(
            "INSERT INTO decisions (conversation, seq, shop, kind, reason, at, trace)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            d.conversation,
            d.seq,
            d.shop,
            d.kind,
            d.reason,
            d.at,
            d.trace
        ])?;
    }
    Ok(())
}

fn connect(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Sub-journals (statement journals, and the savepoints of a group written again after a
    // failure) stay in memory instead of a temporary file, and a cache large enough for a whole
    // group is not spilled to the WAL mid-transaction.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.pragma_update(None, "cache_size", -32768)?;
    // Checkpoints belong to the checkpointer thread and the writer (module doc), not to every
    // connection whose commit crosses the WAL's page mark. A WAL that grew past this is cut
    // back once it starts over.
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}

impl SqliteStore {
    /// Open (creating) `DATA_DIR/honeydesk.db` and bring its schema up to date.
    pub fn open(data_dir: &Path) -> Result<SqliteStore> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::Io {
            path: data_dir.display().to_string(),
            source,
        })?;
        let path = data_dir.join("honeydesk.db");
        let conn = connect(&path)?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = conn.unchecked_transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", i as i64 + 1)?;
            tx.commit()?;
        }
        let writer_conn = connect(&path)?;
        // The writer alone still completes a checkpoint now and then (module doc).
        writer_conn.pragma_update(None, "wal_autocheckpoint", WRITER_CHECKPOINT_PAGES)?;
        let spawn = |name: &str, run: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.into())
                .spawn(run)
                .map(drop)
                .map_err(|source| StoreError::Io {
                    path: path.display().to_string(),
                    source,
                })
        };
        let (tx, rx) = std::sync::mpsc::channel();
        spawn(
            "sqlite-writer",
            Box::new(move || write_groups(writer_conn, rx)),
        )?;
        let checkpoint_conn = connect(&path)?;
        let (stop, stopped) = std::sync::mpsc::channel();
        spawn(
            "sqlite-checkpoint",
            Box::new(move || checkpoint_loop(checkpoint_conn, stopped)),
        )?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            writer: Mutex::new(tx),
            _checkpointer: stop,
        })
    }

    /// Hand `job` to the writer; gives it back if the writer thread is gone.
    fn send(&self, job: Job) -> Option<Job> {
        let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        writer.send(job).err().map(|e| e.0)
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
        // With its state from the start, so that a message that changes none of it need not
        // write it (see `append_then`'s `state`).
        let state = state_json(&Conversation::new(id, shop))?;
        self.conn().execute(
            "INSERT INTO conversations (id, shop, token, opened_at, user, state)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![id, shop, token, at, user, state],
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
                state: state.map(|s| read_state(&self.conn(), &s)).transpose()?,
            })
        })
        .transpose()
    }

    fn append_then(
        &self,
        conversation: &str,
        events: &[(Event, Option<String>)],
        decision: Option<&DecisionRecord>,
        state: Option<&Conversation>,
        done: Done,
    ) {
        let serialised = (|| -> Result<_> {
            let events = events
                .iter()
                .map(|(e, c)| Ok((e.seq as i64, c.clone(), serde_json::to_string(e)?)))
                .collect::<Result<Vec<_>>>()?;
            let decision = decision
                .map(|d| -> Result<_> {
                    Ok(DecisionRow {
                        conversation: d.conversation.clone(),
                        seq: d.seq as i64,
                        shop: d.shop.clone(),
                        kind: d.kind.clone(),
                        reason: d.reason.clone(),
                        at: d.at.clone(),
                        trace: serde_json::to_string(&d.trace)?,
                    })
                })
                .transpose()?;
            let state = state
                .map(|c| -> Result<_> { Ok((c.id.clone(), state_json(c)?)) })
                .transpose()?;
            Ok((events, decision, state))
        })();
        match serialised {
            Ok((events, decision, state)) => {
                let job = Append {
                    conversation: conversation.to_string(),
                    events,
                    decision,
                    state,
                    done,
                };
                if let Some(Job::Append(job)) = self.send(Job::Append(job)) {
                    (job.done)(Err(StoreError::WriterGone));
                }
            }
            Err(e) => done(Err(e)),
        }
    }

    fn barrier_then(&self, done: Done) {
        if let Some(Job::Barrier(done)) = self.send(Job::Barrier(done)) {
            done(Err(StoreError::WriterGone));
        }
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

    fn acks(&self, conversation: &str) -> Result<std::collections::HashMap<String, u64>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT client_id, seq FROM events WHERE conversation = ?1 AND client_id IS NOT NULL",
        )?;
        let rows = stmt.query_map(params![conversation], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
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
    /// Queued to the writer thread behind everything written before it, so the journal is in
    /// the order of the changes; durable at the next commit. Whoever must know it is durable
    /// (the ack of a shopper message, the answer to an agent) waits for a later write.
    fn write(&self, changes: &Changes<'_>) -> std::result::Result<(), JournalError> {
        let job = JournalWrite {
            tickets: changes
                .tickets
                .iter()
                .map(|t| {
                    Ok((
                        t.conversation.clone(),
                        t.shop.clone(),
                        t.queue.clone(),
                        t.agent.clone(),
                        serde_json::to_string(t)?,
                    ))
                })
                .collect::<serde_json::Result<_>>()?,
            removed: changes.removed.iter().map(|s| s.to_string()).collect(),
            agents: changes
                .agents
                .iter()
                .map(|a| Ok((a.id.clone(), a.shop.clone(), serde_json::to_string(a)?)))
                .collect::<serde_json::Result<_>>()?,
            conversations: changes
                .conversations
                .iter()
                .map(|c| Ok((c.id.clone(), state_json(c)?)))
                .collect::<serde_json::Result<_>>()?,
        };
        match self.send(Job::Journal(job)) {
            None => Ok(()),
            Some(_) => Err(Box::new(StoreError::WriterGone)),
        }
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
        let bodies = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        for body in bodies {
            snapshot.conversations.push(read_state(&conn, &body)?);
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

    /// Committed pages reach the database file without any commit crossing the writer's
    /// checkpoint mark: the checkpointer thread copies them. With no thread (as before) they
    /// would sit in the WAL until 1,000 pages had piled up.
    #[test]
    fn the_checkpointer_copies_committed_pages_into_the_database_file() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(dir.path()).unwrap();
        let db = dir.path().join("honeydesk.db");
        let size = || std::fs::metadata(&db).unwrap().len();
        // Whatever the migrations left in the WAL is copied first; then only new pages grow it.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut before = size();
        std::thread::sleep(CHECKPOINT_EVERY * 3);
        while size() != before && std::time::Instant::now() < deadline {
            before = size();
            std::thread::sleep(CHECKPOINT_EVERY * 3);
        }
        s.open_conversation("c1", "demo", "tok", "2026-11-25T10:00:00+08:00", None)
            .unwrap();
        let long = "亲，这件羽绒服的含绒量是多少，冬天在北方穿够不够暖和？".repeat(20);
        let batch: Vec<(Event, Option<String>)> = (1..=200)
            .map(|i| (event(i, &long), Some(format!("m{i}"))))
            .collect();
        s.append("c1", &batch, None, None).unwrap();
        let wal = std::fs::metadata(dir.path().join("honeydesk.db-wal"))
            .unwrap()
            .len();
        assert!(wal > 4096 * 50, "the batch is in the WAL ({wal} bytes)");
        assert!(wal < 4096 * 1000, "below the writer's own checkpoint mark");
        while size() < before + 4096 * 40 && std::time::Instant::now() < deadline {
            std::thread::sleep(CHECKPOINT_EVERY);
        }
        assert!(
            size() >= before + 4096 * 40,
            "the database file grew from {before} to only {} bytes",
            size()
        );
    }

    /// The state row keeps no transcript (it would be rewritten whole with every message); the
    /// conversation read back has it, from the events, in order, with the speakers.
    #[test]
    fn a_conversation_comes_back_with_its_transcript_from_the_events() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(dir.path()).unwrap();
        s.open_conversation("c1", "demo", "tok", "2026-11-25T10:00:00+08:00", None)
            .unwrap();
        let mut conv = Conversation::new("c1", "demo");
        let reply = Event {
            from: Speaker::Bot,
            ..event(2, "亲，满99包邮哦")
        };
        for e in [&event(1, "包邮吗"), &reply] {
            conv.push_turn(e.from, e.text.clone(), e.at);
        }
        conv.slots.insert("order_id".into(), "123456789012".into());
        conv.unhelpful = 1;
        s.append(
            "c1",
            &[(event(1, "包邮吗"), Some("m1".into())), (reply, None)],
            None,
            Some(&conv),
        )
        .unwrap();
        let row: String = s
            .conn()
            .query_row("SELECT state FROM conversations WHERE id = 'c1'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert!(
            !row.contains("包邮吗"),
            "no transcript in the state row: {row}"
        );
        drop(s);
        let s = SqliteStore::open(dir.path()).unwrap();
        let back = s.conversation("c1").unwrap().unwrap().state.unwrap();
        assert_eq!(back, conv);
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
                None,
            )
            .unwrap();
            // Client ids are kept unique by the conversation's session (from `acks`); the store
            // keeps sequence numbers unique.
            let clash = s.append(
                "c1",
                &[
                    (event(3, "x"), None),
                    (event(2, "again"), Some("m2".into())),
                ],
                None,
                None,
            );
            assert!(clash.is_err(), "one event per seq");
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
        let acks = s.acks("c1").unwrap();
        assert_eq!(acks.get("m1"), Some(&1));
        assert_eq!(acks.get("m9"), None);
        assert_eq!(
            acks.len(),
            1,
            "only the shopper's message has a client id: {acks:?}"
        );
        assert!(s.conversation("nope").unwrap().is_none());
    }

    /// Group commit: batches written together from many threads each get their own answer, a
    /// bad one fails alone, and a barrier answers only after what came before it is stored.
    #[test]
    fn a_bad_batch_in_a_group_fails_alone() {
        let dir = tempfile::tempdir().unwrap();
        let s = std::sync::Arc::new(SqliteStore::open(dir.path()).unwrap());
        for c in 0..8 {
            let id = format!("c{c}");
            s.open_conversation(&id, "demo", "tok", "2026-11-25T10:00:00+08:00", None)
                .unwrap();
        }
        let threads: Vec<_> = (0..8)
            .map(|c| {
                let s = s.clone();
                std::thread::spawn(move || {
                    let id = format!("c{c}");
                    (1..=20u64)
                        .map(|seq| {
                            // Conversation c3 stores one sequence number twice: that batch
                            // must fail.
                            let at = if c == 3 && seq == 10 { 9 } else { seq };
                            let client = format!("m{seq}");
                            s.append(&id, &[(event(at, "hi"), Some(client))], None, None)
                                .is_ok()
                        })
                        .collect::<Vec<bool>>()
                })
            })
            .collect();
        let results: Vec<Vec<bool>> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        for (c, r) in results.iter().enumerate() {
            let failed: Vec<usize> = (0..20).filter(|&i| !r[i]).collect();
            if c == 3 {
                assert_eq!(failed, vec![9], "only the duplicate sequence number fails");
            } else {
                assert!(failed.is_empty(), "c{c}: {failed:?}");
            }
        }
        assert_eq!(s.events_after("c0", 0).unwrap().len(), 20);
        assert_eq!(s.events_after("c3", 0).unwrap().len(), 19);

        let (tx, rx) = std::sync::mpsc::channel();
        let tx2 = tx.clone();
        s.append_then(
            "c0",
            &[(event(21, "late"), None)],
            None,
            None,
            Box::new(move |r| tx.send(("append", r.is_ok())).unwrap()),
        );
        s.barrier_then(Box::new(move |r| tx2.send(("barrier", r.is_ok())).unwrap()));
        assert_eq!(rx.recv().unwrap(), ("append", true));
        assert_eq!(rx.recv().unwrap(), ("barrier", true));
        assert_eq!(s.events_after("c0", 20).unwrap().len(), 1);
    }
}
