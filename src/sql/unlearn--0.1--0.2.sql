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
-- (ALTER VIEW, MATERIALIZED VIEW, FOREIGN TABLE and INDEX are there because
-- PostgreSQL lets them rename or alter a table's columns too.)
-- CREATE TABLE is there to note a new partition for the ddl_command_end trigger;
-- CREATE TRIGGER to refuse CREATE OR REPLACE TRIGGER over one of ours.
CREATE EVENT TRIGGER unlearn_guard_ddl ON ddl_command_start
	WHEN TAG IN ('ALTER TABLE', 'ALTER TRIGGER', 'ALTER VIEW', 'ALTER MATERIALIZED VIEW',
				 'ALTER FOREIGN TABLE', 'ALTER INDEX', 'CREATE TABLE', 'CREATE FOREIGN TABLE',
				 'CREATE TRIGGER')
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

-- Logical replication apply fires row-level triggers only: a row trigger
-- (ENABLE REPLICA, acting only inside an apply worker) queues what it removes.
CREATE FUNCTION unlearn.capture_row() RETURNS trigger
AS 'MODULE_PATHNAME', 'unlearn_capture_row' LANGUAGE C;

-- Trigger functions are the extension's: nobody else may attach them to a
-- table (creating a trigger needs EXECUTE; firing one does not).
REVOKE ALL ON FUNCTION unlearn.capture() FROM PUBLIC;
REVOKE ALL ON FUNCTION unlearn.capture_row() FROM PUBLIC;
REVOKE ALL ON FUNCTION unlearn.guard_truncate() FROM PUBLIC;
REVOKE ALL ON FUNCTION unlearn.models_changed() FROM PUBLIC;
REVOKE ALL ON FUNCTION unlearn.guard_drop() FROM PUBLIC;
REVOKE ALL ON FUNCTION unlearn.guard_ddl() FROM PUBLIC;
REVOKE ALL ON FUNCTION unlearn.guard_ddl_end() FROM PUBLIC;

-- Temporary, unlogged and partition/child tables can no longer be captured
-- (deletes through a parent, a crash or the end of a session would bypass
-- the triggers): their models' automatic unlearning is turned off, loudly.
DO $$
DECLARE
	m record;
BEGIN
	FOR m IN SELECT mo.name FROM unlearn.models mo
			   JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) mo.relation::pg_catalog.oid
			  WHERE mo.auto_unlearn AND (c.relpersistence OPERATOR(pg_catalog.<>) 'p' OR c.relispartition
					OR EXISTS (SELECT FROM pg_catalog.pg_inherits i
							   WHERE i.inhrelid OPERATOR(pg_catalog.=) c.oid))
	LOOP
		RAISE WARNING 'automatic unlearning of model % is turned off: its table is temporary, unlogged or below another table', m.name
			USING HINT = 'Delete its rows with unlearn_rows, or train the model on the table at the top.';
		UPDATE unlearn.models SET auto_unlearn = false WHERE name OPERATOR(pg_catalog.=) m.name;
	END LOOP;
END $$;
SELECT unlearn.install_capture(s.relation)
  FROM (SELECT DISTINCT m.relation::pg_catalog.oid AS relation FROM unlearn.models m
		  JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) m.relation::pg_catalog.oid
		 WHERE m.auto_unlearn AND c.relpersistence OPERATOR(pg_catalog.=) 'p'
		   AND NOT c.relispartition
		   AND NOT EXISTS (SELECT FROM pg_catalog.pg_inherits i
						   WHERE i.inhrelid OPERATOR(pg_catalog.=) c.oid)) s;

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
	OUT problem text,						-- why the version has no figures (NULL: none, or purged)
	OUT guarantee text)						-- exact or approximate: unlearn.versions.guarantee (below)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'unlearn_audit' LANGUAGE C VOLATILE;

------------------------------------------------------------------------------
-- Never destroy a model: every version records its guarantee.  'exact': it
-- was trained from scratch on its manifest (train, retrain, and the exact
-- fallback of an unlearning run the accuracy guard refused), so it never saw
-- a row outside it; 'approximate': an unlearning method changed its parent,
-- and the rows it forgot are verified misclassified.  Derived from method
-- (NULL for every training), so it cannot disagree with it.  unlearn_audit
-- (above) shows it in its last column.
------------------------------------------------------------------------------
ALTER TABLE unlearn.versions ADD COLUMN guarantee text NOT NULL
	GENERATED ALWAYS AS (CASE WHEN method IS NULL THEN 'exact' ELSE 'approximate' END) STORED;
