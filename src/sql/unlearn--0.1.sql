/* src/sql/unlearn--0.1.sql: install script of the unlearn extension. */

\echo Use "CREATE EXTENSION unlearn" to load this file. \quit

------------------------------------------------------------------------------
-- Labels: a prediction compares with an integer or a text label column
-- without casts.
------------------------------------------------------------------------------
CREATE TYPE unlearn_label;

CREATE FUNCTION unlearn_label_in(cstring) RETURNS unlearn_label
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION unlearn_label_out(unlearn_label) RETURNS cstring
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION unlearn_label_recv(internal) RETURNS unlearn_label
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION unlearn_label_send(unlearn_label) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE TYPE unlearn_label (
	INPUT = unlearn_label_in,
	OUTPUT = unlearn_label_out,
	RECEIVE = unlearn_label_recv,
	SEND = unlearn_label_send,
	INTERNALLENGTH = VARIABLE,
	STORAGE = extended
);

-- label vs label (byte order; enough for GROUP BY, DISTINCT, ORDER BY)
CREATE FUNCTION unlearn_label_cmp(unlearn_label, unlearn_label) RETURNS int
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION unlearn_label_eq(unlearn_label, unlearn_label) RETURNS bool
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION unlearn_label_ne(unlearn_label, unlearn_label) RETURNS bool
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION unlearn_label_lt(unlearn_label, unlearn_label) RETURNS bool
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION unlearn_label_le(unlearn_label, unlearn_label) RETURNS bool
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION unlearn_label_gt(unlearn_label, unlearn_label) RETURNS bool
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION unlearn_label_ge(unlearn_label, unlearn_label) RETURNS bool
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION unlearn_label_hash(unlearn_label) RETURNS int
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE OPERATOR = (LEFTARG = unlearn_label, RIGHTARG = unlearn_label, PROCEDURE = unlearn_label_eq,
	COMMUTATOR = =, NEGATOR = <>, RESTRICT = eqsel, JOIN = eqjoinsel, HASHES, MERGES);
CREATE OPERATOR <> (LEFTARG = unlearn_label, RIGHTARG = unlearn_label, PROCEDURE = unlearn_label_ne,
	COMMUTATOR = <>, NEGATOR = =, RESTRICT = neqsel, JOIN = neqjoinsel);
CREATE OPERATOR < (LEFTARG = unlearn_label, RIGHTARG = unlearn_label, PROCEDURE = unlearn_label_lt,
	COMMUTATOR = >, NEGATOR = >=, RESTRICT = scalarltsel, JOIN = scalarltjoinsel);
CREATE OPERATOR <= (LEFTARG = unlearn_label, RIGHTARG = unlearn_label, PROCEDURE = unlearn_label_le,
	COMMUTATOR = >=, NEGATOR = >, RESTRICT = scalarlesel, JOIN = scalarlejoinsel);
CREATE OPERATOR > (LEFTARG = unlearn_label, RIGHTARG = unlearn_label, PROCEDURE = unlearn_label_gt,
	COMMUTATOR = <, NEGATOR = <=, RESTRICT = scalargtsel, JOIN = scalargtjoinsel);
CREATE OPERATOR >= (LEFTARG = unlearn_label, RIGHTARG = unlearn_label, PROCEDURE = unlearn_label_ge,
	COMMUTATOR = <=, NEGATOR = <, RESTRICT = scalargesel, JOIN = scalargejoinsel);

CREATE OPERATOR CLASS unlearn_label_ops DEFAULT FOR TYPE unlearn_label USING btree AS
	OPERATOR 1 <, OPERATOR 2 <=, OPERATOR 3 =, OPERATOR 4 >=, OPERATOR 5 >,
	FUNCTION 1 unlearn_label_cmp(unlearn_label, unlearn_label);
CREATE OPERATOR CLASS unlearn_label_hash_ops DEFAULT FOR TYPE unlearn_label USING hash AS
	OPERATOR 1 =, FUNCTION 1 unlearn_label_hash(unlearn_label);

