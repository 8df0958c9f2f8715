-- Every bot decision on a shopper message, with the evidence that led to it: what agents see,
-- what the shop's numbers count, and what a threshold preview replays.
CREATE TABLE decisions (
    conversation TEXT NOT NULL REFERENCES conversations(id),
    -- The shopper event the decision answered.
    seq          INTEGER NOT NULL,
    shop         TEXT NOT NULL,
    -- answer, ask_for, clarify, handoff, closed, silent
    kind         TEXT NOT NULL,
    -- The handoff reason, when kind is handoff.
    reason       TEXT,
    at           TEXT NOT NULL,
    trace        TEXT NOT NULL,
    PRIMARY KEY (conversation, seq)
);
CREATE INDEX decisions_shop ON decisions(shop, at);
