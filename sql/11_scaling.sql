-- Standardisation inside the model: learned from the training rows by
-- default, off with {"standardize": false}, recorded in the options so a
-- retrain repeats it; models without the recorded option (0.1) are retrained
-- without it; stored models keep predicting identically; unlearning works on
-- a standardised model.  As the ordinary model owner (see 01_train).
SET ROLE regress_owner;

-- one feature in units of 1e4, one in units of 1e-3; the label needs both
CREATE TABLE scaled AS
SELECT i::bigint AS id,
       ARRAY[1e4 * sin(i * 12.9898), 1e-3 * cos(i * 78.233)]::real[] AS features,
       (sin(i * 12.9898) - cos(i * 78.233) > 0)::int AS label
FROM generate_series(1, 1000) i;

-- the default standardises and fits; without it the small feature is lost
-- (both without weight decay, which "auto" chooses for sc_std: only the
-- standardisation differs between them)
SELECT model, rows, train_accuracy > 0.9 AS fits
FROM unlearn_train('sc_std', 'scaled', 'id', 'features', 'label', auto_unlearn => false);
SELECT metrics->'weight_decay'->'chosen' AS sc_std_weight_decay FROM unlearn.versions WHERE model = 'sc_std';
SELECT model, train_accuracy < 0.8 AS underfits
FROM unlearn_train('sc_raw', 'scaled', 'id', 'features', 'label', options => '{"standardize": false, "weight_decay": 0}',
                   auto_unlearn => false);
SELECT (SELECT (metrics->>'train_accuracy')::float8 FROM unlearn.versions WHERE model = 'sc_std')
     - (SELECT (metrics->>'train_accuracy')::float8 FROM unlearn.versions WHERE model = 'sc_raw') > 0.3
       AS standardising_wins;
SELECT accuracy > 0.9 AS evaluates_well FROM unlearn_evaluate('sc_std', 'scaled');
-- the option is recorded
SELECT name, options->'standardize' AS standardize FROM unlearn.models
WHERE name IN ('sc_std', 'sc_raw') ORDER BY name;

-- a stored model predicts identically before and after another model's retrain
CREATE TEMP TABLE raw_before AS
SELECT id, unlearn_predict_proba('sc_raw', features) AS p FROM scaled;
CREATE TEMP TABLE std_before AS
SELECT id, unlearn_predict_proba('sc_std', features) AS p FROM scaled;
SELECT version, train_accuracy > 0.9 AS fits FROM unlearn_retrain('sc_std');
SELECT count(*) AS rows, count(*) FILTER (WHERE b.p = unlearn_predict_proba('sc_raw', s.features)) AS identical
FROM raw_before b JOIN scaled s USING (id);
-- the retrain repeated the standardisation (same seed, same rows: same predictions)
SELECT count(*) FILTER (WHERE b.p = unlearn_predict_proba('sc_std', s.features)) = count(*) AS same_as_v1
FROM std_before b JOIN scaled s USING (id);
-- and a retrain of the unstandardised model stays unstandardised
SELECT version, train_accuracy < 0.8 AS still_underfits FROM unlearn_retrain('sc_raw');
SELECT model, version, options->'standardize' AS standardize FROM unlearn.versions
WHERE model IN ('sc_std', 'sc_raw') ORDER BY model, version;

-- a model of 0.1 records no standardize: its retrain does not standardise
-- (a superuser strips the key to make one)
RESET ROLE;
UPDATE unlearn.models SET options = options - 'standardize' WHERE name = 'sc_std';
SET ROLE regress_owner;
SELECT version, train_accuracy < 0.8 AS unstandardised FROM unlearn_retrain('sc_std');
-- unless asked
SELECT version, train_accuracy > 0.9 AS standardised
FROM unlearn_retrain('sc_std', '{"standardize": true}');

-- unlearning works on a standardised model (the scaling stays fixed)
CREATE TABLE scaled2 AS SELECT * FROM scaled;
SELECT model FROM unlearn_train('sc_forget', 'scaled2', 'id', 'features', 'label');
CREATE TEMP TABLE sc_gone AS SELECT * FROM scaled2 WHERE id IN (7, 70, 700);
SELECT rows, forgotten FROM unlearn_rows('sc_forget', ARRAY[7, 70, 700]);
SELECT count(*) FILTER (WHERE unlearn_predict('sc_forget', features) <> label) AS misclassified
FROM sc_gone;
SELECT unlearn_confirm_forgotten('sc_forget') AS confirmed;
SELECT accuracy > 0.9 AS still_accurate FROM unlearn_evaluate('sc_forget', 'scaled2');

-- the option is validated
SELECT err($$SELECT * FROM unlearn_train('sc_bad', 'scaled', 'id', 'features', 'label', options => '{"standardize": 1}')$$);
SELECT err($$SELECT * FROM unlearn_train('sc_bad', 'scaled', 'id', 'features', 'label', options => '{"standardize": "yes"}')$$);
SELECT err($$SELECT * FROM unlearn_retrain('sc_raw', '{"standardize": null}')$$);

SELECT unlearn_drop_model(m) FROM unnest(ARRAY['sc_std', 'sc_raw', 'sc_forget']) m;
DROP TABLE scaled, scaled2;
RESET ROLE;
