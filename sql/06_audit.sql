-- Audits and erasure hygiene: unlearn_audit, the membership-inference
-- score, the gap to retraining, unlearn_verify, the tamper-evident hash
-- chain, feature retention and unlearn_purge.  As the ordinary model owner
-- (see 01_train).
SET ROLE regress_owner;
CREATE TABLE aud AS
SELECT i::bigint AS id,
       ARRAY[(i % 3) * 1.2 + 0.7 * sin(i * 12.9898), (i % 2) * 1.2 + 0.7 * cos(i * 78.233),
             0.6 * sin(i * 1.7), 0.6 * cos(i * 2.3)]::real[] AS features,
       (i % 3) AS label
FROM generate_series(1, 600) i;
CREATE TABLE aud_test AS
SELECT i::bigint AS id,
       ARRAY[(i % 3) * 1.2 + 0.7 * sin(i * 12.9898), (i % 2) * 1.2 + 0.7 * cos(i * 78.233),
             0.6 * sin(i * 1.7), 0.6 * cos(i * 2.3)]::real[] AS features,
       (i % 3) AS label
FROM generate_series(10001, 10400) i;
SELECT model, rows FROM unlearn_train('aud', 'aud', 'id', 'features', 'label', hidden => '{32}', epochs => 30,
                   options => '{"lr": 0.01, "batch_size": 32}');
SELECT version, rows, forgotten FROM unlearn_rows('aud', ARRAY[3, 4, 5]);

-- one row per version
SELECT version, parent, reason, method, rows_forgotten, forgotten_checked, forgotten_unchecked,
       all_forgotten_misclassified, forget_accuracy, remaining_accuracy > 0.7 AS remaining_ok,
       remaining_sample, test_accuracy > 0.7 AS test_ok,
       mia_member_rate BETWEEN 0 AND 1 AS mia_rate_is_share, mia_attack_accuracy >= 0.5 AS attack_fit,
       steps > 0 AS stepped, requested_by = current_user AS by_me
FROM unlearn_audit('aud', 'aud_test') ORDER BY version;
-- without a test relation the test and attack columns are NULL
SELECT version, test_accuracy, mia_member_rate FROM unlearn_audit('aud') ORDER BY version;

-- a retrained reference, not made current, and the gap to it
SELECT version, rows FROM unlearn_retrain('aud', '{"reference": true}');
SELECT current_version FROM unlearn.models WHERE name = 'aud';
SELECT reason FROM unlearn.versions WHERE model = 'aud' AND version = 3;
SELECT metric, unlearned IS NOT NULL AND retrained IS NOT NULL AS measured,
       abs(gap - (unlearned - retrained)) < 1e-12 AS gap_is_difference
FROM unlearn_compare_retrain('aud', 'aud_test');
SELECT metric, unlearned FROM unlearn_compare_retrain('aud', 'aud_test') WHERE metric = 'forget_accuracy';
-- the reference never saw the forgotten rows: the attack agrees they look like non-members
-- at least as often as it does for the unlearned version (a gap of at most one row in three)
SELECT gap <= 1.0 / 3 + 1e-9 AS mia_gap_bounded
FROM unlearn_compare_retrain('aud', 'aud_test') WHERE metric = 'mia_member_rate';

-- per-row verification
SELECT id, label, predicted <> label AS differs, forgotten, version FROM unlearn_verify('aud') ORDER BY id;

-- the hash chain verifies
SELECT version, valid, problem FROM unlearn_verify_ledger('aud') ORDER BY version;
SELECT length(hash) AS hash_bytes, length(weights_sha256) AS weights_hash_bytes, forgotten_ids
FROM inspect.versions WHERE model = 'aud' ORDER BY version;

-- tampering is detected: a copy of the model, then edits behind the trigger's back
CREATE TABLE aud2 AS SELECT * FROM aud;
SELECT model FROM unlearn_train('aud2', 'aud2', 'id', 'features', 'label', hidden => '{8}', epochs => 10,
                   options => '{"lr": 0.01, "batch_size": 32}');
