-- Weight decay "auto" (the default of unlearn_train): chosen on held-out rows
-- by 3-fold cross-validation over 0, 0.001, 0.01 and 0.1 when the selection
-- fits in the step budget; recorded as "auto" so that unlearn_retrain and
-- exact deletes choose again on their own rows; no selection (and a model
-- identical to one trained with no decay) beyond the budget, with a number,
-- for a sharded model or with early stopping; bad values refused (22023).
-- As the ordinary model owner (see 01_train).
SET ROLE regress_owner;

-- 300 rows, one weak informative feature among 30 of noise (a hash of the
-- id): a wide network trained long fits the noise, held-out rows prefer a decay
CREATE TABLE wd_pts AS
SELECT i::bigint AS id,
       ARRAY(SELECT (CASE WHEN k = 0 THEN (i % 2) * 0.3 ELSE 0 END + h - floor(h))::real
             FROM generate_series(0, 30) k, LATERAL (SELECT sin(i * 12.9898 + k * 78.233) * 43758.5453) s(h)
             ORDER BY k) AS x,
       i % 2 AS label
FROM generate_series(1, 300) i;

SELECT model, rows FROM unlearn_train('wd_m', 'wd_pts', 'id', 'x', 'label', hidden => '{64}', epochs => 200,
                                      options => '{"batch_size": 32}');
-- recorded as "auto"; the metrics say what was chosen and why
SELECT options->'weight_decay' AS weight_decay FROM unlearn.models WHERE name = 'wd_m';
SELECT (w->>'selected')::bool AS selected, w->'candidates' AS candidates, w->'folds' AS folds,
       (w->>'chosen')::float8 > 0 AS decays,
       -- the chosen candidate got strictly more held-out rows right than no decay
       (w->'held_out_right'->>(SELECT i - 1 FROM jsonb_array_elements(w->'candidates') WITH ORDINALITY c(v, i)
                                WHERE v::float8 = (w->>'chosen')::float8)::int)::int
         > (w->'held_out_right'->>0)::int AS chosen_beats_none,
       (SELECT bool_and(v::int BETWEEN 0 AND 300) FROM jsonb_array_elements(w->'held_out_right') v) AS counts_in_range,
       (w->>'seconds')::float8 <= (metrics->>'train_seconds')::float8 AS counted_in_train_seconds
FROM unlearn.versions, LATERAL (SELECT metrics->'weight_decay') s(w) WHERE model = 'wd_m';

-- deterministic: the same call chooses the same and trains the same network
SELECT model FROM unlearn_train('wd_m2', 'wd_pts', 'id', 'x', 'label', hidden => '{64}', epochs => 200,
                                options => '{"batch_size": 32}', auto_unlearn => false);
SELECT (a.metrics->'weight_decay') - 'seconds' = (b.metrics->'weight_decay') - 'seconds' AS same_choice,
       a.weights_sha256 = b.weights_sha256 AS same_weights
FROM unlearn.versions a, unlearn.versions b WHERE a.model = 'wd_m' AND b.model = 'wd_m2';

-- the chosen decay given as a number: no selection, the same network
SELECT model FROM unlearn_train('wd_fixed', 'wd_pts', 'id', 'x', 'label', hidden => '{64}', epochs => 200,
                                options => jsonb_build_object('batch_size', 32, 'weight_decay',
                                  (SELECT (metrics->'weight_decay'->>'chosen')::float8 FROM unlearn.versions WHERE model = 'wd_m')),
                                auto_unlearn => false);
SELECT v.metrics ? 'weight_decay' AS has_selection, v.weights_sha256 = a.weights_sha256 AS same_as_auto
FROM unlearn.versions v, unlearn.versions a WHERE v.model = 'wd_fixed' AND a.model = 'wd_m';

-- a retrain chooses again (and, on the same rows, the same)
SELECT version FROM unlearn_retrain('wd_m');
SELECT version, metrics->'weight_decay'->'selected' AS selected,
       metrics->'weight_decay'->'held_out_right' = (SELECT metrics->'weight_decay'->'held_out_right'
                                                     FROM unlearn.versions WHERE model = 'wd_m' AND version = 1) AS same_counts
FROM unlearn.versions WHERE model = 'wd_m' AND version = 2;

-- an exact delete chooses on the remaining rows only: 8 rows fewer in every count's range
SELECT version, rows FROM unlearn_rows('wd_m', ARRAY[1, 2, 3, 4, 5, 6, 7, 8], '{"method": "exact"}');
SELECT rows, metrics->'weight_decay'->'selected' AS selected,
       (SELECT sum(v::int) FROM jsonb_array_elements(metrics->'weight_decay'->'held_out_right') v) <= 4 * rows AS within_rows,
       options->'weight_decay' AS weight_decay
FROM unlearn.versions WHERE model = 'wd_m' AND version = 3;

-- beyond the step budget (2 000 rows, 200 epochs): no selection, no decay,
-- the same network as {"weight_decay": 0}
CREATE TABLE wd_big AS
SELECT i::bigint AS id, ARRAY[(i % 2) + sin(i * 1.7), cos(i * 2.3)]::real[] AS x, i % 2 AS label
FROM generate_series(1, 2000) i;
SELECT model FROM unlearn_train('wd_big_auto', 'wd_big', 'id', 'x', 'label', hidden => '{8}', epochs => 200,
                                auto_unlearn => false);
SELECT model FROM unlearn_train('wd_big_0', 'wd_big', 'id', 'x', 'label', hidden => '{8}', epochs => 200,
                                options => '{"weight_decay": 0}', auto_unlearn => false);
SELECT a.metrics->'weight_decay' AS auto_metrics, a.weights_sha256 = z.weights_sha256 AS same_network
FROM unlearn.versions a, unlearn.versions z WHERE a.model = 'wd_big_auto' AND z.model = 'wd_big_0';

-- a sharded model and early stopping: no selection
SELECT model FROM unlearn_train('wd_sh', 'wd_pts', 'id', 'x', 'label', hidden => '{8}', epochs => 20,
                                options => '{"shards": 2}', auto_unlearn => false);
SELECT model FROM unlearn_train('wd_es', 'wd_pts', 'id', 'x', 'label', hidden => '{8}', epochs => 20,
                                options => '{"validation": 0.1}', auto_unlearn => false);
SELECT model, metrics->'weight_decay' AS weight_decay FROM unlearn.versions
WHERE model IN ('wd_sh', 'wd_es') ORDER BY model;

-- bad values: 22023, nothing registered
SELECT err(format($$SELECT unlearn_train('wd_bad', 'wd_pts', 'id', 'x', 'label', epochs => 2, options => %L)$$, o)) AS error
FROM unnest(ARRAY['{"weight_decay": "Auto"}', '{"weight_decay": "none"}', '{"weight_decay": -0.1}',
                  '{"weight_decay": 2}', '{"weight_decay": true}']) o;
SELECT count(*) AS registered FROM unlearn.models WHERE name = 'wd_bad';

SELECT unlearn_drop_model(m) FROM unnest(ARRAY['wd_m', 'wd_m2', 'wd_fixed', 'wd_big_auto', 'wd_big_0', 'wd_sh', 'wd_es']) m;
DROP TABLE wd_pts, wd_big;
RESET ROLE;
