-- Convolutional models: the options "input_shape" and "layers" (conv,
-- maxpool, dense), recorded in unlearn.models; training, prediction,
-- unlearn_rows, a DELETE unlearned by the worker, a retrain, the audit, a
-- dense-only layer list equal to the MLP of hidden, unlearn.max_model_size
-- counting the convolution workspace, and every bad layer list (22023).
-- As the ordinary model owner (see 01_train).
SET ROLE regress_owner;

-- 8 x 8 grey images of three classes: a horizontal bar (0), a vertical bar
-- (1) or a wrapped diagonal (2) at one of six places, on deterministic noise
CREATE FUNCTION bar_image(i int) RETURNS real[] LANGUAGE sql IMMUTABLE AS $$
SELECT array_agg(CASE WHEN (i % 3 = 0 AND p / 8 = 1 + (i / 3) % 6)
                        OR (i % 3 = 1 AND p % 8 = 1 + (i / 3) % 6)
                        OR (i % 3 = 2 AND p % 8 = (p / 8 + 1 + (i / 3) % 6) % 8)
                      THEN 0.75 + 0.25 * abs(sin(i * 7.31 + p))
                      ELSE 0.3 * abs(sin(i * 12.9898 + p * 78.233)) END ORDER BY p)::real[]
FROM generate_series(0, 63) p $$;
CREATE TABLE bars AS
SELECT i::bigint AS id, bar_image(i) AS pixels, i % 3 AS label FROM generate_series(1, 600) i;
CREATE TABLE bars_test AS
SELECT i::bigint AS id, bar_image(i) AS pixels, i % 3 AS label FROM generate_series(1001, 1300) i;

-- training: conv 8 3, maxpool 2, conv 8 3, maxpool 2, dense 16 (layers win over hidden)
SELECT model, version, rows, classes, train_accuracy > 0.95 AS fits
FROM unlearn_train('cnn', 'bars', 'id', 'pixels', 'label', hidden => '{5, 5}', epochs => 15,
                   options => '{"input_shape": [1, 8, 8], "lr": 0.01, "batch_size": 32,
                                "layers": ["conv 8 3", "maxpool 2", "conv 8  3", "maxpool 2", "dense 16"]}');
-- the architecture is in the catalog, spelled canonically
SELECT name, features, hidden, options->'input_shape' AS input_shape, options->'layers' AS layers
FROM unlearn.models WHERE name = 'cnn';

-- prediction
SELECT accuracy > 0.95 AS generalises FROM unlearn_evaluate('cnn', 'bars_test');
SELECT count(*) AS rows, count(*) FILTER (WHERE unlearn_predict('cnn', pixels) = label) > 290 AS mostly_right,
       count(*) FILTER (WHERE abs((SELECT sum(p) FROM unnest(unlearn_predict_proba('cnn', pixels)) p) - 1) < 1e-5)
         AS proba_sum_to_1
FROM bars_test;

-- unlearn_rows: the rows are misclassified, out of the manifest, in the ledger
CREATE TEMP TABLE cnn_gone AS SELECT * FROM bars WHERE id IN (3, 4, 5);
SELECT rows, forgotten, version FROM unlearn_rows('cnn', ARRAY[3, 4, 5]);
SELECT count(*) FILTER (WHERE unlearn_predict('cnn', pixels) <> label) AS misclassified FROM cnn_gone;
SELECT unlearn_confirm_forgotten('cnn') AS confirmed;
SELECT accuracy > 0.85 AS still_generalises FROM unlearn_evaluate('cnn', 'bars_test');

-- a DELETE, unlearned by the worker
INSERT INTO cnn_gone SELECT * FROM bars WHERE id IN (10, 11, 12);
DELETE FROM bars WHERE id IN (10, 11, 12);
SELECT unlearn_wait('cnn', '60 s') AS drained;
SELECT reason, rows FROM unlearn.versions WHERE model = 'cnn' ORDER BY version DESC LIMIT 1;
SELECT count(*) FILTER (WHERE unlearn_predict('cnn', pixels) <> label) AS misclassified FROM cnn_gone;
SELECT unlearn_confirm_forgotten('cnn') AS confirmed;
SELECT count(*) AS manifest_rows, count(*) FILTER (WHERE m IN (3, 4, 5, 10, 11, 12)) AS gone_in_manifest
FROM unlearn_manifest('cnn') m;
SELECT bool_and(valid) AS ledger_valid FROM unlearn_verify_ledger('cnn');
SELECT version, rows_forgotten, all_forgotten_misclassified, test_accuracy > 0.85 AS test_ok
FROM unlearn_audit('cnn', 'bars_test') ORDER BY version;

