/*
 * forget.c: unlearn_rows, unlearn_relabel, unlearn_retrain and the ledger
 * checks (unlearn_confirm_forgotten, unlearn_forgotten).
 *
 * Each unlearning call runs in the caller's transaction: it locks the
 * model's catalog row (a concurrent call on the same model waits), changes
 * the training table, stores the new version and its ledger rows; if the
 * transaction rolls back, table and model are both unchanged.
 */
#include "postgres.h"

#include <math.h>

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "portability/instr_time.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"

#include "unlearn_core.h"
#include "unlearn_pg.h"

#define DEFAULT_REPLAY_ROWS 16384

static const char *const method_names[] = {"neggrad", "adv", "adv+imp", "default", NULL};	/* ul_method order */
static const char *const optimizer_names[] = {"sgd", "adam", NULL};

#define UL_OPT(key, kind, field, lo, hi, expected) \
	{key, kind, offsetof(UnlearnRunOptions, field), lo, hi, expected, NULL}

static const OptionSpec run_option_specs[] = {
	{"method", OPT_ENUM, offsetof(UnlearnRunOptions, ul.method), 0, 0,
	"\"default\", \"neggrad\", \"adv\" or \"adv+imp\"", method_names},
	{"optimizer", OPT_ENUM, offsetof(UnlearnRunOptions, ul.optimizer), 0, 0, "\"sgd\" or \"adam\"", optimizer_names},
	UL_OPT("lr", OPT_FLOAT, ul.lr, 1e-9, 10, "a number in (0, 10]"),
	UL_OPT("momentum", OPT_FLOAT, ul.momentum, 0, 0.999999, "a number in [0, 1)"),
	UL_OPT("weight_decay", OPT_FLOAT, ul.weight_decay, 0, 1, "a number in [0, 1]"),
	UL_OPT("forget_batch", OPT_INT, ul.forget_batch, 1, 65536, "an integer from 1 to 65536"),
	UL_OPT("adv_batch", OPT_INT, ul.adv_batch, 1, 65536, "an integer from 1 to 65536"),
	UL_OPT("adv_per_row", OPT_INT, ul.adv_per_row, 0, 1000, "an integer from 0 to 1000"),
	UL_OPT("pgd_eps", OPT_FLOAT, ul.pgd_eps, 0, 1e6, "a non-negative number"),
	UL_OPT("pgd_alpha", OPT_FLOAT, ul.pgd_alpha, 0, 1e6, "a non-negative number"),
	UL_OPT("pgd_steps", OPT_INT, ul.pgd_steps, 0, 100000, "an integer from 0 to 100000"),
	UL_OPT("imp_lambda", OPT_FLOAT, ul.imp_lambda, 0, 1e9, "a non-negative number"),
	UL_OPT("max_passes", OPT_INT, ul.max_passes, 1, 1000000, "an integer from 1 to 1000000"),
	UL_OPT("max_steps", OPT_INT, ul.max_steps, 0, 100000000, "a non-negative integer (0 = no cap)"),
	UL_OPT("seed", OPT_UINT64, ul.seed, 0, 9007199254740991.0, "a non-negative integer"),
	UL_OPT("margin", OPT_FLOAT, ul.margin, 0, 1e6, "a non-negative number"),
	UL_OPT("replay_weight", OPT_FLOAT, ul.replay_weight, 0, 1e6, "a non-negative number"),
	UL_OPT("replay_batch", OPT_INT, ul.replay_batch, 1, 65536, "an integer from 1 to 65536"),
	UL_OPT("repair_steps", OPT_INT, ul.repair_steps, 0, 1000000, "an integer from 0 to 1000000"),
	UL_OPT("adv_weight", OPT_FLOAT, ul.adv_weight, 0, 1e6, "a non-negative number"),
	UL_OPT("forget_weight", OPT_FLOAT, ul.forget_weight, 0, 1e6, "a non-negative number"),
	UL_OPT("distill", OPT_FLOAT, ul.distill, 0, 1, "a number in [0, 1]"),
	UL_OPT("replay_rows", OPT_INT, replay_rows, 0, 10000000, "an integer from 0 to 10000000"),
};

/* Parses unlearning options: the method's defaults, then the given keys. */
void
unlearn_parse_run_options(Jsonb *options, UnlearnRunOptions *out)
{
	UnlearnRunOptions probe;

	/* the method decides the defaults of everything else */
	memset(&probe, 0, sizeof(probe));
	probe.ul.method = UL_METHOD_DEFAULT;
	unlearn_parse_options(options, run_option_specs, lengthof(run_option_specs), &probe, "unlearning");
	memset(out, 0, sizeof(*out));
	ul_options_default(&out->ul, probe.ul.method);
	out->replay_rows = DEFAULT_REPLAY_ROWS;
	unlearn_parse_options(options, run_option_specs, lengthof(run_option_specs), out, "unlearning");
}

/* The options a run used, every key spelled out, for the catalog. */
Jsonb *
run_options_to_jsonb(const UnlearnRunOptions *o)
{
	StringInfoData s;

	initStringInfo(&s);
	appendStringInfoChar(&s, '{');
	for (int i = 0; i < lengthof(run_option_specs); i++)
	{
		const OptionSpec *spec = &run_option_specs[i];
		const char *field = (const char *) o + spec->offset;

		appendStringInfo(&s, "%s\"%s\": ", i ? ", " : "", spec->key);
		switch (spec->kind)
		{
			case OPT_FLOAT:
				appendStringInfo(&s, "%.7g", *(const float *) field);
				break;
			case OPT_INT:
				appendStringInfo(&s, "%d", *(const int *) field);
				break;
			case OPT_UINT64:
				appendStringInfo(&s, UINT64_FORMAT, (uint64) *(const uint64_t *) field);
				break;
			case OPT_ENUM:
				appendStringInfo(&s, "\"%s\"", spec->names[*(const int *) field]);
				break;
		}
	}
	appendStringInfoChar(&s, '}');
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(s.data)));
}

