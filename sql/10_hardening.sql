-- Hardening found by an attacker's review: ways a deleted row could miss a
-- model, one user could reach another's model, or a table's owner could run
-- code as a model's owner.  Each part fails on the code before its fix.
CREATE EXTENSION IF NOT EXISTS dblink;

CREATE TABLE hard (id bigint PRIMARY KEY, features real[], label int);
INSERT INTO hard
SELECT i, ARRAY[(i % 3) * 2.0 + 0.3 * sin(i), (i % 2) + 0.3 * cos(i)]::real[], i % 3
FROM generate_series(1, 150) i;
SELECT model FROM unlearn_train('hard', 'hard', 'id', 'features', 'label', hidden => '{16}', epochs => 30,
                                options => '{"seed": 1, "lr": 0.01, "batch_size": 32}');

-- Renaming a model's column through ALTER VIEW, MATERIALIZED VIEW or FOREIGN
-- TABLE (PostgreSQL accepts them on a table) is refused like ALTER TABLE's.
SELECT err($$ALTER VIEW hard RENAME COLUMN label TO real_label$$);
SELECT err($$ALTER MATERIALIZED VIEW hard RENAME COLUMN features TO f$$);
SELECT err($$ALTER FOREIGN TABLE hard RENAME COLUMN id TO i$$);

-- A learned row changed before it was deleted: its learned copy (the first
-- request) is what is unlearned, whatever the later requests carry.
-- label changed to a value that is no class, then deleted
UPDATE hard SET label = 7 WHERE id = 10;
DELETE FROM hard WHERE id = 10;
-- features changed to the wrong length, then deleted, in one transaction
BEGIN;
UPDATE hard SET features = '{0}' WHERE id = 11;
DELETE FROM hard WHERE id = 11;
COMMIT;
-- features changed to NaN, then deleted, beside an ordinary delete
BEGIN;
DELETE FROM hard WHERE id = 20;
UPDATE hard SET features = '{NaN,0}' WHERE id = 12;
DELETE FROM hard WHERE id = 12;
COMMIT;
SELECT unlearn_wait('hard') AS drained;
SELECT id, kind, state FROM unlearn.requests WHERE model = 'hard' ORDER BY request_id;
SELECT count(*) AS still_in_manifest FROM unlearn_manifest('hard') m WHERE m IN (10, 11, 12, 20);
SELECT id FROM unlearn.forgotten WHERE model = 'hard' ORDER BY id;
SELECT unlearn_confirm_forgotten('hard') AS confirmed;

-- Rows that unlearn_rows deletes indirectly (an ON DELETE CASCADE within the
-- table) are queued for the same model: only the rows it unlearns are not.
CREATE TABLE tree (id bigint PRIMARY KEY, parent bigint REFERENCES tree ON DELETE CASCADE,
                   features real[], label int);
INSERT INTO tree
SELECT i, CASE WHEN i BETWEEN 2 AND 5 THEN 1 END,
       ARRAY[(i % 2) * 2.0 + 0.3 * sin(i), 0.3 * cos(i)]::real[], i % 2
FROM generate_series(1, 120) i;
SELECT model FROM unlearn_train('tree', 'tree', 'id', 'features', 'label', hidden => '{16}', epochs => 30,
                                options => '{"seed": 1, "lr": 0.01, "batch_size": 32}');
SELECT rows FROM unlearn_rows('tree', ARRAY[1]);
SELECT id FROM unlearn.requests WHERE model = 'tree' ORDER BY id;
SELECT unlearn_wait('tree') AS drained;
SELECT count(*) AS cascaded_still_in_manifest FROM unlearn_manifest('tree') m WHERE m BETWEEN 1 AND 5;
SELECT unlearn_drop_model('tree');
DROP TABLE tree;

-- A model trained after this session's transaction began is captured at
-- once: the capture reads the models as committed, not as its snapshot saw them.
CREATE TABLE snap (id bigint, features real[], label int);
INSERT INTO snap SELECT i, ARRAY[(i % 2) * 2.0, 0.3 * sin(i)]::real[], i % 2 FROM generate_series(1, 60) i;
SELECT model FROM unlearn_train('snap_a', 'snap', 'id', 'features', 'label', hidden => '{}', epochs => 5);
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT count(*) FROM snap;
SELECT * FROM dblink('dbname=' || current_database(),
                      $$SELECT model FROM unlearn_train('snap_b', 'snap', 'id', 'features', 'label',
                                                        hidden => '{}', epochs => 5)$$) AS t(model text);
