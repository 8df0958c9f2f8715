-- Under load every message touched a page of each index keyed by conversation: with a thousand
-- chats interleaved those are random pages, each rewritten whole in the WAL and again at the
-- checkpoint. Two of those indexes only guarded uniqueness that the server already keeps:
--  * a client id's uniqueness within its conversation is kept by the conversation's session,
--    which loads every stored client id with the conversation;
--  * a decision per shopper event is written once, with the event, in the same transaction.
-- Both go; nothing reads decisions by conversation.
DROP INDEX events_client_id;

CREATE TABLE decisions_v2 (
    conversation TEXT NOT NULL REFERENCES conversations(id),
    -- The shopper event the decision answered.
    seq          INTEGER NOT NULL,
    shop         TEXT NOT NULL,
    -- answer, ask_for, clarify, handoff, closed, silent
    kind         TEXT NOT NULL,
    -- The handoff reason, when kind is handoff.
    reason       TEXT,
    at           TEXT NOT NULL,
    trace        TEXT NOT NULL
);
INSERT INTO decisions_v2 (conversation, seq, shop, kind, reason, at, trace)
    SELECT conversation, seq, shop, kind, reason, at, trace FROM decisions ORDER BY rowid;
DROP TABLE decisions;
ALTER TABLE decisions_v2 RENAME TO decisions;
CREATE INDEX decisions_shop ON decisions(shop, at);
