-- Column models: training on ordinary columns (numbers, numeric, date,
-- boolean, text, enum, NULLs), the encoding recorded and described,
-- prediction on rows, unseen categories, every bad input with its SQLSTATE,
-- the capture of DELETE and UPDATE, unlearning, retraining, audits and the
-- guards.  As the ordinary model owner (see 01_train).
SET ROLE regress_owner;

CREATE TYPE tier AS ENUM ('bronze', 'silver', 'gold');
-- 600 customers; churn depends on age, membership, country and tier, with
-- NULL ages (every 17th) and NULL countries (every 13th)
CREATE TABLE customers (
	id		bigint PRIMARY KEY,
	age		integer,
	income	numeric,
	score	real,
	country	text,
	member	boolean,
	level	tier,
	joined	date,
	churn	text NOT NULL,
	notes	jsonb
);
INSERT INTO customers
SELECT i,
       CASE WHEN i % 17 = 0 THEN NULL ELSE 20 + (i * 37) % 50 END,
       (20000 + (i * 7919) % 60000)::numeric,
       ((i * 13) % 100) / 10.0,
       CASE WHEN i % 13 = 0 THEN NULL ELSE (ARRAY['DE', 'FR', 'ES', 'IT', 'NL'])[1 + (i * 11) % 5] END,
       (i * 3) % 4 <> 0,
       (ARRAY['bronze', 'silver', 'gold'])[1 + (i * 5) % 3]::tier,
       date '2020-01-01' + (i * 29) % 1000,
       'no', '{}'
FROM generate_series(1, 600) i;
UPDATE customers SET churn = 'yes'
WHERE (coalesce(age, 45) > 50 AND NOT member) OR country = 'ES' OR (level = 'bronze' AND score < 3);
SELECT churn, count(*) FROM customers GROUP BY churn ORDER BY churn;

-- every other column: notes is jsonb, which cannot be a feature
SELECT err($$SELECT unlearn_train(model => 'c', relation => 'customers', id_column => 'id',
                                   label_column => 'churn')$$);

-- the columns picked by name; trains well
SELECT model, rows, classes, train_accuracy > 0.95 AS fits
FROM unlearn_train(model => 'cust', relation => 'customers', id_column => 'id', label_column => 'churn',
                   feature_columns => '{age,income,score,country,member,level,joined}',
                   hidden => '{32}', epochs => 60, options => '{"seed": 3}');
SELECT name, features_column, feature_columns, feature_types, features, classes
FROM unlearn.models WHERE name = 'cust';

-- the encoding: age and income numbers (age with a missing indicator),
-- joined in days, categories sorted bytewise, NULL a category of country
SELECT input, column_name, type, encoding, category, round(fill::numeric, 2) AS fill,
       round(scale::numeric, 3) > 0 AS has_scale
FROM unlearn_describe('cust') ORDER BY input;
-- the fill is the training mean of the non-NULL values
SELECT abs((SELECT fill FROM unlearn_describe('cust') WHERE column_name = 'age' AND encoding = 'number')
           - (SELECT avg(age)::float8 FROM customers)) < 1e-9 AS age_fill_is_mean;
-- the standardisation learned the means of the encoded inputs
SELECT abs((SELECT mean FROM unlearn_describe('cust') WHERE category = 'ES')
           - (SELECT count(*) FILTER (WHERE country = 'ES')::float8 / count(*) FROM customers)) < 1e-5
       AS es_mean;

-- predictions on the table's rows, on a subquery, on another table
SELECT avg((unlearn_predict('cust', c) = churn)::int) > 0.95 AS predicts_rows FROM customers c;
SELECT unlearn_predict('cust', r) AS label,
       round((SELECT sum(p) FROM unnest(unlearn_predict_proba('cust', r)) p)::numeric, 4) AS proba_sum
FROM (SELECT 30 AS age, 50000 AS income, 5.0 AS score, 'ES' AS country, true AS member,
             'gold'::tier AS level, date '2021-06-01' AS joined, 'ignored' AS extra) r;
CREATE TABLE customers_test AS
SELECT id::integer AS id, age::bigint AS age, income::float8 AS income, score::float8 AS score,
       country::varchar AS country, member, level, joined, churn FROM customers WHERE id % 5 = 0;
-- (its columns are bigint, float8 and varchar where the training table's are integer, numeric and text)
SELECT rows, accuracy >= 0.9 AS evaluates_well,
       accuracy = (SELECT avg((unlearn_predict('cust', t) = churn)::int)::float8 FROM customers_test t)
       AS same_as_rows
FROM unlearn_evaluate('cust', 'customers_test');

-- an unseen category and an unseen NULL predict (all-zero indicators); the
-- capture's encoding shows it (the function is the extension owner's)
SELECT unlearn_predict('cust', r) IS NOT NULL AS unseen_ok
FROM (SELECT 30 AS age, 50000 AS income, 5.0 AS score, 'Atlantis' AS country, NULL::boolean AS member,
             'gold'::tier AS level, date '2021-06-01' AS joined) r;
