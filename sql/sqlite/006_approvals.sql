-- Approvals: an env may require that releases go through a request approved by another
-- person; a request freezes the snapshot it asks to publish.
ALTER TABLE envs ADD COLUMN approval_required INTEGER NOT NULL DEFAULT 0;
CREATE TABLE release_requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    env_id INTEGER NOT NULL REFERENCES envs(id),
    author TEXT NOT NULL,
    comment TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL,
    base_version INTEGER,
    draft_revision INTEGER,
    rollback_to INTEGER,
    -- The frozen items, stored as release snapshots are; NULL for a rollback request (the
    -- release it copies is immutable). No diff is stored: it is worked out from the frozen
    -- items and the base release when read, so it never holds a value the snapshots do not.
    -- Secret values are sealed in items_json, as in a release; secret_keys_json lists them.
    items_json TEXT,
    secret_keys_json TEXT,
    created_at TEXT NOT NULL,
    decided_by TEXT,
    decided_at TEXT,
    decision_comment TEXT,
    release_version INTEGER
);
CREATE INDEX release_requests_env_status ON release_requests (env_id, status, id);
