/* src/sql/unlearn--0.1--0.2.sql: upgrade of the unlearn extension from 0.1 to 0.2. */

\echo Use "ALTER EXTENSION unlearn UPDATE TO '0.2'" to load this file. \quit

-- Nothing below may resolve an object of a user's schema (this script runs
-- with superuser rights): every name is qualified and the path is pinned.
SET LOCAL search_path = pg_catalog, pg_temp;

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

------------------------------------------------------------------------------
-- Tamper gaps: unlearn_audit reports a version whose weights cannot be used
-- (corrupt, or the current version's gone) on its row, in a new column
-- `problem`, instead of failing for every version.
------------------------------------------------------------------------------
DROP FUNCTION @extschema@.unlearn_audit(text, regclass);
CREATE FUNCTION @extschema@.unlearn_audit(model text, test_relation regclass DEFAULT NULL,
	OUT version integer, OUT parent integer, OUT reason text, OUT method text,
	OUT rows_forgotten integer,				-- rows this version forgot
	OUT forgotten_checked integer,			-- rows forgotten up to this version whose features the ledger still has
	OUT forgotten_unchecked integer,		-- rows forgotten up to this version that can no longer be re-checked
	OUT all_forgotten_misclassified boolean,
	OUT forget_accuracy double precision,	-- share of checked forgotten rows still predicted right
	OUT remaining_accuracy double precision,
	OUT remaining_sample integer,			-- remaining rows the accuracy was measured on
	OUT test_accuracy double precision,
	OUT mia_member_rate double precision,	-- share of checked forgotten rows the attack calls members
	OUT mia_attack_accuracy double precision,	-- balanced accuracy of the attack (remaining vs test)
	OUT steps integer, OUT seconds double precision,
	OUT requested_by name, OUT created_at timestamptz,
	OUT problem text)						-- why the version has no figures (NULL: none, or purged)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'unlearn_audit' LANGUAGE C VOLATILE;
