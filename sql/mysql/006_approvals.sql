-- Approvals: an env may require that releases go through a request approved by another
-- person; a request freezes the snapshot it asks to publish.
ALTER TABLE envs ADD COLUMN approval_required TINYINT NOT NULL DEFAULT 0;
CREATE TABLE release_requests (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    env_id BIGINT NOT NULL,
    author VARCHAR(255) NOT NULL,
    comment TEXT NOT NULL,
    status VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    base_version BIGINT NULL,
    draft_revision BIGINT NULL,
    rollback_to BIGINT NULL,
    -- The frozen items, stored as release snapshots are; NULL for a rollback request (the
    -- release it copies is immutable). No diff is stored: it is worked out from the frozen
    -- items and the base release when read, so it never holds a value the snapshots do not.
    -- Secret values are sealed in items_json, as in a release; secret_keys_json lists them.
    items_json LONGTEXT NULL,
    secret_keys_json MEDIUMTEXT NULL,
    created_at CHAR(27) NOT NULL,
    decided_by VARCHAR(255) NULL,
    decided_at CHAR(27) NULL,
    decision_comment TEXT NULL,
    release_version BIGINT NULL,
    KEY release_requests_env_status (env_id, status, id),
    CONSTRAINT release_requests_env FOREIGN KEY (env_id) REFERENCES envs (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
