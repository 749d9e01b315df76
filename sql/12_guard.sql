-- Never destroy a model: the accuracy guard and the exact fallback.  A run
-- that lowers accuracy on held-out remaining rows by more than
-- unlearn.max_accuracy_drop is not stored; an exact retrain without the rows
-- replaces it when unlearn.retrain_budget allows, else it fails with nothing
-- changed.  (test/regress.conf turns the guard off for the other suites.)
SET ROLE regress_owner;

-- the settings: defaults, units, who may set them, their ranges
SELECT name, boot_val, unit, context, min_val, max_val FROM pg_settings
WHERE name IN ('unlearn.max_accuracy_drop', 'unlearn.retrain_budget') ORDER BY name;
SELECT err($$SET unlearn.max_accuracy_drop = -1$$);
SELECT err($$SET unlearn.max_accuracy_drop = 101$$);
SELECT err($$SET unlearn.retrain_budget = -1$$);
SET unlearn.retrain_budget = '2min';
SHOW unlearn.retrain_budget;

-- four tight clusters; forgetting 100 rows of one of them takes its
-- neighbours, held-out rows among them, along
CREATE TABLE clusters_src AS
SELECT i::bigint AS id,
       ARRAY[(i % 4 / 2) + 0.03 * sin(i * 12.9898), (i % 2) + 0.03 * cos(i * 78.233)]::real[] AS features,
       i % 4 AS label
FROM generate_series(1, 800) i;
CREATE TABLE clusters AS SELECT * FROM clusters_src;
SELECT model, version FROM unlearn_train('clusters', 'clusters', 'id', 'features', 'label', hidden => '{16}',
                                         epochs => 30, options => '{"lr": 0.01, "batch_size": 32, "seed": 1}',
                                         auto_unlearn => false);
CREATE TEMP TABLE doomed AS SELECT id FROM clusters WHERE label = 0 ORDER BY id LIMIT 100;
CREATE TEMP VIEW state AS
SELECT (SELECT count(*) FROM inspect.versions WHERE model = 'clusters') AS versions,
       (SELECT current_version FROM unlearn.models WHERE name = 'clusters') AS current,
       (SELECT count(*) FROM clusters) AS table_rows,
       (SELECT cardinality(ids) FROM inspect.manifests m JOIN unlearn.models c ON c.name = m.model
         WHERE m.model = 'clusters' AND m.version = c.current_version) AS manifest_rows,
       (SELECT count(*) FROM inspect.forgotten WHERE model = 'clusters') AS ledger_rows;
SELECT * FROM state;

-- (a) the guard trips and retraining is off: a clear error, nothing changed
SET unlearn.max_accuracy_drop = 2;
SET unlearn.retrain_budget = 0;
SELECT err($$SELECT * FROM unlearn_rows('clusters', ARRAY(SELECT id FROM doomed))$$);
SELECT * FROM state;
-- with the guard off the same run is stored: it is the guard that refused it
BEGIN;
SET LOCAL unlearn.max_accuracy_drop = 100;
SELECT version, rows, forgotten, method FROM unlearn_rows('clusters', ARRAY(SELECT id FROM doomed));
SELECT guarantee, (metrics->>'held_out_rows')::int AS held_out_rows, metrics->'held_out_before' AS held_out_before
FROM inspect.versions WHERE model = 'clusters' AND version = 2;
ROLLBACK;
SELECT * FROM state;

-- (b) within the budget: an exact version trained without the rows
SET unlearn.retrain_budget = 60;
SET client_min_messages = warning;	-- its NOTICE carries a time estimate
SELECT version, rows, forgotten, steps, method FROM unlearn_rows('clusters', ARRAY(SELECT id FROM doomed));
RESET client_min_messages;
SELECT * FROM state;
SELECT version, parent, reason, method, guarantee, rows,
       forgotten_ids = ARRAY(SELECT id FROM doomed ORDER BY id) AS forgot_the_rows,
       metrics ? 'train_seconds' AS timed
FROM inspect.versions WHERE model = 'clusters' ORDER BY version;
SELECT NOT (ids && ARRAY(SELECT id FROM doomed)) AS rows_out_of_manifest
FROM inspect.manifests WHERE model = 'clusters' AND version = 2;
SELECT count(*) AS ledger_rows, min(version) = 2 AND max(version) = 2 AS recorded_with_it
FROM inspect.forgotten WHERE model = 'clusters';
SELECT unlearn_confirm_forgotten('clusters') AS confirmed;
SELECT version, valid FROM unlearn_verify_ledger('clusters') ORDER BY version;
SELECT version, reason, guarantee FROM unlearn_audit('clusters') ORDER BY version;

