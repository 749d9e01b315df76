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
-- the setting is the default of a model that has a reference.  The floor:
-- the next two rows by id are hard ones, their losses already above their
-- reference targets (the NOTICE); without the floor they were recorded
-- forgotten untouched, now the run must raise them (both floored), keeping
-- the 35 earlier rows forgotten: version 4
CREATE TEMP TABLE hard AS SELECT id FROM halo
    WHERE unlearn_predict('halo', features) = label::text AND id NOT IN (SELECT id FROM unlearn_forgotten('halo'))
    ORDER BY id LIMIT 2;
CREATE TEMP TABLE hard_before AS
SELECT id, (unlearn_predict_proba('halo', features))[label + 1] AS p FROM halo WHERE id IN (SELECT id FROM hard);
SELECT version, rows, forgotten, prior FROM unlearn_rows('halo', ARRAY(SELECT id FROM hard));
SELECT metrics->>'target' AS target, metrics->'unseen_floored' AS floored
FROM inspect.versions WHERE model = 'halo' AND version = 4;
-- each was changed: its probability of its label fell (unlearn_forgotten
-- reads the ledger's copies, the rows are gone from the table)
SELECT count(*) AS lowered FROM hard_before b JOIN unlearn_forgotten('halo') f USING (id)
WHERE f.true_class_probability < b.p AND f.forgotten;
-- the two rows the model is surest of: version 5, target unseen, none floored
SELECT version, rows, forgotten FROM unlearn_rows('halo', ARRAY(SELECT id FROM halo
    WHERE unlearn_predict('halo', features) = label::text AND id NOT IN (SELECT id FROM unlearn_forgotten('halo'))
    ORDER BY (unlearn_predict_proba('halo', features))[label + 1] DESC, id LIMIT 2));
SELECT metrics->>'target' AS target, metrics->'unseen_floored' AS floored
FROM inspect.versions WHERE model = 'halo' AND version = 5;
RESET ROLE;
RESET unlearn.target;
SET ROLE regress_owner;
-- bad values
SELECT err($$SELECT * FROM unlearn_rows('halo', ARRAY[4::bigint], options => '{"target": "forget"}')$$);
SELECT err($$SELECT * FROM unlearn_rows('halo', ARRAY[4::bigint], options => '{"target": 1}')$$);

-- an exact retrain (with the training's held-out rows) records a fresh reference
SELECT version FROM unlearn_retrain('halo');
SELECT guarantee, jsonb_array_length(metrics->'unseen_loss') AS points FROM inspect.versions
WHERE model = 'halo' AND version = 6;
SELECT unlearn_confirm_forgotten('halo');

-- the floor: a table whose every row has a twin (ids i and i + 1000).  The
-- held-out rows are twins of training rows, so the reference collapses to
-- training losses; no target is at or below the row's loss before the run:
-- the floor raises it to ln(1 + 2 (e^loss - 1)), twice the odds against the
-- label (a NOTICE says how many; the metrics' unseen_floored), so the run
-- must change every such row
CREATE TABLE twins AS
SELECT i + d AS id,
       ARRAY[(i % 3) + 0.7 * sin(i * 12.9898), (i % 3 = 1)::int + 0.7 * cos(i * 78.233)]::real[] AS features,
       i % 3 AS label
FROM generate_series(1, 300) i, (VALUES (0::bigint), (1000)) d(d);
SELECT model, version FROM unlearn_train('twins', 'twins', 'id', 'features', 'label', hidden => '{16}', epochs => 30,
                                         options => '{"lr": 0.01, "batch_size": 32, "seed": 1, "validation": 0.2}',
                                         auto_unlearn => false);
CREATE TEMP TABLE twin_gone AS
SELECT id, features, label, -ln((unlearn_predict_proba('twins', features))[label + 1]) AS loss_before
FROM twins WHERE unlearn_predict('twins', features) = label::text AND id < 1000 ORDER BY id LIMIT 10;
SELECT version, rows, forgotten FROM unlearn_rows('twins', ARRAY(SELECT id FROM twin_gone),
                                                  options => '{"target": "unseen"}');
SELECT metrics->>'target' AS target, (metrics->>'unseen_floored')::int > 0 AS some_floored,
       (metrics->>'unseen_floored')::int <= 10 AS at_most_all
FROM inspect.versions WHERE model = 'twins' AND version = 2;
-- every target is above the row's loss before; a floored one well above:
-- ln(1 + 2 (e^L - 1)) / L is at least ln 5 / ln 3 (1.46) for a row predicted
-- right (L < ln 3 with 3 classes)
SELECT count(*) AS rows, bool_and(f.target_loss > g.loss_before) AS above_loss_before,
       count(*) FILTER (WHERE f.target_loss >= 1.4 * g.loss_before) >=
         (SELECT (metrics->>'unseen_floored')::int FROM inspect.versions WHERE model = 'twins' AND version = 2)
         AS floored_well_above
FROM inspect.forgotten f JOIN twin_gone g USING (id) WHERE f.model = 'twins';
-- and the run reached them: each row's loss now is at its target, or it is misclassified
SELECT count(*) FILTER (WHERE forgotten) AS forgotten FROM unlearn_forgotten('twins');
SELECT bool_and(-ln((unlearn_predict_proba('twins', t.features))[t.label + 1]) >= f.target_loss * (1 - 1e-4)
                OR unlearn_predict('twins', t.features) <> t.label::text) AS at_target_or_misclassified
FROM inspect.forgotten f JOIN twin_gone t USING (id) WHERE f.model = 'twins';
SELECT unlearn_confirm_forgotten('twins');
SELECT unlearn_drop_model('twins');
DROP TABLE twins;

SELECT unlearn_drop_model('halo');
SELECT unlearn_drop_model('halo_plain');
DROP TABLE halo, halo_plain;
RESET ROLE;
