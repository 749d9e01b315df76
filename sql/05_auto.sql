-- Automatic unlearning: DELETE and UPDATE on a training table queue
-- requests in the deleting transaction; the background worker (preloaded
-- library) unlearns them, acting as the model's owner: here the ordinary
-- role regress_owner (see 01_train).

-- the workers run, visible in pg_stat_activity
-- superuser: the backend_type of other users' processes is shown only to
-- members of pg_read_all_stats
SELECT count(*) > 0 AS launcher_running FROM pg_stat_activity WHERE backend_type = 'unlearn launcher';
SET ROLE regress_owner;

CREATE TABLE auto_data AS
SELECT i::bigint AS id,
       ARRAY[(i % 3) * 2.0 + 0.5 * sin(i * 12.9898), (i % 2) * 2.0 + 0.5 * cos(i * 78.233),
             0.3 * sin(i * 1.3)]::real[] AS features,
       (i % 3) AS label
FROM generate_series(1, 300) i;
ALTER TABLE auto_data ADD PRIMARY KEY (id);
SELECT model, rows FROM unlearn_train('auto', 'auto_data', 'id', 'features', 'label', hidden => '{16}', epochs => 40,
                   options => '{"lr": 0.01, "batch_size": 32}');
SELECT tgname FROM pg_trigger WHERE tgrelid = 'auto_data'::regclass ORDER BY tgname;
CREATE TEMP TABLE gone AS SELECT * FROM auto_data WHERE id IN (7, 8, 9);

-- a rolled-back DELETE leaves no request
BEGIN;
DELETE FROM auto_data WHERE id = 7;
SELECT count(*) AS queued_inside FROM inspect.requests WHERE model = 'auto';
ROLLBACK;
SELECT count(*) AS queued_after_rollback FROM inspect.requests WHERE model = 'auto';

-- DELETE and COMMIT: the worker makes a new version that misclassifies the rows
DELETE FROM auto_data WHERE id IN (7, 8, 9);
SELECT unlearn_wait('auto', '60 s') AS drained;
SELECT id, kind, state, version IS NOT NULL AS has_version, features IS NULL AS copy_erased, requested_by
FROM inspect.requests WHERE model = 'auto' ORDER BY id;
SELECT unlearn_confirm_forgotten('auto') AS confirmed;
SELECT count(*) FILTER (WHERE unlearn_predict('auto', features) <> label) AS misclassified FROM gone;
SELECT current_version > 1 AS new_version FROM unlearn.models WHERE name = 'auto';
SELECT reason, method, rows, created_by FROM unlearn.versions WHERE model = 'auto' ORDER BY version DESC LIMIT 1;
SELECT count(*) AS manifest_rows, count(*) FILTER (WHERE m IN (7, 8, 9)) AS deleted_in_manifest
FROM unlearn_manifest('auto') m;
SELECT model, pending, running, done, failed, last_run IS NOT NULL AS ran, last_latency IS NOT NULL AS timed
FROM unlearn.status WHERE model = 'auto';

-- a bulk DELETE is one statement-level trigger call and one run
INSERT INTO gone SELECT * FROM auto_data WHERE id BETWEEN 100 AND 139;
DELETE FROM auto_data WHERE id BETWEEN 100 AND 139;
SELECT count(*) AS queued FROM inspect.requests WHERE model = 'auto' AND id BETWEEN 100 AND 139;
SELECT unlearn_wait('auto') AS drained;
SELECT count(DISTINCT version) AS versions_for_bulk FROM inspect.requests WHERE model = 'auto' AND id BETWEEN 100 AND 139;
SELECT unlearn_confirm_forgotten('auto') AS confirmed;
SELECT count(*) FILTER (WHERE unlearn_predict('auto', features) <> label) AS misclassified, count(*) FROM gone;

-- UPDATE of a label is a correction: the model learns the new label
UPDATE auto_data SET label = 0 WHERE id = 50 AND label <> 0;
SELECT kind, label, new_label FROM inspect.requests WHERE model = 'auto' AND id = 50;
SELECT unlearn_wait('auto') AS drained;
SELECT state FROM inspect.requests WHERE model = 'auto' AND id = 50;
SELECT unlearn_predict('auto', features) = label AS learned_new_label FROM auto_data WHERE id = 50;
SELECT reason, created_by FROM unlearn.versions WHERE model = 'auto' ORDER BY version DESC LIMIT 1;

