/*
 * ledger.c: the ledger of forgotten rows (unlearn.forgotten): recording the
 * rows a run forgot, reading back those whose features it keeps (the prior
 * rows every later run must keep forgotten), and the functions that check
 * it against the current version: unlearn_confirm_forgotten and
 * unlearn_forgotten.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "unlearn_pg.h"

#define LEDGER_COLUMNS 8

/* The ledger's target_loss for a select list: NULLs on a catalog without it (0.1). */
static const char *
ledger_target_column(void)
{
	return unlearn_catalog_has_ledger_targets() ? "target_loss" : "NULL::float4";
}

/*
 * The ledger insert's arguments for forgotten row i (features NULL unless
 * retained; target_loss NULL unless the row was raised to a target loss).
 */
static void
ledger_row_args(const UnlearnModel *model, const UnlearnData *rows, int64 i, int version,
				const char *caller, Datum *args, char *nulls)
{
	Datum	   *fd = palloc(sizeof(Datum) * rows->n_features);
	uint8		sha[32];
	bytea	   *sha_bytea = palloc(VARHDRSZ + sizeof(sha));

	Assert(rows->y[i] >= 0 && rows->y[i] < model->n_classes);
	for (int j = 0; j < rows->n_features; j++)
		fd[j] = Float4GetDatum(rows->X[i * rows->n_features + j]);
	args[0] = CStringGetTextDatum(model->name);
	args[1] = Int64GetDatum(rows->ids[i]);
	args[2] = CStringGetTextDatum(model->classes[rows->y[i]]);
	args[3] = PointerGetDatum(construct_array(fd, rows->n_features, FLOAT4OID, 4, true, TYPALIGN_INT));
	pfree(fd);
	args[4] = Int32GetDatum(version);
	args[5] = CStringGetTextDatum(rows->requested_by && rows->requested_by[i] ?
								  rows->requested_by[i] : caller);
	/* the run has just verified these rows: by default their copy goes, their hash stays */
	unlearn_sha256(rows->X + i * rows->n_features, sizeof(float) * rows->n_features, sha);
	SET_VARSIZE(sha_bytea, VARHDRSZ + sizeof(sha));
	memcpy(VARDATA(sha_bytea), sha, sizeof(sha));
	args[6] = PointerGetDatum(sha_bytea);
	memset(nulls, ' ', LEDGER_COLUMNS);
	if (unlearn_feature_retention == 0)
		nulls[3] = 'n';
	args[7] = Float4GetDatum(rows->target_loss ? rows->target_loss[i] : NAN);
	if (rows->target_loss == NULL || isnan(rows->target_loss[i]))
		nulls[7] = 'n';
}

