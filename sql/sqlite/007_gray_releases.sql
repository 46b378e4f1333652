-- Gray releases: a release may reach only the instances its rule matches. Its rule, status
-- (active, promoted, abandoned), step (grows with every change to them) and the version the
-- others keep, as JSON; NULL for a release everyone gets at once.
ALTER TABLE releases ADD COLUMN gray_json TEXT;
