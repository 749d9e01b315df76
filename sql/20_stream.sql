-- Tables larger than memory: unlearn.max_training_memory (bad values
-- refused), training in chunks when the rows would hold more (the version's
-- "stream" metrics: chunks, passes, the most rows held), accuracy against
-- training in memory, the same weights for a seed, a complete manifest,
-- unlearning and retraining under the bound (its replay sample bounded),
-- the in-memory path unchanged when the table fits, and the refusals
-- (0A000: shards, early stopping, column models; 22023: a bound below a
-- batch).  As the ordinary model owner (see 01_train).
SET ROLE regress_owner;

-- the setting: -1 (no bound, the default) or at least 64 kB, in kB units
SHOW unlearn.max_training_memory;
SELECT err($$SET unlearn.max_training_memory = -2$$) AS minus_two,
       err($$SET unlearn.max_training_memory = 0$$) AS zero,
       err($$SET unlearn.max_training_memory = '63kB'$$) AS below_64kb,
       err($$SET unlearn.max_training_memory = 'lots'$$) AS not_a_size,
       err($$SET unlearn.max_training_memory = '3TB'$$) AS too_big;
SET unlearn.max_training_memory = '1MB';
SHOW unlearn.max_training_memory;
RESET unlearn.max_training_memory;

-- 4000 rows of 16 features, 3 classes (the argmax of the first three
-- features): 80 bytes a row held, 320 kB in all
CREATE TABLE st_pts AS
SELECT i::bigint AS id,
       ARRAY(SELECT sin(i * (j + 1) * 1.618 + j) FROM generate_series(0, 15) j)::real[] AS x,
       (SELECT j FROM generate_series(0, 2) j ORDER BY sin(i * (j + 1) * 1.618 + j) DESC LIMIT 1) AS label
FROM generate_series(1, 4000) i;
ALTER TABLE st_pts ADD PRIMARY KEY (id);
SELECT label, count(*) FROM st_pts GROUP BY label ORDER BY label;

-- in memory (no bound), and with a bound the table fits in: the same weights
SELECT rows, train_accuracy > 0.9 AS fits
FROM unlearn_train('st_mem', 'st_pts', 'id', 'x', 'label', hidden => '{16}', epochs => 12,
                   options => '{"seed": 3, "lr": 0.01}', auto_unlearn => false);
SET unlearn.max_training_memory = '1MB';
SELECT rows FROM unlearn_train('st_fits', 'st_pts', 'id', 'x', 'label', hidden => '{16}', epochs => 12,
                               options => '{"seed": 3, "lr": 0.01}', auto_unlearn => false);
SELECT (SELECT weights_sha256 FROM unlearn.versions WHERE model = 'st_mem')
     = (SELECT weights_sha256 FROM unlearn.versions WHERE model = 'st_fits') AS same_weights,
       (SELECT metrics ? 'stream' FROM unlearn.versions WHERE model = 'st_fits') AS streamed;

-- 64 kB holds 819 rows: 5 chunks, read 1 + 12 + 1 times (statistics, epochs, accuracy)
SET unlearn.max_training_memory = '64kB';
SELECT rows, classes, train_accuracy > 0.9 AS fits
FROM unlearn_train('st_a', 'st_pts', 'id', 'x', 'label', hidden => '{16}', epochs => 12,
                   options => '{"seed": 3, "lr": 0.01}');
SELECT metrics->'stream' AS stream FROM unlearn.versions WHERE model = 'st_a';
-- comparable to training in memory, on the table and on rows it never saw
SELECT abs((SELECT (metrics->>'train_accuracy')::float8 FROM unlearn.versions WHERE model = 'st_a')
         - (SELECT (metrics->>'train_accuracy')::float8 FROM unlearn.versions WHERE model = 'st_mem')) < 0.03
       AS comparable;
CREATE TABLE st_test AS
SELECT i::bigint AS id,
       ARRAY(SELECT sin(i * (j + 1) * 1.618 + j) FROM generate_series(0, 15) j)::real[] AS x,
       (SELECT j FROM generate_series(0, 2) j ORDER BY sin(i * (j + 1) * 1.618 + j) DESC LIMIT 1) AS label
FROM generate_series(10001, 11000) i;
SELECT m, rows, accuracy > 0.9 AS accurate FROM unnest(ARRAY['st_mem', 'st_a']) m, unlearn_evaluate(m, 'st_test')
ORDER BY m;
-- integer labels of several digits: in chunks as in memory, the classes in
-- the order of their values (not "10" before "2"), every row mapped to its class
CREATE TABLE st_wide AS SELECT id, x, (ARRAY[2, 10, 300])[label + 1] AS label FROM st_pts;
ALTER TABLE st_wide ADD PRIMARY KEY (id);
SELECT rows, train_accuracy > 0.9 AS fits
FROM unlearn_train('st_wide', 'st_wide', 'id', 'x', 'label', hidden => '{16}', epochs => 12,
                   options => '{"seed": 3, "lr": 0.01}', auto_unlearn => false);
SELECT classes, metrics ? 'stream' AS streamed
FROM unlearn.models m JOIN unlearn.versions v ON v.model = m.name WHERE m.name = 'st_wide';
SELECT count(*) FILTER (WHERE unlearn_predict('st_wide', x) = label) > 3600 AS predicts_its_labels FROM st_wide;
SELECT unlearn_drop_model('st_wide');
DROP TABLE st_wide;
-- text labels under a nondeterministic collation: in chunks as in memory,
-- distinct bytewise ("a" and "A" two classes); an exact retrain in chunks
-- leaves out a row relabelled to "B", no class though equal to "b" under
-- the collation, as a read in memory does
CREATE COLLATION st_ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
CREATE TABLE st_ci (id bigint PRIMARY KEY, x real[], label text COLLATE st_ci);
INSERT INTO st_ci SELECT id, x, (ARRAY['a', 'A', 'b'])[label + 1] FROM st_pts;
SELECT rows, classes, train_accuracy > 0.9 AS fits
FROM unlearn_train('st_ci', 'st_ci', 'id', 'x', 'label', hidden => '{16}', epochs => 12,
                   options => '{"seed": 3, "lr": 0.01}', auto_unlearn => false);
