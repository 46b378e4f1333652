-- The compatible APIs (server/compat/): an app's owner may let them be read without a
-- credential; access keys sign Apollo clients' requests. A key's secret is sealed with the
-- secrets key (server/secretbox.py), not hashed: the server recomputes each request's HMAC.
ALTER TABLE apps ADD COLUMN anonymous_read INTEGER NOT NULL DEFAULT 0;
CREATE TABLE access_keys (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    app_id INTEGER NOT NULL REFERENCES apps(id),
    secret_sealed TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL
);
CREATE INDEX access_keys_app ON access_keys(app_id);
