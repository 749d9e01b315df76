-- Privileges: training needs SELECT on the table; only the owner (or a
-- superuser) may drop a model; using a model needs SELECT on its training
-- table; nobody writes the catalog directly or reads weights and manifests.
-- Alice and Bob are ordinary roles like regress_owner (see 01_train).
-- superuser: creating roles needs CREATEROLE, and only public's owner may grant CREATE on it
CREATE ROLE unlearn_alice LOGIN;
CREATE ROLE unlearn_bob LOGIN;
GRANT USAGE, CREATE ON SCHEMA public TO unlearn_alice, unlearn_bob;

SET ROLE unlearn_alice;
CREATE TABLE alice_data AS SELECT * FROM (VALUES
	(1::bigint, '{0, 0}'::real[], 0), (2, '{0.1, 0}', 0), (3, '{0, 0.1}', 0),
	(4, '{1, 1}', 1), (5, '{0.9, 1}', 1), (6, '{1, 0.9}', 1)) AS t(id, features, label);
SELECT model, rows, classes FROM unlearn_train('alice_model', 'alice_data', 'id', 'features', 'label',
	hidden => '{4}', epochs => 50, options => '{"lr": 0.05, "batch_size": 2}');
SELECT unlearn_predict('alice_model', '{1, 1}'::real[]) AS alice_predicts;
SELECT count(*) AS alice_manifest FROM unlearn_manifest('alice_model');

SET ROLE unlearn_bob;
-- bob cannot read alice's table, so he can neither train on it nor use her model
SELECT err($$SELECT unlearn_train('bob_model', 'alice_data', 'id', 'features', 'label')$$);
SELECT err($$SELECT unlearn_predict('alice_model', '{1, 1}'::real[])$$);
SELECT err($$SELECT unlearn_evaluate('alice_model', 'blobs')$$);
SELECT err($$SELECT unlearn_manifest('alice_model')$$);
-- nor drop it
SELECT err($$SELECT unlearn_drop_model('alice_model')$$);
-- the catalog: metadata is public, weights and manifests are not, writes are refused
SELECT name, classes FROM unlearn.models WHERE name = 'alice_model';
SELECT model, version, reason FROM unlearn.versions WHERE model = 'alice_model';
SELECT err($$SELECT weights FROM unlearn.versions$$);
SELECT err($$SELECT ids FROM unlearn.manifests$$);
SELECT err($$INSERT INTO unlearn.models SELECT * FROM unlearn.models$$);
SELECT err($$DELETE FROM unlearn.versions$$);
SELECT err($$UPDATE unlearn.models SET owner = 0$$);

-- with SELECT granted by alice, bob may use the model but still not drop it
SET ROLE unlearn_alice;
GRANT SELECT ON alice_data TO unlearn_bob;
SET ROLE unlearn_bob;
SELECT unlearn_predict('alice_model', '{1, 1}'::real[]) AS bob_predicts;
SELECT err($$SELECT unlearn_drop_model('alice_model')$$);

-- the owner drops it; a superuser could too
SET ROLE unlearn_alice;
SELECT unlearn_drop_model('alice_model');
SELECT count(*) FROM unlearn.models WHERE name = 'alice_model';
DROP TABLE alice_data;

-- superuser: dropping roles needs CREATEROLE
RESET ROLE;
REVOKE ALL ON SCHEMA public FROM unlearn_alice, unlearn_bob;
DROP ROLE unlearn_alice;
DROP ROLE unlearn_bob;