/* The ids argument as int64s, in argument order; checks type, NULLs and emptiness. */
static int64 *
ids_from_array(ArrayType *arr, int *n_out)
{
	Oid			elemtype = ARR_ELEMTYPE(arr);
	int16		typlen;
	bool		typbyval;
	char		typalign;
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int64	   *ids;

	if (elemtype != INT2OID && elemtype != INT4OID && elemtype != INT8OID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("ids must be an array of smallint, integer or bigint, not %s",
						format_type_be(get_array_type(elemtype) ? get_array_type(elemtype) : elemtype))));
	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("ids must be a one-dimensional array")));
	get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
	deconstruct_array(arr, elemtype, typlen, typbyval, typalign, &elems, &nulls, &n);
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("ids must not be empty")));
	ids = palloc(sizeof(int64) * n);
	for (int i = 0; i < n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("ids must not contain NULL")));
		ids[i] = elemtype == INT2OID ? DatumGetInt16(elems[i]) :
			elemtype == INT4OID ? DatumGetInt32(elems[i]) : DatumGetInt64(elems[i]);
	}
	*n_out = n;
	return ids;
}

/* Sorts and removes duplicates in place; returns the new count. */
static int
sort_unique(int64 *v, int n)
{
	int			m = 0;

	qsort(v, n, sizeof(int64), unlearn_cmp_int64);
	for (int i = 0; i < n; i++)
		if (i == 0 || v[i] != v[i - 1])
			v[m++] = v[i];
	return m;
}

/* An int8[] datum of n ids. */
static Datum
int8_array(const int64 *v, int64 n)
{
	Datum	   *d = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(Datum) * Max(n, 1));

	for (int64 i = 0; i < n; i++)
		d[i] = Int64GetDatum(v[i]);
	return PointerGetDatum(construct_array(d, (int) n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

/* Locks the model's catalog row so unlearning calls on one model run one at a time. */
static void
lock_model(const char *name)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1] = {CStringGetTextDatum(name)};
	UnlearnCatalogUser saved;
	int			ret;

	unlearn_become_catalog_owner(&saved);
	/* NO KEY UPDATE: serialises changes of the model without blocking key-share locks */
	ret = SPI_execute_with_args("SELECT 1 FROM unlearn.models WHERE name = $1 FOR NO KEY UPDATE",
								1, argtypes, args, NULL, false, 1);
	unlearn_restore_user(&saved);
	if (ret != SPI_OK_SELECT)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not lock model \"%s\"", name)));
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("model \"%s\" does not exist", name)));
}

/* Ends what unlearn_open_model_for_change began (its snapshot). */
void
unlearn_close_model_change(void)
{
	PopActiveSnapshot();
}

/*
 * Looks up, checks ownership of (and the table privilege the change needs:
 * ACL_DELETE, ACL_UPDATE or 0), and locks a model; returns its fresh catalog row.
 */
UnlearnModel *
unlearn_open_model_for_change(const char *name, const char *action, AclMode table_privilege)
{
	UnlearnModel *model = unlearn_model_lookup(name, false);

	unlearn_check_owner(model, action);
	if (table_privilege != 0 &&
		pg_class_aclcheck(model->relid, GetUserId(), table_privilege) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for table %s", get_rel_name(model->relid)),
				 errdetail("%s rows of model \"%s\" changes its training table and needs %s on it.",
						   table_privilege == ACL_DELETE ? "Unlearning" : "Relabelling", name,
						   table_privilege == ACL_DELETE ? "DELETE" : "UPDATE")));
	lock_model(name);

	/*
	 * A concurrent call may have made a new version while we waited for the
	 * lock.  Everything read from here on (model, manifest, weights, ledger)
	 * uses a snapshot taken after the lock (READ COMMITTED; under a
	 * transaction snapshot the lock itself already failed on the update):
	 * unlearn_close_model_change() pops it.
	 */
	PushActiveSnapshot(GetTransactionSnapshot());
	return unlearn_model_lookup(name, false);
}

/* The sorted manifest of a version. */
int64 *
unlearn_load_manifest(const UnlearnModel *model, int version, int64 *n_out)
{
	Oid			argtypes[2] = {TEXTOID, INT4OID};
	Datum		args[2] = {CStringGetTextDatum(model->name), Int32GetDatum(version)};
	UnlearnCatalogUser saved;
	bool		isnull;
	int			ret;

	unlearn_become_catalog_owner(&saved);
	ret = SPI_execute_with_args("SELECT ids FROM unlearn.manifests WHERE model = $1 AND version = $2",
								2, argtypes, args, NULL, true, 1);
	unlearn_restore_user(&saved);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("manifest of version %d of model \"%s\" is missing", version, model->name)));
	return unlearn_catalog_ids(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull),
							   "manifest", model->name, version, n_out);
}

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
	Datum		args[1] = {int8_array(ids, n)};

	memset(&spec, 0, sizeof(spec));
	spec.relid = model->relid;
	spec.id_column = model->id_column;
	spec.features_column = model->features_column;
	spec.label_column = model->label_column;
	spec.n_features = model->n_features;
	spec.model = model;
	spec.where_clause = psprintf("%s = ANY($1)", quote_identifier(model->id_column));
	spec.nargs = 1;
	spec.argtypes = argtypes;
	spec.args = args;
	unlearn_read_data(&spec, out);
}

