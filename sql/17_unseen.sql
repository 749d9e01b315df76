-- The unlearning target "unseen": instead of being misclassified, a
-- forgotten row's loss is raised to that of rows the model never saw (the
-- rows training held out, training option validation), each row to the
-- quantile of that reference at its own rank.  The ledger keeps each row's
-- target loss; unlearn_confirm_forgotten and unlearn_forgotten check it.

-- the setting: its default, values and who may set it
SELECT name, boot_val, context, enumvals FROM pg_settings WHERE name = 'unlearn.target';
SET ROLE regress_owner;
SELECT err($$SET unlearn.target = 'unseen'$$);

-- three overlapping blobs: rows the model never saw have losses well above 0
CREATE TABLE halo AS
SELECT i::bigint AS id,
       ARRAY[(i % 3) + 0.7 * sin(i * 12.9898), (i % 3 = 1)::int + 0.7 * cos(i * 78.233)]::real[] AS features,
       i % 3 AS label
FROM generate_series(1, 900) i;
SELECT model, version FROM unlearn_train('halo', 'halo', 'id', 'features', 'label', hidden => '{16}', epochs => 30,
                                         options => '{"lr": 0.01, "batch_size": 32, "seed": 1, "validation": 0.2}',
                                         auto_unlearn => false);
-- version 1 records 33 ascending, non-negative loss quantiles of its 180 held-out rows
CREATE TEMP VIEW ref AS
SELECT v.version, a.i, a.e::float4 AS q
FROM inspect.versions v, jsonb_array_elements_text(v.metrics->'unseen_loss') WITH ORDINALITY a(e, i)
WHERE v.model = 'halo';
SELECT count(*) AS points, bool_and(q >= 0) AS non_negative,
       bool_and(q <= coalesce(nxt, q)) AS ascending, max(q) > 0.05 AS not_all_zero
FROM (SELECT q, lead(q) OVER (ORDER BY i) AS nxt FROM ref WHERE version = 1) s;

-- 30 rows the model predicts right, forgotten with the target "unseen"
CREATE TEMP TABLE gone AS
SELECT id FROM halo WHERE unlearn_predict('halo', features) = label::text ORDER BY id LIMIT 30;
SELECT version, rows, forgotten, method FROM unlearn_rows('halo', ARRAY(SELECT id FROM gone),
                                                          options => '{"target": "unseen"}');
-- the version says so and carries the reference forward
SELECT metrics->>'target' AS target, metrics->'unseen_loss' = (SELECT metrics->'unseen_loss' FROM inspect.versions
                                                               WHERE model = 'halo' AND version = 1) AS same_reference
FROM inspect.versions WHERE model = 'halo' AND version = 2;
-- every row has a target from the reference's range; each is at its target
SELECT count(*) AS ledger_rows, count(target_loss) AS with_target,
       bool_and(target_loss BETWEEN (SELECT min(q) FROM ref WHERE version = 1) AND (SELECT max(q) FROM ref WHERE version = 1)) AS in_range
FROM inspect.forgotten WHERE model = 'halo';
SELECT count(*) AS rows, count(*) FILTER (WHERE forgotten) AS forgotten FROM unlearn_forgotten('halo');
SELECT unlearn_confirm_forgotten('halo');
-- unlike "misclassify", rows that look like unseen rows may still be predicted right
SELECT count(*) FILTER (WHERE predicted = label) > 0 AS some_still_right,
       count(*) FILTER (WHERE predicted <> label) > 0 AS some_misclassified
FROM unlearn_forgotten('halo');
-- the criterion can fail: a row still predicted right whose target is above its loss
CREATE TEMP TABLE still_right AS SELECT min(id) AS id FROM unlearn_forgotten('halo') WHERE predicted = label;
RESET ROLE;
BEGIN;
UPDATE unlearn.forgotten SET target_loss = 1000 WHERE model = 'halo' AND id = (SELECT id FROM still_right);
SET ROLE regress_owner;
SELECT unlearn_confirm_forgotten('halo');
SELECT id = (SELECT id FROM still_right) AS the_row, forgotten FROM unlearn_forgotten('halo') WHERE NOT forgotten;
ROLLBACK;
SET ROLE regress_owner;

