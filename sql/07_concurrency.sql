-- Concurrency: a second unlearning call on the same model waits for the
-- first (the model row is locked), then works from the version it made.
-- A second session is opened with dblink.  Both sessions are the ordinary
-- model owner (see 01_train).
-- superuser: dblink is not a trusted extension
CREATE EXTENSION IF NOT EXISTS dblink;
-- open_training(model, table): a session 'other' (regress_owner) trains the
-- model with automatic unlearning on, its transaction left open (called as a
-- superuser: dblink connects without a password only for one)
CREATE FUNCTION open_training(model text, tbl text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	trained text;
BEGIN
	PERFORM dblink_connect('other', 'dbname=' || current_database() || ' user=regress_owner');
	PERFORM dblink_exec('other', 'BEGIN');
	SELECT t.m INTO trained
	  FROM dblink('other', format('SELECT model FROM unlearn_train(%L, %L, %L, %L, %L, hidden => %L, epochs => 1)',
	                              model, tbl, 'id', 'features', 'label', '{8}')) AS t(m text);
	RETURN trained;
END $$;
SET ROLE regress_owner;
CREATE TABLE conc AS
SELECT i::bigint AS id,
       ARRAY[(i % 2) * 2.0 + 0.4 * sin(i * 12.9898), 0.4 * cos(i * 78.233)]::real[] AS features,
       (i % 2) AS label
FROM generate_series(1, 200) i;
SELECT model FROM unlearn_train('conc', 'conc', 'id', 'features', 'label', hidden => '{8}', epochs => 20,
                   options => '{"lr": 0.01, "batch_size": 16}', auto_unlearn => false);
-- superuser: dblink lets only a superuser connect without a password; the
-- other session logs in as regress_owner itself
RESET ROLE;
SELECT dblink_connect('other', 'dbname=' || current_database() || ' user=regress_owner');
SET ROLE regress_owner;
SELECT * FROM dblink('other', 'SELECT session_user, current_user') AS t(session_user_name name, current_user_name name);
-- the other session unlearns row 1 and keeps its transaction open
SELECT dblink_exec('other', 'BEGIN');
SELECT * FROM dblink('other', $$SELECT version, rows, forgotten FROM unlearn_rows('conc', ARRAY[1])$$)
  AS t(version int, rows int, forgotten int);
-- this session must wait for it: with a lock timeout it gives up, changing nothing
SET lock_timeout = '300ms';
SELECT err($$SELECT unlearn_rows('conc', ARRAY[2])$$);
RESET lock_timeout;
SELECT count(*) AS row_2_still_there FROM conc WHERE id = 2;
-- once the other session commits, the next call builds on its version
SELECT dblink_exec('other', 'COMMIT');
SELECT version, rows, forgotten, prior FROM unlearn_rows('conc', ARRAY[2]);
SELECT version, parent, reason, created_by FROM unlearn.versions WHERE model = 'conc' ORDER BY version;
-- a waiting call (not timed out) proceeds when the lock is released
SELECT dblink_exec('other', 'BEGIN');
SELECT * FROM dblink('other', $$SELECT version FROM unlearn_rows('conc', ARRAY[3])$$) AS t(version int);
SELECT dblink_send_query('other', 'SELECT pg_sleep(0.5); COMMIT');
SELECT version, prior FROM unlearn_rows('conc', ARRAY[4]);
SELECT * FROM dblink_get_result('other') AS t(x text);
SELECT version, parent FROM unlearn.versions WHERE model = 'conc' ORDER BY version;
SELECT unlearn_confirm_forgotten('conc') AS confirmed;
SELECT dblink_disconnect('other');
-- a DELETE whose requests are queued but not committed has locked the model's
-- catalog row (key-share): unlearn_drop_model, which locks it for update first,
-- waits for it, then removes its requests, so none reaches a new model of the name
CREATE TABLE dropcap AS SELECT * FROM conc;
SELECT model FROM unlearn_train('dropcap', 'dropcap', 'id', 'features', 'label', hidden => '{8}', epochs => 5,
                   options => '{"lr": 0.01, "batch_size": 16}');
RESET ROLE;
SELECT dblink_connect('other', 'dbname=' || current_database() || ' user=regress_owner');
SET ROLE regress_owner;
SELECT dblink_exec('other', 'BEGIN');
SELECT dblink_exec('other', 'DELETE FROM dropcap WHERE id IN (10, 11)');
SET lock_timeout = '300ms';
SELECT err($$SELECT unlearn_drop_model('dropcap')$$);
RESET lock_timeout;
SELECT count(*) AS model_still_there FROM unlearn.models WHERE name = 'dropcap';
SELECT dblink_send_query('other', 'SELECT pg_sleep(0.5); COMMIT');
SELECT unlearn_drop_model('dropcap');
SELECT dblink_disconnect('other');	-- its results are not needed: the drop waited for its COMMIT
SELECT count(*) AS rows_10_11_left FROM dropcap WHERE id IN (10, 11);
SELECT count(*) AS requests_left FROM inspect.requests WHERE model = 'dropcap';
-- a model of the same name starts with an empty queue
SELECT model FROM unlearn_train('dropcap', 'dropcap', 'id', 'features', 'label', hidden => '{8}', epochs => 5,
                   options => '{"lr": 0.01, "batch_size": 16}', auto_unlearn => false);
SELECT count(*) AS requests_of_the_new_model FROM inspect.requests WHERE model = 'dropcap';
SELECT unlearn_drop_model('dropcap');
-- the same from a REPEATABLE READ transaction whose snapshot was taken before
-- the DELETE committed: the drop removes the requests as committed when it
-- goes on, not as its snapshot saw them (none).  The worker is held back by a
-- batching window of a minute: a run of its own would update the model's row
-- first, and the drop would rightly fail to serialize (40001).
SELECT model FROM unlearn_train('dropcap', 'dropcap', 'id', 'features', 'label', hidden => '{8}', epochs => 5,
                   options => '{"lr": 0.01, "batch_size": 16}');
-- superuser: ALTER SYSTEM and pg_reload_conf change the worker's settings
RESET ROLE;
ALTER SYSTEM SET unlearn.batch_window = '60s';
SELECT pg_reload_conf();
SELECT pg_sleep(1.2);	-- more than unlearn.naptime: the worker has read it
SELECT dblink_connect('other', 'dbname=' || current_database() || ' user=regress_owner');
SET ROLE regress_owner;
SELECT dblink_exec('other', 'BEGIN');
SELECT dblink_exec('other', 'DELETE FROM dropcap WHERE id IN (20, 21)');
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT count(*) AS requests_in_the_snapshot FROM inspect.requests WHERE model = 'dropcap';
SELECT dblink_send_query('other', 'SELECT pg_sleep(0.5); COMMIT');
SELECT unlearn_drop_model('dropcap');
COMMIT;
SELECT dblink_disconnect('other');
SELECT count(*) AS rows_20_21_left FROM dropcap WHERE id IN (20, 21);
SELECT count(*) AS requests_left FROM inspect.requests WHERE model = 'dropcap';
-- requests such a drop left behind (made here by hand) are removed, with a
-- warning, when a model of the same name is trained: they are not its own
RESET ROLE;
INSERT INTO unlearn.requests (model, kind, id, label, features)
VALUES ('dropcap', 'forget', 30, '0', '{0,0}'), ('dropcap', 'forget', 31, '1', '{1,1}');
SET ROLE regress_owner;
SELECT model FROM unlearn_train('dropcap', 'dropcap', 'id', 'features', 'label', hidden => '{8}', epochs => 5,
                   options => '{"lr": 0.01, "batch_size": 16}', auto_unlearn => false);
SELECT count(*) AS stale_requests_left FROM inspect.requests WHERE model = 'dropcap';
SELECT unlearn_drop_model('dropcap');
-- a DELETE still open when unlearn_train starts: training waits for it
-- (writes are kept out from the read to the triggers), so the deleted row is
-- not learned; reading first, it was learned and its DELETE never queued
RESET ROLE;
SELECT dblink_connect('other', 'dbname=' || current_database() || ' user=regress_owner');
SET ROLE regress_owner;
SELECT dblink_exec('other', 'BEGIN');
SELECT dblink_exec('other', 'DELETE FROM dropcap WHERE id = 40');
SELECT dblink_send_query('other', 'SELECT pg_sleep(0.5); COMMIT');
SELECT model, rows FROM unlearn_train('opendel', 'dropcap', 'id', 'features', 'label', hidden => '{8}', epochs => 5,
                   options => '{"lr": 0.01, "batch_size": 16}');
SELECT dblink_disconnect('other');
SELECT count(*) FILTER (WHERE id = 40) AS learned_40, count(*) AS learned FROM unlearn_manifest('opendel') AS m(id);
SELECT count(*) AS requests_for_40 FROM inspect.requests WHERE model = 'opendel' AND id = 40;
SELECT unlearn_drop_model('opendel');
-- training called by a statement that is itself deleting from the table
-- (its rows could go after the read, with no trigger yet): refused up front
SELECT err($$DELETE FROM dropcap WHERE id = (SELECT 5 FROM unlearn_train('indel', 'dropcap', 'id', 'features',
             'label', hidden => '{8}', epochs => 1))$$);
SELECT count(*) AS row_5_still_there, (SELECT count(*) FROM unlearn.models WHERE name = 'indel') AS models
FROM dropcap WHERE id = 5;
-- REPEATABLE READ (and SERIALIZABLE) would read with a snapshot from before
-- such a DELETE: refused with automatic unlearning, allowed without it
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT err($$SELECT unlearn_train('rrtrain', 'dropcap', 'id', 'features', 'label', hidden => '{8}', epochs => 1)$$);
ROLLBACK;
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT model FROM unlearn_train('rrtrain', 'dropcap', 'id', 'features', 'label', hidden => '{8}', epochs => 1,
                   auto_unlearn => false);
ROLLBACK;
-- unlearn_drop_model of a table's model while another model with automatic
-- unlearning is being trained on it (its triggers installed, not committed):
-- the drop waits for that training and leaves the triggers the new model needs
SELECT model FROM unlearn_train('droptr_a', 'dropcap', 'id', 'features', 'label', hidden => '{8}', epochs => 1);
RESET ROLE;
SELECT open_training('droptr_b', 'dropcap');
SET ROLE regress_owner;
SELECT dblink_send_query('other', 'SELECT pg_sleep(0.5); COMMIT');
SELECT unlearn_drop_model('droptr_a');
SELECT dblink_disconnect('other');
SELECT name FROM unlearn.models WHERE name LIKE 'droptr%' ORDER BY name;
SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = 'dropcap'::regclass AND NOT tgisinternal ORDER BY tgname;
DELETE FROM dropcap WHERE id = 41;
SELECT model, id FROM inspect.requests WHERE id = 41 ORDER BY model;
-- the same from REPEATABLE READ, whose snapshot cannot see the new model:
-- the drop looks again under the latest snapshot once it has the lock
SELECT model FROM unlearn_train('droptr_c', 'dropcap', 'id', 'features', 'label', hidden => '{8}', epochs => 1);
SELECT unlearn_drop_model('droptr_b');
RESET ROLE;
SELECT open_training('droptr_d', 'dropcap');
SET ROLE regress_owner;
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT count(*) AS models_seen FROM unlearn.models WHERE name LIKE 'droptr%';
SELECT dblink_send_query('other', 'SELECT pg_sleep(0.5); COMMIT');
SELECT unlearn_drop_model('droptr_c');
COMMIT;
SELECT dblink_disconnect('other');
SELECT name FROM unlearn.models WHERE name LIKE 'droptr%' ORDER BY name;
SELECT count(*) AS triggers FROM pg_trigger WHERE tgrelid = 'dropcap'::regclass AND NOT tgisinternal;
DELETE FROM dropcap WHERE id = 42;
SELECT model, id FROM inspect.requests WHERE id = 42 ORDER BY model;
SELECT unlearn_drop_model('droptr_d');
-- DDL issued while a training with automatic unlearning holds the table: it
-- waits for the training, then the guard checks it against the model and the
-- triggers that committed (checked before the wait, it let this through)
CREATE TABLE racet AS SELECT * FROM conc;
RESET ROLE;
SELECT open_training('racet', 'racet');
SET ROLE regress_owner;
SELECT dblink_send_query('other', 'SELECT pg_sleep(0.5); COMMIT');
SELECT err($$ALTER TABLE racet DISABLE TRIGGER ALL$$);
SELECT dblink_disconnect('other');
SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = 'racet'::regclass AND NOT tgisinternal ORDER BY tgname;
SELECT unlearn_drop_model('racet');
DROP TABLE racet;
-- the same when another table is renamed onto the DDL's name while it waits:
-- the guard checks the table it locked, found again under the lock (session
-- a swaps the names of rb and ra, session b trains on ra meanwhile)
CREATE TABLE ra AS SELECT * FROM conc;
CREATE TABLE rb AS SELECT * FROM conc;
RESET ROLE;
SELECT dblink_connect('a', 'dbname=' || current_database() || ' user=regress_owner');
SELECT dblink_connect('b', 'dbname=' || current_database() || ' user=regress_owner');
SET ROLE regress_owner;
SELECT dblink_exec('a', 'BEGIN');
SELECT dblink_exec('a', 'LOCK TABLE public.rb IN ACCESS EXCLUSIVE MODE');
SELECT dblink_exec('a', 'ALTER TABLE public.rb RENAME TO rb_old');
SELECT dblink_exec('a', 'ALTER TABLE public.ra RENAME TO rb');
SELECT dblink_send_query('b', $$BEGIN; SELECT unlearn_train('mrace', 'ra', 'id', 'features', 'label', hidden => '{8}',
                                epochs => 1); SELECT pg_sleep(0.5); COMMIT$$);
SELECT pg_sleep(0.2);
SELECT dblink_send_query('a', 'SELECT pg_sleep(0.5); COMMIT');
SELECT err($$ALTER TABLE rb DISABLE TRIGGER ALL$$);
SELECT dblink_disconnect('a'), dblink_disconnect('b');
SELECT m.name, m.relation::regclass AS now_named, m.auto_unlearn FROM unlearn.models m WHERE m.name = 'mrace';
SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = 'rb'::regclass AND NOT tgisinternal ORDER BY tgname;
SELECT unlearn_drop_model('mrace');
DROP TABLE rb, rb_old;
-- the table an ATTACH PARTITION names, while a training on it commits: checked
-- once it is locked (the guard looked it up unlocked before, and it was attached)
CREATE TABLE attq (id bigint, features real[], label int) PARTITION BY RANGE (id);
CREATE TABLE attt AS SELECT * FROM conc;
RESET ROLE;
SELECT open_training('attm', 'attt');
SET ROLE regress_owner;
SELECT dblink_send_query('other', 'SELECT pg_sleep(0.5); COMMIT');
SELECT err($$ALTER TABLE attq ATTACH PARTITION attt FOR VALUES FROM (0) TO (1000)$$);
SELECT dblink_disconnect('other');
SELECT relispartition FROM pg_class WHERE oid = 'attt'::regclass;
SELECT unlearn_drop_model('attm');
DROP TABLE attq, attt;
-- the partition a DETACH names, renamed onto that name while the DETACH waits
-- (session a renames a decoy away, then the real partition onto its name)
CREATE TABLE dpp (id bigint, features real[], label int) PARTITION BY RANGE (id);
CREATE TABLE dpp_real PARTITION OF dpp FOR VALUES FROM (0) TO (1000);
INSERT INTO dpp SELECT * FROM conc;
CREATE TABLE dpp_decoy (id bigint, features real[], label int);
SELECT model FROM unlearn_train('dppm', 'dpp', 'id', 'features', 'label', hidden => '{8}', epochs => 1);
RESET ROLE;
SELECT dblink_connect('a', 'dbname=' || current_database() || ' user=regress_owner');
SET ROLE regress_owner;
SELECT dblink_exec('a', 'BEGIN');
SELECT dblink_exec('a', 'ALTER TABLE public.dpp_decoy RENAME TO dpp_gone');
SELECT dblink_send_query('a', 'SELECT pg_sleep(0.5); ALTER TABLE public.dpp_real RENAME TO dpp_decoy; COMMIT');
SELECT err($$ALTER TABLE dpp DETACH PARTITION dpp_decoy$$);
SELECT dblink_disconnect('a');
SELECT c.relname, c.relispartition FROM pg_class c WHERE c.relname IN ('dpp_decoy', 'dpp_gone') ORDER BY 1;
SELECT unlearn_drop_model('dppm');
DROP TABLE dpp, dpp_gone;
-- ALTER TYPE ... RENAME ATTRIBUTE ... CASCADE while a training on a typed
-- table of the type commits: the typed tables are locked before the check
CREATE TYPE racecomp AS (id bigint, features real[], label int);
CREATE TABLE racetyped OF racecomp;
INSERT INTO racetyped SELECT * FROM conc;
RESET ROLE;
SELECT open_training('typm', 'racetyped');
SET ROLE regress_owner;
SELECT dblink_send_query('other', 'SELECT pg_sleep(0.5); COMMIT');
SELECT err($$ALTER TYPE racecomp RENAME ATTRIBUTE id TO id_was CASCADE$$);
SELECT dblink_disconnect('other');
SELECT attname FROM pg_attribute WHERE attrelid = 'racetyped'::regclass AND attnum > 0 ORDER BY attnum;
SELECT unlearn_drop_model('typm');
DROP TABLE racetyped;
DROP TYPE racecomp;
-- ALTER TABLE by a role that does not own the table is refused before the
-- guard waits for the table's lock (a mere login role must not queue for an
-- exclusive lock on any table, pg_authid's included)
RESET ROLE;
CREATE TABLE heldt (x int);
GRANT SELECT ON heldt TO regress_owner;
SELECT dblink_connect('other', 'dbname=' || current_database() || ' user=regress_owner');
SET ROLE regress_owner;
SELECT dblink_exec('other', 'BEGIN');
SELECT * FROM dblink('other', 'SELECT count(*) FROM public.heldt') AS t(n bigint);
SET lock_timeout = '300ms';
SELECT err($$ALTER TABLE heldt ADD COLUMN y int$$);
SELECT err($$ALTER TABLE heldt RENAME COLUMN x TO x2$$);
SELECT err($$ALTER TABLE pg_catalog.pg_authid ADD COLUMN z int$$);
RESET lock_timeout;
SELECT dblink_exec('other', 'COMMIT');
SELECT dblink_disconnect('other');
RESET ROLE;
DROP TABLE heldt;
SET ROLE regress_owner;
-- code the training's own read runs (here a row-level security policy whose
-- function deletes a row) writing in the training's transaction, where the
-- lock cannot stop it and no trigger exists yet: refused, or the row would be
-- learned and its DELETE never queued
CREATE TABLE rlsdel AS
SELECT i::bigint AS id, ARRAY[(i % 2) * 2.0, 0.01 * i]::real[] AS features, i % 2 AS label
FROM generate_series(1, 60) i;
RESET ROLE;
CREATE FUNCTION public.rlsdel_pass(bigint) RETURNS boolean LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog AS $$
BEGIN IF $1 = 5 THEN DELETE FROM public.rlsdel WHERE id = 5; END IF; RETURN true; END $$;
SET ROLE regress_owner;
ALTER TABLE rlsdel ENABLE ROW LEVEL SECURITY;
ALTER TABLE rlsdel FORCE ROW LEVEL SECURITY;
CREATE POLICY rlsdel_p ON rlsdel FOR SELECT USING (public.rlsdel_pass(id));
SELECT err($$SELECT unlearn_train('rlsdel', 'rlsdel', 'id', 'features', 'label', hidden => '{}', epochs => 1)$$);
ALTER TABLE rlsdel DISABLE ROW LEVEL SECURITY;
SELECT count(*) AS row_5_still_there, (SELECT count(*) FROM inspect.manifests WHERE model = 'rlsdel') AS manifests
FROM rlsdel WHERE id = 5;
DROP TABLE rlsdel;
RESET ROLE;
DROP FUNCTION public.rlsdel_pass(bigint);
SET ROLE regress_owner;
RESET ROLE;
ALTER SYSTEM RESET unlearn.batch_window;
SELECT pg_reload_conf();
SET ROLE regress_owner;
DROP TABLE dropcap;
-- a change checks the owner of the row it locked, not of the one it read
-- first: a cursor's snapshot still sees this role's model, dropped and made
-- again under the same name by another role before the cursor runs (in one
-- transaction here; two sessions can do the same in READ COMMITTED): the
-- drop, unlearn_auto and unlearn_retry each refuse
RESET ROLE;
CREATE ROLE regress_conc_other;
CREATE TABLE conc_other AS SELECT * FROM conc;
ALTER TABLE conc_other OWNER TO regress_conc_other;
SET ROLE regress_owner;
SELECT model FROM unlearn_train('toctou', 'conc', 'id', 'features', 'label', hidden => '{4}', epochs => 2,
                   auto_unlearn => false);
BEGIN;
DECLARE c_drop CURSOR FOR SELECT unlearn_drop_model('toctou');
DECLARE c_auto CURSOR FOR SELECT unlearn_auto('toctou', false, '{"max_steps": 1}');
DECLARE c_retry CURSOR FOR SELECT unlearn_retry('toctou');
SELECT unlearn_drop_model('toctou');
RESET ROLE;
SET ROLE regress_conc_other;
SELECT model FROM unlearn_train('toctou', 'conc_other', 'id', 'features', 'label', hidden => '{4}', epochs => 2,
                   auto_unlearn => false);
RESET ROLE;
SET ROLE regress_owner;
SAVEPOINT s;
FETCH c_drop;
ROLLBACK TO SAVEPOINT s;
FETCH c_auto;
ROLLBACK TO SAVEPOINT s;
FETCH c_retry;
ROLLBACK;
RESET ROLE;
DROP TABLE conc_other;
DROP ROLE regress_conc_other;
SET ROLE regress_owner;
SELECT unlearn_drop_model('toctou');
SELECT unlearn_drop_model('conc');
DROP TABLE conc;
RESET ROLE;
DROP FUNCTION open_training(text, text);