-- (c) later approximate runs build on the exact version; the rows it never
-- saw are forgotten by construction, not prior rows to keep misclassified
-- (the guard off here: in clusters this tight, forgetting even one row takes
-- its neighbours along)
SET unlearn.max_accuracy_drop = 100;
SELECT version, rows, prior, method FROM unlearn_rows('clusters', ARRAY[(SELECT min(id) FROM clusters WHERE label = 1)]);
SELECT version, parent, guarantee FROM inspect.versions WHERE model = 'clusters' AND version = 3;
SELECT unlearn_confirm_forgotten('clusters') AS confirmed;

-- (d) a relabelling the guard refuses is not retrained
SET unlearn.max_accuracy_drop = 2;
SELECT err($$SELECT * FROM unlearn_relabel('clusters', ARRAY(SELECT id FROM clusters WHERE label = 1 ORDER BY id LIMIT 100),
                                           array_fill(3, ARRAY[100]))$$);
SELECT * FROM state;
RESET unlearn.max_accuracy_drop;
RESET unlearn.retrain_budget;

-- (e) the worker: a refused run fails its requests with the guard's message;
-- retried within a budget, it becomes an exact version
CREATE TABLE wclusters AS SELECT * FROM clusters_src;
SELECT model FROM unlearn_train('wclusters', 'wclusters', 'id', 'features', 'label', hidden => '{16}',
                                epochs => 30, options => '{"lr": 0.01, "batch_size": 32, "seed": 1}');
-- superuser: ALTER SYSTEM and pg_reload_conf change the worker's settings
RESET ROLE;
ALTER SYSTEM SET unlearn.max_accuracy_drop = 2;
ALTER SYSTEM SET unlearn.retrain_budget = 0;
SELECT pg_reload_conf();
SELECT pg_sleep(0.5);
SET ROLE regress_owner;
DELETE FROM wclusters WHERE id IN (SELECT id FROM doomed);
SELECT unlearn_wait('wclusters') AS drained;
SELECT state, attempts, count(*) AS requests, min(last_error) = max(last_error) AS same_error
FROM inspect.requests WHERE model = 'wclusters' GROUP BY state, attempts;
SELECT DISTINCT last_error FROM inspect.requests WHERE model = 'wclusters';
SELECT failed, last_error LIKE 'unlearning would lower the accuracy%' AS shows_reason
FROM unlearn.status WHERE model = 'wclusters';
SELECT count(*) AS versions FROM inspect.versions WHERE model = 'wclusters';
RESET ROLE;
ALTER SYSTEM RESET unlearn.retrain_budget;
SELECT pg_reload_conf();
SELECT pg_sleep(0.5);
SET ROLE regress_owner;
SELECT unlearn_retry('wclusters');
SELECT unlearn_wait('wclusters') AS drained;
SELECT state, count(*) AS requests FROM inspect.requests WHERE model = 'wclusters' GROUP BY state;
SELECT version, reason, guarantee, cardinality(forgotten_ids) AS forgot FROM inspect.versions
WHERE model = 'wclusters' ORDER BY version;
SELECT unlearn_confirm_forgotten('wclusters') AS confirmed;
RESET ROLE;
ALTER SYSTEM RESET unlearn.max_accuracy_drop;
SELECT pg_reload_conf();
SET ROLE regress_owner;

-- (f) exact when cheaper: with the default method, a model whose retrain
-- passes no more rows than twice the repair phase of replay batches and
-- forget rows (600 x (128 + k)) is retrained directly, without an
-- approximate run; a longer-trained one is not, and one trained as long in
-- small batches (more steps, as many rows) is
SHOW unlearn.exact_when_cheaper;	-- off in test/regress.conf
CREATE TABLE small AS SELECT * FROM clusters_src WHERE id <= 300;
CREATE TABLE small_long AS SELECT * FROM small;
-- 300 rows: 10 passes = 3 000 rows, 400 passes = 120 000 (600 x 130 = 78 000)
SELECT model, rows FROM unlearn_train('small', 'small', 'id', 'features', 'label', hidden => '{16}',
                                      epochs => 10, options => '{"seed": 1}', auto_unlearn => false);