/* Adds the forgotten rows to the ledger (as the catalog owner). */
void
unlearn_record_forgotten(const UnlearnModel *model, const UnlearnData *rows, int version)
{
	Oid			argtypes[LEDGER_COLUMNS] = {TEXTOID, INT8OID, TEXTOID, FLOAT4ARRAYOID, INT4OID, TEXTOID, BYTEAOID,
	FLOAT4OID};
	UnlearnCatalogUser saved;
	SPIPlanPtr	plan;
	char	   *caller = GetUserNameFromId(GetUserId(), false);
	bool		targets = unlearn_catalog_has_ledger_targets();

	/* a 0.1 catalog has no target_loss: only misclassified rows can be recorded there */
	Assert(targets || rows->target_loss == NULL);
	unlearn_become_catalog_owner(&saved);
	plan = SPI_prepare(psprintf("INSERT INTO unlearn.forgotten (model, id, label, features, version, requested_by,"
								" features_sha256%s)"
								" VALUES ($1, $2, $3, $4, $5, $6::name, $7%s)"
								" ON CONFLICT (model, id) DO UPDATE SET label = excluded.label,"
								" features = excluded.features, version = excluded.version,"
								" forgotten_at = excluded.forgotten_at, requested_by = excluded.requested_by,"
								" features_sha256 = excluded.features_sha256%s",
								targets ? ", target_loss" : "", targets ? ", $8" : "",
								targets ? ", target_loss = excluded.target_loss" : ""),
					   targets ? LEDGER_COLUMNS : LEDGER_COLUMNS - 1, argtypes);
	if (plan == NULL)
		elog(ERROR, "could not prepare ledger insert");
	for (int64 i = 0; i < rows->n; i++)
	{
		Datum		args[LEDGER_COLUMNS];
		char		nulls[LEDGER_COLUMNS];

		ledger_row_args(model, rows, i, version, caller, args, nulls);
		if (SPI_execute_plan(plan, args, nulls, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not record forgotten row");
		pfree(DatumGetPointer(args[3]));
	}
	SPI_freeplan(plan);
	unlearn_restore_user(&saved);
}

/*
 * Keeps the rows the newest exact version on the chain learned (those in its
 * manifest): the others it never saw, nor did the approximate versions that
 * descend from it, so they are forgotten by construction and need no check.
 * Without such a version (or its manifest) every row stays.
 */
static void
drop_forgotten_by_construction(const UnlearnModel *model, UnlearnData *rows)
{
	double		seconds;
	int64		trained_rows;
	int			exact;
	int64	   *manifest;
	int64		n_manifest;
	int64		m = 0;

	if (rows->n == 0)
		return;
	exact = unlearn_newest_exact_on_chain(model, &seconds, &trained_rows);
	if (exact == 0)
		return;
	manifest = unlearn_load_manifest(model, exact, &n_manifest);
	for (int64 i = 0; i < rows->n; i++)
	{
		if (!bsearch(&rows->ids[i], manifest, n_manifest, sizeof(int64), unlearn_cmp_int64))
			continue;
		if (m != i)
		{
			memmove(rows->X + m * rows->n_features, rows->X + i * rows->n_features,
					sizeof(float) * rows->n_features);
			rows->y[m] = rows->y[i];
			rows->ids[m] = rows->ids[i];
			if (rows->target_loss)
				rows->target_loss[m] = rows->target_loss[i];
		}
		m++;
	}
	rows->n = m;
}

/*
 * Previously forgotten rows whose features the ledger still holds, ordered
 * by id, but for those forgotten by construction (an exact version on the
 * current chain never learned them).
 */
void
unlearn_read_prior_rows(const UnlearnModel *model, UnlearnData *out)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1] = {CStringGetTextDatum(model->name)};
	UnlearnCatalogUser saved;
	int			ret;
	bool		any_target = false;

	memset(out, 0, sizeof(*out));
	unlearn_become_catalog_owner(&saved);
	ret = SPI_execute_with_args(psprintf("SELECT features, label, id, %s FROM unlearn.forgotten"
										 " WHERE model = $1 AND features IS NOT NULL ORDER BY id",
										 ledger_target_column()),
								1, argtypes, args, NULL, true, 0);
	unlearn_restore_user(&saved);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read unlearn.forgotten");
	out->n = SPI_processed;
	out->n_features = model->n_features;
	out->X = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(float) * Max(out->n, 1) * model->n_features);
	out->y = palloc(sizeof(int) * Max(out->n, 1));
	out->ids = palloc(sizeof(int64) * Max(out->n, 1));
	out->target_loss = palloc(sizeof(float) * Max(out->n, 1));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		ArrayType  *arr = DatumGetArrayTypeP(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		char	   *label = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);
		float	   *x = unlearn_features_from_array(arr, model->n_features);
		Datum		t = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 4, &isnull);

		out->target_loss[i] = isnull ? NAN : DatumGetFloat4(t);
		any_target |= !isnull;

		memcpy(out->X + i * model->n_features, x, sizeof(float) * model->n_features);
		out->y[i] = unlearn_class_index(model, label);
		out->ids[i] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 3, &isnull));
	}
	/* no row with a target loss: every row is judged "misclassified" */
	if (!any_target)
	{
		pfree(out->target_loss);
		out->target_loss = NULL;
	}
	drop_forgotten_by_construction(model, out);
}

/*
 * False, with a WARNING, when the current version does not descend from
 * every version that forgot rows: then it proves nothing about them.
 */
static bool
current_descends_from_forgetters(const UnlearnModel *model)
{
	UnlearnLineage lin;
	int			stray;

	unlearn_read_lineage(model, &lin);
	stray = unlearn_lineage_stray_forgetter(&lin);
	if (stray == 0)
		return true;
	ereport(WARNING,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("the current version %d of model \"%s\" does not descend from version %d, which forgot rows",
					model->version, model->name, stray),
			 errhint("unlearn_verify_ledger('%s') lists what was changed.", model->name)));
	return false;
}

/* A NOTICE when some ledger rows' features were erased, so they cannot be re-checked. */
static void
notice_erased_rows(const char *name, int64 n_kept)
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
						(long long) erased, (long long) (erased + n_kept), name),
				 errdetail("Their features were erased after the run that forgot them verified them; their ids and sha256 remain in unlearn.forgotten."),
				 errhint("Set unlearn.feature_retention to keep copies for re-verification.")));
}

