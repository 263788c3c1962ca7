-- As migrations/sqlite/0002-operations.sql: vacuumed builds keep their
-- rows, jobs are created on purpose, grants can be report-only, reports
-- say which action they are about.
ALTER TABLE builds ADD COLUMN vacuumed TEXT COLLATE "C";
ALTER TABLE users ADD COLUMN create_jobs BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE access ADD COLUMN report_only BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE deployments ADD COLUMN action TEXT NOT NULL DEFAULT 'deploy';
CREATE INDEX builds_by_job_platform ON builds(job_id, platform, id);