SELECT model, rows FROM unlearn_train('small_long', 'small_long', 'id', 'features', 'label', hidden => '{16}',
                                      epochs => 400, options => '{"seed": 1}', auto_unlearn => false);
SET unlearn.exact_when_cheaper = on;
SELECT version, rows, forgotten, steps, method FROM unlearn_rows('small', ARRAY[1, 2]);
SELECT version, reason, guarantee, forgotten_ids FROM inspect.versions WHERE model = 'small' ORDER BY version;
SELECT version, rows, forgotten, steps > 0 AS approximate, method FROM unlearn_rows('small_long', ARRAY[1, 2]);
SELECT version, reason, guarantee FROM inspect.versions WHERE model = 'small_long' ORDER BY version;
-- 298 rows, 100 passes in batches of 8: 3 800 steps (more than 600), 29 600 rows
-- (fewer than 78 000): exact
CREATE TABLE small_batch AS SELECT * FROM small;
SELECT model, rows FROM unlearn_train('small_batch', 'small_batch', 'id', 'features', 'label', hidden => '{16}',
                                      epochs => 100, options => '{"seed": 1, "batch_size": 8}', auto_unlearn => false);
SELECT version, rows, forgotten, steps, method FROM unlearn_rows('small_batch', ARRAY[5, 6]);
SELECT version, reason, guarantee FROM inspect.versions WHERE model = 'small_batch' ORDER BY version;
-- with the guard on, a run it cannot verify is not made: on small_unsure's
-- 59 held-out rows it sees a drop only once 5 rows are lost (8.5 points), so
-- at 2 points the rows are retrained away exactly (a NOTICE says why); at 10
-- points it can, and the run is approximate, as on small_long above
CREATE TABLE small_unsure AS SELECT * FROM small_long;
SELECT model, rows FROM unlearn_train('small_unsure', 'small_unsure', 'id', 'features', 'label', hidden => '{16}',
                                      epochs => 400, options => '{"seed": 1}', auto_unlearn => false);
SET unlearn.max_accuracy_drop = 2;
SELECT version, rows, forgotten, steps, method FROM unlearn_rows('small_unsure', ARRAY[5]);
SET unlearn.max_accuracy_drop = 10;
SELECT version, rows, forgotten, steps > 0 AS approximate, method FROM unlearn_rows('small_unsure', ARRAY[6]);
RESET unlearn.max_accuracy_drop;
SELECT version, reason, guarantee FROM inspect.versions WHERE model = 'small_unsure' ORDER BY version;
-- a method named explicitly runs as asked
SELECT version, method FROM unlearn_rows('small', ARRAY[3], '{"method": "neggrad"}');
SELECT version, reason, guarantee FROM inspect.versions WHERE model = 'small' AND version = 3;
-- and off, the default method runs approximately
SET unlearn.exact_when_cheaper = off;
SELECT version, steps > 0 AS approximate, method FROM unlearn_rows('small', ARRAY[4]);
RESET unlearn.exact_when_cheaper;
SELECT unlearn_confirm_forgotten('small') AS confirmed;

-- (g) consolidation: approximate runs add up; once the rows they forgot since
-- the last exact version reach unlearn.consolidate_after of its rows, the
-- next run retrains exactly (off in test/regress.conf)
SHOW unlearn.consolidate_after;
SET unlearn.consolidate_after = 0.02;	-- 6 rows of small_long's 300
SET client_min_messages = warning;	-- the NOTICE says how many rows
SELECT version, rows, method FROM unlearn_rows('small_long', ARRAY[5, 6]);	-- 2 + 2 earlier: 4 < 6
SELECT version, rows, method FROM unlearn_rows('small_long', ARRAY[7, 8]);	-- 6: consolidated
SELECT version, rows, method FROM unlearn_rows('small_long', ARRAY[9]);	-- 1 since the exact version
RESET client_min_messages;
SELECT version, parent, reason, guarantee, cardinality(forgotten_ids) AS forgot
FROM inspect.versions WHERE model = 'small_long' ORDER BY version;
SELECT NOT (ids && ARRAY[1, 2, 5, 6, 7, 8, 9]::bigint[]) AS all_out_of_manifest
FROM inspect.manifests WHERE model = 'small_long' AND version = 5;
SELECT unlearn_confirm_forgotten('small_long') AS confirmed;
RESET unlearn.consolidate_after;

