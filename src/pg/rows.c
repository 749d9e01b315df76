/*
 * rows.c: reading the rows an unlearning run needs from the model's
 * training table: the rows to forget or relabel (checked against the table
 * and the current manifest) and the seeded sample of remaining rows the
 * default method replays (also the audit's sample).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"

#include "unlearn_pg.h"

/* Formats up to 10 ids for a message. */
static char *
format_ids(const int64 *v, int n)
{
	StringInfoData s;

	initStringInfo(&s);
	for (int i = 0; i < n && i < 10; i++)
		appendStringInfo(&s, "%s" INT64_FORMAT, i ? ", " : "", v[i]);
	if (n > 10)
		appendStringInfo(&s, " and %d more", n - 10);
	return s.data;
}

/* Reads the rows of the model's table whose ids are in ids[0..n), ordered by id. */
static void
read_model_rows(const UnlearnModel *model, const int64 *ids, int64 n, UnlearnData *out)
{
	UnlearnDataSpec spec;
	Oid			argtypes[1] = {INT8ARRAYOID};
	Datum		args[1] = {unlearn_int8_array(ids, n)};

	unlearn_model_data_spec(model, &spec);
	spec.where_clause = psprintf("%s = ANY($1)", quote_identifier(model->id_column));
	spec.nargs = 1;
	spec.argtypes = argtypes;
	spec.args = args;
	unlearn_read_data(&spec, out);
}

/* Errors unless the rows read are exactly the sorted ids asked for (none missing, none twice). */
static void
check_all_found(const UnlearnModel *model, const int64 *ids, int n, const UnlearnData *rows,
				int64 *missing)
{
	int			n_missing = 0;
	int			j = 0;

	/* both sorted: find the ids the table does not have */
	for (int i = 0; i < n; i++)
	{
		if (j < rows->n && rows->ids[j] == ids[i])
			j++;
		else
			missing[n_missing++] = ids[i];
	}
	if (n_missing > 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%d of the ids are not in the training table of model \"%s\"",
						n_missing, model->name),
				 errdetail("Missing ids: %s.", format_ids(missing, n_missing))));
	if (rows->n != n)
		ereport(ERROR,
				(errcode(ERRCODE_UNIQUE_VIOLATION),
				 errmsg("id column \"%s\" is not unique", model->id_column)));
}

/* Errors unless every id is in the (sorted) manifest of the current version. */
static void
check_all_learned(const UnlearnModel *model, const int64 *ids, int n, const int64 *manifest,
				  int64 n_manifest, int64 *missing)
{
	int			n_missing = 0;

	for (int i = 0; i < n; i++)
		if (!bsearch(&ids[i], manifest, n_manifest, sizeof(int64), unlearn_cmp_int64))
			missing[n_missing++] = ids[i];
	if (n_missing > 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%d of the rows were never learned by model \"%s\"", n_missing, model->name),
				 errdetail("Ids not in the manifest of version %d: %s.", model->version,
						   format_ids(missing, n_missing)),
				 errhint("Rows added after training can be deleted directly.")));
}

/* Errors (22000) unless every row's label is a class of the model. */
static void
require_known_labels(const UnlearnData *rows, const char *model)
{
	for (int64 i = 0; i < rows->n; i++)
		if (rows->y[i] < 0)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("row " INT64_FORMAT " has a label that is not a class of model \"%s\"",
							rows->ids[i], model)));
}

/*
 * Reads the rows with the given sorted, distinct ids from the model's table
 * and checks that every id exists there, is in the current version's
 * manifest and has a label that is a class of the model.
 */
void
unlearn_read_forget_rows(const UnlearnModel *model, const int64 *ids, int k, UnlearnData *out)
{
	int64		n_manifest;
	int64	   *manifest = unlearn_load_manifest(model, model->version, &n_manifest);
	int64	   *missing = palloc(sizeof(int64) * Max(k, 1));

	Assert(k > 0);
	for (int i = 1; i < k; i++)
		Assert(ids[i - 1] < ids[i]);
	read_model_rows(model, ids, k, out);
	check_all_found(model, ids, k, out, missing);
	check_all_learned(model, ids, k, manifest, n_manifest, missing);
	require_known_labels(out, model->name);
}