RESET ROLE;
SELECT country, (SELECT sum(v) FROM unnest(e[5:10]) v) AS country_indicators
FROM (SELECT c.country, unlearn.encode_row('cust', c) AS e
      FROM (VALUES (1, 30, 1::numeric, 1::real, 'DE', true, 'gold'::tier, date '2021-01-01'),
                   (2, 30, 1, 1, 'Atlantis', true, 'gold', date '2021-01-01'),
                   (3, 30, 1, 1, NULL, true, 'gold', date '2021-01-01'))
           AS c(id, age, income, score, country, member, level, joined)) s ORDER BY 1;
SET ROLE regress_owner;
SELECT err($$SELECT unlearn.encode_row('cust', c) FROM customers c LIMIT 1$$);

-- bad rows for prediction
SELECT err($$SELECT unlearn_predict('cust', ROW(30, 50000, 5, 'ES', true, 'gold'::tier, now()::date))$$);
SELECT err($$SELECT unlearn_predict('cust', r) FROM (SELECT '30'::text AS age, 1 AS income, 1 AS score,
             'ES' AS country, true AS member, 'gold'::tier AS level, now()::date AS joined) r$$);
SELECT err($$SELECT unlearn_predict('cust', '{1,2,3}'::real[])$$);
SELECT err($$SELECT unlearn_predict('cust', r) FROM (SELECT 'NaN'::float8 AS age, 1 AS income, 1 AS score,
             'ES' AS country, true AS member, 'gold'::tier AS level, now()::date AS joined) r$$);
-- an array model predicts on a row that has its features column
SELECT unlearn_predict('blobs_mlp', b) = label AS array_model_row FROM blobs b ORDER BY id LIMIT 2;

-- bad training input
SELECT err($$SELECT unlearn_train('x', 'customers', 'id', 'notes', 'churn', feature_columns => '{age}')$$);
SELECT err($$SELECT unlearn_train('x', 'customers', 'id', label_column => 'churn', feature_columns => '{age,id}')$$);
SELECT err($$SELECT unlearn_train('x', 'customers', 'id', label_column => 'churn', feature_columns => '{churn}')$$);
SELECT err($$SELECT unlearn_train('x', 'customers', 'id', label_column => 'churn', feature_columns => '{age,age}')$$);
SELECT err($$SELECT unlearn_train('x', 'customers', 'id', label_column => 'churn', feature_columns => '{nope}')$$);
SELECT err($$SELECT unlearn_train('x', 'customers', 'id', label_column => 'churn', feature_columns => '{notes}')$$);
SELECT err($$SELECT unlearn_train('x', 'customers', 'id', label_column => 'churn', feature_columns => '{}')$$);
SELECT err($$SELECT unlearn_train('x', 'customers', 'id', feature_columns => '{age}')$$);
SELECT err($$SELECT unlearn_train('x', 'blobs', 'id', 'features', 'label', options => '{"nulls": "error"}')$$);
SELECT err($$SELECT unlearn_train('x', 'customers', 'id', label_column => 'churn', feature_columns => '{age}',
                                   options => '{"nulls": "drop"}')$$);
SELECT err($$SELECT unlearn_train('x', 'customers', 'id', label_column => 'churn', feature_columns => '{age}',
                                   options => '{"nulls": "error"}')$$);
CREATE TABLE arrays_too (id int PRIMARY KEY, a int[], b bytea, y int);
SELECT err($$SELECT unlearn_train('x', 'arrays_too', 'id', label_column => 'y', feature_columns => '{a}')$$);
SELECT err($$SELECT unlearn_train('x', 'arrays_too', 'id', label_column => 'y', feature_columns => '{b}')$$);
CREATE TABLE bad_values (id int PRIMARY KEY, v float8, y int);
INSERT INTO bad_values VALUES (1, 1, 0), (2, 'Infinity', 1);
SELECT err($$SELECT unlearn_train('x', 'bad_values', 'id', label_column => 'y')$$);
-- too many categories: refused with a hint
SET unlearn.max_categories = 4;
SELECT err($$SELECT unlearn_train('x', 'customers', 'id', label_column => 'churn', feature_columns => '{country}')$$);
RESET unlearn.max_categories;
-- {"nulls": "error"} on columns without NULLs trains, and says so in the encoding
SELECT model, rows FROM unlearn_train('strict', 'customers', 'id', label_column => 'churn',
                                      feature_columns => '{income,member}', options => '{"nulls": "error"}',
                                      epochs => 2, auto_unlearn => false);
