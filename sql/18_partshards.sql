-- Sharding by partition (the training option "shards": "partition"): one
-- shard per leaf partition that holds rows, in order of schema and name (an
-- empty partition is no shard); each id keeps the shard of the partition it
-- was read from, recorded with the manifest.  Prediction against models
-- trained on each partition; exact deletes through the parent and through a
-- partition retrain only that partition's shard (metrics, members' bytes,
-- manifests); a partition attached later is learned by a retrain only;
-- DETACH and DROP refused; the refusals (22023).  As the ordinary model
-- owner (see 01_train); sh_member comes from 16_shards.
SET ROLE regress_owner;

-- two blobs in 4 features, 360 rows in three regions; south stays empty
CREATE TABLE ps_pts (id bigint NOT NULL, x real[] NOT NULL, label int NOT NULL, region text NOT NULL)
    PARTITION BY LIST (region);
CREATE TABLE ps_pts_west PARTITION OF ps_pts FOR VALUES IN ('west');
CREATE TABLE ps_pts_east PARTITION OF ps_pts FOR VALUES IN ('east');
CREATE TABLE ps_pts_south PARTITION OF ps_pts FOR VALUES IN ('south');
CREATE TABLE ps_pts_north PARTITION OF ps_pts FOR VALUES IN ('north');
INSERT INTO ps_pts
SELECT i, ARRAY[(i % 2) * 2 + sin(i * 1.7), (i % 2) * -1.5 + cos(i * 2.3), sin(i * 0.37), cos(i * 0.91)]::real[],
       i % 2, (ARRAY['east', 'north', 'west'])[1 + (i / 2) % 3]
FROM generate_series(1, 360) i;
SELECT tableoid::regclass AS partition, count(*) FROM ps_pts GROUP BY 1 ORDER BY tableoid::regclass::text;

-- refusals, 22023, nothing registered: a table that is not partitioned; a
-- bad shard_by; a shard count the partitions do not give; a partition of
-- fewer than 10 rows; one partition with rows only; more than 64
CREATE TABLE ps_plain AS SELECT * FROM ps_pts;
CREATE TABLE ps_small (id bigint, x real[], label int) PARTITION BY RANGE (id);
CREATE TABLE ps_small_a PARTITION OF ps_small FOR VALUES FROM (0) TO (100);
CREATE TABLE ps_small_b PARTITION OF ps_small FOR VALUES FROM (100) TO (200);
INSERT INTO ps_small SELECT id, x, label FROM ps_pts WHERE id < 100 OR id BETWEEN 100 AND 104;
CREATE TABLE ps_one (id bigint, x real[], label int) PARTITION BY RANGE (id);
CREATE TABLE ps_one_a PARTITION OF ps_one FOR VALUES FROM (0) TO (1000);
CREATE TABLE ps_one_b PARTITION OF ps_one FOR VALUES FROM (1000) TO (2000);
INSERT INTO ps_one SELECT id, x, label FROM ps_pts;
CREATE TABLE ps_many (id bigint, x real[], label int) PARTITION BY RANGE (id);
DO $$ BEGIN
    FOR k IN 0 .. 64 LOOP
        EXECUTE format('CREATE TABLE ps_many_%s PARTITION OF ps_many FOR VALUES FROM (%s) TO (%s)', k, k * 10, k * 10 + 10);
    END LOOP;
END $$;
INSERT INTO ps_many SELECT i, ARRAY[i % 2, sin(i)]::real[], i % 2 FROM generate_series(0, 649) i;
SELECT t, err(format($$SELECT unlearn_train('bad', %L, 'id', 'x', 'label', epochs => 2, options => %L)$$, t, o)) AS error
FROM (VALUES ('ps_plain', '{"shards": "partition"}'), ('ps_pts', '{"shard_by": "region"}'),
             ('ps_pts', '{"shards": 2, "shard_by": "partition"}'), ('ps_small', '{"shards": "partition"}'),
             ('ps_one', '{"shards": "partition"}'), ('ps_many', '{"shards": "partition"}'),
             ('ps_pts', '{"shards": "partitions"}')) v(t, o);
SELECT count(*) AS registered FROM unlearn.models WHERE name = 'bad';
DROP TABLE ps_plain, ps_small, ps_one, ps_many;

-- a model of the three partitions with rows (east, north, west: 0, 1, 2)
SELECT model, version, rows, train_accuracy > 0.9 AS fits
FROM unlearn_train('ps', 'ps_pts', 'id', 'x', 'label', hidden => '{8}', epochs => 30,
                   options => '{"shards": "partition", "seed": 5, "lr": 0.01}');
SELECT options->'shards' AS shards, options->'shard_by' AS shard_by FROM unlearn.models WHERE name = 'ps';
SELECT metrics->'shards' AS shards, metrics->'shard_by' AS shard_by, metrics->'shard_partitions' AS partitions,
       metrics->'retrained_shards' AS retrained, guarantee
