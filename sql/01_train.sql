-- Training: unlearn_train on small data the test makes itself, the catalog
-- it writes, determinism, and every bad input with its SQLSTATE.
--
-- Suites 01 to 07 run as regress_owner, an ordinary role (no SUPERUSER,
-- CREATEROLE or CREATEDB) that owns its tables and models.  Only what
-- rightly needs a superuser runs as the one pg_regress connects as, each
-- step between RESET ROLE and SET ROLE with a comment saying why.

-- superuser: the extension is superuser = true (it loads C code, event triggers)
CREATE EXTENSION IF NOT EXISTS unlearn;
-- superuser: creating a role needs CREATEROLE; public is owned by the database
-- owner, and since PostgreSQL 15 only it may grant CREATE there
CREATE ROLE regress_owner LOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB;
GRANT CREATE ON SCHEMA public TO regress_owner;
-- superuser: the raw queue, ledger, manifests and weights are readable by the
-- catalog owner only (owners use unlearn.status, unlearn_forgotten and
-- unlearn_manifest); the suites check them through these views, which run
-- with their owner's (the superuser's) rights
CREATE SCHEMA inspect;
CREATE VIEW inspect.requests AS SELECT * FROM unlearn.requests;
CREATE VIEW inspect.forgotten AS SELECT * FROM unlearn.forgotten;
CREATE VIEW inspect.manifests AS SELECT * FROM unlearn.manifests;
CREATE VIEW inspect.versions AS SELECT * FROM unlearn.versions;
GRANT USAGE ON SCHEMA inspect TO regress_owner;
GRANT SELECT ON ALL TABLES IN SCHEMA inspect TO regress_owner;
SET ROLE regress_owner;