-- UPDATE of the features: the old row is forgotten (the new one was never learned)
CREATE TEMP TABLE old_row AS SELECT * FROM auto_data WHERE id = 60;
UPDATE auto_data SET features = ARRAY[9, 9, 9]::real[] WHERE id = 60;
SELECT kind FROM inspect.requests WHERE model = 'auto' AND id = 60;
SELECT unlearn_wait('auto') AS drained;
SELECT unlearn_predict('auto', features) <> label AS old_row_misclassified FROM old_row;
SELECT count(*) AS id_60_in_manifest FROM unlearn_manifest('auto') m WHERE m = 60;
-- a DELETE and a label UPDATE committed together are one run: the relabel
-- version builds on the forget version, which keeps the deleted row forgotten
BEGIN;
DELETE FROM auto_data WHERE id = 62;
UPDATE auto_data SET label = (label + 1) % 3 WHERE id = 63;
COMMIT;
SELECT unlearn_wait('auto') AS drained;
SELECT id, kind, state FROM inspect.requests WHERE model = 'auto' AND id IN (62, 63) ORDER BY id;
SELECT reason, parent = version - 1 AS builds_on_previous, rows, forgotten_ids, (metrics->>'prior')::int AS prior
FROM inspect.versions WHERE model = 'auto' ORDER BY version DESC LIMIT 2;
SELECT count(*) AS id_62_in_manifest FROM unlearn_manifest('auto') m WHERE m = 62;
SELECT unlearn_confirm_forgotten('auto') AS confirmed;
-- an UPDATE of other columns queues nothing
ALTER TABLE auto_data ADD COLUMN note text;
UPDATE auto_data SET note = 'x' WHERE id = 61;
SELECT count(*) AS queued_for_61 FROM inspect.requests WHERE model = 'auto' AND id = 61;

-- rows the model never learned are skipped, not unlearned
INSERT INTO auto_data VALUES (5000, '{0, 0, 0}', 0);
DELETE FROM auto_data WHERE id = 5000;
SELECT unlearn_wait('auto') AS drained;
SELECT state, note FROM inspect.requests WHERE model = 'auto' AND id = 5000;

-- unlearn_rows does not queue the rows it deletes itself
SELECT rows, forgotten FROM unlearn_rows('auto', ARRAY[70]);
SELECT count(*) AS queued_for_70 FROM inspect.requests WHERE model = 'auto' AND id = 70;

-- turning capture off and on
SELECT unlearn_auto('auto', false);
DELETE FROM auto_data WHERE id = 80;
SELECT count(*) AS queued_while_off FROM inspect.requests WHERE model = 'auto' AND id = 80;
SELECT unlearn_auto('auto', true, '{"seed": 5}');
SELECT auto_unlearn, auto_options FROM unlearn.models WHERE name = 'auto';
SELECT err($$SELECT unlearn_auto('auto', true, '{"bogus": 1}')$$);
SELECT err($$SELECT unlearn_auto('no_such_model', true)$$);

-- capture follows model changes at once, inside the changing transaction too
CREATE TABLE same_xact AS SELECT * FROM auto_data WHERE id BETWEEN 200 AND 260;
BEGIN;
SELECT model FROM unlearn_train('same_xact', 'same_xact', 'id', 'features', 'label', hidden => '{4}', epochs => 2);
DELETE FROM same_xact WHERE id = 200;
SELECT count(*) AS queued_in_training_xact FROM inspect.requests WHERE model = 'same_xact';
COMMIT;
BEGIN;
SELECT unlearn_auto('same_xact', false);
DELETE FROM same_xact WHERE id = 201;
SELECT count(*) AS queued_while_switched_off FROM inspect.requests WHERE model = 'same_xact' AND id = 201;
ROLLBACK;
DELETE FROM same_xact WHERE id = 202;
SELECT count(*) AS queued_after_rollback_of_off FROM inspect.requests WHERE model = 'same_xact' AND id = 202;
SELECT unlearn_wait('same_xact') AS drained;
SELECT unlearn_drop_model('same_xact');
SELECT count(*) AS requests_dropped_with_model FROM inspect.requests WHERE model = 'same_xact';
DROP TABLE same_xact;

-- TRUNCATE and DROP TABLE would leave a model remembering everything: refused
SELECT err($$TRUNCATE auto_data$$);
SELECT err($$DROP TABLE auto_data$$);
SELECT count(*) > 0 AS table_still_there FROM auto_data;

