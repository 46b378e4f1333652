CREATE TABLE login_throttle (
    subject VARCHAR(128) NOT NULL PRIMARY KEY,
    failures INT NOT NULL,
    window_start DOUBLE NOT NULL,
    locked_until DOUBLE NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
