-- Tampering and limits: current weights gone (the purge race, a superuser),
-- NULLs in stored id arrays, the current-version pointer and the ledger
-- bound into the verification, the model size cap, non-finite outputs, and
-- an audit that reports a corrupt version on its row.
CREATE EXTENSION IF NOT EXISTS dblink;
CREATE TABLE tam AS
SELECT i::bigint AS id,
       ARRAY[(i % 3) * 2.0 + 0.4 * sin(i * 12.9898),
             CASE WHEN i % 3 = 1 THEN 2.0 ELSE 0.0 END + 0.4 * cos(i * 78.233)]::real[] AS features,
       (i % 3) AS label
FROM generate_series(1, 90) i;
CREATE FUNCTION tam_model(m text, t text) RETURNS text LANGUAGE sql AS $$
	SELECT model FROM unlearn_train(m, t::regclass, 'id', 'features', 'label', hidden => '{8}', epochs => 20,
	                                options => '{"lr": 0.01, "batch_size": 16}', auto_unlearn => false) $$;

-- 1a. the purge race: b's purge takes its snapshot, waits (advisory lock),
-- and a's unlearn_rows commits version 3 meanwhile: purge must lock the
-- model and decide the current version after the lock
CREATE TABLE tam_a AS SELECT * FROM tam;
SELECT tam_model('tam_a', 'tam_a');
SELECT version FROM unlearn_rows('tam_a', ARRAY[1]);
SELECT dblink_connect('a', 'dbname=' || current_database());
SELECT dblink_connect('b', 'dbname=' || current_database());
SELECT dblink_exec('a', 'BEGIN');
SELECT * FROM dblink('a', 'SELECT pg_advisory_xact_lock(4242)::text') AS t(locked text);
SELECT * FROM dblink('a', $$SELECT version FROM unlearn_rows('tam_a', ARRAY[2])$$) AS t(version int);
SELECT dblink_send_query('b', $$SELECT p.versions_purged FROM (SELECT pg_advisory_xact_lock(4242)::text AS l) s,
                                      unlearn_purge('tam_a', ('0 s' || s.l)::interval) p$$);
DO $$
BEGIN
	FOR i IN 1..200 LOOP
		EXIT WHEN EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242 AND NOT granted);
		PERFORM pg_sleep(0.05);
	END LOOP;
END $$;
SELECT dblink_exec('a', 'COMMIT');
SELECT * FROM dblink_get_result('b') AS t(versions_purged int);
SELECT dblink_disconnect('a');
SELECT dblink_disconnect('b');
SELECT m.current_version, v.version, v.weights IS NULL AS purged
FROM unlearn.models m JOIN unlearn.versions v ON v.model = m.name WHERE m.name = 'tam_a' ORDER BY v.version;
SELECT rows FROM unlearn_evaluate('tam_a', 'tam_a');

-- 1b. a superuser drops the current version's weights: clear errors, no crash
UPDATE unlearn.versions SET weights = NULL WHERE model = 'tam_a' AND version = 3;
SELECT err($$SELECT unlearn_predict('tam_a', '{0, 0}'::real[])$$);
SELECT err($$SELECT unlearn_predict_proba('tam_a', '{0, 0}'::real[])$$);
SELECT err($$SELECT * FROM unlearn_evaluate('tam_a', 'tam_a')$$);
SELECT err($$SELECT * FROM unlearn_rows('tam_a', ARRAY[3])$$);
SELECT err($$SELECT unlearn_confirm_forgotten('tam_a')$$);
SELECT err($$SELECT * FROM unlearn_forgotten('tam_a')$$);
SELECT version, forgotten_checked, remaining_accuracy, problem FROM unlearn_audit('tam_a') ORDER BY version;