SELECT err($$SELECT unlearn_predict('strict', r) FROM (SELECT NULL::int AS income, true AS member) r$$);

-- the encoding is private: categories are values of the training rows
SELECT err($$SELECT * FROM unlearn.encodings$$);
SELECT count(*) > 0 AS models_readable FROM unlearn.models;
RESET ROLE;
CREATE ROLE regress_col_reader;
SET ROLE regress_col_reader;
SELECT err($$SELECT * FROM unlearn_describe('cust')$$);
RESET ROLE;
DROP ROLE regress_col_reader;
SET ROLE regress_owner;

-- DELETE: captured with the encoded row, unlearned by the worker
DELETE FROM customers WHERE id IN (11, 12, 13);
SELECT id, kind, label, array_length(features, 1) AS n_features
FROM inspect.requests WHERE model = 'cust' ORDER BY id;
SELECT unlearn_wait('cust', '60 s') AS drained;
SELECT current_version FROM unlearn.models WHERE name = 'cust';
SELECT unlearn_confirm_forgotten('cust') AS confirmed;
SELECT count(*) AS in_manifest FROM inspect.manifests m, unnest(m.ids) i
WHERE m.model = 'cust' AND m.version = 2 AND i IN (11, 12, 13);
-- UPDATE: a feature column forgets the old row, the label alone relabels, other columns nothing
UPDATE customers SET country = 'NL' WHERE id = 21;
UPDATE customers SET churn = CASE churn WHEN 'yes' THEN 'no' ELSE 'yes' END WHERE id = 22;
UPDATE customers SET notes = '{"called": true}' WHERE id = 23;
UPDATE customers SET country = country WHERE id = 24;
SELECT id, kind, new_label IS NOT NULL AS has_new_label
FROM inspect.requests WHERE model = 'cust' AND id > 20 ORDER BY id;
SELECT unlearn_wait('cust', '60 s') AS drained;
SELECT version, reason FROM inspect.versions WHERE model = 'cust' ORDER BY version;

-- on demand, retrain, audit
SELECT rows, forgotten FROM unlearn_rows('cust', ARRAY[31, 32]::bigint[]);
SELECT rows, train_accuracy > 0.9 AS fits FROM unlearn_retrain('cust', '{"reference": true}');
SELECT count(*) > 0 AS audited, bool_and(problem IS NULL) AS no_problem FROM unlearn_audit('cust');
SELECT unlearn_confirm_forgotten('cust') AS confirmed;

-- the guards: a model's feature column cannot be renamed, retyped or dropped; other columns can
SELECT err($$ALTER TABLE customers RENAME COLUMN country TO nation$$);
SELECT err($$ALTER TABLE customers ALTER COLUMN level TYPE text$$);
SELECT err($$ALTER TABLE customers DROP COLUMN age$$);
ALTER TABLE customers DROP COLUMN notes;
-- then every other column is a feature
SELECT model, rows, train_accuracy > 0.9 AS fits
FROM unlearn_train(model => 'cust_all', relation => 'customers', id_column => 'id', label_column => 'churn',
                   hidden => '{32}', epochs => 60, options => '{"seed": 3}', auto_unlearn => false);
SELECT feature_columns FROM unlearn.models WHERE name = 'cust_all';