-- label vs integer and text label columns
CREATE FUNCTION unlearn_label_eq_int8(unlearn_label, bigint) RETURNS bool
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION unlearn_label_ne_int8(unlearn_label, bigint) RETURNS bool
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION unlearn_int8_eq_label(bigint, unlearn_label) RETURNS bool
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION unlearn_int8_ne_label(bigint, unlearn_label) RETURNS bool
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION unlearn_label_eq_int4(unlearn_label, integer) RETURNS bool
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION unlearn_label_ne_int4(unlearn_label, integer) RETURNS bool
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION unlearn_int4_eq_label(integer, unlearn_label) RETURNS bool
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION unlearn_int4_ne_label(integer, unlearn_label) RETURNS bool
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION unlearn_label_eq_int2(unlearn_label, smallint) RETURNS bool
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION unlearn_label_ne_int2(unlearn_label, smallint) RETURNS bool
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION unlearn_int2_eq_label(smallint, unlearn_label) RETURNS bool
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION unlearn_int2_ne_label(smallint, unlearn_label) RETURNS bool
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION unlearn_label_eq_text(unlearn_label, text) RETURNS bool
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION unlearn_label_ne_text(unlearn_label, text) RETURNS bool
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION unlearn_text_eq_label(text, unlearn_label) RETURNS bool
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION unlearn_text_ne_label(text, unlearn_label) RETURNS bool
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE OPERATOR = (LEFTARG = unlearn_label, RIGHTARG = bigint, PROCEDURE = unlearn_label_eq_int8,
	COMMUTATOR = =, NEGATOR = <>, RESTRICT = eqsel, JOIN = eqjoinsel);
CREATE OPERATOR <> (LEFTARG = unlearn_label, RIGHTARG = bigint, PROCEDURE = unlearn_label_ne_int8,
	COMMUTATOR = <>, NEGATOR = =, RESTRICT = neqsel, JOIN = neqjoinsel);
CREATE OPERATOR = (LEFTARG = bigint, RIGHTARG = unlearn_label, PROCEDURE = unlearn_int8_eq_label,
	COMMUTATOR = =, NEGATOR = <>, RESTRICT = eqsel, JOIN = eqjoinsel);
CREATE OPERATOR <> (LEFTARG = bigint, RIGHTARG = unlearn_label, PROCEDURE = unlearn_int8_ne_label,
	COMMUTATOR = <>, NEGATOR = =, RESTRICT = neqsel, JOIN = neqjoinsel);
CREATE OPERATOR = (LEFTARG = unlearn_label, RIGHTARG = integer, PROCEDURE = unlearn_label_eq_int4,
	COMMUTATOR = =, NEGATOR = <>, RESTRICT = eqsel, JOIN = eqjoinsel);
CREATE OPERATOR <> (LEFTARG = unlearn_label, RIGHTARG = integer, PROCEDURE = unlearn_label_ne_int4,
	COMMUTATOR = <>, NEGATOR = =, RESTRICT = neqsel, JOIN = neqjoinsel);
CREATE OPERATOR = (LEFTARG = integer, RIGHTARG = unlearn_label, PROCEDURE = unlearn_int4_eq_label,
	COMMUTATOR = =, NEGATOR = <>, RESTRICT = eqsel, JOIN = eqjoinsel);
CREATE OPERATOR <> (LEFTARG = integer, RIGHTARG = unlearn_label, PROCEDURE = unlearn_int4_ne_label,
	COMMUTATOR = <>, NEGATOR = =, RESTRICT = neqsel, JOIN = neqjoinsel);
CREATE OPERATOR = (LEFTARG = unlearn_label, RIGHTARG = smallint, PROCEDURE = unlearn_label_eq_int2,
	COMMUTATOR = =, NEGATOR = <>, RESTRICT = eqsel, JOIN = eqjoinsel);
CREATE OPERATOR <> (LEFTARG = unlearn_label, RIGHTARG = smallint, PROCEDURE = unlearn_label_ne_int2,
	COMMUTATOR = <>, NEGATOR = =, RESTRICT = neqsel, JOIN = neqjoinsel);
CREATE OPERATOR = (LEFTARG = smallint, RIGHTARG = unlearn_label, PROCEDURE = unlearn_int2_eq_label,
	COMMUTATOR = =, NEGATOR = <>, RESTRICT = eqsel, JOIN = eqjoinsel);
CREATE OPERATOR <> (LEFTARG = smallint, RIGHTARG = unlearn_label, PROCEDURE = unlearn_int2_ne_label,
	COMMUTATOR = <>, NEGATOR = =, RESTRICT = neqsel, JOIN = neqjoinsel);
