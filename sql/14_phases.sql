-- Where an unlearning run's time goes: every version an unlearning run
-- stores records metrics->'phases' (seconds per named phase) and
-- metrics->'total_seconds'.  The timings themselves are not asserted: only
-- that the phases are there, are non-negative numbers, and add up to at most
-- the total.  As the ordinary model owner (see 01_train).
SET ROLE regress_owner;

CREATE TABLE phased AS
SELECT i::bigint AS id,
       ARRAY[sin(i * 12.9898), cos(i * 78.233), sin(i * 3.1)]::real[] AS features,
       (sin(i * 12.9898) + cos(i * 78.233) > 0)::int AS label
FROM generate_series(1, 400) i;
ALTER TABLE phased ADD PRIMARY KEY (id);

SELECT model, rows FROM unlearn_train('ph', 'phased', 'id', 'features', 'label', hidden => '{16}');

-- checks one version's phases: names, and whether all is well
CREATE FUNCTION pg_temp.phase_check(m text, v integer,
	OUT phases text, OUT numbers boolean, OUT non_negative boolean, OUT within_total boolean)
LANGUAGE sql AS $$
	SELECT string_agg(p.key, ' ' ORDER BY p.key),
	       bool_and(jsonb_typeof(p.value) = 'number'),
	       bool_and((p.value)::float8 >= 0),
	       sum((p.value)::float8) <= (x.metrics->>'total_seconds')::float8
	FROM unlearn.versions x, jsonb_each(x.metrics->'phases') p
	WHERE x.model = m AND x.version = v
	GROUP BY x.metrics
$$;

-- unlearn_rows: the caller's steps (lock, read_forget_rows), then the run's
SELECT version, rows FROM unlearn_rows('ph', ARRAY[3, 5]);
SELECT jsonb_typeof(metrics->'phases') AS phases, jsonb_typeof(metrics->'total_seconds') AS total,
       (metrics->>'total_seconds')::float8 >= (metrics->>'seconds')::float8 - 0.0015 AS total_covers_run
FROM unlearn.versions WHERE model = 'ph' AND version = 2;
SELECT * FROM pg_temp.phase_check('ph', 2);
-- paused_seconds: time the worker paused for the sessions (unlearn.worker_cpu_share);
-- a session's own run never pauses
SELECT metrics->'paused_seconds' AS paused FROM unlearn.versions WHERE model = 'ph' AND version = 2;

-- unlearn_relabel: the same phases (no ledger rows, but the phase is timed)
SELECT version, rows FROM unlearn_relabel('ph', ARRAY[7], ARRAY['1']);
SELECT * FROM pg_temp.phase_check('ph', 3);

-- the worker: its own steps from the claim on (claim, lock, read_requests, plan)
DELETE FROM phased WHERE id IN (11, 12);
SELECT unlearn_wait('ph') AS drained;
SELECT version, reason FROM unlearn.versions WHERE model = 'ph' AND version = 4;
SELECT * FROM pg_temp.phase_check('ph', 4);
-- the worker's pauses are reported (how long depends on what other sessions commit)
SELECT jsonb_typeof(metrics->'paused_seconds') AS paused,
       (metrics->>'paused_seconds')::float8 <= (metrics->>'total_seconds')::float8 AS within_total
FROM unlearn.versions WHERE model = 'ph' AND version = 4;