COMMENT ON COLUMN unlearn.versions.guarantee IS
	'exact (trained from scratch on its manifest) or approximate (an unlearning method changed its parent)';
-- model metadata, readable by everyone like the other columns but the weights
GRANT SELECT (guarantee) ON unlearn.versions TO PUBLIC;

------------------------------------------------------------------------------
-- Standardisation inside the model: no SQL or catalog change.  The training
-- option "standardize" (default true for unlearn_train; recorded in
-- unlearn.models.options and unlearn.versions.options, so unlearn_retrain
-- repeats it) is parsed by the library.  Models stored by 0.1 (weights in
-- format 1, no "standardize" in their options) keep predicting identically,
-- and their retrains do not standardise unless asked.  See
-- docs/sql-reference.md#training-options.
------------------------------------------------------------------------------

------------------------------------------------------------------------------
-- Column models: train on ordinary columns (numbers, dates, booleans, text,
-- enums, NULLs) instead of one array column.  A column model has
-- features_column NULL and lists its input columns in feature_columns, with
-- their types in feature_types (regtype[], so a dump restores enum and domain
-- types by name).  How each column is encoded (fill values, missing
-- indicators, the categories seen in training) lives in unlearn.encodings,
-- which is private like the weights: categories are values of the training
-- rows.  unlearn_describe() shows it to those who may read the table.
------------------------------------------------------------------------------
ALTER TABLE unlearn.models ALTER COLUMN features_column DROP NOT NULL;
ALTER TABLE unlearn.models ADD COLUMN feature_columns name[];
ALTER TABLE unlearn.models ADD COLUMN feature_types regtype[];
ALTER TABLE unlearn.models ADD CONSTRAINT models_feature_form CHECK (
	(features_column IS NULL) = (feature_columns IS NOT NULL)
	AND (feature_columns IS NULL) = (feature_types IS NULL)
	AND pg_catalog.cardinality(feature_columns) OPERATOR(pg_catalog.=) pg_catalog.cardinality(feature_types));
COMMENT ON COLUMN unlearn.models.feature_columns IS
	'column models: the input columns, in input order (NULL for an array model)';
COMMENT ON COLUMN unlearn.models.feature_types IS 'column models: the types the input columns had at training';
GRANT SELECT (feature_columns, feature_types) ON unlearn.models TO PUBLIC;

CREATE TABLE unlearn.encodings (
	model			text PRIMARY KEY,
	inputs			jsonb NOT NULL				-- {"nulls", "features", "columns": [{column, type, encoding, ...}]}
);
COMMENT ON TABLE unlearn.encodings IS 'how each column model turns its columns into inputs (private: holds category values)';
REVOKE ALL ON unlearn.encodings FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('unlearn.encodings', '');

-- unlearn_train gains feature_columns; features_column and label_column take
-- defaults so that every form can be called with named arguments; epochs
-- defaults to NULL: enough passes for 20 000 optimiser steps, 10 to 200.
DROP FUNCTION @extschema@.unlearn_train(text, pg_catalog.regclass, name, name, name, integer[], integer, jsonb, boolean);
CREATE FUNCTION @extschema@.unlearn_train(
	model			text,
	relation		pg_catalog.regclass,
	id_column		name,
	features_column	name DEFAULT NULL,			-- an array column; NULL: a column model
	label_column	name DEFAULT NULL,			-- required
	hidden			integer[] DEFAULT '{128}',
	epochs			integer DEFAULT NULL,			-- NULL: derived from the table's rows
	options			jsonb DEFAULT '{}',
	auto_unlearn	boolean DEFAULT true,
	feature_columns	name[] DEFAULT NULL)		-- column model: these columns; NULL: every other column
RETURNS @extschema@.unlearn_train_result
AS 'MODULE_PATHNAME', 'unlearn_train' LANGUAGE C VOLATILE;

-- Prediction on a row of any table, view or ROW(...) with the model's feature
-- columns (matched by name, other columns ignored).
CREATE FUNCTION @extschema@.unlearn_predict(model text, "row" record) RETURNS @extschema@.unlearn_label
AS 'MODULE_PATHNAME', 'unlearn_predict_row' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;
CREATE FUNCTION @extschema@.unlearn_predict_proba(model text, "row" record) RETURNS double precision[]
AS 'MODULE_PATHNAME', 'unlearn_predict_proba_row' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;