DELETE FROM snap WHERE id = 1;
COMMIT;
DELETE FROM snap WHERE id = 2;
SELECT model, id FROM unlearn.requests WHERE model LIKE 'snap%' ORDER BY model, id;

-- A transaction still queueing requests for a model holds its catalog row:
-- unlearn_drop_model waits for it, then removes what it queued, so nothing
-- reaches a new model of the same name.
SELECT dblink_connect('other', 'dbname=' || current_database());
SELECT dblink_exec('other', 'BEGIN');
SELECT dblink_exec('other', 'DELETE FROM snap WHERE id = 3');
SET lock_timeout = '300ms';
SELECT err($$SELECT unlearn_drop_model('snap_b')$$);
RESET lock_timeout;
SELECT dblink_exec('other', 'COMMIT');
SELECT unlearn_drop_model('snap_b');
SELECT count(*) AS requests_left FROM unlearn.requests WHERE model = 'snap_b';
SELECT dblink_disconnect('other');
SELECT unlearn_drop_model('snap_a');
DROP TABLE snap;

-- Deletes through a table above a model's table would fire only that
-- table's triggers: automatic unlearning refuses partitions and inheritance
-- children, and a training table cannot be put below another.
CREATE TABLE up_root (id bigint, features real[], label int) PARTITION BY RANGE (id);
CREATE TABLE up_part PARTITION OF up_root FOR VALUES FROM (0) TO (1000);
INSERT INTO up_root SELECT i, ARRAY[i % 2, 0]::real[], i % 2 FROM generate_series(1, 40) i;
SELECT err($$SELECT unlearn_train('up_m', 'up_part', 'id', 'features', 'label', hidden => '{}', epochs => 1)$$);
CREATE TABLE up_parent (id bigint, features real[], label int);
SELECT err($$ALTER TABLE hard INHERIT up_parent$$);
CREATE TABLE up_root2 (id bigint PRIMARY KEY, features real[], label int, pid int) PARTITION BY RANGE (id);
SELECT err($$ALTER TABLE up_root2 ATTACH PARTITION hard FOR VALUES FROM (0) TO (1000)$$);
DROP TABLE up_root, up_parent, up_root2;

-- Row-level security: a table's owner cannot run code as the model's owner
-- through the worker's reads.  The policy is not evaluated; the run fails.
CREATE ROLE regress_tab_owner;
CREATE ROLE regress_model_owner;
CREATE TABLE rls (id bigint PRIMARY KEY, features real[], label int);
INSERT INTO rls SELECT i, ARRAY[(i % 2) * 2.0 + 0.3 * sin(i), 0.3 * cos(i)]::real[], i % 2
FROM generate_series(1, 80) i;
CREATE TABLE rls_seen (who name);
GRANT INSERT ON rls_seen TO PUBLIC;
ALTER TABLE rls OWNER TO regress_tab_owner;
GRANT SELECT, TRIGGER ON rls TO regress_model_owner;
SET ROLE regress_model_owner;
SELECT model FROM unlearn_train('rls_m', 'rls', 'id', 'features', 'label', hidden => '{16}', epochs => 30,
                                options => '{"seed": 1, "lr": 0.01, "batch_size": 32}');
RESET ROLE;
CREATE FUNCTION public.rls_spy() RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO rls_seen VALUES (current_user);
	RETURN true;
END $$;
SET ROLE regress_tab_owner;
ALTER TABLE rls ENABLE ROW LEVEL SECURITY;
CREATE POLICY spy ON rls USING (public.rls_spy());
DELETE FROM rls WHERE id = 7;
RESET ROLE;
SELECT unlearn_wait('rls_m') AS drained;
SELECT state, last_error LIKE '%row-level security%' AS refused_by_rls FROM unlearn.requests WHERE model = 'rls_m';
SELECT count(*) AS policy_ran_as_model_owner FROM rls_seen WHERE who = 'regress_model_owner';
SET ROLE regress_model_owner;
SELECT unlearn_drop_model('rls_m');
RESET ROLE;
DROP TABLE rls, rls_seen;
DROP FUNCTION public.rls_spy();
DROP ROLE regress_tab_owner, regress_model_owner;