CREATE OPERATOR = (LEFTARG = unlearn_label, RIGHTARG = text, PROCEDURE = unlearn_label_eq_text,
	COMMUTATOR = =, NEGATOR = <>, RESTRICT = eqsel, JOIN = eqjoinsel);
CREATE OPERATOR <> (LEFTARG = unlearn_label, RIGHTARG = text, PROCEDURE = unlearn_label_ne_text,
	COMMUTATOR = <>, NEGATOR = =, RESTRICT = neqsel, JOIN = neqjoinsel);
CREATE OPERATOR = (LEFTARG = text, RIGHTARG = unlearn_label, PROCEDURE = unlearn_text_eq_label,
	COMMUTATOR = =, NEGATOR = <>, RESTRICT = eqsel, JOIN = eqjoinsel);
CREATE OPERATOR <> (LEFTARG = text, RIGHTARG = unlearn_label, PROCEDURE = unlearn_text_ne_label,
	COMMUTATOR = <>, NEGATOR = =, RESTRICT = neqsel, JOIN = neqjoinsel);

-- casts: text is the same bytes; integers are parsed
CREATE CAST (unlearn_label AS text) WITHOUT FUNCTION AS ASSIGNMENT;
CREATE CAST (text AS unlearn_label) WITHOUT FUNCTION;
CREATE FUNCTION unlearn_label_to_int8(unlearn_label) RETURNS bigint
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION unlearn_label_to_int4(unlearn_label) RETURNS integer
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE CAST (unlearn_label AS bigint) WITH FUNCTION unlearn_label_to_int8(unlearn_label);
CREATE CAST (unlearn_label AS integer) WITH FUNCTION unlearn_label_to_int4(unlearn_label);

------------------------------------------------------------------------------
-- Catalog (schema unlearn): kept by pg_dump.
------------------------------------------------------------------------------
CREATE SCHEMA unlearn;