-- err(q): runs q and returns its SQLSTATE, message and detail, or 'ok'.
CREATE FUNCTION err(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	detail text;
BEGIN
	EXECUTE q;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
	RETURN SQLSTATE || ': ' || SQLERRM || coalesce(' (' || nullif(detail, '') || ')', '');
END $$;

-- Three separable clusters in 2-D with deterministic jitter.
CREATE TABLE blobs AS
SELECT i::bigint AS id,
       ARRAY[(i % 3) * 2.0 + 0.4 * sin(i * 12.9898),
             CASE WHEN i % 3 = 1 THEN 2.0 ELSE 0.0 END + 0.4 * cos(i * 78.233)]::real[] AS features,
       (i % 3) AS label
FROM generate_series(1, 300) i;

SELECT model, version, rows, classes, train_accuracy > 0.95 AS fits, seconds >= 0 AS timed,
       load_seconds >= 0 AND train_seconds >= 0 AS split_timed
FROM unlearn_train('blobs_mlp', 'blobs', 'id', 'features', 'label',
                   hidden => '{16}', epochs => 30, options => '{"seed": 7, "lr": 0.01, "batch_size": 32}');

-- softmax regression
SELECT model, version, rows, classes, train_accuracy > 0.9 AS fits
FROM unlearn_train('blobs_softmax', 'blobs', 'id', 'features', 'label', hidden => '{}', epochs => 100,
                   options => '{"lr": 0.05, "batch_size": 16}');
-- every argument after label_column has a default: one hidden layer of 128, 10 epochs, Adam
SELECT model, version, rows, classes
FROM unlearn_train('blobs_default', 'blobs', 'id', 'features', 'label');

-- the catalog: defaults filled in, classes in output order, version 1
SELECT name, owner = (SELECT oid FROM pg_roles WHERE rolname = current_user) AS owned,
       relation, id_column, features_column, label_column, label_type, features, hidden, classes,
       current_version, options
FROM unlearn.models ORDER BY name;
SELECT model, version, parent, reason, method, rows, length(weights) > 0 AS has_weights,
       (metrics->>'train_accuracy')::float8 > 0.9 AS metric_ok, created_by
FROM inspect.versions ORDER BY model, version;
SELECT DISTINCT owner FROM unlearn.models;

-- the manifest records exactly the rows that trained version 1
SELECT count(*), min(m), max(m), count(DISTINCT m) FROM unlearn_manifest('blobs_mlp') m;
SELECT (SELECT array_agg(id ORDER BY id) FROM blobs) =
       (SELECT ids FROM inspect.manifests WHERE model = 'blobs_mlp' AND version = 1) AS manifest_matches;
SELECT err($$SELECT unlearn_manifest('blobs_mlp', 9)$$);

-- same seed, data and options: the same bytes; another seed: other bytes
SELECT model FROM unlearn_train('blobs_again', 'blobs', 'id', 'features', 'label',
                   hidden => '{16}', epochs => 30, options => '{"seed": 7, "lr": 0.01, "batch_size": 32}');
SELECT model FROM unlearn_train('blobs_seed8', 'blobs', 'id', 'features', 'label',
                   hidden => '{16}', epochs => 30, options => '{"seed": 8, "lr": 0.01, "batch_size": 32}');
SELECT a.weights = b.weights AS same_seed_same_bytes, a.weights <> c.weights AS other_seed_other_bytes
FROM inspect.versions a, inspect.versions b, inspect.versions c
WHERE a.model = 'blobs_mlp' AND b.model = 'blobs_again' AND c.model = 'blobs_seed8';

-- SGD with momentum, two hidden layers, double precision features
CREATE TABLE blobs8 AS SELECT id, features::float8[] AS features, label FROM blobs;
SELECT model, classes, train_accuracy > 0.9 AS fits
FROM unlearn_train('blobs_sgd', 'blobs8', 'id', 'features', 'label', hidden => '{8,8}', epochs => 40,
                   options => '{"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 0.0001, "seed": 1}');

-- text labels
CREATE TABLE pets AS
SELECT id, features, (ARRAY['cat', 'dog', 'eel'])[label + 1] AS kind FROM blobs;
SELECT model, classes, train_accuracy > 0.9 AS fits
FROM unlearn_train('pets', 'pets', 'id', 'features', 'kind', hidden => '{8}', epochs => 30,
                   options => '{"lr": 0.01, "batch_size": 16}');
SELECT classes, label_type FROM unlearn.models WHERE name = 'pets';

-- ---------------------------------------------------------------- bad input
SELECT count(*) AS models_before FROM unlearn.models;
-- duplicate model name
SELECT err($$SELECT unlearn_train('blobs_mlp', 'blobs', 'id', 'features', 'label')$$);
-- missing columns
SELECT err($$SELECT unlearn_train('x', 'blobs', 'nope', 'features', 'label')$$);
SELECT err($$SELECT unlearn_train('x', 'blobs', 'id', 'nope', 'label')$$);
SELECT err($$SELECT unlearn_train('x', 'blobs', 'id', 'features', 'nope')$$);
-- missing relation
SELECT err($$SELECT unlearn_train('x', 'no_such_table', 'id', 'features', 'label')$$);
-- wrong column types
CREATE TABLE wrong_types AS
SELECT id::text AS tid, id, ARRAY[1, 2]::int[] AS ifeat, features, label::float8 AS flabel, label
FROM blobs;
SELECT err($$SELECT unlearn_train('x', 'wrong_types', 'tid', 'features', 'label')$$);
SELECT err($$SELECT unlearn_train('x', 'wrong_types', 'id', 'ifeat', 'label')$$);
SELECT err($$SELECT unlearn_train('x', 'wrong_types', 'id', 'features', 'flabel')$$);
-- char(n) labels are refused: their padding would make predictions compare unequal
CREATE TABLE padded AS SELECT id, features, label::char(6) AS plabel FROM blobs;
SELECT err($$SELECT unlearn_train('x', 'padded', 'id', 'features', 'plabel')$$);
-- a view trains, but cannot capture deletes: refused before any work unless auto_unlearn is off
CREATE VIEW blobs_view AS SELECT * FROM blobs;
SELECT err($$SELECT unlearn_train('x', 'blobs_view', 'id', 'features', 'label')$$);
SELECT model, rows FROM unlearn_train('from_view', 'blobs_view', 'id', 'features', 'label', hidden => '{4}',
                   epochs => 1, auto_unlearn => false);
SELECT unlearn_drop_model('from_view');
-- NULL feature array, NULL element, ragged, 2-D, empty, NaN, infinity
CREATE TABLE bad AS SELECT * FROM blobs WHERE id <= 20;
UPDATE bad SET features = NULL WHERE id = 5;
SELECT err($$SELECT unlearn_train('x', 'bad', 'id', 'features', 'label')$$);
UPDATE bad SET features = '{1, NULL}' WHERE id = 5;
SELECT err($$SELECT unlearn_train('x', 'bad', 'id', 'features', 'label')$$);
UPDATE bad SET features = '{1, 2, 3}' WHERE id = 5;
SELECT err($$SELECT unlearn_train('x', 'bad', 'id', 'features', 'label')$$);
UPDATE bad SET features = '{{1, 2}, {3, 4}}' WHERE id = 5;
SELECT err($$SELECT unlearn_train('x', 'bad', 'id', 'features', 'label')$$);
UPDATE bad SET features = '{}' WHERE id = 1;
UPDATE bad SET features = '{1, 2}' WHERE id = 5;
SELECT err($$SELECT unlearn_train('x', 'bad', 'id', 'features', 'label')$$);
UPDATE bad SET features = '{1, 2}' WHERE id = 1;
UPDATE bad SET features = '{1, NaN}' WHERE id = 5;
SELECT err($$SELECT unlearn_train('x', 'bad', 'id', 'features', 'label')$$);
UPDATE bad SET features = '{Infinity, 1}' WHERE id = 5;
SELECT err($$SELECT unlearn_train('x', 'bad', 'id', 'features', 'label')$$);
UPDATE bad SET features = '{1, 2}' WHERE id = 5;
-- NULL label, NULL id, duplicate id
UPDATE bad SET label = NULL WHERE id = 6;
SELECT err($$SELECT unlearn_train('x', 'bad', 'id', 'features', 'label')$$);
UPDATE bad SET label = 0 WHERE id = 6;
UPDATE bad SET id = NULL WHERE id = 7;
SELECT err($$SELECT unlearn_train('x', 'bad', 'id', 'features', 'label')$$);
UPDATE bad SET id = 8 WHERE id IS NULL;
SELECT err($$SELECT unlearn_train('x', 'bad', 'id', 'features', 'label')$$);
-- fewer than two classes, empty table
CREATE TABLE one_class AS SELECT * FROM blobs WHERE label = 1;
SELECT err($$SELECT unlearn_train('x', 'one_class', 'id', 'features', 'label')$$);
CREATE TABLE empty (LIKE blobs);
SELECT err($$SELECT unlearn_train('x', 'empty', 'id', 'features', 'label')$$);
-- bad arguments and options
SELECT err($$SELECT unlearn_train('', 'blobs', 'id', 'features', 'label')$$);
SELECT err($$SELECT unlearn_train(NULL, 'blobs', 'id', 'features', 'label')$$);
SELECT err($$SELECT unlearn_train('x', 'blobs', 'id', 'features', 'label', hidden => '{0}')$$);
SELECT err($$SELECT unlearn_train('x', 'blobs', 'id', 'features', 'label', hidden => '{4,NULL}')$$);
SELECT err($$SELECT unlearn_train('x', 'blobs', 'id', 'features', 'label', hidden => '{1,1,1,1,1,1,1,1}')$$);
SELECT err($$SELECT unlearn_train('x', 'blobs', 'id', 'features', 'label', hidden => NULL)$$);
SELECT err($$SELECT unlearn_train('x', 'blobs', 'id', 'features', 'label', epochs => 0)$$);
SELECT err($$SELECT unlearn_train('x', 'blobs', 'id', 'features', 'label', options => '{"learning_rate": 0.1}')$$);
SELECT err($$SELECT unlearn_train('x', 'blobs', 'id', 'features', 'label', options => '{"lr": -1}')$$);
SELECT err($$SELECT unlearn_train('x', 'blobs', 'id', 'features', 'label', options => '{"lr": "fast"}')$$);
SELECT err($$SELECT unlearn_train('x', 'blobs', 'id', 'features', 'label', options => '{"optimizer": "lbfgs"}')$$);
SELECT err($$SELECT unlearn_train('x', 'blobs', 'id', 'features', 'label', options => '{"batch_size": 2.5}')$$);
SELECT err($$SELECT unlearn_train('x', 'blobs', 'id', 'features', 'label', options => '[1, 2]')$$);
-- nothing half-written by any of the failures
SELECT count(*) AS models_after FROM unlearn.models;
SELECT count(*) AS versions_of_x FROM unlearn.versions WHERE model = 'x';

-- versions are immutable: the owner may not write the catalog at all ...
SELECT err($$UPDATE unlearn.versions SET reason = 'edited' WHERE model = 'blobs_mlp'$$);
SELECT err($$UPDATE unlearn.manifests SET ids = '{}' WHERE model = 'blobs_mlp'$$);
-- ... and even a superuser, who may, is refused by the immutability triggers
RESET ROLE;
SELECT err($$UPDATE unlearn.versions SET reason = 'edited' WHERE model = 'blobs_mlp'$$);
SELECT err($$UPDATE unlearn.manifests SET ids = '{}' WHERE model = 'blobs_mlp'$$);
SET ROLE regress_owner;

-- dropping
SELECT unlearn_drop_model('blobs_seed8');
SELECT count(*) FROM unlearn.models WHERE name = 'blobs_seed8';
SELECT count(*) FROM unlearn.versions WHERE model = 'blobs_seed8';
SELECT count(*) FROM inspect.manifests WHERE model = 'blobs_seed8';
SELECT err($$SELECT unlearn_drop_model('blobs_seed8')$$);
SELECT err($$SELECT unlearn_drop_model(NULL)$$);
