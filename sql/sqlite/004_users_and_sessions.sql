-- Users get roles per app, can be disabled, and remember their last sign-in; changed_at
-- moves with every change to a user's rights, so open sockets of its sessions can tell.
-- Tokens remember when they were last used (at most once a minute) and, for sessions,
-- the address that signed in; live_name is the name of a live API token (unique), NULL
-- once it is revoked or expired.
ALTER TABLE users ADD COLUMN roles_json TEXT NOT NULL DEFAULT '{}';
ALTER TABLE users ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN last_login_at TEXT;
ALTER TABLE users ADD COLUMN changed_at TEXT NOT NULL DEFAULT '';
-- Users made with scopes before roles existed keep what they could do: write:APP is a
-- publisher of APP, read:APP a viewer.
UPDATE users SET roles_json = COALESCE((
    SELECT json_group_object(app, role) FROM (
        SELECT substr(value, instr(value, ':') + 1) AS app,
               CASE MAX(value LIKE 'write:%') WHEN 1 THEN 'publisher' ELSE 'viewer' END AS role
        FROM json_each(users.scopes_json) WHERE value LIKE '%:%' GROUP BY app)
), '{}');
UPDATE users SET is_admin = 1 WHERE EXISTS (
    SELECT 1 FROM json_each(users.scopes_json) WHERE value = 'admin');
ALTER TABLE tokens ADD COLUMN last_used_at TEXT;
ALTER TABLE tokens ADD COLUMN address TEXT;
ALTER TABLE tokens ADD COLUMN live_name TEXT;
UPDATE tokens SET live_name = name WHERE kind = 'api' AND revoked_at IS NULL
    AND id IN (SELECT MAX(id) FROM tokens WHERE kind = 'api' AND revoked_at IS NULL GROUP BY name);
CREATE UNIQUE INDEX tokens_live_name ON tokens (live_name);
CREATE INDEX tokens_owner ON tokens (owner, kind);
