-- Where an unlearning run's time goes: every version an unlearning run
-- stores records metrics->'phases' (seconds per named phase) and
-- metrics->'total_seconds'.  The timings themselves are not asserted: only
-- that the phases are there, are non-negative numbers, and add up to at most
-- the total.  As the ordinary model owner (see 01_train).
SET ROLE regress_owner;

CREATE TABLE phased AS
SELECT i::bigint AS id,
       ARRAY[sin(i * 12.9898), cos(i * 78.233), sin(i * 3.1)]::real[] AS features,
       (sin(i * 12.9898) + cos(i * 78.233) > 0)::int AS label
FROM generate_series(1, 400) i;
ALTER TABLE phased ADD PRIMARY KEY (id);

SELECT model, rows FROM unlearn_train('ph', 'phased', 'id', 'features', 'label', hidden => '{16}');

-- checks one version's phases: names, and whether all is well
CREATE FUNCTION pg_temp.phase_check(m text, v integer,
	OUT phases text, OUT numbers boolean, OUT non_negative boolean, OUT within_total boolean)
LANGUAGE sql AS $$
	SELECT string_agg(p.key, ' ' ORDER BY p.key),
	       bool_and(jsonb_typeof(p.value) = 'number'),
	       bool_and((p.value)::float8 >= 0),
	       sum((p.value)::float8) <= (x.metrics->>'total_seconds')::float8
	FROM unlearn.versions x, jsonb_each(x.metrics->'phases') p
	WHERE x.model = m AND x.version = v
	GROUP BY x.metrics
$$;

-- unlearn_rows: the caller's steps (lock, read_forget_rows), then the run's
SELECT version, rows FROM unlearn_rows('ph', ARRAY[3, 5]);
SELECT jsonb_typeof(metrics->'phases') AS phases, jsonb_typeof(metrics->'total_seconds') AS total,
       (metrics->>'total_seconds')::float8 >= (metrics->>'seconds')::float8 - 0.0015 AS total_covers_run
FROM unlearn.versions WHERE model = 'ph' AND version = 2;
SELECT * FROM pg_temp.phase_check('ph', 2);

-- unlearn_relabel: the same phases (no ledger rows, but the phase is timed)
SELECT version, rows FROM unlearn_relabel('ph', ARRAY[7], ARRAY['1']);
SELECT * FROM pg_temp.phase_check('ph', 3);

-- the worker: its own steps from the claim on (claim, lock, read_requests, plan)
DELETE FROM phased WHERE id IN (11, 12);
SELECT unlearn_wait('ph') AS drained;
SELECT version, reason FROM unlearn.versions WHERE model = 'ph' AND version = 4;
SELECT * FROM pg_temp.phase_check('ph', 4);

-- the worker's first phase and the run's last one are there; storing the
-- version itself comes after its metrics are written (the worker's LOG line has it)
SELECT metrics->'phases' ? 'claim' AS claim, metrics->'phases' ? 'ledger' AS ledger,
       metrics->'phases' ? 'store_version' AS store_version
FROM unlearn.versions WHERE model = 'ph' AND version = 4;

SELECT unlearn_drop_model('ph');
DROP TABLE phased;