-- a retrain keeps the architecture; it cannot change it
SELECT version, train_accuracy > 0.95 AS fits FROM unlearn_retrain('cnn');
SELECT options->'layers' = (SELECT options->'layers' FROM unlearn.models WHERE name = 'cnn') AS same_layers
FROM unlearn.versions WHERE model = 'cnn' ORDER BY version DESC LIMIT 1;
SELECT err($$SELECT unlearn_retrain('cnn', '{"layers": ["dense 4"]}')$$);

-- a dense-only layer list is the MLP of hidden, bit for bit
SELECT model FROM unlearn_train('mlp_layers', 'bars_test', 'id', 'pixels', 'label', epochs => 2,
                                options => '{"layers": ["dense 16", "dense 8"]}', auto_unlearn => false);
SELECT model FROM unlearn_train('mlp_hidden', 'bars_test', 'id', 'pixels', 'label', hidden => '{16, 8}',
                                epochs => 2, auto_unlearn => false);
SELECT name, hidden, options ? 'input_shape' AS has_shape FROM unlearn.models
WHERE name IN ('mlp_layers', 'mlp_hidden') ORDER BY name;
SELECT count(*) FILTER (WHERE unlearn_predict_proba('mlp_layers', pixels) = unlearn_predict_proba('mlp_hidden', pixels))
       AS identical_rows
FROM bars_test;

-- unlearn.max_model_size counts the convolution workspace: 64 filters on
-- 8 x 8 images have few parameters but 4096 activations per row (a
-- superuser sets the cap)
RESET ROLE;
SET unlearn.max_model_size = '512kB';
SET ROLE regress_owner;
SELECT err($$SELECT unlearn_train('cnn_big', 'bars_test', 'id', 'pixels', 'label', epochs => 1,
          options => '{"input_shape": [1, 8, 8], "layers": ["conv 64 3"], "batch_size": 32}', auto_unlearn => false)$$);
SELECT model FROM unlearn_train('cnn_big', 'bars_test', 'id', 'pixels', 'label', epochs => 1,
          options => '{"input_shape": [1, 8, 8], "layers": ["conv 64 3"], "batch_size": 1}', auto_unlearn => false);
-- and an unlearning run's batches: 256 rows of 4096 activations and gradients are
-- about 8 MB, over the cap (the dense layers alone would be 0.2 MB)
SELECT err($$SELECT version FROM unlearn_rows('cnn_big', ARRAY[(SELECT min(id) FROM bars_test)])$$);
RESET ROLE;
RESET unlearn.max_model_size;
SET ROLE regress_owner;
BEGIN;
SELECT rows FROM unlearn_rows('cnn_big', ARRAY[(SELECT min(id) FROM bars_test)]);
ROLLBACK;

-- bad layer lists and shapes: 22023, nothing registered
SELECT ord, what, err(format($$SELECT unlearn_train('bad', 'bars', 'id', 'pixels', 'label', options => %L)$$, opts))
FROM (VALUES
  (1, 'unknown layer', '{"input_shape": [1, 8, 8], "layers": ["conv2d 8 3"]}'),
  (2, 'conv without kernel', '{"input_shape": [1, 8, 8], "layers": ["conv 8"]}'),
  (3, 'zero width', '{"input_shape": [1, 8, 8], "layers": ["dense 0"]}'),
  (4, 'pooled away', '{"input_shape": [1, 8, 8], "layers": ["maxpool 2", "maxpool 2", "maxpool 2", "maxpool 2"]}'),
  (5, 'even kernel', '{"input_shape": [1, 8, 8], "layers": ["conv 8 2"]}'),
  (6, 'conv after dense', '{"input_shape": [1, 8, 8], "layers": ["dense 8", "conv 8 3"]}'),
  (7, 'shape is not the features', '{"input_shape": [1, 8, 7], "layers": ["conv 8 3"]}'),
  (8, 'conv without shape', '{"layers": ["conv 8 3"]}'),
  (9, 'two dimensions', '{"input_shape": [8, 8], "layers": ["conv 8 3"]}'),
  (10, 'not an array', '{"input_shape": [1, 8, 8], "layers": "conv 8 3"}'),
  (11, 'not a string', '{"input_shape": [1, 8, 8], "layers": [["conv", 8, 3]]}'),
  (12, 'nine stages', '{"input_shape": [1, 8, 8], "layers": ["conv 1 1", "conv 1 1", "conv 1 1", "conv 1 1",
                        "conv 1 1", "conv 1 1", "conv 1 1", "conv 1 1", "conv 1 1"]}')
) AS t(ord, what, opts) ORDER BY ord;
SELECT count(*) AS registered FROM unlearn.models WHERE name = 'bad';

SELECT unlearn_drop_model('mlp_layers'), unlearn_drop_model('mlp_hidden'), unlearn_drop_model('cnn_big');
