-- Release versions continue after an app is deleted and created again: a client that
-- cached version N of the old app must never take the new app's version N for it.
ALTER TABLE envs ADD COLUMN version_floor BIGINT NOT NULL DEFAULT 0;
CREATE TABLE retired_versions (
    app VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    env VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    version BIGINT NOT NULL,
    PRIMARY KEY (app, env)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