-- 2. NULL elements (and other shapes) in stored id arrays are corruption, not ids
CREATE TABLE tam_b AS SELECT * FROM tam;
SELECT tam_model('tam_b', 'tam_b');
SELECT version FROM unlearn_rows('tam_b', ARRAY[1]);
ALTER TABLE unlearn.versions DISABLE TRIGGER versions_immutable;
UPDATE unlearn.versions SET forgotten_ids = array_fill(NULL::bigint, ARRAY[10000000])
WHERE model = 'tam_b' AND version = 2;
SELECT err($$SELECT * FROM unlearn_verify_ledger('tam_b')$$);
UPDATE unlearn.versions SET forgotten_ids = '{1, NULL}' WHERE model = 'tam_b' AND version = 2;
SELECT err($$SELECT * FROM unlearn_verify_ledger('tam_b')$$);
UPDATE unlearn.versions SET forgotten_ids = '{{1}}' WHERE model = 'tam_b' AND version = 2;
SELECT err($$SELECT * FROM unlearn_verify_ledger('tam_b')$$);
UPDATE unlearn.versions SET forgotten_ids = '{1}' WHERE model = 'tam_b' AND version = 2;
ALTER TABLE unlearn.versions ENABLE TRIGGER versions_immutable;
SELECT version, valid FROM unlearn_verify_ledger('tam_b') ORDER BY version;
ALTER TABLE unlearn.manifests DISABLE TRIGGER manifests_immutable;
UPDATE unlearn.manifests SET ids = ids || array_fill(NULL::bigint, ARRAY[10000000])
WHERE model = 'tam_b' AND version = 2;
SELECT err($$SELECT * FROM unlearn_rows('tam_b', ARRAY[5])$$);
SELECT err($$SELECT count(*) FROM unlearn_manifest('tam_b')$$);
SELECT err($$SELECT * FROM unlearn_audit('tam_b')$$);
UPDATE unlearn.manifests SET ids = ids[1:89] WHERE model = 'tam_b' AND version = 2;
ALTER TABLE unlearn.manifests ENABLE TRIGGER manifests_immutable;
SELECT count(*) FROM unlearn_manifest('tam_b');
SELECT version, rows FROM unlearn_rows('tam_b', ARRAY[5]);

-- 3. the current-version pointer and the ledger are part of what is verified
CREATE TABLE tam_c AS SELECT * FROM tam;
SELECT tam_model('tam_c', 'tam_c');
SET unlearn.feature_retention = 0;
SELECT version FROM unlearn_rows('tam_c', ARRAY[4, 5, 6]);
RESET unlearn.feature_retention;
SELECT unlearn_confirm_forgotten('tam_c') AS confirmed;
-- a reference retrain is newer than the current version, and that is fine
SELECT version FROM unlearn_retrain('tam_c', '{"reference": true}');
SELECT version, valid, problem FROM unlearn_verify_ledger('tam_c') ORDER BY version;
-- pointed back at the version that still holds rows 4, 5 and 6
UPDATE unlearn.models SET current_version = 1 WHERE name = 'tam_c';
SELECT unlearn_confirm_forgotten('tam_c') AS confirmed;
SELECT version, valid, problem FROM unlearn_verify_ledger('tam_c') ORDER BY version;
-- pointed at a version that does not exist
UPDATE unlearn.models SET current_version = 7 WHERE name = 'tam_c';
SELECT version, valid, problem FROM unlearn_verify_ledger('tam_c') ORDER BY version;
UPDATE unlearn.models SET current_version = 2 WHERE name = 'tam_c';
-- a ledger row naming a version that does not exist
INSERT INTO unlearn.forgotten (model, id, label, version) VALUES ('tam_c', 7, '1', 9);
SELECT unlearn_confirm_forgotten('tam_c') AS confirmed;
SELECT version, valid, problem FROM unlearn_verify_ledger('tam_c') ORDER BY version;
DELETE FROM unlearn.forgotten WHERE model = 'tam_c' AND id = 7;
-- a forgotten row put back into the current manifest
ALTER TABLE unlearn.manifests DISABLE TRIGGER manifests_immutable;
UPDATE unlearn.manifests SET ids = (SELECT array_agg(x ORDER BY x) FROM unnest(ids || 5::bigint) x)
WHERE model = 'tam_c' AND version = 2;
SELECT version, valid, problem FROM unlearn_verify_ledger('tam_c') ORDER BY version;
UPDATE unlearn.manifests SET ids = array_remove(ids, 5::bigint) WHERE model = 'tam_c' AND version = 2;
ALTER TABLE unlearn.manifests ENABLE TRIGGER manifests_immutable;
-- legitimately: the row comes back to the table and a retrain learns it again
INSERT INTO tam_c SELECT * FROM tam WHERE id = 5;
SELECT version FROM unlearn_retrain('tam_c');
SELECT version, valid, problem FROM unlearn_verify_ledger('tam_c') ORDER BY version;
SELECT unlearn_confirm_forgotten('tam_c') AS confirmed;

-- 4. the model size cap
SHOW unlearn.max_model_size;
SELECT err($$SELECT * FROM unlearn_train('tam_huge', 'tam', 'id', 'features', 'label', hidden => '{65536,65536}')$$);
SET unlearn.max_model_size = '64kB';
SELECT err($$SELECT * FROM unlearn_train('tam_big', 'tam', 'id', 'features', 'label', hidden => '{1024}', epochs => 1)$$);
SELECT model FROM unlearn_train('tam_small', 'tam', 'id', 'features', 'label', hidden => '{4}', epochs => 1,
                                auto_unlearn => false);