/*
 * Reads the rows with the given sorted ids from the model's table and checks
 * that every id exists there and is in the current version's manifest.
 */
static void
read_rows_by_id(const UnlearnModel *model, const int64 *ids, int n, const int64 *manifest,
				int64 n_manifest, UnlearnData *out)
{
	int64	   *missing = palloc(sizeof(int64) * n);
	int			n_missing = 0;
	int			j = 0;

	read_model_rows(model, ids, n, out);

	/* both sorted: find the ids the table does not have */
	for (int i = 0; i < n; i++)
	{
		if (j < out->n && out->ids[j] == ids[i])
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
	if (out->n != n)
		ereport(ERROR,
				(errcode(ERRCODE_UNIQUE_VIOLATION),
				 errmsg("id column \"%s\" is not unique", model->id_column)));

	n_missing = 0;
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
	for (int i = 0; i < n; i++)
		if (out->y[i] < 0)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("row " INT64_FORMAT " has a label that is not a class of model \"%s\"",
							out->ids[i], model->name)));
}

/* Previously forgotten rows whose features the ledger still holds. */
static void
read_prior_rows(const UnlearnModel *model, UnlearnData *out)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1] = {CStringGetTextDatum(model->name)};
	UnlearnCatalogUser saved;
	int			ret;

	memset(out, 0, sizeof(*out));
	unlearn_become_catalog_owner(&saved);
	ret = SPI_execute_with_args("SELECT features, label FROM unlearn.forgotten"
								" WHERE model = $1 AND features IS NOT NULL ORDER BY id",
								1, argtypes, args, NULL, true, 0);
	unlearn_restore_user(&saved);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read unlearn.forgotten");
	out->n = SPI_processed;
	out->n_features = model->n_features;
	out->X = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(float) * Max(out->n, 1) * model->n_features);
	out->y = palloc(sizeof(int) * Max(out->n, 1));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		ArrayType  *arr = DatumGetArrayTypeP(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		char	   *label = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);
		float	   *x = unlearn_features_from_array(arr, model->n_features);

		memcpy(out->X + i * model->n_features, x, sizeof(float) * model->n_features);
		out->y[i] = unlearn_class_index(model, label);
	}
}

/* A seeded sample of up to `want` manifest rows outside the forget set, read from the table. */
void
unlearn_read_sample(const UnlearnModel *model, const int64 *manifest, int64 n_manifest,
				   const int64 *forget, int k, int want, uint64 seed, UnlearnData *out)
{
	int64	   *pool = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int64) * Max(n_manifest, 1));
	int64		n_pool = 0;
	nn_rng		rng;
	int			take;

	memset(out, 0, sizeof(*out));
	for (int64 i = 0; i < n_manifest; i++)
		if (k == 0 || !bsearch(&manifest[i], forget, k, sizeof(int64), unlearn_cmp_int64))
			pool[n_pool++] = manifest[i];
	take = (int) Min((int64) want, n_pool);
	if (take == 0)
		return;
	/* partial Fisher-Yates: the first `take` entries become the sample */
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
	qsort(pool, take, sizeof(int64), unlearn_cmp_int64);
	read_model_rows(model, pool, take, out);

	/* rows whose label is not a class cannot be replayed: drop them */
	{
		int64		m = 0;

		for (int64 i = 0; i < out->n; i++)
			if (out->y[i] >= 0)
			{
				if (m != i)
				{
					memcpy(out->X + m * out->n_features, out->X + i * out->n_features,
						   sizeof(float) * out->n_features);
					out->y[m] = out->y[i];
				}
				m++;
			}
		out->n = m;
	}
}

/* Progress hook of the unlearning loop: cancel point and NOTICEs. */
static int
unlearn_progress_callback(void *arg, int step, int satisfied, int total)
{
	CHECK_FOR_INTERRUPTS();
	if (unlearn_progress && step % 50 == 0)
		ereport(NOTICE,
				(errmsg("unlearning \"%s\": step %d, %d of %d rows done",
						(const char *) arg, step, satisfied, total)));
	return 0;
}

/* Next free version number of a model (caller holds the model lock). */
static int
next_version(const char *name)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1] = {CStringGetTextDatum(name)};
	bool		isnull;
	int			ret;

	ret = SPI_execute_with_args("SELECT max(version) FROM unlearn.versions WHERE model = $1",
								1, argtypes, args, NULL, false, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read unlearn.versions");
	return DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) + 1;
}

/* manifest minus the sorted ids (both sorted). */
static int64 *
manifest_without(const int64 *manifest, int64 n_manifest, const int64 *ids, int k, int64 *n_out)
{
	int64	   *out = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int64) * Max(n_manifest, 1));
	int64		m = 0;

	for (int64 i = 0; i < n_manifest; i++)
		if (!bsearch(&manifest[i], ids, k, sizeof(int64), unlearn_cmp_int64))
			out[m++] = manifest[i];
	*n_out = m;
	return out;
}