-- ALTER TYPE reaches model columns too (an attacker's review): the labels of an
-- enum a model reads cannot be renamed (deleted rows would be queued as another
-- category), not even by a role that owns only the enum; new values can be added
CREATE TYPE lvl AS ENUM ('a', 'b', 'c');
CREATE TABLE ea (id int PRIMARY KEY, v lvl NOT NULL, x int NOT NULL, y int NOT NULL);
INSERT INTO ea SELECT i, (ARRAY['a', 'b', 'c'])[1 + i % 3]::lvl, i % 7, (i % 3 = 0)::int FROM generate_series(1, 90) i;
SELECT model, rows FROM unlearn_train(model => 'ea_m', relation => 'ea', id_column => 'id', label_column => 'y',
       feature_columns => '{v,x}', hidden => '{4}', epochs => 2, options => '{"seed": 1}');
SELECT err($$ALTER TYPE lvl RENAME VALUE 'a' TO 'tmp'$$) AS rename_value;
ALTER TYPE lvl ADD VALUE 'd';
RESET ROLE;
CREATE ROLE regress_enum_owner;
CREATE SCHEMA eo AUTHORIZATION regress_enum_owner;
GRANT USAGE ON SCHEMA eo TO regress_owner;
SET ROLE regress_enum_owner;
CREATE TYPE eo.shared_lvl AS ENUM ('x', 'y');
CREATE DOMAIN eo.shared_dom AS eo.shared_lvl;
GRANT USAGE ON TYPE eo.shared_lvl, eo.shared_dom TO regress_owner;
RESET ROLE;
SET ROLE regress_owner;
CREATE TABLE sh (id int PRIMARY KEY, v eo.shared_dom NOT NULL, y int NOT NULL);
INSERT INTO sh SELECT i, (ARRAY['x', 'y'])[1 + i % 2]::eo.shared_lvl, i % 2 FROM generate_series(1, 40) i;
SELECT model FROM unlearn_train(model => 'sh_m', relation => 'sh', id_column => 'id', label_column => 'y',
       feature_columns => '{v}', hidden => '{4}', epochs => 2, auto_unlearn => false);
RESET ROLE;
SET ROLE regress_enum_owner;
SELECT err($$ALTER TYPE eo.shared_lvl RENAME VALUE 'x' TO 'x2'$$) AS enum_owner_rename_through_domain;
RESET ROLE;
SET ROLE regress_owner;
-- a typed table's columns cannot be renamed, retyped or dropped through its type
-- (ALTER TYPE ... CASCADE), for column and array models; other attributes can
CREATE TYPE trow AS (id int, f1 int, f2 int, y int);
CREATE TABLE tt OF trow (PRIMARY KEY (id));
INSERT INTO tt SELECT i, i % 5, 100 + i % 11, i % 2 FROM generate_series(1, 60) i;
SELECT model FROM unlearn_train(model => 'tt_m', relation => 'tt', id_column => 'id', label_column => 'y',
       feature_columns => '{f1}', hidden => '{4}', epochs => 2, options => '{"seed": 1}');
SELECT err($$ALTER TYPE trow RENAME ATTRIBUTE f1 TO tmp CASCADE$$) AS type_rename_feature;
SELECT err($$ALTER TYPE trow ALTER ATTRIBUTE f1 TYPE bigint CASCADE$$) AS type_retype_feature;
SELECT err($$ALTER TYPE trow RENAME ATTRIBUTE f2 TO g2 CASCADE$$) AS type_rename_other;
CREATE TYPE arow AS (id int, other int, features real[], label int);
CREATE TABLE at OF arow (PRIMARY KEY (id));
INSERT INTO at SELECT i, 1000 + i, ARRAY[i % 3, i % 5]::real[], i % 2 FROM generate_series(1, 60) i;
SELECT model FROM unlearn_train('at_m', 'at', 'id', 'features', 'label', hidden => '{4}', epochs => 2);
SELECT err($$ALTER TYPE arow RENAME ATTRIBUTE id TO tmp CASCADE$$) AS type_rename_id;
SELECT err($$ALTER TYPE arow DROP ATTRIBUTE features CASCADE$$) AS type_drop_features;
-- a reader that row-level security limits cannot list the categories (values of hidden rows)
CREATE TABLE pii (id int PRIMARY KEY, who name NOT NULL, city text NOT NULL, y int NOT NULL);
INSERT INTO pii SELECT i, CASE WHEN i <= 30 THEN 'regress_rls_reader' ELSE 'someone_else' END,
       CASE WHEN i <= 30 THEN 'Paris' WHEN i = 31 THEN 'Tiny Village' ELSE 'Berlin' END, i % 2
FROM generate_series(1, 60) i;
SELECT model FROM unlearn_train(model => 'pii_m', relation => 'pii', id_column => 'id', label_column => 'y',
       feature_columns => '{city}', hidden => '{4}', epochs => 2, auto_unlearn => false);
ALTER TABLE pii ENABLE ROW LEVEL SECURITY;
CREATE POLICY own ON pii FOR SELECT USING (who = current_user);
SELECT count(*) AS owner_sees_categories FROM unlearn_describe('pii_m');
RESET ROLE;
CREATE ROLE regress_rls_reader;
GRANT SELECT ON pii TO regress_rls_reader;
SET ROLE regress_rls_reader;
SELECT DISTINCT city AS visible_city FROM pii ORDER BY 1;
SELECT err($$SELECT category FROM unlearn_describe('pii_m')$$) AS rls_reader_describe;
SELECT unlearn_predict('pii_m', p) IS NOT NULL AS rls_reader_predicts FROM pii p LIMIT 1;
RESET ROLE;
SET ROLE regress_owner;
SELECT unlearn_drop_model(m) FROM unnest(ARRAY['ea_m', 'sh_m', 'tt_m', 'at_m', 'pii_m']) m;
RESET ROLE;
DROP TABLE pii;
DROP ROLE regress_rls_reader;
DROP TABLE sh;
DROP SCHEMA eo CASCADE;
DROP ROLE regress_enum_owner;
SET ROLE regress_owner;

SELECT unlearn_drop_model('strict');
SELECT unlearn_drop_model('cust_all');
RESET ROLE;
SELECT count(*) AS encodings_left FROM unlearn.encodings WHERE model IN ('strict', 'cust_all');