RESET unlearn.max_model_size;
-- (unstandardised, so that raw features of 1e38 overflow its arithmetic in 5.)
SELECT model FROM unlearn_train('tam_mid', 'tam', 'id', 'features', 'label', hidden => '{256}', epochs => 1,
                                options => '{"standardize": false}', auto_unlearn => false);
SET unlearn.max_model_size = '64kB';
SELECT err($$SELECT * FROM unlearn_retrain('tam_mid')$$);
RESET unlearn.max_model_size;
SELECT version FROM unlearn_retrain('tam_mid');
-- the cap holds for an unlearning run's options too (the worker runs an owner's):
-- 65 536 adversarial rows a batch would take about 140 MB of workspace
SET unlearn.max_model_size = '16MB';
SELECT err($$SELECT version FROM unlearn_rows('tam_mid', ARRAY[2::bigint],
                                              options => '{"method": "adv", "adv_batch": 65536, "adv_per_row": 1000}')$$);
BEGIN;
SELECT steps > 0 AS unlearned_within_the_cap FROM unlearn_rows('tam_mid', ARRAY[2::bigint]);
ROLLBACK;
RESET unlearn.max_model_size;
-- and the samples a run reads (unlearn.max_training_memory unbounded): 512 kB hold
-- 3 640 rows of 32 features (144 bytes each), so replay_rows 100 000 on 8 000 rows shrinks
CREATE TABLE tam_wide AS
SELECT i::bigint AS id, ARRAY(SELECT ((i * d) % 11)::real FROM generate_series(1, 32) d) AS features, i % 3 AS label
FROM generate_series(1, 8000) i;
SELECT model FROM unlearn_train('tam_wide', 'tam_wide', 'id', 'features', 'label', hidden => '{4}', epochs => 1,
                                auto_unlearn => false);
SET unlearn.max_model_size = '512kB';
SET unlearn.exact_when_cheaper = off;	-- (a retrain of this model is cheaper, and reads no sample)
BEGIN;
SELECT version, method FROM unlearn_rows('tam_wide', ARRAY[5::bigint], options => '{"replay_rows": 100000}');
SELECT (metrics->>'replay_rows')::int > 0 AS replayed,
       (metrics->>'replay_rows')::int + (metrics->>'held_out_rows')::int <= 3640 AS samples_within_the_cap
FROM unlearn.versions WHERE model = 'tam_wide' AND version = 2;
ROLLBACK;
RESET unlearn.max_model_size;
RESET unlearn.exact_when_cheaper;
SELECT unlearn_drop_model('tam_wide');
DROP TABLE tam_wide;

-- 5. overflowed outputs are an error, not class 0
SELECT err($$SELECT unlearn_predict('tam_mid', '{1e38, 1e38}'::real[])$$);
SELECT err($$SELECT unlearn_predict_proba('tam_mid', '{1e38, 1e38}'::real[])$$);
CREATE TABLE tam_far AS SELECT id, ARRAY[1e38, 1e38]::real[] AS features, label FROM tam WHERE id <= 3;
SELECT err($$SELECT * FROM unlearn_evaluate('tam_mid', 'tam_far')$$);
SELECT unlearn_predict('tam_mid', '{2, 0}'::real[]) IS NOT NULL AS ordinary_rows_predict;

-- 6. one corrupt version does not hide the others from the audit
CREATE TABLE tam_d AS SELECT * FROM tam;
SELECT tam_model('tam_d', 'tam_d');
SELECT version FROM unlearn_rows('tam_d', ARRAY[1]);
ALTER TABLE unlearn.versions DISABLE TRIGGER versions_immutable;
UPDATE unlearn.versions SET weights = '\x00' WHERE model = 'tam_d' AND version = 1;
ALTER TABLE unlearn.versions ENABLE TRIGGER versions_immutable;
SELECT err($$SELECT count(*) FROM unlearn_audit('tam_d')$$);
SELECT version, reason, forgotten_checked, remaining_accuracy IS NOT NULL AS measured, problem
FROM unlearn_audit('tam_d') ORDER BY version;

SELECT unlearn_drop_model(m) FROM unnest(ARRAY['tam_a', 'tam_b', 'tam_c', 'tam_d', 'tam_small', 'tam_mid']) m;
DROP TABLE tam, tam_a, tam_b, tam_c, tam_d, tam_far;
DROP FUNCTION tam_model(text, text);