/* Adds the forgotten rows to the ledger. */
static void
record_forgotten(const UnlearnModel *model, const UnlearnData *rows, int version)
{
	Oid			argtypes[7] = {TEXTOID, INT8OID, TEXTOID, FLOAT4ARRAYOID, INT4OID, TEXTOID, BYTEAOID};
	UnlearnCatalogUser saved;
	SPIPlanPtr	plan;
	char	   *caller = GetUserNameFromId(GetUserId(), false);
	bool		keep_features = unlearn_feature_retention != 0;

	unlearn_become_catalog_owner(&saved);
	plan = SPI_prepare("INSERT INTO unlearn.forgotten (model, id, label, features, version, requested_by,"
					   " features_sha256)"
					   " VALUES ($1, $2, $3, $4, $5, $6::name, $7)"
					   " ON CONFLICT (model, id) DO UPDATE SET label = excluded.label,"
					   " features = excluded.features, version = excluded.version,"
					   " forgotten_at = excluded.forgotten_at, requested_by = excluded.requested_by,"
					   " features_sha256 = excluded.features_sha256",
					   7, argtypes);
	if (plan == NULL)
		elog(ERROR, "could not prepare ledger insert");
	for (int64 i = 0; i < rows->n; i++)
	{
		Datum		args[7];
		char		nulls[7] = "       ";
		Datum	   *fd = palloc(sizeof(Datum) * rows->n_features);
		uint8		sha[32];
		bytea	   *sha_bytea = palloc(VARHDRSZ + sizeof(sha));

		for (int j = 0; j < rows->n_features; j++)
			fd[j] = Float4GetDatum(rows->X[i * rows->n_features + j]);
		args[0] = CStringGetTextDatum(model->name);
		args[1] = Int64GetDatum(rows->ids[i]);
		args[2] = CStringGetTextDatum(model->classes[rows->y[i]]);
		args[3] = PointerGetDatum(construct_array(fd, rows->n_features, FLOAT4OID, 4, true, TYPALIGN_INT));
		args[4] = Int32GetDatum(version);
		args[5] = CStringGetTextDatum(rows->requested_by && rows->requested_by[i] ?
									  rows->requested_by[i] : caller);
		/* the run has just verified these rows: by default their copy goes, their hash stays */
		unlearn_sha256(rows->X + i * rows->n_features, sizeof(float) * rows->n_features, sha);
		SET_VARSIZE(sha_bytea, VARHDRSZ + sizeof(sha));
		memcpy(VARDATA(sha_bytea), sha, sizeof(sha));
		args[6] = PointerGetDatum(sha_bytea);
		if (!keep_features)
			nulls[3] = 'n';
		if (SPI_execute_plan(plan, args, nulls, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not record forgotten row");
		pfree(fd);
	}
	SPI_freeplan(plan);
	unlearn_restore_user(&saved);
}

/*
 * Runs a change to the training table that unlearning itself makes, so the
 * DELETE/UPDATE capture trigger does not queue those rows (ids, an int8[])
 * again for this model.  Every other row the statement removes (a cascade, a
 * user's trigger) and every other model of the table are captured as usual.
 */
static int
execute_uncaptured(const char *model, Datum ids, const char *sql, int nargs, Oid *argtypes, Datum *args)
{
	int			ret;

	Assert(unlearn_suppress_capture.model == NULL);
	unlearn_suppress_capture.model = model;
	unlearn_suppress_capture.ids = ids;
	PG_TRY();
	{
		ret = SPI_execute_with_args(sql, nargs, argtypes, args, NULL, false, 0);
	}
	PG_FINALLY();
	{
		unlearn_suppress_capture.model = NULL;
	}
	PG_END_TRY();
	return ret;
}

/*
 * Unlearns (or relabels) the rows in `forget` from the model's current
 * version and stores the new version, its manifest and ledger rows.  When
 * change_table is set the rows are also deleted from (relabelled in) the
 * training table; the background worker passes false: the user's DELETE or
 * UPDATE already did it.  Caller: connected to SPI, model locked, rows
 * checked against the manifest.
 */
void
unlearn_execute(UnlearnModel *model, UnlearnData *forget, const int *new_labels,
				const UnlearnRunOptions *opts, const char *reason, bool change_table,
				UnlearnOutcome *out)
{
	UnlearnData prior,
				replay;
	int64		n_manifest,
				n_new_manifest;
	int64	   *manifest,
			   *new_manifest;
	nn_model   *net;
	ul_result	res;
	char		err[256];
	instr_time	t_start;
	bool		relabel = new_labels != NULL;
	int			k = (int) forget->n;
	Oid			argtypes[1] = {INT8ARRAYOID};
	Datum		args[1];
	int			ret;

	INSTR_TIME_SET_CURRENT(t_start);
	manifest = unlearn_load_manifest(model, model->version, &n_manifest);
	read_prior_rows(model, &prior);
	if (opts->ul.method == UL_METHOD_DEFAULT && opts->replay_rows > 0)
		unlearn_read_sample(model, manifest, n_manifest, forget->ids, k, opts->replay_rows,
						   opts->ul.seed, &replay);
	else
		memset(&replay, 0, sizeof(replay));

	net = unlearn_load_weights(model, model->version);
	if (ul_unlearn(net, forget->X, forget->y, k, new_labels,
				   prior.n ? prior.X : NULL, prior.n ? prior.y : NULL, (int) prior.n,
				   replay.n ? replay.X : NULL, replay.n ? replay.y : NULL, (int) replay.n,
				   &opts->ul, unlearn_progress_callback, model->name, &res,
				   err, sizeof(err)) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("could not unlearn: %s", err)));
	if (!nn_params_finite(net))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("method %s diverged: the weights are no longer finite", method_names[opts->ul.method]),
				 errdetail("Nothing was changed."),
				 errhint("Lower lr.")));
	if (!res.success)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("method %s could not %s every row within its step cap",
						method_names[opts->ul.method], relabel ? "relabel" : "forget"),
				 errdetail("After %d steps %d of %d rows were %s and %d of %d earlier forgotten rows stayed misclassified; nothing was changed.",
						   res.steps, res.forgotten, k, relabel ? "relabelled" : "misclassified",
						   res.prior_kept, (int) prior.n),
				 opts->ul.method == UL_METHOD_DEFAULT ?
				 errhint("Raise max_steps or max_passes, or forget fewer rows at a time.") :
				 errhint("Use method \"default\", or raise max_steps or max_passes.")));
	out->seconds = unlearn_seconds_since(&t_start);

	args[0] = int8_array(forget->ids, k);
	if (change_table && !relabel)
	{
		char	   *sql = psprintf("DELETE FROM %s WHERE %s = ANY($1)",
								   unlearn_qualified_name(model->relid),
								   quote_identifier(model->id_column));

		ret = execute_uncaptured(model->name, args[0], sql, 1, argtypes, args);
		if (ret != SPI_OK_DELETE || SPI_processed != (uint64) k)
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("the rows to forget changed while unlearning"),
					 errdetail("Deleted " UINT64_FORMAT " of %d rows.", SPI_processed, k)));
	}
	else if (change_table)
	{
		Oid			rtypes[2] = {INT8ARRAYOID, TEXTARRAYOID};
		Datum		rargs[2];
		Datum	   *labels = palloc(sizeof(Datum) * k);
		char	   *sql;

		for (int i = 0; i < k; i++)
			labels[i] = CStringGetTextDatum(model->classes[new_labels[i]]);
		rargs[0] = args[0];
		rargs[1] = PointerGetDatum(construct_array(labels, k, TEXTOID, -1, false, TYPALIGN_INT));
		sql = psprintf("UPDATE %s AS t SET %s = u.label::%s FROM unnest($1, $2) AS u(id, label) WHERE t.%s = u.id",
					   unlearn_qualified_name(model->relid),
					   quote_identifier(model->label_column),
					   format_type_be_qualified(model->label_type),
					   quote_identifier(model->id_column));
		ret = execute_uncaptured(model->name, args[0], sql, 2, rtypes, rargs);
		if (ret != SPI_OK_UPDATE || SPI_processed != (uint64) k)
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("the rows to relabel changed while unlearning")));
	}
	if (relabel)
	{
		new_manifest = manifest;
		n_new_manifest = n_manifest;
	}
	else
		new_manifest = manifest_without(manifest, n_manifest, forget->ids, k, &n_new_manifest);

	out->version = next_version(model->name);
	{
		char	   *metrics = psprintf("{\"rows\": %d, \"forgotten\": %d, \"prior\": %d, \"prior_kept\": %d,"
									   " \"steps\": %d, \"forget_steps\": %d, \"seconds\": %.3f,"
									   " \"replay_rows\": %d, \"forget_loss\": %s}",
									   k, res.forgotten, (int) prior.n, res.prior_kept, res.steps,
									   res.forget_steps, out->seconds, (int) replay.n,
									   isfinite(res.final_forget_loss) ?
									   psprintf("%.6g", res.final_forget_loss) : "null");

		unlearn_store_version(model->name, out->version, model->version, reason,
							  method_names[opts->ul.method], run_options_to_jsonb(opts),
							  net, new_manifest, n_new_manifest,
							  relabel ? NULL : forget->ids, relabel ? 0 : k,
							  DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(metrics))));
	}
	unlearn_set_current_version(model->name, out->version);
	if (!relabel)
		record_forgotten(model, forget, out->version);
	out->rows = k;
	out->forgotten = res.forgotten;
	out->prior = (int) prior.n;
	out->prior_kept = res.prior_kept;
	out->steps = res.steps;
	out->method = method_names[opts->ul.method];
}

