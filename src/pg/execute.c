/*
 * execute.c: unlearn_execute, one unlearning run, in named steps: read what
 * the run needs (manifest, prior rows, replay sample), run the core, change
 * the training table, store the new version with its manifest and ledger
 * rows.  Shared by unlearn_rows, unlearn_relabel and the background worker;
 * everything happens in the caller's transaction.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "portability/instr_time.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "unlearn_pg.h"

/* What a run reads before it changes anything. */
typedef struct RunInputs
{
	int64	   *manifest;		/* the current version's, sorted */
	int64		n_manifest;
	UnlearnData prior;			/* rows forgotten earlier whose features the ledger keeps */
	UnlearnData replay;			/* the default method's sample of remaining rows */
} RunInputs;

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

/* The core's view of a row set (NULL arrays when it is empty). */
static ul_rows
core_rows(const UnlearnData *d)
{
	ul_rows		r;

	r.X = d->n ? d->X : NULL;
	r.y = d->n ? d->y : NULL;
	r.n = (int) d->n;
	return r;
}

/* Step 1: the manifest, the prior rows and (default method) the replay sample. */
static void
read_inputs(const UnlearnModel *model, const UnlearnData *forget, const UnlearnRunOptions *opts,
			RunInputs *in)
{
	in->manifest = unlearn_load_manifest(model, model->version, &in->n_manifest);
	unlearn_read_prior_rows(model, &in->prior);
	if (opts->ul.method == UL_METHOD_DEFAULT && opts->replay_rows > 0)
		unlearn_read_sample(model, in->manifest, in->n_manifest, forget->ids, (int) forget->n,
							opts->replay_rows, opts->ul.seed, &in->replay);
	else
		memset(&in->replay, 0, sizeof(in->replay));
}

/* Step 2: the current weights, unlearned by the core; errors unless every row is satisfied. */
static nn_model *
run_core(const UnlearnModel *model, const UnlearnData *forget, const int *new_labels,
		 const RunInputs *in, const UnlearnRunOptions *opts, ul_result *res)
{
	nn_model   *net = unlearn_load_weights(model, model->version);
	ul_request	req;
	char		err[256];
	int			k = (int) forget->n;
	bool		relabel = new_labels != NULL;

	req.forget = core_rows(forget);
	req.new_labels = new_labels;
	req.prior = core_rows(&in->prior);
	req.replay = core_rows(&in->replay);
	if (ul_unlearn_request(net, &req, &opts->ul, unlearn_progress_callback, model->name, res,
						   err, sizeof(err)) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("could not unlearn: %s", err)));
	if (!nn_params_finite(net))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("method %s diverged: the weights are no longer finite", unlearn_method_name(opts)),
				 errdetail("Nothing was changed."),
				 errhint("Lower lr.")));
	if (!res->success)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("method %s could not %s every row within its step cap",
						unlearn_method_name(opts), relabel ? "relabel" : "forget"),
				 errdetail("After %d steps %d of %d rows were %s and %d of %d earlier forgotten rows stayed misclassified; nothing was changed.",
						   res->steps, res->forgotten, k, relabel ? "relabelled" : "misclassified",
						   res->prior_kept, (int) in->prior.n),
				 opts->ul.method == UL_METHOD_DEFAULT ?
				 errhint("Raise max_steps or max_passes, or forget fewer rows at a time.") :
				 errhint("Use method \"default\", or raise max_steps or max_passes.")));
	return net;
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

/* Step 3 (forget): deletes the rows from the training table; 40001 if they changed meanwhile. */
static void
delete_rows(const UnlearnModel *model, const UnlearnData *forget)
{
	int			k = (int) forget->n;
	Oid			argtypes[1] = {INT8ARRAYOID};
	Datum		args[1] = {unlearn_int8_array(forget->ids, k)};
	char	   *sql = psprintf("DELETE FROM %s WHERE %s = ANY($1)",
							   unlearn_qualified_name(model->relid),
							   quote_identifier(model->id_column));
	int			ret = execute_uncaptured(model->name, args[0], sql, 1, argtypes, args);

	if (ret != SPI_OK_DELETE || SPI_processed != (uint64) k)
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("the rows to forget changed while unlearning"),
				 errdetail("Deleted " UINT64_FORMAT " of %d rows.", SPI_processed, k)));
}