FROM unlearn.versions WHERE model = 'ps' AND version = 1;
-- each id's shard is its partition's, in the manifest
SELECT s AS shard, count(*) AS rows,
       bool_and(p.tableoid = (ARRAY['ps_pts_east', 'ps_pts_north', 'ps_pts_west']::regclass[])[s + 1]) AS its_partition
FROM inspect.manifests m, unnest(m.ids, m.shards) u(id, s) JOIN ps_pts p USING (id)
WHERE m.model = 'ps' AND m.version = 1 GROUP BY s ORDER BY s;

-- the prediction is the mean of models trained on each partition alone,
-- with shard k's seed (5 + k) and, as shards do, no weight decay
SELECT count(*) FROM (
    SELECT unlearn_train('ps_' || r, 'ps_pts_' || r, 'id', 'x', 'label', hidden => '{8}', epochs => 30,
                         options => format('{"seed": %s, "lr": 0.01, "weight_decay": 0}', 4 + k)::jsonb,
                         auto_unlearn => false)
    FROM unnest(ARRAY['east', 'north', 'west']) WITH ORDINALITY AS r(r, k)) t;
SELECT max(abs(u.s - (u.e + u.n + u.w) / 3)) < 1e-6 AS mean_of_partitions
FROM ps_pts t,
     LATERAL unnest(unlearn_predict_proba('ps', t.x), unlearn_predict_proba('ps_east', t.x),
                    unlearn_predict_proba('ps_north', t.x), unlearn_predict_proba('ps_west', t.x)) AS u(s, e, n, w);
SELECT rows, accuracy > 0.9 AS accurate FROM unlearn_evaluate('ps', 'ps_pts');
SELECT count(*) AS dropped FROM (SELECT unlearn_drop_model(m) FROM unnest(ARRAY['ps_east', 'ps_north', 'ps_west']) m) d;

-- (approximate unlearning inside a shard: on ps_seq below)

-- an exact delete through the parent (unlearn_rows deletes the row): only
-- its partition's shard is retrained
CREATE TEMP TABLE ps_gone AS SELECT id, tableoid::regclass AS partition FROM ps_pts WHERE id IN (3, 4, 7, 10, 11);
SELECT * FROM ps_gone ORDER BY id;
SELECT version, rows, forgotten, method FROM unlearn_rows('ps', ARRAY[3], '{"method": "exact"}');
SELECT reason, guarantee, parent, metrics->'retrained_shards' AS retrained, metrics->'shard_by' AS shard_by,
       (metrics->>'rows')::int AS rows_retrained
FROM unlearn.versions WHERE model = 'ps' AND version = 2;
-- a DELETE through the parent, by the worker
DELETE FROM ps_pts WHERE id = 4;
SELECT unlearn_wait('ps', '60 s') AS drained;
-- a DELETE through a partition, by the worker: west's shard only
DELETE FROM ps_pts_west WHERE id IN (10, 11);
SELECT unlearn_wait('ps', '60 s') AS drained;
SELECT version, reason, guarantee, metrics->'retrained_shards' AS retrained
FROM unlearn.versions WHERE model = 'ps' AND version > 2 ORDER BY version;
-- which shards changed: the members' bytes (weights: superuser) and the
-- manifests' rows per shard against the parent's
RESET ROLE;
SELECT v.version, array_agg(k ORDER BY k) FILTER (WHERE sh_member(v.weights, k) <> sh_member(p.weights, k)) AS changed
FROM unlearn.versions v JOIN unlearn.versions p ON p.model = v.model AND p.version = v.parent,
     generate_series(0, 2) k
WHERE v.model = 'ps' AND v.version IN (2, 3, 4) GROUP BY v.version ORDER BY v.version;
SET ROLE regress_owner;
SELECT m.version, array_agg(c.n ORDER BY c.s) AS rows_per_shard
FROM inspect.manifests m, LATERAL (SELECT s, count(*) AS n FROM unnest(m.shards) s GROUP BY s) c
WHERE m.model = 'ps' GROUP BY m.version ORDER BY m.version;
SELECT count(*) AS gone_in_manifest FROM unlearn_manifest('ps') i WHERE i IN (3, 4, 10, 11);
SELECT unlearn_confirm_forgotten('ps') AS confirmed;
SELECT bool_and(valid) AS valid, count(*) AS versions FROM unlearn_verify_ledger('ps');