/* The unlearn_result row of an outcome. */
static Datum
outcome_datum(FunctionCallInfo fcinfo, const char *model, const UnlearnOutcome *o)
{
	TupleDesc	desc;
	Datum		values[9];
	bool		nulls[9] = {0};

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	values[0] = CStringGetTextDatum(model);
	values[1] = Int32GetDatum(o->version);
	values[2] = Int32GetDatum(o->rows);
	values[3] = Int32GetDatum(o->forgotten);
	values[4] = Int32GetDatum(o->prior_kept);
	values[5] = Int32GetDatum(o->prior);
	values[6] = Int32GetDatum(o->steps);
	values[7] = Float8GetDatum(o->seconds);
	values[8] = CStringGetTextDatum(o->method);
	desc = BlessTupleDesc(desc);
	return HeapTupleGetDatum(heap_form_tuple(desc, values, nulls));
}

/* Reads the rows named by sorted ids from the table, checked against the current manifest. */
static void
read_forget_rows(UnlearnModel *model, const int64 *ids, int k, UnlearnData *forget)
{
	int64		n_manifest;
	int64	   *manifest = unlearn_load_manifest(model, model->version, &n_manifest);

	read_rows_by_id(model, ids, k, manifest, n_manifest, forget);
}

/* Copies a datum built inside SPI out to the caller's context. */
static Datum
copy_out(Datum d)
{
	return SPI_datumTransfer(d, false, -1);
}

PG_FUNCTION_INFO_V1(unlearn_rows);
/*
 * unlearn_rows(model, ids, options): deletes the rows from the training
 * table and makes the model forget them, as one new version.
 */