-- One row per input of the model: its column, type, encoding, and the mean
-- and scale of the standardisation of the current version.
CREATE FUNCTION @extschema@.unlearn_describe(model text,
	OUT input integer, OUT column_name name, OUT type regtype, OUT encoding text,
	OUT category text, OUT fill double precision, OUT mean double precision, OUT scale double precision)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'unlearn_describe' LANGUAGE C STABLE STRICT;

-- The capture encodes a deleted row of a column model into the queue's
-- feature copy (run as the extension's owner, our code only).
CREATE FUNCTION unlearn.encode_row(model text, "row" record) RETURNS real[]
AS 'MODULE_PATHNAME', 'unlearn_encode_row_sql' LANGUAGE C STABLE STRICT;
REVOKE ALL ON FUNCTION unlearn.encode_row(text, record) FROM PUBLIC;

-- The capture's copy of a double precision[] features column in an UPDATE,
-- converted to real[] as training reads it: where the cast errors (a value
-- too small or too large for real), the user's UPDATE would fail.  Run as
-- the extension's owner, our code only.
CREATE FUNCTION unlearn.real_features(double precision[]) RETURNS real[]
AS 'MODULE_PATHNAME', 'unlearn_real_features_sql' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
REVOKE ALL ON FUNCTION unlearn.real_features(double precision[]) FROM PUBLIC;

------------------------------------------------------------------------------
-- ALTER TYPE reaches a model's columns too: RENAME VALUE of an enum a column
-- model reads (its categories are the labels), and RENAME / ALTER / DROP
-- ATTRIBUTE ... CASCADE of a composite type whose typed tables are training
-- tables.  The DDL guard's event trigger now also fires for ALTER TYPE.
------------------------------------------------------------------------------
DROP EVENT TRIGGER unlearn_guard_ddl;
CREATE EVENT TRIGGER unlearn_guard_ddl ON ddl_command_start
	WHEN TAG IN ('ALTER TABLE', 'ALTER TRIGGER', 'ALTER VIEW', 'ALTER MATERIALIZED VIEW',
				 'ALTER FOREIGN TABLE', 'ALTER INDEX', 'CREATE TABLE', 'CREATE FOREIGN TABLE',
				 'CREATE TRIGGER', 'ALTER TYPE')
	EXECUTE FUNCTION unlearn.guard_ddl();

------------------------------------------------------------------------------
-- Sharded models (the training option "shards", SISA): S networks, each
-- trained on the rows of its shard, their probabilities averaged; an exact
-- delete ({"method": "exact"}, and the worker for these models) retrains
-- only the shards that held the rows.  The shard count is recorded in
-- unlearn.models.options and the weights (format version 4), so no catalog
-- change; this function gives a row's shard, so a shard's manifest can be
-- derived from its version's: unlearn_manifest(...) WHERE unlearn_shard(id, S) = s.
------------------------------------------------------------------------------
CREATE FUNCTION @extschema@.unlearn_shard(id bigint, shards integer) RETURNS integer
AS 'MODULE_PATHNAME', 'unlearn_shard_sql' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

------------------------------------------------------------------------------
-- The unlearning target "unseen": a forgotten row may be raised to a target
-- loss (that of rows the model never saw) instead of being misclassified.
-- The ledger keeps each row's target; NULL: the row was misclassified.
------------------------------------------------------------------------------
ALTER TABLE unlearn.forgotten ADD COLUMN target_loss real;
COMMENT ON COLUMN unlearn.forgotten.target_loss IS
	'target "unseen": the loss the row was raised to (checked instead of misclassification); NULL: misclassified';

------------------------------------------------------------------------------
-- Sharding by partition (the training option "shards": "partition"): one
-- shard per leaf partition of a partitioned training table that holds rows.
-- A row keeps the shard of the partition it was read from at training, so
-- the manifest records each id's shard (NULL: one network, or sharded by the
-- hash of the id, which unlearn_shard gives).
------------------------------------------------------------------------------
ALTER TABLE unlearn.manifests ADD COLUMN shards smallint[];
COMMENT ON COLUMN unlearn.manifests.shards IS
	'sharded by partition: the shard of each id of ids, in their order; NULL otherwise';

