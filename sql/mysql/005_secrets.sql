-- Secret items: their values are sealed (AES-256-GCM, server/secretbox.py) in items and in
-- release snapshots; a release lists its secret keys. secret_key_check holds one row: a fixed
-- text sealed with the cluster's key, so a replica with another key refuses to start.
ALTER TABLE items ADD COLUMN secret TINYINT NOT NULL DEFAULT 0;
ALTER TABLE releases ADD COLUMN secret_keys_json MEDIUMTEXT NOT NULL DEFAULT '[]';
CREATE TABLE secret_key_check (
    id INT NOT NULL PRIMARY KEY,
    key_id VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    check_value VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    updated_at VARCHAR(32) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