Datum
unlearn_rows(PG_FUNCTION_ARGS)
{
	char	   *name;
	int64	   *ids;
	int			n,
				k;
	UnlearnRunOptions opts;
	UnlearnModel *model;
	UnlearnData forget;
	UnlearnOutcome outcome;
	Datum		result;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("model and ids must not be NULL")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	ids = ids_from_array(PG_GETARG_ARRAYTYPE_P(1), &n);
	k = sort_unique(ids, n);
	unlearn_parse_run_options(PG_ARGISNULL(2) ? NULL : PG_GETARG_JSONB_P(2), &opts);

	SPI_connect();
	model = unlearn_open_model_for_change(name, "unlearn", ACL_DELETE);
	read_forget_rows(model, ids, k, &forget);
	unlearn_execute(model, &forget, NULL, &opts, "unlearn", true, &outcome);
	result = copy_out(outcome_datum(fcinfo, name, &outcome));
	unlearn_close_model_change();
	SPI_finish();
	PG_RETURN_DATUM(result);
}

PG_FUNCTION_INFO_V1(unlearn_relabel);
/*
 * unlearn_relabel(model, ids, labels, options): correction mode: sets the
 * rows' labels in the table and teaches the model the new ones.
 */
Datum
unlearn_relabel(PG_FUNCTION_ARGS)
{
	char	   *name;
	int64	   *ids,
			   *sorted_ids;
	int		   *new_labels;
	int			n,
				k = 0,
				n_labels;
	UnlearnRunOptions opts;
	UnlearnModel *model;
	UnlearnData forget;
	UnlearnOutcome outcome;
	ArrayType  *labels;
	Datum	   *elems;
	bool	   *lnulls;
	char	  **label_text;
	int		   *order;
	Oid			out_func;
	bool		is_varlena;
	int16		typlen;
	bool		typbyval;
	char		typalign;
	Datum		result;

	for (int i = 0; i < 3; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("model, ids and labels must not be NULL")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	ids = ids_from_array(PG_GETARG_ARRAYTYPE_P(1), &n);
	labels = PG_GETARG_ARRAYTYPE_P(2);
	if (ARR_NDIM(labels) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("labels must be a one-dimensional array")));
	get_typlenbyvalalign(ARR_ELEMTYPE(labels), &typlen, &typbyval, &typalign);
	deconstruct_array(labels, ARR_ELEMTYPE(labels), typlen, typbyval, typalign, &elems, &lnulls, &n_labels);
	if (n_labels != n)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("ids and labels must have the same length, got %d and %d", n, n_labels)));
	getTypeOutputInfo(ARR_ELEMTYPE(labels), &out_func, &is_varlena);
	label_text = palloc(sizeof(char *) * n);
	for (int i = 0; i < n; i++)
	{
		if (lnulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("labels must not contain NULL")));
		label_text[i] = OidOutputFunctionCall(out_func, elems[i]);
	}
	unlearn_parse_run_options(PG_ARGISNULL(3) ? NULL : PG_GETARG_JSONB_P(3), &opts);

	SPI_connect();
	model = unlearn_open_model_for_change(name, "relabel", ACL_UPDATE);

	/* sort the (id, label) pairs by id; an id given twice must agree with itself */
	order = palloc(sizeof(int) * n);
	sorted_ids = palloc(sizeof(int64) * n);
	new_labels = palloc(sizeof(int) * n);
	for (int i = 0; i < n; i++)
		order[i] = i;
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && ids[order[j - 1]] > ids[order[j]]; j--)
		{
			int			t = order[j];

			order[j] = order[j - 1];
			order[j - 1] = t;
		}
	for (int i = 0; i < n; i++)
	{
		int			src = order[i];
		int			cls = unlearn_class_index(model, label_text[src]);

		if (cls < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("label \"%s\" is not a class of model \"%s\"", label_text[src], name),
					 errhint("Relabelling cannot add classes; unlearn_retrain cannot either: train a new model.")));
		if (k > 0 && sorted_ids[k - 1] == ids[src])
		{
			if (new_labels[k - 1] != cls)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("id " INT64_FORMAT " is given two different labels", ids[src])));
			continue;
		}
		sorted_ids[k] = ids[src];
		new_labels[k] = cls;
		k++;
	}
	read_forget_rows(model, sorted_ids, k, &forget);
	unlearn_execute(model, &forget, new_labels, &opts, "relabel", true, &outcome);
	result = copy_out(outcome_datum(fcinfo, name, &outcome));
	unlearn_close_model_change();
	SPI_finish();
	PG_RETURN_DATUM(result);
}

PG_FUNCTION_INFO_V1(unlearn_confirm_forgotten);
/*
 * unlearn_confirm_forgotten(model): is every row ever forgotten from the
 * model misclassified by its current version?
 */