/* The manifest ids outside the sorted forget set, in a new array; *n_pool their count. */
static int64 *
ids_outside(const int64 *manifest, int64 n_manifest, const int64 *forget, int k, int64 *n_pool)
{
	int64	   *pool = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int64) * Max(n_manifest, 1));
	int64		n = 0;

	for (int64 i = 0; i < n_manifest; i++)
		if (k == 0 || !bsearch(&manifest[i], forget, k, sizeof(int64), unlearn_cmp_int64))
			pool[n++] = manifest[i];
	*n_pool = n;
	return pool;
}

/* Moves a seeded choice of `take` of the pool's ids to its front (partial Fisher-Yates). */
static void
shuffle_front(int64 *pool, int64 n_pool, int take, uint64 seed)
{
	nn_rng		rng;

	Assert(take <= n_pool);
	nn_rng_seed(&rng, seed ^ 0x5eed5eed5eedULL);
	for (int i = 0; i < take; i++)
	{
		int64		j = i + (int64) (nn_rng_uniform(&rng) * (double) (n_pool - i));
		int64		t = pool[i];

		if (j >= n_pool)
			j = n_pool - 1;
		pool[i] = pool[j];
		pool[j] = t;
	}
}

/* A seeded sample of up to `want` manifest rows outside the forget set, read from the table. */
void
unlearn_read_sample(const UnlearnModel *model, const int64 *manifest, int64 n_manifest,
					const int64 *forget, int k, int want, uint64 seed, UnlearnData *out)
{
	int64		n_pool;
	int64	   *pool = ids_outside(manifest, n_manifest, forget, k, &n_pool);
	int			take = (int) Min((int64) want, n_pool);

	memset(out, 0, sizeof(*out));
	if (take == 0)
		return;
	shuffle_front(pool, n_pool, take, seed);
	qsort(pool, take, sizeof(int64), unlearn_cmp_int64);
	read_model_rows(model, pool, take, out);
	/* rows whose label is not a class cannot be replayed */
	unlearn_drop_unknown_labels(out);
}

/* The sorted union of two sorted id arrays (duplicates kept once). */
static int64 *
merge_ids(const int64 *a, int64 na, const int64 *b, int64 nb, int64 *n_out)
{
	int64	   *out = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int64) * Max(na + nb, 1));
	int64		i = 0,
				j = 0,
				m = 0;

	while (i < na || j < nb)
	{
		if (j >= nb || (i < na && a[i] < b[j]))
			out[m++] = a[i++];
		else if (i >= na || b[j] < a[i])
			out[m++] = b[j++];
		else
		{
			out[m++] = a[i++];
			j++;
		}
	}
	*n_out = m;
	return out;
}

/* A run's held-out sample (seed mixed with "guard"), then its replay sample outside it (run.h). */
void
unlearn_read_run_samples(const UnlearnModel *model, const int64 *manifest, int64 n_manifest,
						 const UnlearnData *forget, int want_held_out, int want_replay, uint64 seed,
						 UnlearnPhases *phases, UnlearnData *held_out, UnlearnData *replay)
{
	unlearn_read_sample(model, manifest, n_manifest, forget->ids, (int) forget->n,
						want_held_out, seed ^ UNLEARN_HELD_OUT_SEED, held_out);
	unlearn_phase_end(phases, "read_held_out");
	if (want_replay > 0)
	{
		int64		n_out;
		int64	   *out = merge_ids(forget->ids, forget->n, held_out->ids, held_out->n, &n_out);

		Assert(n_out <= INT_MAX);
		unlearn_read_sample(model, manifest, n_manifest, out, (int) n_out, want_replay, seed, replay);
	}
	else
		memset(replay, 0, sizeof(*replay));
	unlearn_phase_end(phases, "read_replay");
}

/*
 * The rows of the model's table with these sorted ids, those the table still
 * has, ordered by id; rows whose label is not a class are left out.
 */
void
unlearn_read_rows_by_id(const UnlearnModel *model, const int64 *ids, int64 n, UnlearnData *out)
{
	memset(out, 0, sizeof(*out));
	if (n == 0)
		return;
	read_model_rows(model, ids, n, out);
	unlearn_drop_unknown_labels(out);
}