/* Step 3 (relabel): sets the rows' new labels in the training table; 40001 if they changed. */
static void
relabel_rows(const UnlearnModel *model, const UnlearnData *forget, const int *new_labels)
{
	int			k = (int) forget->n;
	Oid			argtypes[2] = {INT8ARRAYOID, TEXTARRAYOID};
	Datum		args[2];
	Datum	   *labels = palloc(sizeof(Datum) * k);
	char	   *sql;
	int			ret;

	for (int i = 0; i < k; i++)
	{
		Assert(new_labels[i] >= 0 && new_labels[i] < model->n_classes);
		labels[i] = CStringGetTextDatum(model->classes[new_labels[i]]);
	}
	args[0] = unlearn_int8_array(forget->ids, k);
	args[1] = PointerGetDatum(construct_array(labels, k, TEXTOID, -1, false, TYPALIGN_INT));
	sql = psprintf("UPDATE %s AS t SET %s = u.label::%s FROM unnest($1, $2) AS u(id, label) WHERE t.%s = u.id",
				   unlearn_qualified_name(model->relid),
				   quote_identifier(model->label_column),
				   format_type_be_qualified(model->label_type),
				   quote_identifier(model->id_column));
	ret = execute_uncaptured(model->name, args[0], sql, 2, argtypes, args);
	if (ret != SPI_OK_UPDATE || SPI_processed != (uint64) k)
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("the rows to relabel changed while unlearning")));
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

/* Step 4: the new version (current from now on), its manifest and, when forgetting, its ledger rows. */
static void
store_run(const UnlearnModel *model, const UnlearnData *forget, bool relabel, const RunInputs *in,
		  const nn_model *net, const ul_result *res, const UnlearnRunOptions *opts,
		  const char *reason, UnlearnOutcome *out)
{
	int			k = (int) forget->n;
	int64		n_new_manifest = in->n_manifest;
	int64	   *new_manifest = in->manifest;
	Jsonb	   *metrics;

	if (!relabel)
	{
		new_manifest = manifest_without(in->manifest, in->n_manifest, forget->ids, k, &n_new_manifest);
		/* every forgotten id was checked to be in the manifest */
		Assert(n_new_manifest <= in->n_manifest - k);
	}
	out->version = unlearn_next_version(model->name);
	metrics = unlearn_jsonb_printf("{\"rows\": %d, \"forgotten\": %d, \"prior\": %d, \"prior_kept\": %d,"
								   " \"steps\": %d, \"forget_steps\": %d, \"seconds\": %.3f,"
								   " \"replay_rows\": %d, \"forget_loss\": %s}",
								   k, res->forgotten, (int) in->prior.n, res->prior_kept, res->steps,
								   res->forget_steps, out->seconds, (int) in->replay.n,
								   isfinite(res->final_forget_loss) ?
								   psprintf("%.6g", res->final_forget_loss) : "null");
	unlearn_store_version(model->name, out->version, model->version, reason,
						  unlearn_method_name(opts), run_options_to_jsonb(opts),
						  net, new_manifest, n_new_manifest,
						  relabel ? NULL : forget->ids, relabel ? 0 : k, metrics);
	unlearn_set_current_version(model->name, out->version);
	if (!relabel)
		unlearn_record_forgotten(model, forget, out->version);
}

/*
 * Unlearns (or relabels) the rows in `forget` from the model's current
 * version and stores the new version, its manifest and ledger rows.  When
 * change_table is set the rows are also deleted from (relabelled in) the
 * training table; the background worker passes false: the user's DELETE or
 * UPDATE already did it.  Caller: connected to SPI, model locked, rows
 * sorted by id, distinct, and checked against the manifest.
 */
void
unlearn_execute(UnlearnModel *model, UnlearnData *forget, const int *new_labels,
				const UnlearnRunOptions *opts, const char *reason, bool change_table,
				UnlearnOutcome *out)
{
	RunInputs	in;
	nn_model   *net;
	ul_result	res;
	instr_time	t_start;
	bool		relabel = new_labels != NULL;

	Assert(forget->n > 0 && forget->n <= INT_MAX);
	Assert(forget->n_features == model->n_features);
	for (int64 i = 1; i < forget->n; i++)
		Assert(forget->ids[i - 1] < forget->ids[i]);

	INSTR_TIME_SET_CURRENT(t_start);
	read_inputs(model, forget, opts, &in);
	net = run_core(model, forget, new_labels, &in, opts, &res);
	out->seconds = unlearn_seconds_since(&t_start);

	if (change_table && !relabel)
		delete_rows(model, forget);
	else if (change_table)
		relabel_rows(model, forget, new_labels);
	store_run(model, forget, relabel, &in, net, &res, opts, reason, out);

	out->rows = (int) forget->n;
	out->forgotten = res.forgotten;
	out->prior = (int) in.prior.n;
	out->prior_kept = res.prior_kept;
	out->steps = res.steps;
	out->method = unlearn_method_name(opts);
}