Datum
unlearn_confirm_forgotten(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	UnlearnModel *model;
	UnlearnData prior;
	nn_model   *net;
	bool		all = true;

	SPI_connect();
	model = unlearn_model_lookup(name, false);
	unlearn_check_can_use(model);
	{
		/* a current version that does not descend from every forgetting version proves nothing */
		UnlearnLineage lin;
		int			stray;

		unlearn_read_lineage(model, &lin);
		stray = unlearn_lineage_stray_forgetter(&lin);
		if (stray != 0)
		{
			ereport(WARNING,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("the current version %d of model \"%s\" does not descend from version %d, which forgot rows",
							model->version, name, stray),
					 errhint("unlearn_verify_ledger('%s') lists what was changed.", name)));
			SPI_finish();
			PG_RETURN_BOOL(false);
		}
	}
	read_prior_rows(model, &prior);
	{
		Oid			argtypes[1] = {TEXTOID};
		Datum		args[1] = {CStringGetTextDatum(name)};
		UnlearnCatalogUser saved;
		bool		isnull;
		int64		erased;

		unlearn_become_catalog_owner(&saved);
		if (SPI_execute_with_args("SELECT count(*) FROM unlearn.forgotten WHERE model = $1 AND features IS NULL",
								  1, argtypes, args, NULL, true, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not read unlearn.forgotten");
		unlearn_restore_user(&saved);
		erased = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		if (erased > 0)
			ereport(NOTICE,
					(errmsg("%lld of %lld forgotten rows of model \"%s\" could not be re-checked",
							(long long) erased, (long long) (erased + prior.n), name),
					 errdetail("Their features were erased after the run that forgot them verified them; their ids and sha256 remain in unlearn.forgotten."),
					 errhint("Set unlearn.feature_retention to keep copies for re-verification.")));
	}
	if (prior.n > 0)
	{
		int		   *pred = palloc(sizeof(int) * prior.n);
		nn_workspace *ws;

		net = unlearn_load_weights(model, model->version);
		ws = nn_workspace_create(net, (int) Min(prior.n, 1024));
		for (int64 s = 0; s < prior.n; s += 1024)
			nn_predict(net, ws, prior.X + s * prior.n_features, (int) Min(1024, prior.n - s), pred + s);
		for (int64 i = 0; i < prior.n; i++)
			if (pred[i] == prior.y[i])
				all = false;
	}
	SPI_finish();
	PG_RETURN_BOOL(all);
}

PG_FUNCTION_INFO_V1(unlearn_forgotten);
/*
 * unlearn_forgotten(model): the ledger with each row's current prediction
 * and true-class probability.
 */
Datum
unlearn_forgotten(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	UnlearnModel *model;
	nn_model   *net = NULL;
	nn_workspace *ws = NULL;
	float	   *proba;
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1] = {CStringGetTextDatum(name)};
	UnlearnCatalogUser saved;
	int			ret;

	InitMaterializedSRF(fcinfo, 0);
	SPI_connect();
	model = unlearn_model_lookup(name, false);
	unlearn_check_can_use(model);
	net = unlearn_load_weights(model, model->version);
	ws = nn_workspace_create(net, 1);
	proba = palloc(sizeof(float) * model->n_classes);

	unlearn_become_catalog_owner(&saved);
	ret = SPI_execute_with_args("SELECT id, label, features, version, forgotten_at FROM unlearn.forgotten"
								" WHERE model = $1 ORDER BY id", 1, argtypes, args, NULL, true, 0);
	unlearn_restore_user(&saved);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read unlearn.forgotten");
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		HeapTuple	tup = SPI_tuptable->vals[r];
		TupleDesc	td = SPI_tuptable->tupdesc;
		Datum		values[7];
		bool		nulls[7] = {0};
		bool		isnull;
		char	   *label = SPI_getvalue(tup, td, 2);
		Datum		feat = SPI_getbinval(tup, td, 3, &isnull);

		values[0] = SPI_getbinval(tup, td, 1, &nulls[0]);
		values[1] = CStringGetTextDatum(label);
		if (isnull)
		{
			/* features erased: nothing left to check against */
			nulls[2] = nulls[3] = nulls[4] = true;
		}
		else
		{
			float	   *x = unlearn_features_from_array(DatumGetArrayTypeP(feat), model->n_features);
			int			cls = unlearn_class_index(model, label);
			int			best = 0;

			nn_predict_proba(net, ws, x, 1, proba);
			for (int c = 1; c < model->n_classes; c++)
				if (proba[c] > proba[best])
					best = c;
			values[2] = CStringGetTextDatum(model->classes[best]);
			if (cls >= 0)
				values[3] = Float8GetDatum(proba[cls]);
			else
				nulls[3] = true;
			values[4] = BoolGetDatum(best != cls);
		}
		values[5] = SPI_getbinval(tup, td, 4, &nulls[5]);
		values[6] = SPI_getbinval(tup, td, 5, &nulls[6]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	SPI_finish();
	return (Datum) 0;
}

/* Per-epoch hook of a retrain: cancel point and NOTICEs. */
static int
retrain_epoch_callback(void *arg, int epoch, int epochs, double mean_loss)
{
	CHECK_FOR_INTERRUPTS();
	if (unlearn_progress)
		ereport(NOTICE,
				(errmsg("unlearn_retrain \"%s\": epoch %d/%d, mean loss %.4f",
						(const char *) arg, epoch, epochs, mean_loss)));
	return 0;
}

PG_FUNCTION_INFO_V1(unlearn_retrain);
/*
 * unlearn_retrain(model, options): a new version trained from scratch, with
 * the model's recorded options, on the rows now in the table (exact
 * unlearning, and the reference audits compare against).
 */
Datum
unlearn_retrain(PG_FUNCTION_ARGS)
{
	char	   *name;
	UnlearnModel *model;
	nn_train_options topts;
	Jsonb	   *stored;
	int		   *hidden;
	int			n_hidden;
	UnlearnDataSpec spec;
	UnlearnData data;
	nn_model   *net;
	char		err[256];
	instr_time	t_start,
				t_train;
	double		load_seconds,
				train_seconds,
				accuracy;
	int			version;
	TupleDesc	desc;
	Datum		values[8];
	bool		nulls[8] = {0};
	Datum		result;
	bool		reference = false;
	Jsonb	   *overrides = NULL;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("model must not be NULL")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	INSTR_TIME_SET_CURRENT(t_start);

	SPI_connect();
	model = unlearn_open_model_for_change(name, "retrain", 0);
	{
		Oid			argtypes[1] = {TEXTOID};
		Datum		args[1] = {CStringGetTextDatum(name)};
		UnlearnCatalogUser saved;
		bool		isnull;
		ArrayType  *harr;
		int			ret;

		unlearn_become_catalog_owner(&saved);
		ret = SPI_execute_with_args("SELECT hidden, options - 'hidden' FROM unlearn.models WHERE name = $1",
									1, argtypes, args, NULL, true, 1);
		unlearn_restore_user(&saved);
		if (ret != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "could not read model \"%s\"", name);
		harr = DatumGetArrayTypeP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		if (ARR_NDIM(harr) > 1 || array_contains_nulls(harr) || ARR_ELEMTYPE(harr) != INT4OID)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("hidden of model \"%s\" is corrupt", name),
					 errdetail("unlearn.models.hidden must be a one-dimensional integer[] without NULLs.")));
		n_hidden = ArrayGetNItems(ARR_NDIM(harr), ARR_DIMS(harr));
		hidden = palloc(sizeof(int) * Max(n_hidden, 1));
		memcpy(hidden, ARR_DATA_PTR(harr), sizeof(int) * n_hidden);
		stored = DatumGetJsonbPCopy(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	}
	if (!PG_ARGISNULL(1))
	{
		/* "reference": store the retrained version without making it current */
		Jsonb	   *given = PG_GETARG_JSONB_P(1);
		JsonbValue	key;
		JsonbValue *v;

		key.type = jbvString;
		key.val.string.val = "reference";
		key.val.string.len = 9;
		if (JB_ROOT_IS_OBJECT(given) &&
			(v = findJsonbValueFromContainer(&given->root, JB_FOBJECT, &key)) != NULL)
		{
			if (v->type != jbvBool)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("invalid training option \"reference\""),
						 errdetail("Expected true or false.")));
			reference = v->val.boolean;
			overrides = DatumGetJsonbP(DirectFunctionCall2(jsonb_delete, JsonbPGetDatum(given),
														   CStringGetTextDatum("reference")));
		}
		else
			overrides = given;
	}
	unlearn_parse_retrain_options(stored, overrides, &topts);

	memset(&spec, 0, sizeof(spec));
	spec.relid = model->relid;
	spec.id_column = model->id_column;
	spec.features_column = model->features_column;
	spec.label_column = model->label_column;
	spec.n_features = model->n_features;
	spec.model = model;
	unlearn_read_data(&spec, &data);
	if (data.n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("the training table of model \"%s\" has no rows", name)));
	for (int64 i = 0; i < data.n; i++)
	{
		if (data.y[i] < 0)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("row " INT64_FORMAT " has a label that is not a class of model \"%s\"",
							data.ids[i], name),
					 errhint("A model's classes are fixed; train a new model for new classes.")));
		if (i > 0 && data.ids[i] == data.ids[i - 1])
			ereport(ERROR,
					(errcode(ERRCODE_UNIQUE_VIOLATION),
					 errmsg("id column \"%s\" must be unique", model->id_column)));
	}
	load_seconds = unlearn_seconds_since(&t_start);

	unlearn_check_model_size(name, model->n_features, n_hidden, hidden, model->n_classes, &topts, data.n);
	net = nn_create(model->n_features, n_hidden, hidden, model->n_classes, topts.seed, err, sizeof(err));
	if (net == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("could not rebuild the network of model \"%s\": %s", name, err)));
	INSTR_TIME_SET_CURRENT(t_train);
	nn_train(net, data.X, data.y, (int) data.n, &topts, retrain_epoch_callback, name);
	train_seconds = unlearn_seconds_since(&t_train);
	if (!nn_params_finite(net))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("retraining diverged: the weights are no longer finite"),
				 errhint("Lower lr.")));
	accuracy = nn_accuracy(net, data.X, data.y, (int) data.n);

	version = next_version(name);
	{
		char	   *metrics = psprintf("{\"train_accuracy\": %.6f, \"load_seconds\": %.3f,"
									   " \"train_seconds\": %.3f, \"rows\": " INT64_FORMAT "}",
									   accuracy, load_seconds, train_seconds, data.n);

		unlearn_store_version(name, version, model->version, reference ? "reference" : "retrain", NULL,
							  unlearn_train_options_to_jsonb(&topts, hidden, n_hidden, topts.epochs),
							  net, data.ids, data.n, NULL, 0,
							  DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(metrics))));
	}
	if (!reference)
		unlearn_set_current_version(name, version);

	values[0] = CStringGetTextDatum(name);
	values[1] = Int32GetDatum(version);
	values[2] = Int64GetDatum(data.n);
	values[3] = Int32GetDatum(model->n_classes);
	values[4] = Float8GetDatum(accuracy);
	values[5] = Float8GetDatum(unlearn_seconds_since(&t_start));
	values[6] = Float8GetDatum(load_seconds);
	values[7] = Float8GetDatum(train_seconds);
	desc = BlessTupleDesc(desc);
	result = copy_out(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
	unlearn_close_model_change();
	SPI_finish();
	PG_RETURN_DATUM(result);
}