-- (g2) consolidation by drift: once the held-out accuracy the approximate
-- runs since the last exact version lost adds up to unlearn.consolidate_drop
-- points, the next run retrains exactly (off by default)
SELECT name, boot_val, unit, context, min_val, max_val FROM pg_settings
WHERE name IN ('unlearn.consolidate_drop', 'unlearn.consolidate_idle') ORDER BY name;
SELECT err($$SET unlearn.consolidate_drop = -1$$);
SELECT err($$SET unlearn.consolidate_drop = 101$$);
SELECT err($$SET unlearn.consolidate_idle = 5$$);	-- the worker's: server configuration only
CREATE TABLE drift AS SELECT * FROM clusters_src;
SELECT model, rows FROM unlearn_train('drift', 'drift', 'id', 'features', 'label', hidden => '{16}',
                                      epochs => 30, options => '{"lr": 0.01, "batch_size": 32, "seed": 1}',
                                      auto_unlearn => false);
CREATE TEMP VIEW drift_runs AS
SELECT version, parent, reason, guarantee, cardinality(forgotten_ids) AS forgot,
       round(100 * ((metrics->>'held_out_before')::float8 - (metrics->>'held_out_after')::float8)::numeric, 2)
         AS held_out_drop
FROM inspect.versions WHERE model = 'drift' ORDER BY version;
SET unlearn.max_accuracy_drop = 50;	-- runs measure held-out accuracy; none falls back
-- rows of one cluster: their neighbours, held-out rows among them, go along
SELECT version, method FROM unlearn_rows('drift', ARRAY(SELECT id FROM drift WHERE label = 0 ORDER BY id LIMIT 20));
SET unlearn.consolidate_drop = 100;	-- more than the first run lost: the second is approximate too
SELECT version, method FROM unlearn_rows('drift', ARRAY(SELECT id FROM drift WHERE label = 0 ORDER BY id LIMIT 10));
-- what the two runs lost in all, the trigger's measure
SELECT sum(held_out_drop) > 0.1 AS lost_over_a_tenth FROM drift_runs WHERE guarantee = 'approximate';
SET unlearn.consolidate_drop = 0.1;
SET client_min_messages = warning;	-- the NOTICE gives the points
SELECT version, method FROM unlearn_rows('drift', ARRAY(SELECT id FROM drift WHERE label = 1 ORDER BY id LIMIT 5));
RESET client_min_messages;
SELECT version, parent, reason, guarantee, forgot, held_out_drop FROM drift_runs;
-- from the exact version, the count starts again: the next run is approximate
SELECT version, method FROM unlearn_rows('drift', ARRAY(SELECT id FROM drift WHERE label = 2 ORDER BY id LIMIT 5));
SELECT unlearn_confirm_forgotten('drift') AS confirmed;
RESET unlearn.consolidate_drop;
RESET unlearn.max_accuracy_drop;

-- (h) a row deleted while an exact run reads the table (here in the same
-- transaction), its request still queued: the retrain cannot learn it, so
-- the exact version forgets it too and the ledger records it from its
-- queued copy (the stream benchmark found it missing from the ledger)
CREATE TABLE small_auto AS SELECT * FROM clusters_src WHERE id <= 300;
SELECT model FROM unlearn_train('small_auto', 'small_auto', 'id', 'features', 'label', hidden => '{16}',
                                epochs => 10, options => '{"seed": 1}');
SET unlearn.exact_when_cheaper = on;
BEGIN;
DELETE FROM small_auto WHERE id = 20;
SELECT version, rows, method FROM unlearn_rows('small_auto', ARRAY[21]);
COMMIT;
RESET unlearn.exact_when_cheaper;
SELECT version, reason, guarantee, forgotten_ids FROM inspect.versions WHERE model = 'small_auto' ORDER BY version;
SELECT id, label, version FROM inspect.forgotten WHERE model = 'small_auto' ORDER BY id;
SELECT unlearn_wait('small_auto') AS drained;
SELECT id, state, version FROM inspect.requests WHERE model = 'small_auto' ORDER BY id;
SELECT unlearn_confirm_forgotten('small_auto') AS confirmed;
SELECT version, valid FROM unlearn_verify_ledger('small_auto') ORDER BY version;
