-- Unlearning: unlearn_rows, the ledger, continual requests, rollback and
-- cancel, relabel (correction), retrain, the faithful methods, bad input.
-- As the ordinary model owner (see 01_train).
SET ROLE regress_owner;

-- Four clusters in 4-D, 400 rows, deterministic jitter.
CREATE TABLE quads AS
SELECT i::bigint AS id,
       ARRAY[(i % 4) * 1.5 + 0.6 * sin(i * 12.9898), (i % 2) * 1.5 + 0.6 * cos(i * 78.233),
             0.5 * sin(i * 3.7), 0.5 * cos(i * 5.3)]::real[] AS features,
       (i % 4) AS label
FROM generate_series(1, 400) i;
SELECT model, rows, classes, train_accuracy > 0.9 AS fits
FROM unlearn_train('quads', 'quads', 'id', 'features', 'label', hidden => '{32}', epochs => 40,
                   options => '{"lr": 0.01, "batch_size": 32, "seed": 3}');
SELECT unlearn_confirm_forgotten('quads') AS nothing_forgotten_yet;

-- forget three rows: deleted from the table, misclassified by the new version
SELECT id, label, unlearn_predict('quads', features) = label AS predicted_right_before
FROM quads WHERE id IN (5, 10, 15) ORDER BY id;
CREATE TEMP TABLE forgotten_rows AS SELECT * FROM quads WHERE id IN (5, 10, 15);
SELECT model, version, rows, forgotten, prior, steps > 0 AS stepped, seconds >= 0 AS timed, method
FROM unlearn_rows('quads', ARRAY[5, 10, 15]);
SELECT count(*) AS still_in_table FROM quads WHERE id IN (5, 10, 15);
SELECT id, unlearn_predict('quads', features) <> label AS misclassified FROM forgotten_rows ORDER BY id;
SELECT unlearn_confirm_forgotten('quads') AS confirmed;
SELECT id, label, predicted <> label AS differs, true_class_probability < 0.5 AS unlikely, forgotten, version
FROM unlearn_forgotten('quads') ORDER BY id;
-- the rest of the table is still well predicted
SELECT accuracy > 0.85 AS still_accurate FROM unlearn_evaluate('quads', 'quads');
-- lineage and manifest
SELECT version, parent, reason, method, rows, (metrics->>'forgotten')::int AS forgotten,
       (metrics->>'replay_rows')::int > 0 AS replayed, options->>'method' AS opt_method
FROM unlearn.versions WHERE model = 'quads' ORDER BY version;
SELECT count(*) AS manifest_rows, count(*) FILTER (WHERE m IN (5, 10, 15)) AS forgotten_in_manifest
FROM unlearn_manifest('quads') m;
SELECT count(*) AS v1_manifest_rows FROM unlearn_manifest('quads', 1);
SELECT current_version FROM unlearn.models WHERE name = 'quads';

-- continual: a second request keeps the first one's rows misclassified
INSERT INTO forgotten_rows SELECT * FROM quads WHERE id IN (20, 21, 22, 23);
SELECT version, rows, forgotten, prior, prior_kept FROM unlearn_rows('quads', '{20, 21, 22, 23}'::bigint[]);
SELECT count(*) FILTER (WHERE unlearn_predict('quads', features) <> label) AS misclassified, count(*)
FROM forgotten_rows;
SELECT unlearn_confirm_forgotten('quads') AS confirmed_after_two;

-- a rolled-back call leaves table, versions, ledger and current version unchanged
BEGIN;
SELECT version, forgotten FROM unlearn_rows('quads', ARRAY[30]);
SELECT count(*) AS in_table_inside FROM quads WHERE id = 30;
ROLLBACK;
SELECT count(*) AS in_table_after FROM quads WHERE id = 30;
SELECT current_version, (SELECT max(version) FROM unlearn.versions WHERE model = 'quads') AS max_version,
       (SELECT count(*) FROM inspect.forgotten WHERE model = 'quads') AS ledger
FROM unlearn.models WHERE name = 'quads';

-- a cancelled call (statement_timeout) leaves everything as it was
SET statement_timeout = '300ms';
SELECT unlearn_rows('quads', ARRAY[31], '{"method": "neggrad", "lr": 1e-9, "max_steps": 100000000, "max_passes": 1000000}');
-- also while the adversarial examples are being made, before the loop starts
SELECT unlearn_rows('quads', ARRAY[31], '{"method": "adv", "pgd_steps": 100000, "adv_per_row": 1000}');
RESET statement_timeout;
SELECT count(*) AS in_table FROM quads WHERE id = 31;
SELECT current_version, (SELECT count(*) FROM inspect.forgotten WHERE model = 'quads') AS ledger
FROM unlearn.models WHERE name = 'quads';

