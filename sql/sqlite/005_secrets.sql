-- Secret items: their values are sealed (AES-256-GCM, server/secretbox.py) in items and in
-- release snapshots; a release lists its secret keys. secret_key_check holds one row: a fixed
-- text sealed with the cluster's key, so a replica with another key refuses to start.
ALTER TABLE items ADD COLUMN secret INTEGER NOT NULL DEFAULT 0;
ALTER TABLE releases ADD COLUMN secret_keys_json TEXT NOT NULL DEFAULT '[]';
CREATE TABLE secret_key_check (
    id INTEGER PRIMARY KEY,
    key_id TEXT NOT NULL,
    check_value TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
