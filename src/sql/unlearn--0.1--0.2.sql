/* src/sql/unlearn--0.1--0.2.sql: upgrade of the unlearn extension from 0.1 to 0.2. */

\echo Use "ALTER EXTENSION unlearn UPDATE TO '0.2'" to load this file. \quit

-- Nothing below may resolve an object of a user's schema (this script runs
-- with superuser rights): every name is qualified and the path is pinned.
SET LOCAL search_path = pg_catalog, pg_temp;

------------------------------------------------------------------------------
-- Install-time resolution: the 0.1 script built this view under the
-- installer's search_path, where a role able to create in that schema could
-- have planted a better-matching function or operator.  Rebuilt here under
-- the pinned path, it binds to pg_catalog only.
------------------------------------------------------------------------------
CREATE OR REPLACE VIEW unlearn.status AS
SELECT m.name AS model,
	   m.auto_unlearn,
	   count(r.request_id) FILTER (WHERE r.state = 'pending') AS pending,
	   count(r.request_id) FILTER (WHERE r.state = 'running') AS running,
	   count(r.request_id) FILTER (WHERE r.state = 'done') AS done,
	   count(r.request_id) FILTER (WHERE r.state = 'failed') AS failed,
	   count(r.request_id) FILTER (WHERE r.state = 'skipped') AS skipped,
	   max(r.done_at) AS last_run,
	   (SELECT r2.done_at - r2.enqueued_at FROM unlearn.requests r2
		 WHERE r2.model = m.name AND r2.state = 'done' ORDER BY r2.done_at DESC, r2.request_id DESC LIMIT 1)
		 AS last_latency,
	   make_interval(secs => percentile_cont(0.5) WITHIN GROUP
		 (ORDER BY extract(epoch FROM r.done_at - r.enqueued_at)) FILTER (WHERE r.state = 'done'))
		 AS latency_p50,
	   (SELECT r3.last_error FROM unlearn.requests r3
		 WHERE r3.model = m.name AND r3.last_error IS NOT NULL ORDER BY r3.request_id DESC LIMIT 1)
		 AS last_error
FROM unlearn.models m
LEFT JOIN unlearn.requests r ON r.model = m.name
WHERE pg_has_role(m.owner, 'USAGE') OR has_table_privilege(m.relation, 'SELECT')
GROUP BY m.name, m.auto_unlearn;

------------------------------------------------------------------------------
-- Guards: every way a training row leaves its table reaches its models.
------------------------------------------------------------------------------
-- ALTER TABLE / ALTER TRIGGER that would lose rows (rename, retype or drop a
-- model's column; DETACH PARTITION; NO INHERIT; disable our triggers).
CREATE FUNCTION unlearn.guard_ddl() RETURNS event_trigger
AS 'MODULE_PATHNAME', 'unlearn_guard_ddl' LANGUAGE C;
CREATE EVENT TRIGGER unlearn_guard_ddl ON ddl_command_start
	WHEN TAG IN ('ALTER TABLE', 'ALTER TRIGGER')
	EXECUTE FUNCTION unlearn.guard_ddl();

-- New partitions and inheritance children of a training table get the
-- capture triggers as they are created or attached.
CREATE FUNCTION unlearn.guard_ddl_end() RETURNS event_trigger
AS 'MODULE_PATHNAME', 'unlearn_guard_ddl_end' LANGUAGE C;
CREATE EVENT TRIGGER unlearn_guard_ddl_end ON ddl_command_end
	WHEN TAG IN ('CREATE TABLE', 'CREATE FOREIGN TABLE', 'ALTER TABLE', 'ALTER FOREIGN TABLE')
	EXECUTE FUNCTION unlearn.guard_ddl_end();

-- (Re)installs the capture triggers on a training table and every table
-- below it, ENABLE ALWAYS (logical replication apply is captured too).
CREATE FUNCTION unlearn.install_capture(relation pg_catalog.regclass) RETURNS void
AS 'MODULE_PATHNAME', 'unlearn_install_capture_sql' LANGUAGE C STRICT;
REVOKE ALL ON FUNCTION unlearn.install_capture(pg_catalog.regclass) FROM PUBLIC;

SELECT unlearn.install_capture(s.relation)
  FROM (SELECT DISTINCT m.relation::pg_catalog.oid AS relation FROM unlearn.models m
		 WHERE m.auto_unlearn) s;
