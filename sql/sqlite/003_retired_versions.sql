-- Release versions continue after an app is deleted and created again: a client that
-- cached version N of the old app must never take the new app's version N for it.
ALTER TABLE envs ADD COLUMN version_floor INTEGER NOT NULL DEFAULT 0;
CREATE TABLE retired_versions (
    app TEXT NOT NULL,
    env TEXT NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (app, env)
);
