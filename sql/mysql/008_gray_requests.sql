-- Release requests for gray releases: the rule an approval starts the frozen items with, as
-- JSON (labels, instances, percent); NULL for a request to publish to everyone.
ALTER TABLE release_requests ADD COLUMN gray_json TEXT NULL;
