-- waihu schema v15: voices heard on live calls with the voice check on
-- (`waihu run --voiceprint`), to notice one voice answering for many numbers
-- (a fraud ring's 代接). Personal data: the embedding is sealed (bound to its
-- row), rows are purged after the retention window at each check, and erased
-- with their customer (ON DELETE CASCADE, or voiceprint_erase).
CREATE TABLE voice_sightings (
    id           INTEGER PRIMARY KEY,
    customer_id  INTEGER REFERENCES customers(id) ON DELETE CASCADE,
    phone_idx    TEXT NOT NULL,
    embedding_ct BLOB NOT NULL,
    seen_at      TEXT NOT NULL
);
CREATE INDEX voice_sightings_seen ON voice_sightings(seen_at);
CREATE INDEX voice_sightings_customer ON voice_sightings(customer_id);