-- waiting inside the deleting transaction cannot work: a clear error
BEGIN;
DELETE FROM auto_data WHERE id = 90;
SELECT err($$SELECT unlearn_wait('auto', '1 s')$$);
ROLLBACK;

-- privileges: another role cannot read or write the queue, nor drive the worker
-- superuser: creating a role needs CREATEROLE
RESET ROLE;
CREATE ROLE unlearn_dave;
SET ROLE regress_owner;
GRANT SELECT, DELETE ON auto_data TO unlearn_dave;
SET ROLE unlearn_dave;
SELECT err($$SELECT * FROM unlearn.requests$$);
SELECT err($$INSERT INTO unlearn.requests (model, kind, id, label) VALUES ('auto', 'forget', 1, '0')$$);
SELECT err($$UPDATE unlearn.requests SET state = 'done'$$);
SELECT err($$SELECT unlearn_auto('auto', false)$$);
-- a DELETE by a role with DELETE privilege is still captured (the trigger writes the queue)
DELETE FROM auto_data WHERE id = 91;
SET ROLE regress_owner;
SELECT requested_by FROM inspect.requests WHERE model = 'auto' AND id = 91;
SELECT unlearn_wait('auto') AS drained;
SELECT state FROM inspect.requests WHERE model = 'auto' AND id = 91;
REVOKE ALL ON auto_data FROM unlearn_dave;
-- superuser: dropping a role needs CREATEROLE
RESET ROLE;
DROP ROLE unlearn_dave;
SET ROLE regress_owner;

-- a run that keeps failing is retried with backoff, then marked failed with its
-- message, and the worker goes on with other models
CREATE TABLE other_data AS SELECT * FROM auto_data WHERE id <= 150;
SELECT model FROM unlearn_train('other', 'other_data', 'id', 'features', 'label', hidden => '{16}', epochs => 40,
                   options => '{"lr": 0.01, "batch_size": 32}');
SELECT unlearn_auto('auto', true, '{"method": "neggrad", "lr": 1e-9, "max_steps": 1}');
-- a row the model still classifies right, so the run has work to do
CREATE TEMP TABLE doomed AS
SELECT min(id) AS id FROM auto_data WHERE id > 90 AND unlearn_predict('auto', features) = label;
DELETE FROM auto_data WHERE id = (SELECT id FROM doomed);
DELETE FROM other_data WHERE id = 96;
SELECT unlearn_wait('auto') AS auto_drained, unlearn_wait('other') AS other_drained;
SELECT state, attempts, last_error FROM inspect.requests WHERE model = 'auto' AND id = (SELECT id FROM doomed);
SELECT model, pending, failed, last_error IS NOT NULL AS shows_error FROM unlearn.status
WHERE model IN ('auto', 'other') ORDER BY model;
SELECT state FROM inspect.requests WHERE model = 'other' AND id = 96;
SELECT unlearn_confirm_forgotten('other') AS other_confirmed;
-- with working options the failed request can be retried; only the owner may
SELECT unlearn_auto('auto', true, '{}');
-- superuser: creating and dropping a role need CREATEROLE
RESET ROLE;
CREATE ROLE unlearn_gina;
SET ROLE unlearn_gina;
SELECT err($$SELECT unlearn_retry('auto')$$);
RESET ROLE;
DROP ROLE unlearn_gina;
SET ROLE regress_owner;
SELECT unlearn_retry('auto') AS retried;
SELECT unlearn_wait('auto') AS drained;
SELECT state, attempts, version IS NOT NULL AS has_version FROM inspect.requests
WHERE model = 'auto' AND id = (SELECT id FROM doomed);
SELECT unlearn_retry('auto') AS nothing_left_to_retry;
SELECT unlearn_drop_model('other');
DROP TABLE other_data;

-- a partition created after training gets the capture triggers at once:
-- its deletes are queued (skipped, never learned), those of the old one forgotten
CREATE TABLE parts (id bigint, features real[], label int) PARTITION BY RANGE (id);
CREATE TABLE parts_low PARTITION OF parts FOR VALUES FROM (0) TO (1000);
INSERT INTO parts SELECT id, features, label FROM auto_data WHERE id <= 150;
SELECT model FROM unlearn_train('parts', 'parts', 'id', 'features', 'label', hidden => '{16}', epochs => 40,
                   options => '{"lr": 0.01, "batch_size": 32}');
