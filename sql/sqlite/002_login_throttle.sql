CREATE TABLE login_throttle (
    subject TEXT NOT NULL PRIMARY KEY,
    failures INTEGER NOT NULL,
    window_start REAL NOT NULL,
    locked_until REAL NOT NULL
);