-- A nondeterministic collation on a text label cannot hide a relabel.
CREATE COLLATION hard_ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
CREATE TABLE ci (id bigint, features real[], label text COLLATE hard_ci);
INSERT INTO ci SELECT i, ARRAY[(i % 2) * 2.0, 0.3 * sin(i)]::real[], CASE WHEN i % 2 = 0 THEN 'a' ELSE 'A' END
FROM generate_series(1, 60) i;
SELECT model, classes FROM unlearn_train('ci', 'ci', 'id', 'features', 'label', hidden => '{}', epochs => 5);
UPDATE ci SET label = 'A' WHERE id = 2;
SELECT id, kind, label, new_label FROM unlearn.requests WHERE model = 'ci';
SELECT unlearn_drop_model('ci');
DROP TABLE ci;
DROP COLLATION hard_ci;

-- A second review: CREATE OR REPLACE TRIGGER over one of our triggers (with
-- another function) would silently replace the capture.
CREATE FUNCTION public.hard_nothing() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
SELECT err($$CREATE OR REPLACE TRIGGER unlearn_capture_delete AFTER DELETE ON hard
             FOR EACH STATEMENT EXECUTE FUNCTION public.hard_nothing()$$);
SELECT err($$CREATE OR REPLACE TRIGGER unlearn_capture_apply AFTER DELETE ON hard
             FOR EACH ROW EXECUTE FUNCTION public.hard_nothing()$$);
DROP FUNCTION public.hard_nothing();
-- an unlogged table loses its rows in a crash without a trigger: refused both ways
SELECT err($$ALTER TABLE hard SET UNLOGGED$$);
CREATE UNLOGGED TABLE hard_unlogged (id bigint, features real[], label int);
INSERT INTO hard_unlogged SELECT i, ARRAY[i % 2, 0]::real[], i % 2 FROM generate_series(1, 20) i;
SELECT err($$SELECT unlearn_train('hard_u', 'hard_unlogged', 'id', 'features', 'label', hidden => '{}', epochs => 1)$$);
DROP TABLE hard_unlogged;
-- a model's column dropped with a collation it uses (DROP COLLATION ... CASCADE)
CREATE COLLATION hard_c (provider = libc, locale = 'C');
CREATE TABLE hard_col (id bigint, features real[], label text COLLATE hard_c);
INSERT INTO hard_col SELECT i, ARRAY[(i % 2) * 2.0, 0.3 * sin(i)]::real[], CASE WHEN i % 2 = 0 THEN 'a' ELSE 'b' END
FROM generate_series(1, 40) i;
SELECT model FROM unlearn_train('hard_col', 'hard_col', 'id', 'features', 'label', hidden => '{}', epochs => 3);
SELECT err($$DROP COLLATION hard_c CASCADE$$);
SELECT unlearn_drop_model('hard_col');
DROP TABLE hard_col;
DROP COLLATION hard_c;
-- the worker's single-worker lock is not an advisory lock SQL can take first
-- (a role holding it used to leave the database without a worker)
SELECT pg_try_advisory_lock(33053984111555182) AS sql_holds_the_old_key;
DELETE FROM hard WHERE id = 30;
SELECT unlearn_wait('hard') AS drained_while_sql_holds_it;
SELECT pg_advisory_unlock(33053984111555182);

-- unlearn_rows and unlearn_relabel of a row whose change is still queued
-- (an UPDATE in the same transaction): the queue holds the copy the model
-- learned, the call would read the row as it is now; refused (an attacker's
-- review, 2026-12-03), and the worker unlearns the learned copy after COMMIT
BEGIN;
UPDATE hard SET features = ARRAY[9, 9]::real[] WHERE id = 31;
SELECT err($$SELECT unlearn_rows('hard', ARRAY[31])$$);
SELECT err($$SELECT unlearn_relabel('hard', ARRAY[31], ARRAY['1'])$$);
COMMIT;
SELECT unlearn_wait('hard') AS drained;
SELECT kind, state FROM unlearn.requests WHERE model = 'hard' AND id = 31 ORDER BY request_id;

SELECT unlearn_drop_model('hard');
DROP TABLE hard;
