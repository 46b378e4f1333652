-- Reserved for 004_users_sessions (another branch); the merge replaces this file.
SELECT 1;
