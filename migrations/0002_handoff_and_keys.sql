-- Human queues, agents and API keys, so that a restart keeps every waiting conversation, every
-- assignment and every agent.

-- One row per open ticket (waiting or assigned); a resolved ticket's row is deleted.
CREATE TABLE tickets (
    conversation TEXT PRIMARY KEY,
    shop         TEXT NOT NULL,
    queue        TEXT NOT NULL,
    agent        TEXT,
    body         TEXT NOT NULL
);
CREATE INDEX tickets_shop ON tickets(shop);

CREATE TABLE agents (
    id    TEXT PRIMARY KEY,
    shop  TEXT,
    body  TEXT NOT NULL
);

-- API keys, stored as the SHA-256 of the token: the token itself is shown once, when created.
CREATE TABLE keys (
    hash        TEXT PRIMARY KEY,
    role        TEXT NOT NULL CHECK (role IN ('operator', 'merchant', 'agent')),
    shop        TEXT,
    agent       TEXT,
    label       TEXT NOT NULL DEFAULT '',
    created_at  TEXT NOT NULL,
    CHECK (role != 'merchant' OR shop IS NOT NULL),
    CHECK (role != 'agent' OR agent IS NOT NULL)
);

-- The shopper's satisfaction rating after an agent resolved the chat.
-- `seq` is the event that asked for the rating: one rating per question.
CREATE TABLE ratings (
    conversation TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    shop         TEXT NOT NULL,
    agent        TEXT,
    score        INTEGER NOT NULL CHECK (score BETWEEN 1 AND 5),
    at           TEXT NOT NULL,
    PRIMARY KEY (conversation, seq)
);
CREATE INDEX ratings_shop ON ratings(shop);

-- Per-shop embedding settings: the origins allowed to embed the widget (JSON array) and the
-- secret that signs logged-in shoppers' ids.
CREATE TABLE shops (
    id       TEXT PRIMARY KEY,
    origins  TEXT NOT NULL DEFAULT '[]',
    secret   TEXT
);
