-- Security and capture completeness.
-- Part 1: no role reaches superuser through the extension.  Each attack
-- plants an operator or a cast that, when run, records who ran it and tries
-- to make its author superuser; it must only ever run as its author.
-- Part 2: every way a training row leaves its table reaches every model
-- that learned it, or is refused with a hint.

CREATE ROLE regress_mallory LOGIN;
CREATE SCHEMA mallory AUTHORIZATION regress_mallory;
-- what the planted code saw: (who ran it, which attack)
CREATE TABLE mallory.seen (who name, attack text);
ALTER TABLE mallory.seen OWNER TO regress_mallory;
GRANT INSERT ON mallory.seen TO PUBLIC;

-- the planted payload: log, then try to escalate (succeeds only as a superuser)
CREATE FUNCTION mallory.payload(attack text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO mallory.seen VALUES (current_user, attack);
	BEGIN
		EXECUTE 'ALTER ROLE regress_mallory SUPERUSER';
	EXCEPTION WHEN OTHERS THEN NULL;
	END;
END $$;
ALTER FUNCTION mallory.payload(text) OWNER TO regress_mallory;

-- escalated(): true if any planted code ran as someone other than mallory,
-- or mallory became superuser; then resets both, so each attack is judged alone
CREATE FUNCTION escalated() RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
	result boolean;
BEGIN
	SELECT EXISTS (SELECT 1 FROM mallory.seen WHERE who <> 'regress_mallory')
	    OR (SELECT rolsuper FROM pg_roles WHERE rolname = 'regress_mallory') INTO result;
	DELETE FROM mallory.seen;
	ALTER ROLE regress_mallory NOSUPERUSER;
	RETURN result;
END $$;

------------------------------------------------------------------------------
-- Attack 1: an exact-match = (text, text) in the caller's own schema, first
-- on search_path, while our functions read and write the catalog elevated.
------------------------------------------------------------------------------
SET ROLE regress_mallory;
CREATE FUNCTION mallory.eq_text(a text, b text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
	PERFORM mallory.payload('= (text, text)');
	RETURN a OPERATOR(pg_catalog.=) b;
END $$;
CREATE OPERATOR mallory.= (LEFTARG = text, RIGHTARG = text, FUNCTION = mallory.eq_text);
CREATE FUNCTION mallory.eq_regclass_oid(a regclass, b oid) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
	PERFORM mallory.payload('= (regclass, oid)');
	RETURN a::oid OPERATOR(pg_catalog.=) b;
END $$;
CREATE OPERATOR mallory.= (LEFTARG = regclass, RIGHTARG = oid, FUNCTION = mallory.eq_regclass_oid);

CREATE TABLE mallory.pts AS
SELECT i::bigint AS id, ARRAY[(i % 2) * 2.0 + 0.3 * sin(i), 0.3 * cos(i)]::real[] AS features,
       (i % 2)::text AS label
FROM generate_series(1, 80) i;
SET search_path = mallory, pg_catalog, public;
-- train, predict, unlearn, audit and drop as mallory: every catalog access is elevated
SELECT model, rows FROM unlearn_train('sec_mallory', 'mallory.pts', 'id', 'features', 'label', hidden => '{16}',
                                      epochs => 30, options => '{"seed": 1, "lr": 0.01, "batch_size": 32}');
SELECT unlearn_predict('sec_mallory', ARRAY[0, 0]::real[]) IS NOT NULL AS predicts;
SELECT rows, forgotten FROM unlearn_rows('sec_mallory', ARRAY[1, 2]);
SELECT count(*) > 0 AS audited FROM unlearn_audit('sec_mallory');
SELECT count(*) AS problems FROM unlearn_verify_ledger('sec_mallory') WHERE NOT valid;
-- DELETE (capture trigger, elevated queue write) and the sql_drop event trigger
DELETE FROM mallory.pts WHERE id = 3;
SELECT unlearn_drop_model('sec_mallory');
DROP TABLE mallory.pts;
RESET search_path;
RESET ROLE;
SELECT escalated() AS escalated_by_search_path;

------------------------------------------------------------------------------
-- Attack 2: a role that may create in public (a database owner, in
-- PostgreSQL 15) plants *(numeric, integer) and =(regclass, oid) there: the
-- background worker must not run them (it runs as the bootstrap superuser).
------------------------------------------------------------------------------
GRANT CREATE ON SCHEMA public TO regress_mallory;
SET ROLE regress_mallory;
CREATE FUNCTION public.mul_numeric_int(a numeric, b integer) RETURNS numeric LANGUAGE plpgsql AS $$
BEGIN
	PERFORM mallory.payload('* (numeric, integer) in public');
	RETURN a OPERATOR(pg_catalog.*) b::numeric;
END $$;
CREATE OPERATOR public.* (LEFTARG = numeric, RIGHTARG = integer, FUNCTION = public.mul_numeric_int);
CREATE OPERATOR public.= (LEFTARG = regclass, RIGHTARG = oid, FUNCTION = mallory.eq_regclass_oid);
RESET ROLE;
-- a model of someone else, deleted from: the worker picks it up and housekeeps
CREATE TABLE sec_worker AS
SELECT i::bigint AS id, ARRAY[(i % 2) * 2.0 + 0.3 * sin(i), 0.3 * cos(i)]::real[] AS features, (i % 2) AS label
FROM generate_series(1, 80) i;
SELECT model FROM unlearn_train('sec_worker', 'sec_worker', 'id', 'features', 'label',
                                hidden => '{4}', epochs => 5, options => '{"seed": 1}');
DELETE FROM sec_worker WHERE id IN (5, 6);
SELECT unlearn_wait('sec_worker') AS drained;
SELECT state, count(*) FROM unlearn.requests WHERE model = 'sec_worker' GROUP BY state;
SELECT pg_sleep(1.2);	-- past one naptime: the worker's housekeeping has run too
SELECT escalated() AS escalated_by_public_operators;
DROP OPERATOR public.* (numeric, integer);
DROP OPERATOR public.= (regclass, oid);
DROP FUNCTION public.mul_numeric_int(numeric, integer);
REVOKE CREATE ON SCHEMA public FROM regress_mallory;

------------------------------------------------------------------------------
-- Attack 3: a LOGIN-only role retypes its table's label column to an enum
-- of its own with a user-defined cast to text, hoping the capture evaluates
-- that cast as the catalog owner.  The column cannot be retyped under a
-- model, and the capture checks the types before it reads anything.
------------------------------------------------------------------------------
SET ROLE regress_mallory;
CREATE TABLE mallory.pts3 AS
SELECT i::bigint AS id, ARRAY[(i % 2) * 2.0, 0.1 * i]::real[] AS features, (i % 2)::text AS label
FROM generate_series(1, 40) i;
SELECT model FROM unlearn_train('sec_enum', 'mallory.pts3', 'id', 'features', 'label',
                                hidden => '{}', epochs => 3, options => '{"seed": 1}');
CREATE TYPE mallory.lab AS ENUM ('0', '1');
CREATE FUNCTION mallory.lab_to_text(l mallory.lab) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	PERFORM mallory.payload('cast of an enum');
	RETURN 'x';
END $$;
CREATE CAST (mallory.lab AS text) WITH FUNCTION mallory.lab_to_text(mallory.lab);
SELECT err($$ALTER TABLE mallory.pts3 ALTER COLUMN label TYPE mallory.lab USING label::mallory.lab$$);
DELETE FROM mallory.pts3 WHERE id = 1;	-- captured as usual
RESET ROLE;
SELECT count(*) AS queued FROM unlearn.requests WHERE model = 'sec_enum';
-- even if the column is retyped with the event triggers off (a superuser in
-- replica mode), the capture refuses to read it elevated
SET session_replication_role = replica;
ALTER TABLE mallory.pts3 ALTER COLUMN label TYPE mallory.lab USING label::mallory.lab;
RESET session_replication_role;
SET ROLE regress_mallory;
SELECT err($$DELETE FROM mallory.pts3 WHERE id = 2$$);
RESET ROLE;
SELECT escalated() AS escalated_by_cast;
SET ROLE regress_mallory;
SELECT unlearn_drop_model('sec_enum');
DROP TABLE mallory.pts3;
-- a temporary table cannot be followed at all: its rows vanish at session end
CREATE TEMP TABLE tmp_pts AS SELECT * FROM generate_series(1, 4) id, LATERAL (SELECT ARRAY[id, 0]::real[] AS features,
       (id % 2) AS label) x;
SELECT err($$SELECT unlearn_train('sec_tmp', 'tmp_pts', 'id', 'features', 'label', hidden => '{}', epochs => 1)$$);
SELECT model FROM unlearn_train('sec_tmp', 'tmp_pts', 'id', 'features', 'label', hidden => '{}', epochs => 1,
                                auto_unlearn => false);
SELECT unlearn_drop_model('sec_tmp');

------------------------------------------------------------------------------
-- Attack 4: attaching unlearn.capture() to one's own table under other
-- transition-table names, so that the names the capture's elevated statement
-- uses resolve to one's own temporary view.
------------------------------------------------------------------------------
CREATE TEMP TABLE own (id bigint, features real[], label int);
CREATE FUNCTION pg_temp.spy() RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
	PERFORM mallory.payload('view named like a transition table');
	RETURN true;
END $$;
CREATE TEMP VIEW unlearn_old AS SELECT * FROM pg_temp.own WHERE pg_temp.spy();
SELECT err($$CREATE TRIGGER evil AFTER DELETE ON pg_temp.own REFERENCING OLD TABLE AS not_ours
             FOR EACH STATEMENT EXECUTE FUNCTION unlearn.capture()$$);
RESET ROLE;
-- even if such a trigger exists (a superuser made it), the capture refuses to run for it
CREATE TRIGGER evil AFTER DELETE ON pg_temp.own REFERENCING OLD TABLE AS not_ours
	FOR EACH STATEMENT EXECUTE FUNCTION unlearn.capture();
SELECT err($$DELETE FROM pg_temp.own$$);
DROP TABLE pg_temp.own CASCADE;
SELECT escalated() AS escalated_by_transition_names;
-- the extension's trigger functions are not for others to attach
SELECT p.proname, has_function_privilege('regress_mallory', p.oid, 'EXECUTE') AS mallory_may
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'unlearn' ORDER BY 1;

------------------------------------------------------------------------------
-- Attack 5: functions planted in public before CREATE EXTENSION, matching
-- the unlearn.status view's calls better than pg_catalog's: the view must
-- bind to pg_catalog only.
------------------------------------------------------------------------------
CREATE DATABASE regress_sec_install;
\c regress_sec_install
CREATE FUNCTION public.pg_has_role(r regrole, p text) RETURNS boolean LANGUAGE sql AS 'SELECT true';
CREATE FUNCTION public.has_table_privilege(r regclass, p text) RETURNS boolean LANGUAGE sql AS 'SELECT true';
CREATE EXTENSION unlearn;
SELECT count(*) AS status_depends_on_public
FROM pg_depend d JOIN pg_rewrite r ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
JOIN pg_proc p ON d.refclassid = 'pg_proc'::regclass AND d.refobjid = p.oid
WHERE r.ev_class = 'unlearn.status'::regclass AND p.pronamespace = 'public'::regnamespace;
\c contrib_regression
DROP DATABASE regress_sec_install WITH (FORCE);

------------------------------------------------------------------------------
-- Attack 6: settings left in the worker's session by a model owner's code.
-- A model's table becomes a view over its owner's function after a request
-- was queued (capture turned off in the deleting transaction takes the
-- triggers away, then the emptied table is converted); sharded models read
-- their samples without the warm cache, whose row stamps a view cannot
-- give.  The function leaves search_path naming the owner's schema (where
-- attack 1's = (text, text) still is), for the worker's own queries as the
-- bootstrap superuser, and unlearn.max_accuracy_drop, for the runs of
-- everyone's models.  Both escalated before two fixes, each enough alone:
-- the worker reads tables only (the requests fail with the reason, the
-- function never runs in the worker), and switching back from the role it
-- acts for undoes every setting changed meanwhile (checked with the first
-- fix taken out: the second model's runs then see the server's settings).
------------------------------------------------------------------------------
SET ROLE regress_mallory;
CREATE TABLE mallory.settings_seen (leaves boolean, path text, accuracy_drop text);
CREATE TABLE mallory.src AS
SELECT i::bigint AS id, ARRAY[(i % 2) * 2.0 + 0.3 * sin(i), 0.3 * cos(i)]::real[] AS features, (i % 2) AS label
FROM generate_series(1, 80) i;
-- the rows, after noting the settings seen; with leave, settings left behind (SET, not SET LOCAL)
CREATE FUNCTION mallory.rows_of(leave boolean) RETURNS SETOF mallory.src LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO mallory.settings_seen
	VALUES (leave, current_setting('search_path'), current_setting('unlearn.max_accuracy_drop'));
	IF leave THEN
		PERFORM set_config('search_path', 'mallory, pg_catalog', false);
		PERFORM set_config('unlearn.max_accuracy_drop', '99', false);
	END IF;
	RETURN QUERY SELECT * FROM mallory.src;
END $$;
-- a sharded model with capture on, a request queued, then its table turned into a view over rows_of(leave)
CREATE FUNCTION mallory.model_over_view(name text, leave boolean) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE format('CREATE TABLE mallory.%I AS SELECT * FROM mallory.src', name);
	EXECUTE format('ALTER TABLE mallory.%I ADD PRIMARY KEY (id)', name);
	PERFORM unlearn_train(name, format('mallory.%I', name)::regclass, 'id', 'features', 'label',
	                      hidden => '{4}', epochs => 5, options => '{"seed": 1, "shards": 2}');
	EXECUTE format('DELETE FROM mallory.%I WHERE id = 7', name);
	PERFORM unlearn_auto(name, false);
	EXECUTE format('DELETE FROM mallory.%I', name);
	EXECUTE format('ALTER TABLE mallory.%I DROP CONSTRAINT %I', name, name || '_pkey');
END $$;
SELECT mallory.model_over_view('sec_leaves', true);
VACUUM mallory.sec_leaves;	-- forgets that it had triggers, so it may become a view
CREATE RULE "_RETURN" AS ON SELECT TO mallory.sec_leaves DO INSTEAD SELECT * FROM mallory.rows_of(true);
SELECT unlearn_wait('sec_leaves', '60 s') AS drained;
RESET ROLE;
SELECT state, last_error FROM unlearn.requests WHERE model = 'sec_leaves';
SET ROLE regress_mallory;
SELECT pg_sleep(1.2);	-- past one naptime: the worker's own queries have run since
-- a second such model: whatever reaches its runs are the server's settings, not what the first left
SELECT mallory.model_over_view('sec_reads', false);
VACUUM mallory.sec_reads;
CREATE RULE "_RETURN" AS ON SELECT TO mallory.sec_reads DO INSTEAD SELECT * FROM mallory.rows_of(false);
SELECT unlearn_wait('sec_reads', '60 s') AS drained;
RESET ROLE;
SELECT state, last_error FROM unlearn.requests WHERE model = 'sec_reads';
SET ROLE regress_mallory;
SELECT DISTINCT path, accuracy_drop FROM mallory.settings_seen WHERE NOT leaves;
SELECT unlearn_drop_model('sec_leaves'), unlearn_drop_model('sec_reads');
DROP VIEW mallory.sec_leaves, mallory.sec_reads;
DROP FUNCTION mallory.model_over_view(text, boolean), mallory.rows_of(boolean);
DROP TABLE mallory.src, mallory.settings_seen;
RESET ROLE;
SELECT escalated() AS escalated_by_settings_left_in_the_worker;

------------------------------------------------------------------------------
-- Part 2: capture completeness.
------------------------------------------------------------------------------
-- requests_of(model): how many requests a model has, by kind
CREATE FUNCTION requests_of(m text) RETURNS bigint LANGUAGE sql AS $$
	SELECT count(*) FROM unlearn.requests WHERE model = m $$;

CREATE TABLE sec_base (id bigint PRIMARY KEY, features real[], label int);
INSERT INTO sec_base
SELECT i, ARRAY[(i % 3) * 2.0 + 0.3 * sin(i), (i % 2) + 0.3 * cos(i)]::real[], i % 3
FROM generate_series(1, 120) i;
SELECT model FROM unlearn_train('sec_a', 'sec_base', 'id', 'features', 'label', hidden => '{16}', epochs => 30,
                                options => '{"seed": 1, "lr": 0.01, "batch_size": 32}');
SELECT model FROM unlearn_train('sec_b', 'sec_base', 'id', 'features', 'label', hidden => '{16}', epochs => 30,
                                options => '{"seed": 2, "lr": 0.01, "batch_size": 32}');

-- unlearn_rows on one model of a shared table: the other model is told
SELECT rows FROM unlearn_rows('sec_a', ARRAY[10]);
SELECT requests_of('sec_a') AS a_requests, requests_of('sec_b') AS b_requests;

-- a DELETE through a view over the training table
CREATE VIEW sec_view AS SELECT * FROM sec_base WHERE id > 20;
DELETE FROM sec_view WHERE id = 21;
-- MERGE's DELETE and UPDATE actions
MERGE INTO sec_base t USING (VALUES (22, 0), (23, 1)) s(id, lab) ON t.id = s.id
WHEN MATCHED AND s.id = 22 THEN DELETE
WHEN MATCHED THEN UPDATE SET features = ARRAY[9, 9]::real[];
-- DELETE ... USING
DELETE FROM sec_base USING (VALUES (24)) x(i) WHERE sec_base.id = x.i;
-- a foreign-key cascade from a parent table
CREATE TABLE sec_parent (pid int PRIMARY KEY);
INSERT INTO sec_parent VALUES (1);
ALTER TABLE sec_base ADD COLUMN pid int REFERENCES sec_parent ON DELETE CASCADE;
UPDATE sec_base SET pid = 1 WHERE id = 25;
DELETE FROM sec_parent;
SELECT id, kind FROM unlearn.requests WHERE model = 'sec_b' ORDER BY request_id;
SELECT requests_of('sec_a') AS a_requests;

-- logical replication apply runs with session_replication_role = replica:
-- the statement capture triggers are ENABLE ALWAYS, so they fire there too
-- (the row capture of replication apply is ENABLE REPLICA: replica mode only)
SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = 'sec_base'::regclass AND tgname LIKE 'unlearn%'
ORDER BY tgname;
SET session_replication_role = replica;
DELETE FROM sec_base WHERE id = 26;
RESET session_replication_role;
SELECT count(*) AS replica_delete_queued FROM unlearn.requests WHERE model = 'sec_b' AND id = 26;
SELECT unlearn_wait('sec_a') AND unlearn_wait('sec_b') AS drained;
SELECT model, state, count(*) FROM unlearn.requests WHERE model IN ('sec_a', 'sec_b')
GROUP BY model, state ORDER BY model, state;
SELECT unlearn_confirm_forgotten('sec_a') AS a_confirmed, unlearn_confirm_forgotten('sec_b') AS b_confirmed;

-- what would take rows away silently is refused, with a hint
SELECT err($$ALTER TABLE sec_base RENAME COLUMN label TO klass$$);
SELECT err($$ALTER TABLE sec_base ALTER COLUMN label TYPE bigint$$);
SELECT err($$ALTER TABLE sec_base DROP COLUMN features$$);
SELECT err($$ALTER TABLE sec_base DISABLE TRIGGER unlearn_capture_delete$$);
SELECT err($$ALTER TABLE sec_base DISABLE TRIGGER ALL$$);
SELECT err($$ALTER TABLE sec_base ENABLE TRIGGER unlearn_capture_delete$$);
SELECT err($$ALTER TABLE sec_base ENABLE REPLICA TRIGGER unlearn_capture_delete$$);
SELECT err($$ALTER TABLE sec_base ENABLE TRIGGER unlearn_capture_apply$$);
SELECT err($$ALTER TABLE sec_base DISABLE TRIGGER unlearn_capture_apply$$);
-- the row capture of replication apply is ENABLE REPLICA: setting it so again
-- (as pg_restore does) is allowed and changes nothing
ALTER TABLE sec_base ENABLE REPLICA TRIGGER unlearn_capture_apply;
SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = 'sec_base'::regclass AND tgname LIKE 'unlearn%'
ORDER BY tgname;
SELECT err($$ALTER TRIGGER unlearn_capture_delete ON sec_base RENAME TO x$$);
SELECT err($$DROP TRIGGER unlearn_capture_delete ON sec_base$$);
-- other columns and other triggers stay the owner's business
ALTER TABLE sec_base RENAME COLUMN pid TO parent_id;
ALTER TABLE sec_base DROP COLUMN parent_id;
-- a DELETE still works after the table's other columns changed
DELETE FROM sec_base WHERE id = 27;
SELECT count(*) AS queued_after_alter FROM unlearn.requests WHERE model = 'sec_a' AND id = 27;

-- partitioned training tables
CREATE TABLE sec_part (id bigint, features real[], label int) PARTITION BY RANGE (id);
CREATE TABLE sec_part_1 PARTITION OF sec_part FOR VALUES FROM (0) TO (100);
CREATE TABLE sec_part_2 PARTITION OF sec_part FOR VALUES FROM (100) TO (200);
INSERT INTO sec_part
SELECT i, ARRAY[(i % 2) * 2.0 + 0.3 * sin(i), 0.3 * cos(i)]::real[], i % 2 FROM generate_series(1, 199) i;
SELECT model, rows FROM unlearn_train('sec_p', 'sec_part', 'id', 'features', 'label', hidden => '{4}', epochs => 5,
                                      options => '{"seed": 1}');
SELECT tgrelid::regclass AS rel, count(*) AS triggers FROM pg_trigger
WHERE tgname LIKE 'unlearn%' AND tgrelid::regclass::text LIKE 'sec_part%' GROUP BY 1 ORDER BY 1;
-- a DELETE addressed to a partition, and one to the parent: each queued once
DELETE FROM sec_part_1 WHERE id = 1;
DELETE FROM sec_part WHERE id IN (2, 150);
SELECT id FROM unlearn.requests WHERE model = 'sec_p' ORDER BY id;
-- a partition created or attached later gets the triggers at once
CREATE TABLE sec_part_3 PARTITION OF sec_part FOR VALUES FROM (200) TO (300);
CREATE TABLE sec_part_4 (LIKE sec_part);
ALTER TABLE sec_part ATTACH PARTITION sec_part_4 FOR VALUES FROM (300) TO (400);
SELECT tgrelid::regclass AS rel, count(*) AS triggers FROM pg_trigger
WHERE tgname LIKE 'unlearn%' AND tgrelid::regclass::text LIKE 'sec_part%' GROUP BY 1 ORDER BY 1;
INSERT INTO sec_part_3 VALUES (201, ARRAY[0, 0], 0);
DELETE FROM sec_part_3;
SELECT count(*) AS new_partition_captured FROM unlearn.requests WHERE model = 'sec_p' AND id = 201;
-- TRUNCATE, DROP, DETACH and renaming a model's column of a partition are refused
SELECT err($$TRUNCATE sec_part_2$$);
SELECT err($$DROP TABLE sec_part_2$$);
SELECT err($$ALTER TABLE sec_part DETACH PARTITION sec_part_2$$);
SELECT err($$ALTER TABLE sec_part_2 RENAME COLUMN label TO klass$$);
-- so is a foreign-table partition: deletes from it could not be captured
CREATE EXTENSION file_fdw;
CREATE SERVER sec_files FOREIGN DATA WRAPPER file_fdw;
SELECT err($$CREATE FOREIGN TABLE sec_part_f PARTITION OF sec_part FOR VALUES FROM (400) TO (500)
             SERVER sec_files OPTIONS (filename '/dev/null')$$);
DROP EXTENSION file_fdw CASCADE;
SELECT unlearn_wait('sec_p') AS drained;
SELECT state, count(*) FROM unlearn.requests WHERE model = 'sec_p' GROUP BY state;
SELECT unlearn_confirm_forgotten('sec_p') AS confirmed;
-- with automatic unlearning off the triggers go, and the partitions are the user's again
SELECT unlearn_auto('sec_p', false);
SELECT count(*) AS triggers_left FROM pg_trigger WHERE tgname LIKE 'unlearn%'
AND tgrelid::regclass::text LIKE 'sec_part%';
ALTER TABLE sec_part DETACH PARTITION sec_part_4;
DROP TABLE sec_part_4;
SELECT unlearn_auto('sec_p', true);
SELECT count(*) AS triggers_back FROM pg_trigger WHERE tgname LIKE 'unlearn%'
AND tgrelid::regclass::text LIKE 'sec_part%';

-- two levels of partitions, and a partition attached with rows
CREATE TABLE sec_tree (id bigint, features real[], label int) PARTITION BY RANGE (id);
CREATE TABLE sec_tree_a PARTITION OF sec_tree FOR VALUES FROM (0) TO (100) PARTITION BY RANGE (id);
CREATE TABLE sec_tree_a1 PARTITION OF sec_tree_a FOR VALUES FROM (0) TO (50);
CREATE TABLE sec_tree_a2 PARTITION OF sec_tree_a FOR VALUES FROM (50) TO (100);
CREATE TABLE sec_tree_b PARTITION OF sec_tree FOR VALUES FROM (100) TO (200);
INSERT INTO sec_tree
SELECT i, ARRAY[(i % 2) * 2.0 + 0.3 * sin(i), 0.3 * cos(i)]::real[], i % 2 FROM generate_series(1, 199) i;
-- training reads the rows of every leaf
SELECT model, rows FROM unlearn_train('sec_t', 'sec_tree', 'id', 'features', 'label', hidden => '{4}', epochs => 5,
                                      options => '{"seed": 1}');
-- a DELETE in a leaf two levels down is queued
DELETE FROM sec_tree_a2 WHERE id = 60;
-- detaching a leaf from the middle level, or the middle level, or dropping a leaf: refused
SELECT err($$ALTER TABLE sec_tree_a DETACH PARTITION sec_tree_a1$$);
SELECT err($$ALTER TABLE sec_tree DETACH PARTITION sec_tree_a$$);
-- a leaf from a parent it is not a partition of: PostgreSQL's own refusal
SELECT err($$ALTER TABLE sec_tree DETACH PARTITION sec_tree_a1$$);
SELECT err($$DROP TABLE sec_tree_a1$$);
-- DETACH ... CONCURRENTLY cannot run in a function: here with its hint
ALTER TABLE sec_tree DETACH PARTITION sec_tree_b CONCURRENTLY;
-- attached rows were never learned: deleting one needs no unlearning (skipped)
CREATE TABLE sec_tree_c (LIKE sec_tree);
INSERT INTO sec_tree_c VALUES (250, ARRAY[2, 0], 1), (251, ARRAY[0, 0], 0);
ALTER TABLE sec_tree ATTACH PARTITION sec_tree_c FOR VALUES FROM (200) TO (300);
DELETE FROM sec_tree WHERE id = 250;
SELECT unlearn_wait('sec_t') AS drained;
SELECT id, state FROM unlearn.requests WHERE model = 'sec_t' ORDER BY id;
SELECT count(*) AS manifest, count(*) FILTER (WHERE x = 60) AS deleted_left,
       count(*) FILTER (WHERE x >= 200) AS attached FROM unlearn_manifest('sec_t') x;
-- a retrain learns them
SELECT rows FROM unlearn_retrain('sec_t');
SELECT count(*) FILTER (WHERE x >= 200) AS attached FROM unlearn_manifest('sec_t') x;
SELECT unlearn_drop_model('sec_t');
DROP TABLE sec_tree;

------------------------------------------------------------------------------
-- Replica mode is no way around the guard.  An owner granted SET on
-- session_replication_role (GRANT SET ON PARAMETER) sets replica mode, where
-- only ENABLE ALWAYS event triggers fire: ours are, so what is refused
-- outside it is refused in it, and deletes are still captured.
------------------------------------------------------------------------------
SELECT evtname, evtenabled FROM pg_event_trigger WHERE evtname LIKE 'unlearn%' ORDER BY evtname;
GRANT SET ON PARAMETER session_replication_role TO regress_mallory;
SET ROLE regress_mallory;
CREATE TABLE mallory.rep (id bigint PRIMARY KEY, features real[], label int);
INSERT INTO mallory.rep
SELECT i, ARRAY[(i % 2) * 2.0 + 0.3 * sin(i), 0.3 * cos(i)]::real[], i % 2 FROM generate_series(1, 60) i;
SELECT model, rows FROM unlearn_train('sec_rep', 'mallory.rep', 'id', 'features', 'label', hidden => '{4}',
                                      epochs => 5, options => '{"seed": 1}');
SET session_replication_role = replica;
SELECT err($$ALTER TABLE mallory.rep DISABLE TRIGGER ALL$$);
SELECT err($$ALTER TABLE mallory.rep DISABLE TRIGGER unlearn_capture_delete$$);
SELECT err($$ALTER TABLE mallory.rep DROP COLUMN features$$);
SELECT err($$DROP TRIGGER unlearn_capture_delete ON mallory.rep$$);
SELECT err($$DROP TABLE mallory.rep$$);
SELECT err($$TRUNCATE mallory.rep$$);
DELETE FROM mallory.rep WHERE id = 7;
RESET session_replication_role;
SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = 'mallory.rep'::regclass ORDER BY tgname;
RESET ROLE;
SELECT count(*) AS replica_owner_delete_queued FROM unlearn.requests WHERE model = 'sec_rep' AND id = 7;
-- a superuser in replica mode is let through, as before (pg_restore --clean's
-- workaround in docs/security.md): here it disables a trigger and enables it again
SET session_replication_role = replica;
ALTER TABLE mallory.rep DISABLE TRIGGER unlearn_capture_delete;
ALTER TABLE mallory.rep ENABLE ALWAYS TRIGGER unlearn_capture_delete;
RESET session_replication_role;
SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = 'mallory.rep'::regclass
AND tgname = 'unlearn_capture_delete';
-- ENABLE TRIGGER ALL (as a data-only restore with --disable-triggers runs it,
-- before unlearn.models is loaded) leaves ours in their modes, not ORIGIN
SET session_replication_role = replica;
ALTER TABLE mallory.rep DISABLE TRIGGER ALL;
ALTER TABLE mallory.rep ENABLE TRIGGER ALL;
RESET session_replication_role;
SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = 'mallory.rep'::regclass ORDER BY tgname;
SELECT unlearn_drop_model('sec_rep');
DROP TABLE mallory.rep;
REVOKE SET ON PARAMETER session_replication_role FROM regress_mallory;

------------------------------------------------------------------------------
-- An owner's other ways around the capture (an attacker's review, 2026-12-03)
------------------------------------------------------------------------------
DO $$ BEGIN EXECUTE format('GRANT CREATE ON DATABASE %I TO regress_mallory', current_database()); END $$;
SET ROLE regress_mallory;
CREATE TABLE mallory.own (id bigint PRIMARY KEY, features real[], label int);
INSERT INTO mallory.own
SELECT i, ARRAY[(i % 2) * 2.0 + 0.3 * sin(i), 0.3 * cos(i)]::real[], i % 2 FROM generate_series(1, 60) i;
SELECT model FROM unlearn_train('sec_own', 'mallory.own', 'id', 'features', 'label', hidden => '{4}',
                                epochs => 5, options => '{"seed": 1}');
SELECT model FROM unlearn_train('sec_own2', 'mallory.own', 'id', 'features', 'label', hidden => '{4}',
                                epochs => 5, options => '{"seed": 2}');
-- one of our trigger names with another definition (another function of
-- schema unlearn, ours with a WHEN), or OR REPLACE of ours as it is: refused
SELECT err($$CREATE OR REPLACE TRIGGER unlearn_capture_delete AFTER DELETE ON mallory.own FOR EACH STATEMENT
             WHEN (false) EXECUTE FUNCTION unlearn.versions_immutable()$$);
SELECT err($$CREATE OR REPLACE TRIGGER unlearn_guard_truncate BEFORE TRUNCATE ON mallory.own FOR EACH STATEMENT
             WHEN (false) EXECUTE FUNCTION unlearn.guard_truncate()$$);
SELECT err($$CREATE OR REPLACE TRIGGER unlearn_capture_delete AFTER DELETE ON mallory.own
             REFERENCING OLD TABLE AS unlearn_old FOR EACH STATEMENT EXECUTE FUNCTION unlearn.capture()$$);
SELECT has_function_privilege('unlearn.versions_immutable()', 'EXECUTE') AS may_run_versions_immutable,
       has_function_privilege('unlearn.manifests_immutable()', 'EXECUTE') AS may_run_manifests_immutable;
SELECT tgname, tgfoid::regproc, tgenabled FROM pg_trigger WHERE tgrelid = 'mallory.own'::regclass ORDER BY tgname;
-- a child that also inherits from a table outside the tree: its rows would
-- leave through that table unseen; refused, also inside CREATE SCHEMA
CREATE TABLE mallory.other (id bigint, features real[], label int);
SELECT err($$CREATE TABLE mallory.two () INHERITS (mallory.own, mallory.other)$$);
SELECT err($$CREATE SCHEMA mallory_s2 CREATE TABLE two () INHERITS (mallory.own, mallory.other)$$);
-- the modes' reassertion after ENABLE TRIGGER acts on the table altered, not
-- on what its name means once the command's own code changed search_path
RESET ROLE;
CREATE TABLE public.vt_other (c int);
CREATE FUNCTION public.vt_noop() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
CREATE TRIGGER unlearn_capture_update AFTER UPDATE ON public.vt_other FOR EACH STATEMENT
EXECUTE FUNCTION public.vt_noop();
ALTER TABLE public.vt_other DISABLE TRIGGER unlearn_capture_update;
SET ROLE regress_mallory;
CREATE TABLE mallory.vt_other (c int);
INSERT INTO mallory.vt_other VALUES (1);
CREATE FUNCTION mallory.sp(x int) RETURNS int LANGUAGE plpgsql AS $$
BEGIN PERFORM set_config('search_path', 'public', false); RETURN x; END $$;
SET search_path = mallory, public;
ALTER TABLE vt_other ENABLE TRIGGER ALL, ALTER COLUMN c TYPE bigint USING mallory.sp(c);
RESET search_path;
RESET ROLE;
SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = 'public.vt_other'::regclass;
-- (a trigger with one of our names is dropped only by us, or by a superuser in replica mode)
SET session_replication_role = replica;
DROP TABLE public.vt_other;
RESET session_replication_role;
DROP TABLE mallory.vt_other;
DROP FUNCTION public.vt_noop(), mallory.sp(int);
SET ROLE regress_mallory;
-- a temporary or unlogged child: its rows vanish at session end, or at a
-- crash, without a trigger; refused
SELECT err($$CREATE TEMP TABLE kid_temp () INHERITS (mallory.own)$$);
SELECT err($$CREATE UNLOGGED TABLE mallory.kid_unlogged () INHERITS (mallory.own)$$);
-- a child made inside CREATE SCHEMA gets the triggers, as any other
CREATE SCHEMA mallory_s CREATE TABLE kid () INHERITS (mallory.own);
SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = 'mallory_s.kid'::regclass ORDER BY tgname;
-- a savepoint rolled back after one model's capture was turned off: the
-- capture's per-backend entry built inside it does not outlive it
BEGIN;
SAVEPOINT s;
SELECT unlearn_auto('sec_own', false);
DELETE FROM mallory.own WHERE id = 59;
ROLLBACK TO SAVEPOINT s;
DELETE FROM mallory.own WHERE id = 5;
COMMIT;
RESET ROLE;
SELECT model, id FROM unlearn.requests WHERE model IN ('sec_own', 'sec_own2') ORDER BY model, id;
SELECT unlearn_drop_model('sec_own'), unlearn_drop_model('sec_own2');
DROP SCHEMA mallory_s CASCADE;
DROP TABLE mallory.own, mallory.other;
DO $$ BEGIN EXECUTE format('REVOKE CREATE ON DATABASE %I FROM regress_mallory', current_database()); END $$;

-- clean up
SELECT unlearn_drop_model(m) FROM unnest(ARRAY['sec_worker', 'sec_a', 'sec_b', 'sec_p']) m;
DROP TABLE sec_worker, sec_part, sec_parent;
DROP VIEW sec_view;
DROP TABLE sec_base;
DROP FUNCTION requests_of(text);
SELECT escalated() AS escalated_at_all;
DROP FUNCTION escalated();
DROP SCHEMA mallory CASCADE;
DROP ROLE regress_mallory;
