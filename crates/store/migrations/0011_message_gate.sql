-- waihu schema v11: messages pass the compliance gate (quiet hours, per-number caps).
--
-- `not_before`: a message the gate deferred (quiet hours in the recipient's local time,
-- or the number's daily/weekly message cap reached) stays `queued` and is not due before
-- this instant. `claimed_at`: the first time the message was handed to its sender (the
-- instant logged as `message_submitted`); the gate counts these per number, so a message
-- requeued after a lost bind is counted once, as the compliance checker counts it.
ALTER TABLE messages ADD COLUMN not_before TEXT;
ALTER TABLE messages ADD COLUMN claimed_at TEXT;
CREATE INDEX messages_phone_claimed ON messages(phone_idx, claimed_at);
UPDATE messages SET claimed_at = sent_at WHERE direction = 'out' AND sent_at IS NOT NULL;