CREATE TABLE parts_high PARTITION OF parts FOR VALUES FROM (1000) TO (2000);
SELECT tgrelid::regclass AS partition, string_agg(tgname, ', ' ORDER BY tgname) AS triggers
FROM pg_trigger WHERE tgrelid = 'parts_high'::regclass GROUP BY tgrelid;
INSERT INTO parts VALUES (1500, '{0, 0, 0}', 0);
DELETE FROM parts WHERE id IN (1, 1500);
SELECT unlearn_wait('parts') AS drained;
SELECT id, state, requested_by FROM inspect.requests WHERE model = 'parts' ORDER BY id;
SELECT unlearn_confirm_forgotten('parts') AS parts_confirmed;
SELECT unlearn_drop_model('parts');
DROP TABLE parts;

-- everything drained, and the ledger holds every forgotten row
SELECT pending, running, failed FROM unlearn.status WHERE model = 'auto';
SELECT count(*) AS failed_requests FROM inspect.requests WHERE model = 'auto' AND state = 'failed';
SELECT unlearn_confirm_forgotten('auto') AS confirmed;

-- finished requests leave the queue after unlearn.request_history (the ledger stays)
-- superuser: ALTER SYSTEM and pg_reload_conf change the server's configuration
RESET ROLE;
ALTER SYSTEM SET unlearn.request_history = '1s';
SELECT pg_reload_conf();
SET ROLE regress_owner;
DO $$
BEGIN
	FOR i IN 1..300 LOOP
		EXIT WHEN NOT EXISTS (SELECT 1 FROM inspect.requests WHERE model = 'auto' AND state IN ('done', 'skipped'));
		PERFORM pg_sleep(0.1);
	END LOOP;
END $$;
SELECT count(*) AS finished_requests_left FROM inspect.requests WHERE model = 'auto';
SELECT count(*) > 0 AS ledger_kept FROM inspect.forgotten WHERE model = 'auto';
-- superuser: as above
RESET ROLE;
ALTER SYSTEM RESET unlearn.request_history;
SELECT pg_reload_conf();
SET ROLE regress_owner;

-- dropping the model removes its triggers and lets the table go
SELECT unlearn_drop_model('auto');
SELECT count(*) AS triggers_left FROM pg_trigger WHERE tgrelid = 'auto_data'::regclass AND tgname LIKE 'unlearn%';
DROP TABLE auto_data;

-- The capture's writer (queue_writer.c) forms each request in C: it must
-- hold what the INSERT ... SELECT it replaces gave: the id as bigint, the
-- label as label::text, the features as features::real[] (a double
-- precision[] column converted), the defaults; rows with a NULL id, label or
-- features skipped per model; two models of one table queued by one DELETE.
CREATE TABLE writer_data AS
SELECT i::int AS id, ARRAY[i % 2, i % 3 + 0.25]::float8[] AS f8, ARRAY[i % 2, i % 3 + 0.25]::real[] AS f4,
       (CASE WHEN i % 2 = 0 THEN 'a' ELSE 'b' END)::varchar AS label
FROM generate_series(1, 40) i;
ALTER TABLE writer_data ADD PRIMARY KEY (id);
SELECT model FROM unlearn_train('w8', 'writer_data', 'id', 'f8', 'label', hidden => '{4}', epochs => 2);
SELECT model FROM unlearn_train('w4', 'writer_data', 'id', 'f4', 'label', hidden => '{4}', epochs => 2);
INSERT INTO writer_data VALUES (41, NULL, '{1, 1}', 'a'), (42, '{1, 1}', '{1, 1}', NULL);
-- double precision[] values the cast keeps the shape of: two dimensions, a lower bound of 0
INSERT INTO writer_data VALUES (43, '{{1, 2}}', '{1, 1}', 'a'), (44, '[0:1]={3, 4}', '{1, 1}', 'b');
BEGIN;
CREATE TEMP TABLE writer_gone ON COMMIT DROP AS SELECT * FROM writer_data WHERE id IN (1, 2, 41, 42, 43, 44);
DELETE FROM writer_data WHERE id IN (1, 2, 41, 42, 43, 44);
SELECT r.model, r.id, r.kind, r.label, r.new_label, r.state, r.attempts, r.last_error, r.note, r.done_at, r.version,
       r.features = CASE r.model WHEN 'w8' THEN g.f8::real[] ELSE g.f4 END AS same_features,
       r.label = g.label::text AS same_label, r.next_attempt_at = now() AS next_attempt_now,
       r.enqueued_at >= now() AS enqueued_since_start, r.requested_by = current_user AS requested_by_me
