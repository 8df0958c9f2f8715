-- Conversations the shopper websocket opened, and every event in them.
CREATE TABLE conversations (
    id          TEXT PRIMARY KEY,
    shop        TEXT NOT NULL,
    token       TEXT NOT NULL,
    opened_at   TEXT NOT NULL,
    -- The dialogue engine's state (turns, slots, owner), as JSON; updated after each decision.
    state       TEXT
);

CREATE TABLE events (
    conversation TEXT NOT NULL REFERENCES conversations(id),
    seq          INTEGER NOT NULL,
    -- The client's id for a shopper message, so a retry after a restart is still recognised.
    client_id    TEXT,
    body         TEXT NOT NULL,
    PRIMARY KEY (conversation, seq)
);

CREATE UNIQUE INDEX events_client_id ON events(conversation, client_id) WHERE client_id IS NOT NULL;