/*
 * Whether a row is forgotten: predicted as another class than its label, or
 * (target "unseen") its loss at its target.
 */
static bool
row_forgotten(int pred, int label, float loss, float target)
{
	return pred != label || (!isnan(target) && loss >= target);
}

/* True if the current version keeps every one of the rows forgotten (row_forgotten). */
static bool
all_forgotten(const UnlearnModel *model, const UnlearnData *rows)
{
	int		   *pred;
	float	   *loss = NULL;
	nn_model   *net;
	nn_workspace *ws;

	if (rows->n == 0)
		return true;
	pred = palloc(sizeof(int) * rows->n);
	net = unlearn_load_weights(model, model->version);
	ws = nn_workspace_create(net, (int) Min(rows->n, 1024));
	for (int64 s = 0; s < rows->n; s += 1024)
		nn_predict(net, ws, rows->X + s * rows->n_features, (int) Min(1024, rows->n - s), pred + s);
	if (rows->target_loss)
	{
		Assert(rows->n <= INT_MAX);
		loss = palloc(sizeof(float) * rows->n);
		ul_row_losses(net, rows->X, rows->y, (int) rows->n, loss);
	}
	for (int64 i = 0; i < rows->n; i++)
		if (!row_forgotten(pred[i], rows->y[i], loss ? loss[i] : 0.0f,
						   rows->target_loss ? rows->target_loss[i] : NAN))
			return false;
	return true;
}

PG_FUNCTION_INFO_V1(unlearn_confirm_forgotten);
/*
 * unlearn_confirm_forgotten(model): is every row ever forgotten from the
 * model still forgotten by its current version (misclassified, or at its
 * target loss)?
 */
Datum
unlearn_confirm_forgotten(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	UnlearnModel *model;
	UnlearnData prior;
	bool		all;

	SPI_connect();
	model = unlearn_model_lookup(name, false);
	unlearn_check_can_use(model);
	if (!current_descends_from_forgetters(model))
	{
		SPI_finish();
		PG_RETURN_BOOL(false);
	}
	unlearn_read_prior_rows(model, &prior);
	notice_erased_rows(name, prior.n);
	all = all_forgotten(model, &prior);
	SPI_finish();
	PG_RETURN_BOOL(all);
}

/*
 * The columns of unlearn_forgotten that depend on the current version, for a
 * ledger row: prediction, true-class probability, whether it is forgotten.
 */
static void
check_ledger_row(const UnlearnModel *model, nn_model *net, nn_workspace *ws, float *proba,
				 const char *label, Datum features, float target, Datum *values, bool *nulls)
{
	float	   *x = unlearn_features_from_array(DatumGetArrayTypeP(features), model->n_features);
	int			cls = unlearn_class_index(model, label);
	int			best = 0;
	float		loss = 0.0f;

	nn_predict_proba(net, ws, x, 1, proba);
	for (int c = 1; c < model->n_classes; c++)
		if (proba[c] > proba[best])
			best = c;
	values[0] = CStringGetTextDatum(model->classes[best]);
	if (cls >= 0)
		values[1] = Float8GetDatum(proba[cls]);
	else
		nulls[1] = true;
	if (cls >= 0 && !isnan(target))
		ul_row_losses(net, x, &cls, 1, &loss);
	values[2] = BoolGetDatum(cls < 0 || row_forgotten(best, cls, loss, target));
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
	ret = SPI_execute_with_args(psprintf("SELECT id, label, features, version, forgotten_at, %s"
										 " FROM unlearn.forgotten WHERE model = $1 ORDER BY id",
										 ledger_target_column()),
								1, argtypes, args, NULL, true, 0);
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
		bool		no_target;
		Datum		target = SPI_getbinval(tup, td, 6, &no_target);
		Datum		feat = SPI_getbinval(tup, td, 3, &isnull);

		values[0] = SPI_getbinval(tup, td, 1, &nulls[0]);
		values[1] = CStringGetTextDatum(label);
		if (isnull)				/* features erased: nothing left to check against */
			nulls[2] = nulls[3] = nulls[4] = true;
		else
			check_ledger_row(model, net, ws, proba, label, feat, no_target ? NAN : DatumGetFloat4(target),
							 values + 2, nulls + 2);
		values[5] = SPI_getbinval(tup, td, 4, &nulls[5]);
		values[6] = SPI_getbinval(tup, td, 5, &nulls[6]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	SPI_finish();
	return (Datum) 0;
}
