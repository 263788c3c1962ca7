-- The schema of the first release (tables created only if missing, so a
-- database made before migrations were numbered passes through unchanged).
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    synopsis TEXT
);
CREATE TABLE IF NOT EXISTS builds (
    id INTEGER PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    job_id INTEGER NOT NULL REFERENCES jobs(id),
    platform TEXT NOT NULL,
    start_time TEXT NOT NULL,
    finish_time TEXT NOT NULL,
    main_binary TEXT,
    main_sha256 TEXT,
    solo5_abi TEXT,
    solo5_manifest TEXT,
    uploader TEXT
);
CREATE INDEX IF NOT EXISTS builds_by_job ON builds(job_id, id);
CREATE TABLE IF NOT EXISTS artifacts (
    build_id INTEGER NOT NULL REFERENCES builds(id),
    filepath TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    PRIMARY KEY (build_id, filepath)
);
CREATE INDEX IF NOT EXISTS artifacts_by_sha ON artifacts(sha256);
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    unrestricted INTEGER NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS access (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    job TEXT NOT NULL,
    PRIMARY KEY (user_id, job)
);
CREATE TABLE IF NOT EXISTS deployments (
    id INTEGER PRIMARY KEY,
    build_id INTEGER NOT NULL REFERENCES builds(id),
    host TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    result TEXT NOT NULL,
    message TEXT NOT NULL,
    started TEXT NOT NULL,
    finished TEXT NOT NULL,
    received TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS deployments_by_build ON deployments(build_id, host);
