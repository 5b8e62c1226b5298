-- waihu schema v13: the media quality of each call (RTP counters, the peer's RTCP view of our
-- audio, round-trip time) as one JSON object; NULL for calls that carried no media.
ALTER TABLE calls ADD COLUMN quality TEXT;
