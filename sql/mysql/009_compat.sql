-- The compatible APIs (server/compat/): an app's owner may let them be read without a
-- credential; access keys sign Apollo clients' requests. A key's secret is sealed with the
-- secrets key (server/secretbox.py), not hashed: the server recomputes each request's HMAC.
ALTER TABLE apps ADD COLUMN anonymous_read TINYINT NOT NULL DEFAULT 0;
CREATE TABLE access_keys (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    app_id BIGINT NOT NULL,
    secret_sealed VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    created_at CHAR(27) NOT NULL,
    created_by VARCHAR(255) NOT NULL,
    KEY access_keys_app (app_id),
    CONSTRAINT access_keys_app_fk FOREIGN KEY (app_id) REFERENCES apps(id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