SELECT metrics ? 'stream' AS streamed FROM unlearn.versions WHERE model = 'st_ci';
UPDATE st_ci SET label = 'B' WHERE id = 11;
SELECT version, rows, forgotten FROM unlearn_rows('st_ci', ARRAY[9, 90], '{"method": "exact"}');
SELECT metrics->'rows' AS rows, metrics->'stream'->'chunks' AS chunks
FROM unlearn.versions WHERE model = 'st_ci' ORDER BY version DESC LIMIT 1;
SELECT count(*) AS manifest, bool_or(m = 11) AS relabelled_listed FROM unlearn_manifest('st_ci') m;
SELECT unlearn_drop_model('st_ci');
DROP TABLE st_ci;
DROP COLLATION st_ci;
-- the same seed, the same chunks: the same weights; another seed, others
SELECT version FROM unlearn_train('st_b', 'st_pts', 'id', 'x', 'label', hidden => '{16}', epochs => 12,
                                  options => '{"seed": 3, "lr": 0.01}', auto_unlearn => false);
SELECT version FROM unlearn_train('st_c', 'st_pts', 'id', 'x', 'label', hidden => '{16}', epochs => 12,
                                  options => '{"seed": 4, "lr": 0.01}', auto_unlearn => false);
SELECT (SELECT weights_sha256 FROM unlearn.versions WHERE model = 'st_a')
     = (SELECT weights_sha256 FROM unlearn.versions WHERE model = 'st_b') AS same_seed_same_weights,
       (SELECT weights_sha256 FROM unlearn.versions WHERE model = 'st_a')
     = (SELECT weights_sha256 FROM unlearn.versions WHERE model = 'st_c') AS other_seed_same_weights;
-- the manifest lists every row
SELECT count(*) AS manifest, count(*) = (SELECT count(*) FROM st_pts) AS complete,
       bool_and(m IN (SELECT id FROM st_pts)) AS all_ids
FROM unlearn_manifest('st_a') m;

-- unlearning under the bound: the replay and held-out samples shrink to 819 rows
SELECT version, rows, forgotten FROM unlearn_rows('st_a', ARRAY[5, 50, 500]);
SELECT (metrics->>'replay_rows')::int + (metrics->>'held_out_rows')::int <= 819 AS samples_bounded,
       (metrics->>'replay_rows')::int > 0 AS replays
FROM unlearn.versions WHERE model = 'st_a' AND version = 2;
SELECT count(*) AS manifest FROM unlearn_manifest('st_a');
SELECT unlearn_confirm_forgotten('st_a') AS confirmed;
-- a DELETE, unlearned by the worker
DELETE FROM st_pts WHERE id IN (7, 70);
SELECT unlearn_wait('st_a', '60 s') AS waited;
SELECT count(*) AS manifest, bool_or(m IN (7, 70)) AS deleted_listed FROM unlearn_manifest('st_a') m;
-- the exact method retrains on the remaining rows in chunks: its manifest lacks the rows
SELECT version, forgotten FROM unlearn_rows('st_a', ARRAY[9, 90], '{"method": "exact"}');
SELECT reason, guarantee, metrics->'rows' AS rows, metrics->'stream'->'chunks' AS chunks,
       (metrics->>'train_accuracy')::float8 > 0.9 AS fits
FROM unlearn.versions WHERE model = 'st_a' ORDER BY version DESC LIMIT 1;
SELECT count(*) AS manifest, bool_or(m IN (9, 90)) AS forgotten_listed FROM unlearn_manifest('st_a') m;
SELECT unlearn_confirm_forgotten('st_a') AS confirmed;
-- a retrain reads the table in chunks too: the rows now in it
SELECT version, rows, train_accuracy > 0.9 AS fits FROM unlearn_retrain('st_a');
SELECT metrics->'stream'->'chunks' AS chunks, metrics->'stream'->'passes' AS passes
FROM unlearn.versions WHERE model = 'st_a' ORDER BY version DESC LIMIT 1;
SELECT count(*) AS manifest FROM unlearn_manifest('st_a');

-- refusals: what chunks cannot train yet (0A000), a bound below a batch (22023); nothing registered
SELECT err($$SELECT unlearn_train('st_bad', 'st_pts', 'id', 'x', 'label', epochs => 2, options => '{"shards": 2}')$$)
       AS shards;
SELECT err($$SELECT unlearn_train('st_bad', 'st_pts', 'id', 'x', 'label', epochs => 2, options => '{"validation": 0.1}')$$)
       AS validation;
SELECT err($$SELECT unlearn_train('st_bad', 'st_pts', 'id', 'x', 'label', epochs => 2, options => '{"batch_size": 1000}')$$)
       AS batch;
CREATE TABLE st_cols AS SELECT id, x[1] AS a, x[2] AS b, x[3] AS c, label FROM st_pts;
SELECT err($$SELECT unlearn_train('st_bad', 'st_cols', 'id', NULL, 'label', epochs => 2)$$) AS column_model;
SELECT count(*) AS registered FROM unlearn.models WHERE name = 'st_bad';

RESET unlearn.max_training_memory;
SELECT unlearn_drop_model(m) FROM unnest(ARRAY['st_mem', 'st_fits', 'st_a', 'st_b', 'st_c']) m;
DROP TABLE st_pts, st_test, st_cols;
RESET ROLE;