FROM inspect.requests r JOIN writer_gone g ON g.id = r.id
WHERE r.model IN ('w4', 'w8') ORDER BY r.model, r.id;
-- a multi-row DELETE: one request per row and model, request ids from the sequence, no two alike
DELETE FROM writer_data WHERE id BETWEEN 10 AND 39;
SELECT model, count(*) AS queued, count(DISTINCT request_id) AS distinct_ids,
       count(*) FILTER (WHERE request_id > (SELECT max(request_id) FROM inspect.requests WHERE id = 2)) AS after_first
FROM inspect.requests WHERE model IN ('w4', 'w8') AND id BETWEEN 10 AND 39 GROUP BY model ORDER BY model;
ROLLBACK;
SELECT count(*) AS queued_after_rollback FROM inspect.requests WHERE model IN ('w4', 'w8');
-- the writer checks the queue's constraints as the INSERT did, one an
-- administrator added included: this request is refused, and so the DELETE
RESET ROLE;
BEGIN;
ALTER TABLE unlearn.requests ADD CONSTRAINT writer_probe CHECK (id <> 3) NOT VALID;
\set VERBOSITY terse
DELETE FROM writer_data WHERE id = 3;
\set VERBOSITY default
ROLLBACK;
-- the writer keeps the constraints it planned only while they are the
-- table's: one replaced by another (as many constraints as before) refuses
-- its own row, not the old one's
BEGIN;
ALTER TABLE unlearn.requests ADD CONSTRAINT writer_probe CHECK (id <> 3) NOT VALID;
DELETE FROM writer_data WHERE id = 4;
ALTER TABLE unlearn.requests DROP CONSTRAINT writer_probe;
ALTER TABLE unlearn.requests ADD CONSTRAINT writer_probe CHECK (id <> 5) NOT VALID;
DELETE FROM writer_data WHERE id = 3;
\set VERBOSITY terse
DELETE FROM writer_data WHERE id = 5;
\set VERBOSITY default
ROLLBACK;
-- a function the constraint calls, replaced, and a domain it casts to,
-- given a constraint of its own, are seen at the next statement (planning
-- inlines the function and makes the cast to a domain without constraints a
-- relabel, so the writer must plan again)
BEGIN;
CREATE FUNCTION writer_req_ok(bigint) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$ SELECT $1 <> 6 $$;
CREATE DOMAIN writer_dq AS bigint;
ALTER TABLE unlearn.requests ADD CONSTRAINT writer_probe
	CHECK (public.writer_req_ok(id) AND (id::public.writer_dq) IS NOT NULL) NOT VALID;
DELETE FROM writer_data WHERE id = 7;
CREATE OR REPLACE FUNCTION writer_req_ok(bigint) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$ SELECT $1 <> 8 $$;
DELETE FROM writer_data WHERE id = 6;
SAVEPOINT before_8;
\set VERBOSITY terse
DELETE FROM writer_data WHERE id = 8;
ROLLBACK TO SAVEPOINT before_8;
ALTER DOMAIN writer_dq ADD CONSTRAINT writer_not9 CHECK (VALUE <> 9);
DELETE FROM writer_data WHERE id = 9;
\set VERBOSITY default
ROLLBACK;
-- and with the constraint rolled back, the row it refused is queued
BEGIN;
DELETE FROM writer_data WHERE id = 3;
SELECT model, id, kind FROM inspect.requests WHERE id = 3 AND model IN ('w4', 'w8') ORDER BY model;
ROLLBACK;
SET ROLE regress_owner;
-- double precision values real cannot hold: the copies are what training
-- reads (a value too small for real becomes 0 or a subnormal; one beyond
-- real's range, which training refuses, an infinity: a copy the worker
-- cannot use), in UPDATE and DELETE alike, and never an error in the user's
-- statement (the cast to real[] used to fail it)
INSERT INTO writer_data VALUES (45, '{1e-50, 1e-40}', '{1, 1}', 'a'), (46, '{1e300, -3.402823475e38}', '{1, 1}', 'b');
BEGIN;
UPDATE writer_data SET label = 'b' WHERE id = 45;
UPDATE writer_data SET f8 = '{0, 0}' WHERE id = 46;
DELETE FROM writer_data WHERE id IN (45, 46);
SELECT id, kind, label, new_label, features FROM inspect.requests WHERE model = 'w8' ORDER BY request_id;
ROLLBACK;
SELECT unlearn_drop_model('w4'), unlearn_drop_model('w8');
DROP TABLE writer_data;