SELECT version FROM unlearn_rows('aud2', ARRAY[10]);
SELECT version FROM unlearn_rows('aud2', ARRAY[11]);
-- each edit as a superuser: tampering needs rights that nobody but the catalog
-- owner has (that is the point); the owner's verification finds it
-- 1. weights edited
RESET ROLE;
ALTER TABLE unlearn.versions DISABLE TRIGGER versions_immutable;
UPDATE unlearn.versions SET weights = overlay(weights PLACING '\x00'::bytea FROM 100) WHERE model = 'aud2' AND version = 2;
SET ROLE regress_owner;
SELECT version, valid, problem FROM unlearn_verify_ledger('aud2') ORDER BY version;
-- 2. weights and their hash edited together: the chain still breaks
RESET ROLE;
UPDATE unlearn.versions SET weights_sha256 = sha256(weights) WHERE model = 'aud2' AND version = 2;
ALTER TABLE unlearn.versions ENABLE TRIGGER versions_immutable;
SET ROLE regress_owner;
SELECT version, valid, left(problem, 55) AS problem FROM unlearn_verify_ledger('aud2') ORDER BY version;
-- 3. a ledger row deleted
RESET ROLE;
DELETE FROM unlearn.forgotten WHERE model = 'aud2' AND id = 11;
SET ROLE regress_owner;
SELECT version, valid, regexp_replace(problem, '[0-9a-f]{64}', '<sha256>', 'g') AS problem
FROM unlearn_verify_ledger('aud2') WHERE NOT valid ORDER BY version;
SELECT unlearn_drop_model('aud2');

-- by default the ledger keeps ids and hashes, not features: erased once a run verified its rows
-- superuser: unlearn.feature_retention is a superuser setting (a retention policy)
RESET ROLE;
SET unlearn.feature_retention = 0;
SET ROLE regress_owner;
SELECT version, rows, forgotten FROM unlearn_rows('aud', ARRAY[6, 7]);
SELECT id, features IS NULL AS erased, length(features_sha256) AS sha_bytes FROM inspect.forgotten
WHERE model = 'aud' ORDER BY id;
-- confirm says what it could not re-check
SELECT unlearn_confirm_forgotten('aud') AS confirmed;
SELECT version, forgotten_checked, forgotten_unchecked FROM unlearn_audit('aud') WHERE version = 4;
SELECT id, predicted, forgotten FROM unlearn_verify('aud') WHERE id IN (6, 7) ORDER BY id;
-- superuser: as above
RESET ROLE;
RESET unlearn.feature_retention;
SET ROLE regress_owner;

-- purge: superseded weights go, lineage, hashes and ledger stay
SELECT * FROM unlearn_purge('aud', '1 day');
SELECT * FROM unlearn_purge('aud', '0 s');
SELECT version, weights IS NULL AS purged FROM inspect.versions WHERE model = 'aud' ORDER BY version;
SELECT version, valid FROM unlearn_verify_ledger('aud') ORDER BY version;
SELECT version, reason, forget_accuracy IS NULL AS no_figures FROM unlearn_audit('aud') ORDER BY version;
SELECT count(*) AS ledger_rows, count(features) AS copies_left FROM inspect.forgotten WHERE model = 'aud';
SELECT unlearn_predict('aud', features) IS NOT NULL AS current_still_predicts FROM aud WHERE id = 20;
SELECT err($$SELECT * FROM unlearn_compare_retrain('aud', 'aud_test')$$);
-- purged weights cannot come back: the owner may not write the catalog, and
-- a superuser, who may, is refused by the immutability trigger
SELECT err($$UPDATE unlearn.versions SET weights = '\x00' WHERE model = 'aud' AND version = 1$$);
RESET ROLE;
SELECT err($$UPDATE unlearn.versions SET weights = '\x00' WHERE model = 'aud' AND version = 1$$);
SET ROLE regress_owner;

-- bad input and privileges
SELECT err($$SELECT * FROM unlearn_purge('aud', '-1 day')$$);
SELECT err($$SELECT * FROM unlearn_audit('no_such_model')$$);
SELECT err($$SELECT * FROM unlearn_verify_ledger('no_such_model')$$);
SELECT err($$SELECT * FROM unlearn_audit('aud', 'no_such_table')$$);
-- superuser: creating and dropping a role need CREATEROLE
RESET ROLE;
CREATE ROLE unlearn_frank;
SET ROLE unlearn_frank;
SELECT err($$SELECT * FROM unlearn_purge('aud', '0 s')$$);
SELECT err($$SELECT * FROM unlearn_audit('aud')$$);
SELECT err($$SELECT * FROM unlearn.forgotten$$);
RESET ROLE;
DROP ROLE unlearn_frank;
