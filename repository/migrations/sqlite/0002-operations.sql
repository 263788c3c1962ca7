-- Operating the repository (CONTRACT.md §3, §8) and exact reports (§5):
-- vacuumed builds keep their rows, jobs are created on purpose, grants can
-- be report-only, reports say which action they are about.
ALTER TABLE builds ADD COLUMN vacuumed TEXT;
ALTER TABLE users ADD COLUMN create_jobs INTEGER NOT NULL DEFAULT 0;
ALTER TABLE access ADD COLUMN report_only INTEGER NOT NULL DEFAULT 0;
ALTER TABLE deployments ADD COLUMN action TEXT NOT NULL DEFAULT 'deploy';
CREATE INDEX IF NOT EXISTS builds_by_job_platform ON builds(job_id, platform, id);