-- a later run with the default target keeps the earlier rows at their targets
SELECT version, rows, forgotten, prior, method FROM unlearn_rows('halo',
    ARRAY(SELECT id FROM halo WHERE unlearn_predict('halo', features) = label::text
            AND id NOT IN (SELECT id FROM gone) ORDER BY id LIMIT 5));
SELECT metrics->>'target' AS target, (metrics->>'prior')::int AS prior, (metrics->>'prior_kept')::int AS prior_kept,
       metrics ? 'unseen_loss' AS reference_kept
FROM inspect.versions WHERE model = 'halo' AND version = 3;
SELECT count(target_loss) AS with_target, count(*) - count(target_loss) AS misclassified_rows
FROM inspect.forgotten WHERE model = 'halo';
SELECT count(*) AS rows, count(*) FILTER (WHERE forgotten) AS forgotten FROM unlearn_forgotten('halo');
SELECT unlearn_confirm_forgotten('halo');

-- a model trained without held-out rows has no reference
CREATE TABLE halo_plain AS
SELECT i::bigint AS id,
       ARRAY[(i % 3) + 0.7 * sin(i * 12.9898), (i % 3 = 1)::int + 0.7 * cos(i * 78.233)]::real[] AS features,
       i % 3 AS label
FROM generate_series(1, 900) i;
SELECT model, version FROM unlearn_train('halo_plain', 'halo_plain', 'id', 'features', 'label', hidden => '{16}',
                                         epochs => 30, options => '{"lr": 0.01, "batch_size": 32, "seed": 1}',
                                         auto_unlearn => false);
SELECT metrics ? 'unseen_loss' AS has_reference FROM inspect.versions WHERE model = 'halo_plain';
-- asked for in the options: an error, nothing changed
SELECT err($$SELECT * FROM unlearn_rows('halo_plain', ARRAY[3::bigint], options => '{"target": "unseen"}')$$);
SELECT current_version FROM unlearn.models WHERE name = 'halo_plain';
-- asked for by the setting alone: a NOTICE, and the run misclassifies
RESET ROLE;
SET unlearn.target = 'unseen';
SET ROLE regress_owner;
SHOW unlearn.target;
SELECT version, rows, forgotten FROM unlearn_rows('halo_plain', ARRAY[3::bigint]);
SELECT metrics->>'target' AS target FROM inspect.versions WHERE model = 'halo_plain' AND version = 2;
SELECT id, target_loss, forgotten FROM inspect.forgotten f JOIN unlearn_forgotten('halo_plain') u USING (id)
WHERE f.model = 'halo_plain';
-- the setting is the default of a model that has a reference
SELECT version, rows, forgotten FROM unlearn_rows('halo', ARRAY(SELECT id FROM halo
    WHERE unlearn_predict('halo', features) = label::text AND id NOT IN (SELECT id FROM unlearn_forgotten('halo'))
    ORDER BY id LIMIT 2));
SELECT metrics->>'target' AS target FROM inspect.versions WHERE model = 'halo' AND version = 4;
RESET ROLE;
RESET unlearn.target;
SET ROLE regress_owner;
-- bad values
SELECT err($$SELECT * FROM unlearn_rows('halo', ARRAY[4::bigint], options => '{"target": "forget"}')$$);
SELECT err($$SELECT * FROM unlearn_rows('halo', ARRAY[4::bigint], options => '{"target": 1}')$$);

-- an exact retrain (with the training's held-out rows) records a fresh reference
SELECT version FROM unlearn_retrain('halo');
SELECT guarantee, jsonb_array_length(metrics->'unseen_loss') AS points FROM inspect.versions
WHERE model = 'halo' AND version = 5;
SELECT unlearn_confirm_forgotten('halo');
SELECT unlearn_drop_model('halo');
SELECT unlearn_drop_model('halo_plain');
DROP TABLE halo, halo_plain;
RESET ROLE;