------------------------------------------------------------------------------
-- Manifests compressed with lz4, where the server was built with it: every
-- new version stores the ids of the rows it learned, and pglz took 30-50 ms
-- to compress the 60 000 sorted ids of a Fashion-MNIST manifest, on the path
-- from a DELETE's COMMIT to its version (lz4: under 1 ms, 23 % larger).  A
-- server without lz4 keeps pglz.
------------------------------------------------------------------------------
DO $$
BEGIN
	ALTER TABLE unlearn.manifests ALTER COLUMN ids SET COMPRESSION lz4;
	ALTER TABLE unlearn.manifests ALTER COLUMN shards SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
	NULL;
END
$$;

------------------------------------------------------------------------------
-- Weights stored out of line and never compressed (STORAGE EXTERNAL): the
-- serialised weights are floats, which pglz does not shrink by the quarter it
-- asks for, so every version stored them uncompressed after pglz had tried
-- (about 14 ms of the 28 ms that storing a Fashion-MNIST MLP-256 version
-- took, on the path from a DELETE's COMMIT to its version).  Versions stored
-- before keep the form they have.
------------------------------------------------------------------------------
ALTER TABLE unlearn.versions ALTER COLUMN weights SET STORAGE EXTERNAL;

------------------------------------------------------------------------------
-- CREATE SCHEMA ... CREATE TABLE ... PARTITION OF (or INHERITS) a training
-- table: the statement's tag is CREATE SCHEMA, so the DDL guard did not note
-- the new partition and it got no capture triggers.  Both DDL event triggers
-- now fire for CREATE SCHEMA too.
------------------------------------------------------------------------------
DROP EVENT TRIGGER unlearn_guard_ddl;
CREATE EVENT TRIGGER unlearn_guard_ddl ON ddl_command_start
	WHEN TAG IN ('ALTER TABLE', 'ALTER TRIGGER', 'ALTER VIEW', 'ALTER MATERIALIZED VIEW',
				 'ALTER FOREIGN TABLE', 'ALTER INDEX', 'CREATE TABLE', 'CREATE FOREIGN TABLE',
				 'CREATE TRIGGER', 'ALTER TYPE', 'CREATE SCHEMA')
	EXECUTE FUNCTION unlearn.guard_ddl();
DROP EVENT TRIGGER unlearn_guard_ddl_end;
CREATE EVENT TRIGGER unlearn_guard_ddl_end ON ddl_command_end
	WHEN TAG IN ('CREATE TABLE', 'CREATE FOREIGN TABLE', 'ALTER TABLE', 'ALTER FOREIGN TABLE', 'CREATE SCHEMA')
	EXECUTE FUNCTION unlearn.guard_ddl_end();

------------------------------------------------------------------------------
-- The trigger functions of the catalog's own tables are not PUBLIC's: the
-- tables' triggers do not need EXECUTE, and a table owner could attach them
-- under one of our trigger names.
------------------------------------------------------------------------------
REVOKE ALL ON FUNCTION unlearn.versions_immutable() FROM PUBLIC;
REVOKE ALL ON FUNCTION unlearn.manifests_immutable() FROM PUBLIC;

------------------------------------------------------------------------------
-- The guard's event triggers fire in replica mode too (ENABLE ALWAYS).  With
-- the default enabling they did not fire under session_replication_role =
-- replica, so a role granted SET on that setting (GRANT SET ON PARAMETER)
-- could disable the capture triggers of a table it owns.  A superuser in
-- replica mode is still let through by the guard functions themselves.
------------------------------------------------------------------------------
ALTER EVENT TRIGGER unlearn_guard_ddl ENABLE ALWAYS;
ALTER EVENT TRIGGER unlearn_guard_ddl_end ENABLE ALWAYS;
ALTER EVENT TRIGGER unlearn_guard_drop ENABLE ALWAYS;

------------------------------------------------------------------------------
-- No statistics on the feature copies: nothing filters on them, and ANALYZE
-- of unlearn.requests over 30 000 queued rows took 0.98 s with their element
-- statistics, 0.12 s without (autovacuum runs it on a growing queue).
------------------------------------------------------------------------------
ALTER TABLE unlearn.requests ALTER COLUMN features SET STATISTICS 0;
ALTER TABLE unlearn.forgotten ALTER COLUMN features SET STATISTICS 0;