-- correction: relabel two rows and teach the model their new labels
SELECT id, label FROM quads WHERE id IN (41, 42) ORDER BY id;
SELECT version, rows, forgotten, method FROM unlearn_relabel('quads', ARRAY[41, 42], ARRAY[0, 0]);
SELECT id, label, unlearn_predict('quads', features) AS predicted FROM quads WHERE id IN (41, 42) ORDER BY id;
SELECT unlearn_confirm_forgotten('quads') AS still_confirmed;
SELECT reason, rows FROM unlearn.versions WHERE model = 'quads' ORDER BY version DESC LIMIT 1;

-- text labels relabel too
CREATE TABLE quad_names AS SELECT id, features, (ARRAY['n', 'e', 's', 'w'])[label + 1] AS dir FROM quads;
SELECT model FROM unlearn_train('quad_names', 'quad_names', 'id', 'features', 'dir', hidden => '{16}', epochs => 40,
                   options => '{"lr": 0.01, "batch_size": 32}');
SELECT rows, forgotten FROM unlearn_relabel('quad_names', ARRAY[100], ARRAY['s']);
SELECT dir, unlearn_predict('quad_names', features) = dir AS learned FROM quad_names WHERE id = 100;

-- exact unlearning: retrain from scratch on the rows now in the table
SELECT model, version, rows, classes, train_accuracy > 0.9 AS fits FROM unlearn_retrain('quads');
SELECT reason, parent, rows = (SELECT count(*) FROM quads) AS manifest_is_table
FROM unlearn.versions WHERE model = 'quads' ORDER BY version DESC LIMIT 1;
-- a retrained model never saw the forgotten rows: its guarantee is exact and
-- confirm accepts them by construction, though generalisation classifies some
-- of them right again (unlearn_forgotten shows the predictions)
SELECT count(*) AS ledger_rows, unlearn_confirm_forgotten('quads') AS confirmed,
       bool_and(forgotten) AS all_misclassified
FROM unlearn_forgotten('quads');
SELECT guarantee FROM unlearn.versions WHERE model = 'quads' ORDER BY version DESC LIMIT 1;

-- the faithful methods run by name and report what they achieved (on the
-- unstandardised model they were pinned on: on the standardised one,
-- neggrad and adv+imp give up on rows 50 and 51 within their step cap)
CREATE TABLE quads2 AS SELECT * FROM quads;
SELECT model FROM unlearn_train('quads2', 'quads2', 'id', 'features', 'label', hidden => '{32}', epochs => 40,
                   options => '{"lr": 0.01, "batch_size": 32, "seed": 3, "standardize": false}');
-- each from the trained model (rolled back), with the options it recorded:
-- the paper's values are the defaults of its methods
BEGIN;
SELECT method, rows, forgotten FROM unlearn_rows('quads2', ARRAY[50], '{"method": "neggrad", "lr": 0.1}');
SELECT options->>'method' AS method, (options->>'lr')::float8 AS lr, (options->>'momentum')::float8 AS momentum,
       (options->>'weight_decay')::float8 AS weight_decay
FROM unlearn.versions WHERE model = 'quads2' ORDER BY version DESC LIMIT 1;
ROLLBACK;
BEGIN;
SELECT method, rows, forgotten FROM unlearn_rows('quads2', ARRAY[51], '{"method": "adv+imp", "lr": 0.01, "adv_per_row": 4, "pgd_steps": 10}');
SELECT options->>'method' AS method, (options->>'imp_lambda')::float8 AS imp_lambda,
       (options->>'pgd_eps')::float8 AS pgd_eps, (options->>'pgd_alpha')::float8 AS pgd_alpha,
       (options->>'adv_per_row')::int AS adv_per_row, (options->>'forget_batch')::int AS forget_batch,
       (options->>'adv_batch')::int AS adv_batch
FROM unlearn.versions WHERE model = 'quads2' ORDER BY version DESC LIMIT 1;
ROLLBACK;
SELECT method, rows, forgotten FROM unlearn_rows('quads2', ARRAY[51], '{"method": "adv", "lr": 0.01, "adv_per_row": 4, "pgd_steps": 10}');
-- a known weakness of the faithful methods: their unbounded -CE on the earlier
-- row fights the new request, and the run gives up within its cap
SELECT err($$SELECT unlearn_rows('quads2', ARRAY[52], '{"method": "adv+imp", "lr": 0.01, "adv_per_row": 4, "pgd_steps": 10}')$$);
SELECT unlearn_confirm_forgotten('quads2') AS confirmed;