-- The catalog tables have no foreign keys between them: only the extension's
-- functions write them (after their own checks, unlearn_drop_model removes a
-- model's rows from every table), and without them a parallel pg_restore
-- can load the tables in any order.  unlearn_verify_ledger checks lineage.
CREATE TABLE unlearn.models (
	name			text PRIMARY KEY CHECK (name <> '' AND length(name) <= 200),
	owner			regrole NOT NULL,			-- role that trained it (kept by name in dumps)
	relation		regclass NOT NULL,			-- training table
	id_column		name NOT NULL,
	features_column	name NOT NULL,
	label_column	name NOT NULL,
	label_type		regtype NOT NULL,
	features		integer NOT NULL CHECK (features > 0),
	hidden			integer[] NOT NULL,			-- hidden layer widths; {} = softmax regression
	classes			text[] NOT NULL,			-- class labels, in output-unit order
	options			jsonb NOT NULL,				-- training options, defaults filled in
	current_version	integer NOT NULL,
	auto_unlearn	boolean NOT NULL DEFAULT true,	-- DELETE/UPDATE on the table queue unlearning
	auto_options	jsonb NOT NULL DEFAULT '{}',	-- unlearning options the background worker uses
	created_at		timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE unlearn.models IS 'one row per model trained by unlearn_train';

CREATE TABLE unlearn.versions (
	model			text NOT NULL,
	version			integer NOT NULL CHECK (version > 0),
	parent			integer,
	reason			text NOT NULL,				-- train, unlearn, relabel, retrain
	method			text,						-- unlearning method; NULL for training
	options			jsonb NOT NULL DEFAULT '{}',
	rows			bigint NOT NULL,			-- training rows the version has seen (manifest size)
	weights			bytea,						-- serialised network; NULL once purged
	weights_sha256	bytea NOT NULL,				-- kept after a purge
	forgotten_ids	bigint[] NOT NULL DEFAULT '{}',	-- rows this version forgot
	hash			bytea NOT NULL,				-- sha256 chain: parent hash, weights hash, forgotten ids
	metrics			jsonb NOT NULL DEFAULT '{}',
	created_by		name NOT NULL DEFAULT current_user,
	created_at		timestamptz NOT NULL DEFAULT clock_timestamp(),
	PRIMARY KEY (model, version)
);
COMMENT ON TABLE unlearn.versions IS 'immutable model versions: weights, lineage and figures';

CREATE TABLE unlearn.manifests (
	model			text NOT NULL,
	version			integer NOT NULL,
	ids				bigint[] NOT NULL,			-- sorted ids of the rows the version was trained on
	PRIMARY KEY (model, version)
);
COMMENT ON TABLE unlearn.manifests IS 'which training rows each version has seen';

CREATE TABLE unlearn.forgotten (
	model			text NOT NULL,
	id				bigint NOT NULL,			-- id of the forgotten training row
	label			text NOT NULL,				-- its label (text form) when it was forgotten
	features		real[],						-- copy kept to re-verify forgetting (see unlearn.feature_retention)
	features_sha256	bytea,						-- kept when the copy is erased
	version			integer NOT NULL,			-- the version that forgot it
	forgotten_at	timestamptz NOT NULL DEFAULT clock_timestamp(),
	requested_by	name NOT NULL DEFAULT session_user,
	PRIMARY KEY (model, id)
);
COMMENT ON TABLE unlearn.forgotten IS 'ledger of rows forgotten by each model';

CREATE TABLE unlearn.requests (
	request_id		bigserial PRIMARY KEY,
	model			text NOT NULL,				-- no foreign key: checked per inserted row on the DELETE path; unlearn_drop_model cleans up
	kind			text NOT NULL CHECK (kind IN ('forget', 'relabel')),
	id				bigint NOT NULL,
	label			text,						-- label of the deleted (or updated) row
	new_label		text,						-- relabel: the new label
	features		real[],						-- copy of the row's features, erased once done
	state			text NOT NULL DEFAULT 'pending'
					CHECK (state IN ('pending', 'running', 'done', 'failed', 'skipped')),
	attempts		integer NOT NULL DEFAULT 0,
	last_error		text,
	note			text,
	next_attempt_at	timestamptz NOT NULL DEFAULT now(),
	enqueued_at		timestamptz NOT NULL DEFAULT clock_timestamp(),
	done_at			timestamptz,
	version			integer,					-- the version that handled it
	requested_by	name NOT NULL DEFAULT session_user
);
CREATE INDEX requests_pending ON unlearn.requests (model, request_id) WHERE state IN ('pending', 'running');
COMMENT ON TABLE unlearn.requests IS 'queue of rows deleted or updated in training tables, for the background worker';
-- the feature copy is small-lived: store it uncompressed out of line rather than pglz-compress it per DELETE
ALTER TABLE unlearn.requests ALTER COLUMN features SET STORAGE EXTERNAL;

-- Versions are immutable: nothing may change once written, except that a
-- purge may drop the weights (their hash stays in the chain).
CREATE FUNCTION unlearn.versions_immutable() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	IF NEW.weights IS NULL
	   AND (NEW.model, NEW.version, NEW.parent, NEW.reason, NEW.method, NEW.options, NEW.rows,
			NEW.weights_sha256, NEW.forgotten_ids, NEW.hash, NEW.metrics, NEW.created_by, NEW.created_at)
		   IS NOT DISTINCT FROM
		   (OLD.model, OLD.version, OLD.parent, OLD.reason, OLD.method, OLD.options, OLD.rows,
			OLD.weights_sha256, OLD.forgotten_ids, OLD.hash, OLD.metrics, OLD.created_by, OLD.created_at)
	THEN
		RETURN NEW;
	END IF;
	RAISE EXCEPTION 'model versions are immutable'
		USING ERRCODE = 'object_not_in_prerequisite_state',
			  DETAIL = format('Model %s version %s cannot be updated.', OLD.model, OLD.version);
END $$;
CREATE TRIGGER versions_immutable BEFORE UPDATE ON unlearn.versions
	FOR EACH ROW EXECUTE FUNCTION unlearn.versions_immutable();
CREATE FUNCTION unlearn.manifests_immutable() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	RAISE EXCEPTION 'model versions are immutable'
		USING ERRCODE = 'object_not_in_prerequisite_state',
			  DETAIL = format('The manifest of model %s version %s cannot be updated.', OLD.model, OLD.version);
END $$;
CREATE TRIGGER manifests_immutable BEFORE UPDATE ON unlearn.manifests
	FOR EACH ROW EXECUTE FUNCTION unlearn.manifests_immutable();

SELECT pg_catalog.pg_extension_config_dump('unlearn.models', '');
SELECT pg_catalog.pg_extension_config_dump('unlearn.versions', '');
SELECT pg_catalog.pg_extension_config_dump('unlearn.manifests', '');
SELECT pg_catalog.pg_extension_config_dump('unlearn.forgotten', '');
SELECT pg_catalog.pg_extension_config_dump('unlearn.requests', '');
SELECT pg_catalog.pg_extension_config_dump('unlearn.requests_request_id_seq', '');

-- Writes go through the functions (which run catalog writes as the
-- extension's owner after their own privilege checks).  Everyone may read
-- model metadata; weights and manifests stay private.
REVOKE ALL ON ALL TABLES IN SCHEMA unlearn FROM PUBLIC;
GRANT USAGE ON SCHEMA unlearn TO PUBLIC;
GRANT SELECT ON unlearn.models TO PUBLIC;
GRANT SELECT (model, version, parent, reason, method, options, rows, weights_sha256, hash, metrics,
			  created_by, created_at)
	ON unlearn.versions TO PUBLIC;

------------------------------------------------------------------------------
-- Functions
------------------------------------------------------------------------------
CREATE TYPE unlearn_train_result AS (
	model			text,
	version			integer,
	rows			bigint,
	classes			integer,
	train_accuracy	double precision,
	seconds			double precision,	-- total, loading included
	load_seconds	double precision,	-- reading and checking the rows
	train_seconds	double precision	-- the optimisation itself
);

CREATE FUNCTION unlearn_train(
	model			text,
	relation		regclass,
	id_column		name,
	features_column	name,
	label_column	name,
	hidden			integer[] DEFAULT '{128}',
	epochs			integer DEFAULT 10,
	options			jsonb DEFAULT '{}',
	auto_unlearn	boolean DEFAULT true)
RETURNS unlearn_train_result
AS 'MODULE_PATHNAME', 'unlearn_train' LANGUAGE C VOLATILE;

CREATE FUNCTION unlearn_predict(model text, features real[]) RETURNS unlearn_label
AS 'MODULE_PATHNAME', 'unlearn_predict' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;
CREATE FUNCTION unlearn_predict(model text, features double precision[]) RETURNS unlearn_label
AS 'MODULE_PATHNAME', 'unlearn_predict' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;

CREATE FUNCTION unlearn_predict_proba(model text, features real[]) RETURNS double precision[]
AS 'MODULE_PATHNAME', 'unlearn_predict_proba' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;
CREATE FUNCTION unlearn_predict_proba(model text, features double precision[]) RETURNS double precision[]
AS 'MODULE_PATHNAME', 'unlearn_predict_proba' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;

CREATE FUNCTION unlearn_evaluate(model text, relation regclass,
	OUT rows bigint, OUT correct bigint, OUT accuracy double precision)
AS 'MODULE_PATHNAME', 'unlearn_evaluate' LANGUAGE C STABLE STRICT;

CREATE FUNCTION unlearn_drop_model(model text) RETURNS void
AS 'MODULE_PATHNAME', 'unlearn_drop_model' LANGUAGE C VOLATILE STRICT;

CREATE FUNCTION unlearn_manifest(model text, version integer DEFAULT NULL) RETURNS SETOF bigint
AS 'MODULE_PATHNAME', 'unlearn_manifest' LANGUAGE C STABLE;

------------------------------------------------------------------------------
-- Unlearning
------------------------------------------------------------------------------
CREATE TYPE unlearn_result AS (
	model			text,
	version			integer,			-- the new version
	rows			integer,			-- rows forgotten (or relabelled) by this call
	forgotten		integer,			-- of them, misclassified (relabelled: predicted as the new label)
	prior_kept		integer,			-- rows forgotten earlier that are still misclassified
	prior			integer,			-- rows forgotten earlier
	steps			integer,			-- optimiser steps
	seconds			double precision,
	method			text
);

CREATE FUNCTION unlearn_rows(model text, ids anyarray, options jsonb DEFAULT '{}')
RETURNS unlearn_result
AS 'MODULE_PATHNAME', 'unlearn_rows' LANGUAGE C VOLATILE;

CREATE FUNCTION unlearn_relabel(model text, ids anyarray, labels anycompatiblearray, options jsonb DEFAULT '{}')
RETURNS unlearn_result
AS 'MODULE_PATHNAME', 'unlearn_relabel' LANGUAGE C VOLATILE;

CREATE FUNCTION unlearn_retrain(model text, options jsonb DEFAULT '{}')
RETURNS unlearn_train_result
AS 'MODULE_PATHNAME', 'unlearn_retrain' LANGUAGE C VOLATILE;

CREATE FUNCTION unlearn_confirm_forgotten(model text) RETURNS boolean
AS 'MODULE_PATHNAME', 'unlearn_confirm_forgotten' LANGUAGE C STABLE STRICT;

CREATE FUNCTION unlearn_forgotten(model text,
	OUT id bigint, OUT label text, OUT predicted text, OUT true_class_probability double precision,
	OUT forgotten boolean, OUT version integer, OUT forgotten_at timestamptz)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'unlearn_forgotten' LANGUAGE C STABLE STRICT;

------------------------------------------------------------------------------
-- Automatic unlearning on DELETE and UPDATE
------------------------------------------------------------------------------
-- Trigger functions installed on training tables (statement level, with
-- transition tables) and on TRUNCATE.
CREATE FUNCTION unlearn.capture() RETURNS trigger
AS 'MODULE_PATHNAME', 'unlearn_capture' LANGUAGE C;
CREATE FUNCTION unlearn.models_changed() RETURNS trigger
AS 'MODULE_PATHNAME', 'unlearn_models_changed' LANGUAGE C;
-- every change of unlearn.models (our functions, a restore, a manual edit)
-- invalidates the backends' cached capture statements at commit
CREATE TRIGGER models_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON unlearn.models
	FOR EACH STATEMENT EXECUTE FUNCTION unlearn.models_changed();
CREATE FUNCTION unlearn.guard_truncate() RETURNS trigger
AS 'MODULE_PATHNAME', 'unlearn_guard_truncate' LANGUAGE C;
CREATE FUNCTION unlearn.guard_drop() RETURNS event_trigger
AS 'MODULE_PATHNAME', 'unlearn_guard_drop' LANGUAGE C;
CREATE EVENT TRIGGER unlearn_guard_drop ON sql_drop EXECUTE FUNCTION unlearn.guard_drop();

CREATE FUNCTION unlearn_auto(model text, enabled boolean, options jsonb DEFAULT NULL) RETURNS void
AS 'MODULE_PATHNAME', 'unlearn_auto' LANGUAGE C VOLATILE;

CREATE FUNCTION unlearn_retry(model text) RETURNS bigint
AS 'MODULE_PATHNAME', 'unlearn_retry' LANGUAGE C VOLATILE STRICT;

CREATE FUNCTION unlearn_wait(model text, timeout interval DEFAULT '60 s') RETURNS boolean
AS 'MODULE_PATHNAME', 'unlearn_wait' LANGUAGE C VOLATILE STRICT;

CREATE VIEW unlearn.status AS
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
GRANT SELECT ON unlearn.status TO PUBLIC;

------------------------------------------------------------------------------
-- Audits and erasure hygiene
------------------------------------------------------------------------------
CREATE FUNCTION unlearn_audit(model text, test_relation regclass DEFAULT NULL,
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
	OUT requested_by name, OUT created_at timestamptz)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'unlearn_audit' LANGUAGE C VOLATILE;

CREATE FUNCTION unlearn_compare_retrain(model text, test_relation regclass,
	OUT metric text, OUT unlearned double precision, OUT retrained double precision,
	OUT gap double precision)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'unlearn_compare_retrain' LANGUAGE C VOLATILE STRICT;

CREATE FUNCTION unlearn_verify(model text,
	OUT id bigint, OUT label text, OUT predicted text, OUT true_class_probability double precision,
	OUT forgotten boolean, OUT version integer)
RETURNS SETOF record
LANGUAGE sql STABLE STRICT
AS $$ SELECT id, label, predicted, true_class_probability, forgotten, version
	  FROM @extschema@.unlearn_forgotten($1) $$;

CREATE FUNCTION unlearn_verify_ledger(model text,
	OUT version integer, OUT valid boolean, OUT problem text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'unlearn_verify_ledger' LANGUAGE C STABLE STRICT;

CREATE FUNCTION unlearn_purge(model text, older_than interval DEFAULT '0 s',
	OUT versions_purged integer, OUT ledger_features_erased bigint, OUT request_features_erased bigint)
AS 'MODULE_PATHNAME', 'unlearn_purge' LANGUAGE C VOLATILE STRICT;
