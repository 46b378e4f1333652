-- Users get roles per app, can be disabled, and remember their last sign-in; changed_at
-- moves with every change to a user's rights, so open sockets of its sessions can tell.
-- Tokens remember when they were last used (at most once a minute) and, for sessions,
-- the address that signed in; live_name is the name of a live API token (unique), NULL
-- once it is revoked or expired.
ALTER TABLE users ADD COLUMN roles_json TEXT NOT NULL DEFAULT '{}';
ALTER TABLE users ADD COLUMN disabled TINYINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN last_login_at CHAR(27) NULL;
ALTER TABLE users ADD COLUMN changed_at CHAR(27) NOT NULL DEFAULT '';
-- Users made with scopes before roles existed keep what they could do: write:APP is a
-- publisher of APP, read:APP a viewer.
UPDATE users u SET roles_json = COALESCE((
    SELECT JSON_OBJECTAGG(app, role) FROM (
        SELECT x.id, SUBSTRING(s.scope, LOCATE(':', s.scope) + 1) AS app,
               IF(MAX(s.scope LIKE 'write:%'), 'publisher', 'viewer') AS role
        FROM users x, JSON_TABLE(x.scopes_json, '$[*]' COLUMNS (scope VARCHAR(80) PATH '$')) s
        WHERE s.scope LIKE '%:%' GROUP BY x.id, app) r WHERE r.id = u.id
), '{}');
UPDATE users SET is_admin = 1 WHERE JSON_CONTAINS(scopes_json, '"admin"');
ALTER TABLE tokens ADD COLUMN last_used_at CHAR(27) NULL;
ALTER TABLE tokens ADD COLUMN address VARCHAR(255) NULL;
ALTER TABLE tokens ADD COLUMN live_name VARCHAR(64) NULL;
UPDATE tokens t JOIN (SELECT MAX(id) AS id FROM tokens WHERE kind = 'api' AND revoked_at IS NULL
    GROUP BY name) newest ON newest.id = t.id SET t.live_name = t.name;
CREATE UNIQUE INDEX tokens_live_name ON tokens (live_name);
CREATE INDEX tokens_owner ON tokens (owner, kind);