-- bad input
SELECT err($$SELECT unlearn_rows('no_such_model', ARRAY[1])$$);
SELECT err($$SELECT unlearn_rows('quads', '{}'::int[])$$);
SELECT err($$SELECT unlearn_rows('quads', ARRAY[1, NULL])$$);
SELECT err($$SELECT unlearn_rows('quads', ARRAY['a'])$$);
SELECT err($$SELECT unlearn_rows('quads', ARRAY[[1, 2], [3, 4]])$$);
SELECT err($$SELECT unlearn_rows('quads', ARRAY[1, 99999, 99998])$$);
SELECT err($$SELECT unlearn_rows('quads', ARRAY[5])$$);
INSERT INTO quads VALUES (1000, '{0, 0, 0, 0}', 0);
SELECT err($$SELECT unlearn_rows('quads', ARRAY[1000])$$);
SELECT err($$SELECT unlearn_rows('quads', ARRAY[1], '{"method": "magic"}')$$);
SELECT err($$SELECT unlearn_rows('quads', ARRAY[1], '{"lr": 0}')$$);
SELECT err($$SELECT unlearn_rows('quads', ARRAY[1], '{"epochs": 3}')$$);
SELECT err($$SELECT unlearn_rows('quads2', ARRAY[53], '{"method": "neggrad", "lr": 1e-9, "max_steps": 3}')$$);
SELECT err($$SELECT unlearn_relabel('quads', ARRAY[1, 2], ARRAY[0])$$);
SELECT err($$SELECT unlearn_relabel('quads', ARRAY[1], ARRAY[7])$$);
SELECT err($$SELECT unlearn_relabel('quads', ARRAY[1, 1], ARRAY[0, 1])$$);
SELECT err($$SELECT unlearn_relabel('quads', ARRAY[1], ARRAY[NULL::int])$$);
SELECT err($$SELECT unlearn_retrain('no_such_model')$$);
SELECT err($$SELECT unlearn_confirm_forgotten('no_such_model')$$);
-- nothing changed by the failures
SELECT current_version, (SELECT count(*) FROM inspect.forgotten WHERE model = 'quads') AS ledger,
       (SELECT count(*) FROM quads) AS table_rows
FROM unlearn.models WHERE name = 'quads';

-- the owner needs DELETE (UPDATE) on the table to unlearn (relabel): checked before any work
-- superuser: creating a role needs CREATEROLE, granting CREATE on public its owner
RESET ROLE;
CREATE ROLE unlearn_erin;
GRANT CREATE ON SCHEMA public TO unlearn_erin;
SET ROLE regress_owner;
CREATE TABLE erin_data AS SELECT * FROM quads2;
GRANT SELECT, TRIGGER ON erin_data TO unlearn_erin;
SET ROLE unlearn_erin;
SELECT model FROM unlearn_train('erin', 'erin_data', 'id', 'features', 'label', hidden => '{4}', epochs => 2);
SELECT err($$SELECT unlearn_rows('erin', ARRAY[1])$$);
SELECT err($$SELECT unlearn_relabel('erin', ARRAY[1], ARRAY[0])$$);
-- superuser: shows that a superuser may drop a model it does not own
RESET ROLE;
SELECT unlearn_drop_model('erin');
SET ROLE regress_owner;
DROP TABLE erin_data;
-- superuser: dropping a role needs CREATEROLE
RESET ROLE;
REVOKE ALL ON SCHEMA public FROM unlearn_erin;
DROP ROLE unlearn_erin;

-- only the owner unlearns
-- superuser: creating a role needs CREATEROLE
CREATE ROLE unlearn_carol;
SET ROLE regress_owner;
GRANT SELECT, DELETE, UPDATE ON quads TO unlearn_carol;
SET ROLE unlearn_carol;
SELECT err($$SELECT unlearn_rows('quads', ARRAY[1])$$);
SELECT err($$SELECT unlearn_relabel('quads', ARRAY[1], ARRAY[0])$$);
SELECT err($$SELECT unlearn_retrain('quads')$$);
-- nor does anything else reserved to the owner, table privileges or not
SELECT err($$SELECT unlearn_auto('quads', false)$$);
SELECT err($$SELECT unlearn_retry('quads')$$);
SELECT err($$SELECT * FROM unlearn_purge('quads')$$);
SELECT err($$SELECT unlearn_drop_model('quads')$$);
-- but she may use and check the model
SELECT unlearn_confirm_forgotten('quads') AS carol_can_check;
SELECT unlearn_wait('quads', '1 s') AS carol_can_wait;
SET ROLE regress_owner;
REVOKE ALL ON quads FROM unlearn_carol;
-- superuser: dropping a role needs CREATEROLE
RESET ROLE;
DROP ROLE unlearn_carol;
SET ROLE regress_owner;

-- dropping a model drops its ledger
SELECT unlearn_drop_model('quads2');
SELECT count(*) FROM inspect.forgotten WHERE model = 'quads2';