-- the worker's first phase and the run's last one are there; storing the
-- version itself comes after its metrics are written (the worker's LOG line has it)
SELECT metrics->'phases' ? 'claim' AS claim, metrics->'phases' ? 'ledger' AS ledger,
       metrics->'phases' ? 'store_version' AS store_version
FROM unlearn.versions WHERE model = 'ph' AND version = 4;

-- the warm worker (see docs/how-it-works.md): the run above read its
-- samples from the table and the worker kept them; after each commit it
-- renews an eighth of each sample (the refresh), and the next run takes
-- them, checked against the table, and reads only what it lacks (every
-- remaining row of this small table is in one of the two samples, so the
-- rotated rows are drawn again from those)
-- (the accuracy guard on, test/regress.conf has it off, so the runs draw
-- held-out rows too; at 99 points it never refuses a run)
RESET ROLE;
ALTER SYSTEM SET unlearn.max_accuracy_drop = 99;
SELECT pg_reload_conf();
SELECT pg_sleep(0.5);
SET ROLE regress_owner;
DELETE FROM phased WHERE id = 13;
SELECT unlearn_wait('ph') AS drained;
-- a version someone else made (a session's unlearn_rows): the next run reads
-- its samples from the table again, and the run after it is warm
SELECT version FROM unlearn_rows('ph', ARRAY[20]);
DELETE FROM phased WHERE id = 21;
SELECT unlearn_wait('ph') AS drained;
DELETE FROM phased WHERE id = 22;
SELECT unlearn_wait('ph') AS drained;
-- the refresh after that run's commit reads the table: let it finish first,
-- so the changes below reach the next run's check whatever the timing
RESET ROLE;
CREATE PROCEDURE pg_temp.wait_worker_idle() LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
	FOR i IN 1..1000 LOOP
		EXIT WHEN NOT EXISTS (SELECT FROM pg_stat_activity
		                       WHERE application_name = 'unlearn worker' AND state = 'active');
		PERFORM pg_sleep(0.01);
	END LOOP;
END $$;
CALL pg_temp.wait_worker_idle();
SET ROLE regress_owner;
-- rows that leave or change without capture (automatic unlearning off
-- meanwhile) leave the cached samples: 10 deleted and 5 updated rows are
-- dropped, and the 5 updated ones read again with their new features
-- (besides the rotated rows)
SELECT unlearn_auto('ph', false);
DELETE FROM phased WHERE id BETWEEN 100 AND 109;
UPDATE phased SET features = ARRAY[0, 0, 0]::real[] WHERE id BETWEEN 200 AND 204;
SELECT unlearn_auto('ph', true);
DELETE FROM phased WHERE id = 23;
SELECT unlearn_wait('ph') AS drained;
SELECT version, reason, (metrics->>'replay_cached')::boolean AS replay_cached,
       metrics->>'cache_check' AS checked, (metrics->>'cache_dropped')::int AS dropped, (metrics->>'sample_rows_read')::int AS rows_read,
       (metrics->>'held_out_rows')::int AS held_out,
       (metrics->>'held_out_rows')::int + (metrics->>'replay_rows')::int AS sampled
FROM unlearn.versions WHERE model = 'ph' AND version >= 4 ORDER BY version;
-- every sampled row is one the table holds now, as it is now: the samples
-- of the last run are exactly the remaining rows (a cold run reads the same)
SELECT count(*) AS remaining_rows FROM phased;
SELECT * FROM pg_temp.phase_check('ph', 9);
-- the cached rows are checked by direct heap fetches (cache_check "heap"
-- above) only where a scan of the table would apply nothing more; where
-- row-level security applies to the owner (FORCE) they are not used, and the
-- worker, which never reads through policies, fails the run as before
RESET ROLE;
CALL pg_temp.wait_worker_idle();
SET ROLE regress_owner;
ALTER TABLE phased ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY phased_hide ON phased USING (id NOT BETWEEN 300 AND 303);
DELETE FROM phased WHERE id = 24;
SELECT unlearn_wait('ph') AS drained;
RESET ROLE;
SELECT state, last_error FROM unlearn.requests WHERE model = 'ph' AND id = 24;
SET ROLE regress_owner;
SELECT max(version) AS latest FROM unlearn.versions WHERE model = 'ph';
-- without the policy (row-level security off again): the failed run emptied
-- the cache, so the next run reads cold and the one after it is checked by
-- heap fetches again
ALTER TABLE phased NO FORCE ROW LEVEL SECURITY, DISABLE ROW LEVEL SECURITY;
DELETE FROM phased WHERE id = 25;
SELECT unlearn_wait('ph') AS drained;
DELETE FROM phased WHERE id = 26;
SELECT unlearn_wait('ph') AS drained;
SELECT version, (metrics->>'replay_cached')::boolean AS replay_cached,
       metrics->>'cache_check' AS checked, (metrics->>'cache_dropped')::int AS dropped
FROM unlearn.versions WHERE model = 'ph' AND version >= 10 ORDER BY version;
-- nor round the owner's privileges: with SELECT on the model's columns only
-- (the owner revoked its own table-wide SELECT, which training needs) the
-- check is a scan, which cannot read the row versions, and the run fails;
-- heap fetches would have found every cached row there and the run would
-- have gone on
RESET ROLE;
CALL pg_temp.wait_worker_idle();
SET ROLE regress_owner;
REVOKE SELECT ON phased FROM regress_owner;
GRANT SELECT (id, features, label) ON phased TO regress_owner;
DELETE FROM phased WHERE id = 27;
SELECT unlearn_wait('ph') AS drained;
RESET ROLE;
SELECT state, last_error FROM unlearn.requests WHERE model = 'ph' AND id = 27;
SET ROLE regress_owner;
GRANT SELECT ON phased TO regress_owner;
SELECT max(version) AS latest FROM unlearn.versions WHERE model = 'ph';
RESET ROLE;
-- the manifests are compressed with lz4 (pglz took 30-50 ms for a version of
-- 60 000 rows, on the path from a COMMIT to its version): the column's
-- setting, and what the stored manifests of this model use
SELECT attname, attcompression FROM pg_attribute
WHERE attrelid = 'unlearn.manifests'::regclass AND attname IN ('ids', 'shards') ORDER BY attname;
SELECT DISTINCT pg_column_compression(ids) AS ids_compression FROM unlearn.manifests WHERE model = 'ph';
-- the versions' weights are stored out of line and never compressed (floats:
-- pglz tried, failed, and they were stored as they are anyway)
SELECT attstorage FROM pg_attribute WHERE attrelid = 'unlearn.versions'::regclass AND attname = 'weights';
-- a partitioned table: the cached rows come from its partitions, each
-- checked by heap fetches; a row moved to the other partition (an UPDATE of
-- the partition key while automatic unlearning was off) and a row deleted
-- leave the cache
SET ROLE regress_owner;
-- deletes one row (its own transaction) and waits for the queue to drain
CREATE PROCEDURE pg_temp.delete_and_wait(m text, tbl text, row_id bigint) LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE format('DELETE FROM %I WHERE id = $1', tbl) USING row_id;
	COMMIT;
	IF NOT unlearn_wait(m) THEN
		RAISE EXCEPTION 'the queue of model % did not drain', m;
	END IF;
END $$;
-- two worker runs (the second warm), the refresh after them let finish
-- (the worker's state is read as the superuser who made wait_worker_idle),
-- then automatic unlearning off for a change the queue will not see
CREATE PROCEDURE pg_temp.warm_then_pause(m text, tbl text, first_id bigint) LANGUAGE plpgsql AS $$
BEGIN
	CALL pg_temp.delete_and_wait(m, tbl, first_id);
	CALL pg_temp.delete_and_wait(m, tbl, first_id + 1);
	CALL pg_temp.wait_worker_idle();
	PERFORM unlearn_auto(m, false);
END $$;
-- how each worker version of a model took its samples
CREATE FUNCTION pg_temp.cache_checks(m text,
	OUT version integer, OUT replay_cached boolean, OUT checked text, OUT dropped integer)
RETURNS SETOF record LANGUAGE sql AS $$
	SELECT version, (metrics->>'replay_cached')::boolean, metrics->>'cache_check',
	       (metrics->>'cache_dropped')::int
	FROM unlearn.versions WHERE model = m AND version >= 2 ORDER BY version
$$;
CREATE TABLE phparts (id bigint, features real[], label int) PARTITION BY RANGE (id);
CREATE TABLE phparts_low PARTITION OF phparts FOR VALUES FROM (0) TO (200);
CREATE TABLE phparts_high PARTITION OF phparts FOR VALUES FROM (200) TO (1000);
INSERT INTO phparts SELECT * FROM phased;
SELECT model, rows FROM unlearn_train('pp', 'phparts', 'id', 'features', 'label', hidden => '{16}');
CALL pg_temp.warm_then_pause('pp', 'phparts', 30);
UPDATE phparts SET id = 600 WHERE id = 150;
DELETE FROM phparts WHERE id = 250;
SELECT unlearn_auto('pp', true);
CALL pg_temp.delete_and_wait('pp', 'phparts', 32);
SELECT * FROM pg_temp.cache_checks('pp');
SELECT unlearn_drop_model('pp');
DROP TABLE phparts;
-- the same with table inheritance: the rows of the parent and of its child
-- (each checked in its own table); one child row updated while automatic
-- unlearning was off leaves the cache
CREATE TABLE phinh (id bigint PRIMARY KEY, features real[], label int);
CREATE TABLE phinh_child () INHERITS (phinh);
INSERT INTO phinh SELECT * FROM phased WHERE id < 200;
INSERT INTO phinh_child SELECT * FROM phased WHERE id >= 200;
SELECT model, rows FROM unlearn_train('pi', 'phinh', 'id', 'features', 'label', hidden => '{16}');
CALL pg_temp.warm_then_pause('pi', 'phinh', 40);
UPDATE phinh_child SET label = 1 - label WHERE id = 300;
SELECT unlearn_auto('pi', true);
CALL pg_temp.delete_and_wait('pi', 'phinh', 42);
SELECT * FROM pg_temp.cache_checks('pi');
SELECT unlearn_drop_model('pi');
DROP TABLE phinh CASCADE;
RESET ROLE;
ALTER SYSTEM RESET unlearn.max_accuracy_drop;
SELECT pg_reload_conf();
SET ROLE regress_owner;

SELECT unlearn_drop_model('ph');
DROP TABLE phased;
