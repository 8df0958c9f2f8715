-- A merchant's logged-in shopper, verified by HMAC: their conversations follow them across devices.
ALTER TABLE conversations ADD COLUMN user TEXT;
CREATE INDEX conversations_user ON conversations(shop, user, opened_at) WHERE user IS NOT NULL;