-- a partition attached later is not learned: the model and its manifest stay;
-- an exact delete still knows three shards
CREATE TABLE ps_pts_extra (LIKE ps_pts);
INSERT INTO ps_pts_extra SELECT 1000 + id, x, label, 'extra' FROM ps_pts WHERE id <= 60;
ALTER TABLE ps_pts ATTACH PARTITION ps_pts_extra FOR VALUES IN ('extra');
SELECT current_version, (SELECT count(*) FROM unlearn_manifest('ps') i WHERE i > 1000) AS extra_in_manifest
FROM unlearn.models WHERE name = 'ps';
SELECT version, forgotten FROM unlearn_rows('ps', ARRAY[7], '{"method": "exact"}');
SELECT metrics->'retrained_shards' AS retrained FROM unlearn.versions WHERE model = 'ps' AND version = 5;
-- until a retrain: four shards now, every one trained, extra's rows in the manifest
SELECT version, rows FROM unlearn_retrain('ps');
SELECT options->'shards' AS shards, metrics->'shards' AS metrics_shards, metrics->'shard_partitions' AS partitions,
       metrics->'retrained_shards' AS retrained
FROM unlearn.versions WHERE model = 'ps' AND version = 6;
SELECT (SELECT count(*) FROM unlearn_manifest('ps') i WHERE i > 1000) AS extra_in_manifest;
-- and exact deletes after it know the four: one in extra
DELETE FROM ps_pts_extra WHERE id = 1002;
SELECT unlearn_wait('ps', '60 s') AS drained;
SELECT version, reason, metrics->'retrained_shards' AS retrained
FROM unlearn.versions WHERE model = 'ps' ORDER BY version DESC LIMIT 1;
SELECT unlearn_confirm_forgotten('ps') AS confirmed;

-- DETACH and DROP of a partition are refused while the model captures deletes
SELECT err($$ALTER TABLE ps_pts DETACH PARTITION ps_pts_extra$$) AS detach;
SELECT err($$DROP TABLE ps_pts_west$$) AS drop_partition;
-- a retrain keeps the sharding
SELECT err($$SELECT unlearn_retrain('ps', '{"shard_by": "partition"}')$$) AS retrain_shard_by;

-- parallel workers train the same model, byte for byte (a superuser setting)
CREATE TABLE ps_copy (LIKE ps_pts) PARTITION BY LIST (region);
CREATE TABLE ps_copy_a PARTITION OF ps_copy FOR VALUES IN ('east', 'north');
CREATE TABLE ps_copy_b PARTITION OF ps_copy FOR VALUES IN ('west', 'extra');
INSERT INTO ps_copy SELECT * FROM ps_pts;
SELECT version FROM unlearn_train('ps_seq', 'ps_copy', 'id', 'x', 'label', hidden => '{8}', epochs => 5,
                                  options => '{"shards": "partition", "seed": 3}', auto_unlearn => false);
RESET ROLE;
SET unlearn.shard_workers = 1;
SET ROLE regress_owner;
SELECT version FROM unlearn_train('ps_par', 'ps_copy', 'id', 'x', 'label', hidden => '{8}', epochs => 5,
                                  options => '{"shards": "partition", "seed": 3}', auto_unlearn => false);
RESET ROLE;
RESET unlearn.shard_workers;
SELECT p.weights_sha256 = s.weights_sha256 AS same_bytes, p.metrics->'shard_partitions' AS partitions
FROM unlearn.versions p JOIN unlearn.versions s ON s.model = 'ps_seq' AND s.version = 1
WHERE p.model = 'ps_par' AND p.version = 1;
SET ROLE regress_owner;

-- approximate unlearning inside a partition's shard (the row the ensemble
-- is least sure of): its new manifest keeps each id's shard, and an exact
-- delete after it still finds them
SELECT version, rows, method
FROM unlearn_rows('ps_seq', (SELECT array_agg(id) FROM (SELECT id FROM ps_copy WHERE unlearn_predict('ps_seq', x) = label
                                                        ORDER BY (unlearn_predict_proba('ps_seq', x))[label + 1], id
                                                        LIMIT 1) t));
SELECT guarantee, metrics->'shards_changed' AS shards_changed FROM unlearn.versions WHERE model = 'ps_seq' AND version = 2;
SELECT version, forgotten, method FROM unlearn_rows('ps_seq', ARRAY[(SELECT min(id) FROM ps_copy WHERE id > 100)], '{"method": "exact"}');
SELECT m.version, array_agg(c.n ORDER BY c.s) AS rows_per_shard
FROM inspect.manifests m, LATERAL (SELECT s, count(*) AS n FROM unnest(m.shards) s GROUP BY s) c
WHERE m.model = 'ps_seq' GROUP BY m.version ORDER BY m.version;
SELECT unlearn_confirm_forgotten('ps_seq') AS confirmed;

SELECT count(*) AS dropped FROM (SELECT unlearn_drop_model(m) FROM unnest(ARRAY['ps', 'ps_seq', 'ps_par']) m) d;
DROP TABLE ps_pts, ps_copy;
RESET ROLE;
