-- waihu schema v6: what the campaign file's lines need stored.
-- consent: whether the customer agreed to be called, from the import's consent
-- column (1 yes, 0 no, NULL never said). A `consent.required` campaign dials
-- only 1s. A re-import without the column keeps the stored value.
ALTER TABLE customers ADD COLUMN consent INTEGER;
-- path_variants: JSON array parallel to `path`, the A/B prompt variant played
-- on entering each state (null where the state has one prompt).
ALTER TABLE calls ADD COLUMN path_variants TEXT NOT NULL DEFAULT '[]';
