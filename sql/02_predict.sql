-- Prediction and evaluation: unlearn_predict (real[] and double precision[]),
-- unlearn_predict_proba, unlearn_evaluate, labels compared without casts.
-- Uses the models trained by 01_train, as their ordinary owner.
SET ROLE regress_owner;

-- integer labels: prediction = label, no casts
SELECT count(*) AS rows, count(*) FILTER (WHERE unlearn_predict('blobs_mlp', features) = label) > 285 AS mostly_right
FROM blobs;
SELECT count(*) FILTER (WHERE label = unlearn_predict('blobs_mlp', features)) > 285 AS commuted
FROM blobs;
-- smallint labels compare without casts too
CREATE TABLE blobs_small AS SELECT id, features, label::smallint AS label FROM blobs;
SELECT count(*) FILTER (WHERE unlearn_predict('blobs_mlp', features) = label) > 285 AS smallint_ok,
       count(*) FILTER (WHERE label = unlearn_predict('blobs_mlp', features)) > 285 AS smallint_commuted
FROM blobs_small;
-- bigint labels and the double precision[] overload
SELECT count(*) FILTER (WHERE unlearn_predict('blobs_sgd', features) = label::bigint) > 270 AS bigint_ok
FROM blobs8;
SELECT pg_typeof(unlearn_predict('blobs_mlp', '{0, 0}'::float8[])), unlearn_predict('blobs_mlp', '{0, 0}'::float8[]);
-- points in the middle of each cluster
SELECT c.label, unlearn_predict('blobs_mlp', c.features) AS predicted,
       unlearn_predict('blobs_softmax', c.features) AS softmax_predicted
FROM (VALUES (0, '{0, 0}'::real[]), (1, '{2, 2}'), (2, '{4, 0}')) AS c(label, features);

-- text labels: prediction = label, no casts, either side
SELECT count(*) FILTER (WHERE unlearn_predict('pets', features) = kind) > 285 AS text_ok,
       count(*) FILTER (WHERE kind = unlearn_predict('pets', features)) > 285 AS text_commuted
FROM pets;
SELECT unlearn_predict('pets', '{2, 2}'::real[]) = 'dog' AS is_dog, unlearn_predict('pets', '{2, 2}'::real[]) <> 'cat' AS not_cat;
-- labels group, sort and cast
SELECT unlearn_predict('pets', features) AS predicted, count(*) > 90 AS about_a_third
FROM pets GROUP BY 1 ORDER BY 1;
SELECT unlearn_predict('blobs_mlp', '{4, 0}'::real[])::int + 1 AS as_int, unlearn_predict('pets', '{4, 0}'::real[])::text || '!' AS as_text;
SELECT err($$SELECT unlearn_predict('pets', '{4, 0}'::real[])::int$$);

-- probabilities: one per class, in classes order, summing to 1
SELECT array_length(p, 1) AS n, abs((SELECT sum(x) FROM unnest(p) x) - 1) < 1e-6 AS sums_to_one,
       p[2] > 0.9 AS dog_likely
FROM (SELECT unlearn_predict_proba('pets', '{2, 2}'::real[]) AS p) s;
SELECT unlearn_predict_proba('blobs_mlp', '{4, 0}'::real[]) = unlearn_predict_proba('blobs_mlp', '{4, 0}'::float8[])
       AS overloads_agree;

-- evaluation on a labelled table with the model's column names
SELECT rows, correct > 285 AS mostly_right, accuracy > 0.95 AS accurate FROM unlearn_evaluate('blobs_mlp', 'blobs');
SELECT rows, accuracy > 0.95 AS accurate FROM unlearn_evaluate('pets', 'pets');
SELECT rows, correct, accuracy FROM unlearn_evaluate('blobs_mlp', 'empty');
-- evaluate agrees with predict row by row
SELECT (SELECT correct FROM unlearn_evaluate('blobs_mlp', 'blobs')) =
       (SELECT count(*) FROM blobs WHERE unlearn_predict('blobs_mlp', features) = label) AS evaluate_agrees;
-- a label the model never saw counts as wrong
CREATE TABLE blobs_new_label AS SELECT id, features, CASE WHEN id <= 10 THEN 99 ELSE label END AS label FROM blobs;
SELECT rows, correct = (SELECT count(*) FROM blobs WHERE id > 10 AND unlearn_predict('blobs_mlp', features) = label)
       AS unseen_counted_wrong
FROM unlearn_evaluate('blobs_mlp', 'blobs_new_label');

-- bad input
SELECT err($$SELECT unlearn_predict('no_such_model', '{1, 2}'::real[])$$);
SELECT err($$SELECT unlearn_predict('blobs_mlp', '{1, 2, 3}'::real[])$$);
SELECT err($$SELECT unlearn_predict('blobs_mlp', '{{1, 2}}'::real[])$$);
SELECT err($$SELECT unlearn_predict('blobs_mlp', '{1, NULL}'::real[])$$);
SELECT err($$SELECT unlearn_predict('blobs_mlp', '{1, NaN}'::real[])$$);
SELECT err($$SELECT unlearn_predict_proba('blobs_mlp', '{Infinity, 0}'::float8[])$$);
SELECT err($$SELECT unlearn_evaluate('no_such_model', 'blobs')$$);
SELECT err($$SELECT unlearn_evaluate('blobs_mlp', 'pets')$$);
SELECT err($$SELECT unlearn_evaluate('pets', 'blobs')$$);
SELECT unlearn_predict('blobs_mlp', NULL::real[]) IS NULL AS null_in_null_out;

-- a model dropped and re-created under the same name is not served from the cache
SELECT unlearn_predict('pets', '{2, 2}'::real[]) AS before_drop;
SELECT unlearn_drop_model('pets');
CREATE TABLE pets2 AS SELECT id, features, (ARRAY['ant', 'bee', 'cow'])[label + 1] AS kind FROM blobs;
SELECT model FROM unlearn_train('pets', 'pets2', 'id', 'features', 'kind', hidden => '{8}', epochs => 30,
                   options => '{"lr": 0.01, "batch_size": 16}');
SELECT unlearn_predict('pets', '{2, 2}'::real[]) AS after_recreate;
