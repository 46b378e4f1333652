-- configcenter schema v1 (MariaDB/MySQL). Names and keys are ASCII by contract
-- and compared byte for byte; times are fixed-width RFC 3339 UTC text.
CREATE TABLE apps (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    name VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL UNIQUE,
    description TEXT NOT NULL,
    created_at CHAR(27) NOT NULL,
    created_by VARCHAR(255) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE envs (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    app_id BIGINT NOT NULL,
    name VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    draft_revision BIGINT NOT NULL DEFAULT 0,
    fence_epoch VARCHAR(64) NOT NULL DEFAULT '',
    fence_token BIGINT NOT NULL DEFAULT 0,
    created_at CHAR(27) NOT NULL,
    UNIQUE KEY envs_app_name (app_id, name),
    CONSTRAINT envs_app FOREIGN KEY (app_id) REFERENCES apps (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE items (
    env_id BIGINT NOT NULL,
    key_name VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    value MEDIUMTEXT NOT NULL,
    comment TEXT NOT NULL,
    revision BIGINT NOT NULL,
    updated_at CHAR(27) NOT NULL,
    updated_by VARCHAR(255) NOT NULL,
    PRIMARY KEY (env_id, key_name),
    CONSTRAINT items_env FOREIGN KEY (env_id) REFERENCES envs (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE releases (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    env_id BIGINT NOT NULL,
    version BIGINT NOT NULL,
    items_json LONGTEXT NOT NULL,
    checksum CHAR(71) NOT NULL,
    author VARCHAR(255) NOT NULL,
    comment TEXT NOT NULL,
    rollback_of BIGINT NULL,
    created_at CHAR(27) NOT NULL,
    UNIQUE KEY releases_env_version (env_id, version),
    CONSTRAINT releases_env FOREIGN KEY (env_id) REFERENCES envs (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE users (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    name VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL UNIQUE,
    password_hash VARCHAR(255) NOT NULL,
    is_admin TINYINT NOT NULL DEFAULT 0,
    scopes_json TEXT NOT NULL,
    created_at CHAR(27) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE tokens (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    name VARCHAR(64) NOT NULL,
    kind VARCHAR(16) NOT NULL,
    token_hash CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL UNIQUE,
    scopes_json TEXT NOT NULL,
    owner VARCHAR(255) NOT NULL,
    created_at CHAR(27) NOT NULL,
    expires_at CHAR(27) NULL,
    revoked_at CHAR(27) NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE audit (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    at CHAR(27) NOT NULL,
    actor VARCHAR(255) NOT NULL,
    action VARCHAR(64) NOT NULL,
    app VARCHAR(64) NULL,
    env VARCHAR(64) NULL,
    target VARCHAR(512) NOT NULL,
    summary TEXT NOT NULL,
    KEY audit_app (app, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
