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
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "queue.h"
#include "unlearn_pg.h"
#include "warm.h"

#define HELD_OUT_MAX 2000		/* held-out rows of the accuracy guard, at most */
#define HELD_OUT_SHARE 5		/* and at most 1 in 5 of the remaining rows */
#define GUARD_MIN_NET_LOSS 5	/* the fewest held-out rows lost (net) the guard can see: L > 2 sqrt(L) */

/* What a run reads before it changes anything. */
typedef struct RunInputs
{
	int64	   *manifest;		/* the current version's, sorted */
	int64		n_manifest;
	UnlearnData prior;			/* rows forgotten earlier whose features the ledger keeps */
	UnlearnData held_out;		/* the guard's sample of remaining rows, outside the replay sample */
	UnlearnData replay;			/* the default method's sample of remaining rows */
	double		held_out_before;	/* accuracy on held_out before and after the run, in [0, 1] */
	double		held_out_after;
	int		   *held_out_pred;	/* the predictions before the run */
	int			lost;			/* held-out rows right before the run and wrong after */
	int			gained;			/* and the other way round */
	UnlearnPhases *phases;		/* where the run's time goes (the outcome's) */
	UnlearnWarmReport warm;		/* where the samples came from */
	UnlearnWarm *warm_entry;	/* the worker's cached samples, or NULL */
	int			target;			/* UnlearnTarget of this run (choose_target) */
	bool		has_ref;		/* the current version records a loss reference (target "unseen") */
	float		ref[UL_UNSEEN_QUANTILES];
	float	   *forget_target;	/* target "unseen": each forget row's target loss; else NULL */
	int			floored;		/* target "unseen": targets the floor raised (ul_unseen_floor) */
	const UnlearnShardMap *shard_map;	/* a sharded run: the parent's shard map, else NULL */
	char	   *shards_json;	/* a sharded run: the metrics' ", \"shards_changed\": [...]", else NULL */
} RunInputs;

/* Starts timing a run: its start, and the first phase's. */
void
unlearn_phases_start(UnlearnPhases *p)
{
	memset(p, 0, sizeof(*p));
	INSTR_TIME_SET_CURRENT(p->start);
	p->mark = p->start;
	p->paused0 = unlearn_throttle_paused();
}

/* Adds seconds to a named phase (a new one goes last; past the maximum, to "other"). */
void
unlearn_phase_add(UnlearnPhases *p, const char *name, double seconds)
{
	int			i;

	for (i = 0; i < p->n; i++)
		if (strcmp(p->name[i], name) == 0)
			break;
	if (i == p->n && p->n == UNLEARN_MAX_PHASES)
		i = p->n - 1;
	else if (i == p->n)
	{
		p->name[p->n++] = name;
		p->seconds[i] = 0;
	}
	p->seconds[i] += Max(seconds, 0.0);
}

/* Seconds since the previous phase ended; a new phase starts now. */
static double
phase_lap(UnlearnPhases *p)
{
	instr_time	now;
	instr_time	d;

	INSTR_TIME_SET_CURRENT(now);
	d = now;
	INSTR_TIME_SUBTRACT(d, p->mark);
	p->mark = now;
	return INSTR_TIME_GET_DOUBLE(d);
}

/* Ends a phase: the time since the previous phase ended goes to name. */
void
unlearn_phase_end(UnlearnPhases *p, const char *name)
{
	unlearn_phase_add(p, name, phase_lap(p));
}

/* The phases as a jsonb object's text, and the total since the start (whole microseconds). */
char *
unlearn_phases_json(UnlearnPhases *p, double *total)
{
	StringInfoData s;
	instr_time	now;

	INSTR_TIME_SET_CURRENT(now);
	INSTR_TIME_SUBTRACT(now, p->start);
	*total = INSTR_TIME_GET_DOUBLE(now);
	/* whole microseconds, phases down and the total up: their sum stays within it */
	*total = ceil(*total * 1e6) / 1e6;
	initStringInfo(&s);
	appendStringInfoChar(&s, '{');
	for (int i = 0; i < p->n; i++)
		appendStringInfo(&s, "%s\"%s\": %.6f", i ? ", " : "", p->name[i], floor(p->seconds[i] * 1e6) / 1e6);
	appendStringInfoChar(&s, '}');
	return s.data;
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

/*
 * The held-out and replay samples under unlearn.max_training_memory, or
 * under unlearn.max_model_size when that is unbounded (an owner's
 * replay_rows, or a wide table, must not take the memory of the worker that
 * serves every model): when their rows would hold more, both shrink in
 * proportion to fit (the replay sample takes what rounding leaves).
 */
static void
bound_samples(const UnlearnModel *model, int *want, int *want_replay)
{
	int64		bound = unlearn_training_memory_bytes();
	int64		fit;
	int64		total = (int64) *want + *want_replay;

	if (bound == 0)
		bound = (int64) unlearn_max_model_size * 1024;
	fit = bound / UNLEARN_ROW_BYTES(model->n_features);
	if (total <= fit)
		return;
	*want = (int) ((int64) *want * fit / total);
	*want_replay = (int) Min((int64) *want_replay, fit - *want);
}

/* The sizes of the held-out and replay samples of a run that leaves `remaining` rows. */
static void
sample_sizes(const UnlearnModel *model, int64 remaining, const UnlearnRunOptions *opts, int *want,
			 int *want_replay)
{
	*want = (int) Min((int64) HELD_OUT_MAX, Max(remaining, 0) / HELD_OUT_SHARE);
	if (unlearn_max_accuracy_drop >= 100)
		*want = 0;				/* the guard is off: the replay sample is drawn as without it */
	*want_replay = 0;
	if (opts->ul.method == UL_METHOD_DEFAULT && opts->replay_rows > 0)
		*want_replay = opts->replay_rows;
	bound_samples(model, want, want_replay);
}

/*
 * Step 1: the manifest, the prior rows, the guard's held-out sample of
 * remaining rows and (default method) the replay sample: from the worker's
 * warm samples when it passes them (warm.c), else read from the table.
 */
static void
read_inputs(const UnlearnModel *model, const UnlearnData *forget, const UnlearnRunOptions *opts,
			UnlearnWarm *warm, RunInputs *in)
{
	int			want;
	int			want_replay;

	in->manifest = unlearn_load_manifest(model, model->version, &in->n_manifest);
	unlearn_phase_end(in->phases, "read_manifest");
	unlearn_read_prior_rows(model, &in->prior);
	unlearn_phase_end(in->phases, "read_prior");
	if (unlearn_shards_option(model->options) > 1)
		return;					/* a sharded run draws its samples per shard (run_sharded) */
	sample_sizes(model, in->n_manifest - forget->n, opts, &want, &want_replay);
	memset(&in->warm, 0, sizeof(in->warm));
	if (warm)
		unlearn_warm_samples(warm, model, in->manifest, in->n_manifest, forget, want, want_replay,
							 opts->ul.seed, in->phases, &in->held_out, &in->replay, &in->warm);
	else
	{
		unlearn_read_run_samples(model, in->manifest, in->n_manifest, forget, want, want_replay,
								 opts->ul.seed, in->phases, &in->held_out, &in->replay);
		in->warm.read = in->held_out.n + in->replay.n;
	}
}

/*
 * Predictions of a network on the held-out rows (from its logits on them
 * when given), and their accuracy (1 when there are none).
 */
static double
held_out_predict(const nn_model *net, const UnlearnData *held_out, const float *logits, int *pred)
{
	nn_workspace *ws;
	int64		right = 0;

	if (held_out->n == 0)
		return 1.0;
	if (logits)
		nn_logits_classes(logits, (int) held_out->n, NN_CLASSES(net), pred);
	else
	{
		ws = nn_workspace_create(net, (int) Min(held_out->n, 1024));
		for (int64 s = 0; s < held_out->n; s += 1024)
			nn_predict(net, ws, held_out->X + s * held_out->n_features, (int) Min(1024, held_out->n - s), pred + s);
		nn_workspace_free(ws);
	}
	for (int64 i = 0; i < held_out->n; i++)
		right += pred[i] == held_out->y[i];
	return (double) right / (double) held_out->n;
}

/* Accuracy on the held-out rows before the run (its predictions kept), from the logits when known. */
static void
measure_before(const nn_model *net, RunInputs *in, const float *logits)
{
	in->held_out_pred = palloc(sizeof(int) * Max(in->held_out.n, 1));
	in->held_out_before = held_out_predict(net, &in->held_out, logits, in->held_out_pred);
}

/* Accuracy on the held-out rows after the run, and the rows it lost and gained. */
static void
measure_after(const nn_model *net, RunInputs *in)
{
	int		   *pred = palloc(sizeof(int) * Max(in->held_out.n, 1));

	in->held_out_after = held_out_predict(net, &in->held_out, NULL, pred);
	in->lost = in->gained = 0;
	for (int64 i = 0; i < in->held_out.n; i++)
	{
		bool		was = in->held_out_pred[i] == in->held_out.y[i];
		bool		is = pred[i] == in->held_out.y[i];

		in->lost += was && !is;
		in->gained += !was && is;
	}
	pfree(pred);
}

/* The core's own phases; what it spent between them goes to "optimise_other". */
static void
core_phases(UnlearnPhases *p, const ul_result *res)
{
	double		core = phase_lap(p);

	unlearn_phase_add(p, "optimise_setup", res->setup_seconds);
	unlearn_phase_add(p, "optimise_forget", res->forget_seconds);
	unlearn_phase_add(p, "optimise_repair", res->repair_seconds);
	unlearn_phase_add(p, "optimise_finish", res->finish_seconds);
	unlearn_phase_add(p, "optimise_other", core - res->setup_seconds - res->forget_seconds -
					  res->repair_seconds - res->finish_seconds);
}

/*
 * Step 1b: what forgetting means in this run.  The target "unseen" needs the
 * loss reference of rows the model never saw: asked for by the run's options
 * without one is an error (55000); asked for by unlearn.target alone, the run
 * forgets with "misclassify" (the stronger criterion) and says so.  Relabelling
 * has its own criterion.
 */
static void
choose_target(const UnlearnModel *model, bool relabel, const UnlearnRunOptions *opts, RunInputs *in)
{
	in->has_ref = unlearn_read_unseen_reference(model, in->ref);
	in->target = relabel ? UNLEARN_TARGET_MISCLASSIFY : opts->target;
	if (in->target == UNLEARN_TARGET_UNSEEN && unlearn_shards_option(model->options) > 1)
	{
		/* a shard's network has no loss reference of its own: sharded models misclassify */
		if (!opts->target_from_setting)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("sharded model \"%s\" forgets with the target \"misclassify\" only", model->name)));
		in->target = UNLEARN_TARGET_MISCLASSIFY;
		return;
	}
	if (in->target != UNLEARN_TARGET_UNSEEN || in->has_ref)
		return;
	if (!opts->target_from_setting)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("model \"%s\" has no loss reference for the target \"unseen\"", model->name),
				 errdetail("Version %d records no losses of rows the model never saw.", model->version),
				 errhint("Train or retrain it with held-out rows, e.g. options => '{\"validation\": 0.1}'.")));
	ereport(NOTICE,
			(errmsg("model \"%s\" has no loss reference: its rows are forgotten with the target \"misclassify\"",
					model->name),
			 errhint("Train or retrain it with held-out rows, e.g. options => '{\"validation\": 0.1}'.")));
	in->target = UNLEARN_TARGET_MISCLASSIFY;
}

/*
 * The core's run on one network; errors unless the weights stay finite and
 * every row (forget and prior) is satisfied: nothing is changed then.
 */
static void
core_checked(nn_model *net, const ul_request *req, const UnlearnRunOptions *opts, const char *model,
			 bool relabel, bool forget_targets, bool prior_targets, ul_result *res)
{
	char		err[256];

	unlearn_check_unlearn_size(model, net, req, &opts->ul);
	if (ul_unlearn_request(net, req, &opts->ul, unlearn_progress_callback, (void *) model, res,
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
				 errdetail("After %d steps %d of %d rows were %s and %d of %d earlier forgotten rows stayed %s; nothing was changed.",
						   res->steps, res->forgotten, req->forget.n,
						   relabel ? "relabelled" : forget_targets ? "at their target loss" : "misclassified",
						   res->prior_kept, req->prior.n,
						   prior_targets ? "forgotten" : "misclassified"),
				 opts->ul.method == UL_METHOD_DEFAULT ?
				 errhint("Raise max_steps or max_passes, or forget fewer rows at a time.") :
				 errhint("Use method \"default\", or raise max_steps or max_passes.")));
}

/* Step 2: the current weights, unlearned by the core; errors unless every row is satisfied. */
static nn_model *
run_core(const UnlearnModel *model, const UnlearnData *forget, const int *new_labels,
		 RunInputs *in, const UnlearnRunOptions *opts, ul_result *res)
{
	nn_model   *net = unlearn_load_weights(model, model->version);
	ul_request	req;
	bool		relabel = new_labels != NULL;
	const float *held_logits = NULL;

	req.forget = core_rows(forget);
	req.new_labels = new_labels;
	req.prior = core_rows(&in->prior);
	req.replay = core_rows(&in->replay);
	/* target losses: this run's rows (target "unseen"), earlier rows as the ledger has them */
	in->forget_target = in->target == UNLEARN_TARGET_UNSEEN ?
		unlearn_unseen_targets(net, forget, in->ref, model->name, &in->floored) : NULL;
	req.forget_target = in->forget_target;
	req.prior_target = in->prior.target_loss;
	req.replay_logits = NULL;
	unlearn_phase_end(in->phases, "read_model");
	if (in->warm_entry)
	{
		/* theta0's logits on the warm samples, computed after the previous run */
		unlearn_warm_logits(in->warm_entry, net, &held_logits, &req.replay_logits);
		unlearn_phase_end(in->phases, "warm_logits");
	}
	measure_before(net, in, held_logits);
	unlearn_phase_end(in->phases, "held_out_before");
	core_checked(net, &req, opts, model->name, relabel, in->forget_target != NULL, in->prior.target_loss != NULL, res);
	core_phases(in->phases, res);
	measure_after(net, in);
	unlearn_phase_end(in->phases, "held_out_after");
	return net;
}

/* The guard: accuracy points the run lost on the held-out rows (negative: gained). */
static double
held_out_drop(const RunInputs *in)
{
	return 100.0 * (in->held_out_before - in->held_out_after);
}

/*
 * True when the run lost more than unlearn.max_accuracy_drop points on the
 * held-out rows, and the loss is beyond their sampling noise: the rows it
 * turned wrong outnumber those it turned right by more than twice the
 * standard deviation of that difference under no change (a one-sided
 * McNemar test at about 2 %), so a handful of flips on a small table does
 * not count.
 */
static bool
guard_trips(const RunInputs *in)
{
	if (in->held_out.n == 0 || held_out_drop(in) <= unlearn_max_accuracy_drop)
		return false;
	return (double) (in->lost - in->gained) > 2.0 * sqrt((double) (in->lost + in->gained));
}

/*
 * Whether the guard can see a drop of unlearn.max_accuracy_drop on the run's
 * held-out rows at all: it trips only on a net loss L > 2 sqrt(L) rows
 * (guard_trips), at least GUARD_MIN_NET_LOSS, which on a small sample is
 * more points than the setting allows (5 of 122 rows: 4.1 points).
 */
static bool
guard_resolves(const RunInputs *in)
{
	return in->held_out.n == 0 ||
		100.0 * GUARD_MIN_NET_LOSS / (double) in->held_out.n <= unlearn_max_accuracy_drop;
}

/* The estimated time of an exact retrain on n rows, or -1 when unknown. */
static double
estimated_retrain_seconds(const UnlearnModel *model, int64 n)
{
	double		seconds;
	int64		rows;

	/* the newest training on the chain, scaled by the rows */
	if (unlearn_newest_exact_on_chain(model, &seconds, &rows) == 0 || seconds < 0 || rows <= 0)
		return -1;
	return seconds * (double) n / (double) rows;
}

/* Errors (54000): the guard refused the run and no exact retrain replaces it; nothing changed. */
static void
refuse_run(const UnlearnModel *model, const RunInputs *in, bool relabel, double estimate)
{
	char	   *why;

	if (relabel)
		why = pstrdup("a relabelling is not retrained");
	else if (unlearn_retrain_budget == 0)
		why = pstrdup("exact retraining is off (unlearn.retrain_budget = 0)");
	else if (estimate < 0)
		why = pstrdup("the time of an exact retrain cannot be estimated: no training of the current version's lineage recorded train_seconds");
	else
		why = psprintf("an exact retrain is estimated at %.1f s, over unlearn.retrain_budget (%d s)",
					   estimate, unlearn_retrain_budget);
	ereport(ERROR,
			(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
			 errmsg("unlearning would lower the accuracy of model \"%s\" on held-out rows by %.2f points, more than unlearn.max_accuracy_drop (%g)",
					model->name, held_out_drop(in), unlearn_max_accuracy_drop),
			 errdetail("Accuracy on %d held-out remaining rows: %.2f %% before, %.2f %% after; %s. Nothing was changed.",
					   (int) in->held_out.n, 100.0 * in->held_out_before, 100.0 * in->held_out_after, why),
			 errhint("Raise unlearn.retrain_budget or unlearn.max_accuracy_drop, or forget fewer rows at a time.")));
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

/*
 * Step 4: the new version (current from now on), its manifest and, when
 * forgetting, its ledger rows (written first, in the same transaction, so
 * the metrics can time them).
 */
static void
store_run(const UnlearnModel *model, const UnlearnData *forget, bool relabel, const RunInputs *in,
		  const nn_model *net, const ul_result *res, const UnlearnRunOptions *opts,
		  const char *reason, UnlearnOutcome *out)
{
	int			k = (int) forget->n;
	int64		n_new_manifest = in->n_manifest;
	int64	   *new_manifest = in->manifest;
	Jsonb	   *metrics;
	char	   *phases;
	double		total;

	if (!relabel)
	{
		new_manifest = manifest_without(in->manifest, in->n_manifest, forget->ids, k, &n_new_manifest);
		/* every forgotten id was checked to be in the manifest */
		Assert(n_new_manifest <= in->n_manifest - k);
	}
	out->version = unlearn_next_version(model->name);
	unlearn_phase_end(in->phases, "store_prepare");
	if (!relabel)
	{
		UnlearnData rec = *forget;

		rec.target_loss = in->forget_target;
		unlearn_record_forgotten(model, &rec, out->version);
	}
	unlearn_phase_end(in->phases, "ledger");
	phases = unlearn_phases_json(in->phases, &total);
	metrics = unlearn_jsonb_printf("{\"rows\": %d, \"forgotten\": %d, \"prior\": %d, \"prior_kept\": %d,"
								   " \"steps\": %d, \"forget_steps\": %d, \"seconds\": %.3f,"
								   " \"replay_rows\": %d, \"forget_loss\": %s, \"held_out_rows\": %d,"
								   " \"held_out_before\": %s, \"held_out_after\": %s,"
								   " \"replay_cached\": %s, \"cache_check\": %s, \"cache_dropped\": " INT64_FORMAT ","
								   " \"sample_rows_read\": " INT64_FORMAT ","
								   " \"total_seconds\": %.6f, \"paused_seconds\": %.3f, \"phases\": %s,"
								   " \"target\": \"%s\"%s%s%s}",
								   k, res->forgotten, (int) in->prior.n, res->prior_kept, res->steps,
								   res->forget_steps, out->seconds, (int) in->replay.n,
								   isfinite(res->final_forget_loss) ?
								   psprintf("%.6g", res->final_forget_loss) : "null",
								   (int) in->held_out.n,
								   in->held_out.n ? psprintf("%.6f", in->held_out_before) : "null",
								   in->held_out.n ? psprintf("%.6f", in->held_out_after) : "null",
								   in->warm.cached ? "true" : "false",
								   !in->warm.cached ? "null" : in->warm.checked_directly ? "\"heap\"" : "\"scan\"",
								   in->warm.dropped, in->warm.read,
								   total, unlearn_throttle_paused() - in->phases->paused0, phases,
								   in->target == UNLEARN_TARGET_UNSEEN ? "unseen" : "misclassify",
								   in->has_ref ? unlearn_unseen_reference_json(in->ref) : "",
								   in->forget_target ? psprintf(", \"unseen_floored\": %d", in->floored) : "",
								   in->shards_json ? in->shards_json : "");
	/* sharded by partition: the new manifest keeps each id's shard */
	unlearn_store_version(model->name, out->version, model->version, reason,
						  unlearn_method_name(opts), run_options_to_jsonb(opts),
						  net, new_manifest, n_new_manifest,
						  in->shard_map && in->shard_map->ids ?
						  unlearn_shards_of_ids(in->shard_map, new_manifest, n_new_manifest) : NULL,
						  relabel ? NULL : forget->ids, relabel ? 0 : k, metrics);
	unlearn_set_current_version(model->name, out->version);
	unlearn_phase_end(in->phases, "store_version");
}

/*
 * Rows of `keep` the table no longer has (deleted since the run began, their
 * requests still queued): an exact retrain cannot learn them, so the new
 * version forgets them too, and the ledger records them from their queued
 * copies.  Returns them (n 0 when none); *all gets forget's ids and theirs,
 * sorted, the version's forgotten ids.
 */
static void
gone_rows(const UnlearnModel *model, const UnlearnData *forget, const int64 *keep, int64 n_keep,
		  const UnlearnData *data, UnlearnData *gone, int64 **all, int *n_all)
{
	int64		n_missing;
	/* step 1: keep minus the rows read (both sorted) */
	int64	   *missing = manifest_without(keep, n_keep, data->ids, (int) data->n, &n_missing);
	UnlearnCatalogUser saved;

	memset(gone, 0, sizeof(*gone));
	if (n_missing > 0)
	{
		unlearn_become_catalog_owner(&saved);
		unlearn_queue_gone_rows(model, missing, n_missing, gone);
		unlearn_restore_user(&saved);
	}
	/* step 2: the version's forgotten ids, forget's and the gone rows', sorted */
	*n_all = (int) (forget->n + gone->n);
	*all = palloc(sizeof(int64) * Max(*n_all, 1));
	if (forget->n > 0)			/* a relabelling forgets none of its rows */
		memcpy(*all, forget->ids, sizeof(int64) * forget->n);
	if (gone->n > 0)
		memcpy(*all + forget->n, gone->ids, sizeof(int64) * gone->n);
	qsort(*all, *n_all, sizeof(int64), unlearn_cmp_int64);
}

/*
 * The rows an exact run reads of `keep`: all of them; or, on a sharded
 * model, those of the shards that held a forgotten row, marked in
 * run->retrain_shard, with the parent's ensemble the other shards are
 * copied from (run->parent_net), and the parent's shard map (its manifest's
 * shards when sharded by partition; their count the parent's, which a
 * retrain over changed partitions may have changed).
 */
static const int64 *
exact_rows_to_read(const UnlearnModel *model, const UnlearnData *forget, const RunInputs *in, bool by_partition,
				   const int64 *keep, int64 n_keep, UnlearnTrainRun *run, int64 *n_read)
{
	bool	   *retrain;
	nn_model   *parent;

	*n_read = n_keep;
	if (run->shards <= 1)
		return keep;
	parent = unlearn_load_weights(model, model->version);
	if (by_partition)
		run->shards = parent->n_members;
	if (parent->n_members != run->shards || run->shards < 2)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("version %d of model \"%s\" has %d shards, its options %d",
						model->version, model->name, parent->n_members, run->shards)));
	unlearn_load_shard_map(model, model->version, run->shards, in->manifest, in->n_manifest, &run->shard_map);
	if (by_partition != (run->shard_map.ids != NULL))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("the manifest of version %d of model \"%s\" %s the shard of each row",
						model->version, model->name, by_partition ? "lacks" : "records")));
	retrain = palloc(sizeof(bool) * run->shards);
	unlearn_shards_holding(forget->ids, (int) forget->n, &run->shard_map, retrain);
	run->parent_net = parent;
	run->retrain_shard = retrain;
	return unlearn_ids_in_shards(keep, n_keep, &run->shard_map, retrain, n_read);
}

/*
 * The rows of an exact retrain: read by id; or, when they would hold more
 * than unlearn.max_training_memory (one network of an array model), a
 * stream of them (stream.c) that run->stream trains on, data getting their
 * ids.  Rows whose label is no class are left out either way.
 */
static void
read_exact_rows(const UnlearnModel *model, const int64 *read, int64 n_read, UnlearnTrainRun *run,
				UnlearnData *data)
{
	int64		bound = unlearn_training_memory_bytes();
	UnlearnDataSpec spec;

	if (bound == 0 || run->shards != 1 || model->encoder != NULL ||
		n_read * UNLEARN_ROW_BYTES(model->n_features) <= bound)
	{
		unlearn_read_rows_by_id(model, read, n_read, data);
		return;
	}
	unlearn_model_data_spec(model, &spec);
	run->stream = palloc(sizeof(UnlearnStream));
	unlearn_stream_open_ids(run->stream, &spec, model->n_features, read, n_read);
	memset(data, 0, sizeof(*data));
	data->n = run->stream->n;
	data->n_features = model->n_features;
	data->ids = run->stream->ids;
}

/*
 * Step 4, exact: the rows are retrained away (method "exact", or the guard
 * refused the run): a new version trained from scratch, with the model's
 * shape and recorded training options (unlearn_retrain's helper), on the
 * rows of the current manifest without them; on a sharded model, only the
 * shards that held them are, on their rows, the others are the parent's.
 * Its manifest lacks the rows and the ledger records them with it.  With
 * relabel (method "exact" only), the rows stay, read with the labels the
 * table has now, and nothing enters the ledger.
 */
static void
store_exact(const UnlearnModel *model, const UnlearnData *forget, bool relabel, const RunInputs *in,
			const char *reason, UnlearnOutcome *out)
{
	int			k = (int) forget->n;
	int64		n_keep;
	int64	   *keep = manifest_without(in->manifest, in->n_manifest, forget->ids, relabel ? 0 : k, &n_keep);
	UnlearnData none = {0};		/* what a relabelling forgets: no row of its own */
	int64		n_read;
	const int64 *read;
	int		   *hidden;
	int			n_hidden;
	Jsonb	   *stored;
	nn_train_options topts;
	UnlearnData data;
	UnlearnData gone;
	int64	   *all;
	int			n_all;
	UnlearnTrainRun run;
	instr_time	t_start;

	INSTR_TIME_SET_CURRENT(t_start);
	memset(&run, 0, sizeof(run));
	unlearn_read_model_training(model->name, &hidden, &n_hidden, &stored);
	unlearn_parse_retrain_options(stored, NULL, &topts);
	run.shards = unlearn_shards_option(stored);
	read = exact_rows_to_read(model, forget, in, unlearn_shard_by_partition(stored), keep, n_keep, &run, &n_read);
	read_exact_rows(model, read, n_read, &run, &data);
	if (data.n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("no rows of model \"%s\" are left to retrain it on", model->name)));
	for (int64 i = 1; i < data.n; i++)
		if (data.ids[i] == data.ids[i - 1])
			ereport(ERROR,
					(errcode(ERRCODE_UNIQUE_VIOLATION),
					 errmsg("id column \"%s\" must be unique", model->id_column)));
	gone_rows(model, relabel ? &none : forget, read, n_read, &data, &gone, &all, &n_all);
	if (run.shards > 1)			/* the version's manifest: every shard's rows, not only those read */
		run.manifest = manifest_without(keep, n_keep, all, n_all, &run.n_manifest);

	run.model = model->name;
	run.retrain = true;
	run.parent = model->version;
	run.reason = psprintf("exact-%s", reason);
	run.hidden = hidden;
	run.n_hidden = n_hidden;
	run.n_classes = model->n_classes;
	run.topts = &topts;
	run.data = &data;
	run.forgotten = all;
	run.n_forgotten = n_all;
	run.load_seconds = unlearn_seconds_since(&t_start);
	unlearn_train_and_store(&run);
	unlearn_set_current_version(model->name, run.version);
	if (!relabel)
		unlearn_record_forgotten(model, forget, run.version);
	if (gone.n > 0)
		unlearn_record_forgotten(model, &gone, run.version);

	out->version = run.version;
	out->forgotten = k;			/* by construction: it never saw them (relabel: their old labels) */
	out->prior_kept = (int) in->prior.n;
	out->steps = 0;
	out->seconds += unlearn_seconds_since(&t_start);
	out->method = "retrain";
}

/* The table's step: delete (or relabel) the rows when asked to, and count them in the outcome. */
static void
change_table_rows(const UnlearnModel *model, const UnlearnData *forget, const int *new_labels,
				  bool change_table, const RunInputs *in, UnlearnOutcome *out)
{
	if (change_table && new_labels == NULL)
		delete_rows(model, forget);
	else if (change_table)
		relabel_rows(model, forget, new_labels);
	unlearn_phase_end(in->phases, "change_table");
	out->rows = (int) forget->n;
	out->prior = (int) in->prior.n;
}

/* An exact run's inputs: the current manifest and the prior rows. */
static void
read_exact_inputs(const UnlearnModel *model, UnlearnOutcome *out, RunInputs *in)
{
	memset(in, 0, sizeof(*in));
	in->phases = &out->phases;
	in->manifest = unlearn_load_manifest(model, model->version, &in->n_manifest);
	unlearn_phase_end(in->phases, "read_manifest");
	unlearn_read_prior_rows(model, &in->prior);
	unlearn_phase_end(in->phases, "read_prior");
}

/* An exact run from its inputs: the table changed, then the exact version (store_exact). */
static void
finish_exact(UnlearnModel *model, UnlearnData *forget, const int *new_labels, const char *reason,
			 bool change_table, RunInputs *in, UnlearnOutcome *out)
{
	change_table_rows(model, forget, new_labels, change_table, in, out);
	out->seconds = 0;
	store_exact(model, forget, new_labels != NULL, in, reason, out);
	unlearn_phase_end(in->phases, "exact_retrain");
	out->method = "exact";
}

/*
 * Method "exact": the manifest and the prior rows, the table changed, then
 * the exact version (store_exact): no approximate run, no guard.
 */
static void
run_exact(UnlearnModel *model, UnlearnData *forget, const int *new_labels, const char *reason,
		  bool change_table, UnlearnOutcome *out)
{
	RunInputs	in;

	read_exact_inputs(model, out, &in);
	finish_exact(model, forget, new_labels, reason, change_table, &in, out);
}

/* One shard's part of a sharded run: its forget and prior rows, its replay sample. */
typedef struct ShardPart
{
	UnlearnData forget;
	UnlearnData prior;
	UnlearnData replay;
} ShardPart;

/* Appends the features and labels of src to dst (ids are not kept). */
static void
append_rows(UnlearnData *dst, const UnlearnData *src)
{
	int			F = src->n_features;
	Size		x = sizeof(float) * (dst->n + src->n) * F;
	Size		y = sizeof(int) * (dst->n + src->n);

	if (src->n == 0)
		return;
	Assert(dst->n == 0 || dst->n_features == F);
	dst->n_features = F;
	dst->X = dst->X ? repalloc_huge(dst->X, x) : MemoryContextAllocHuge(CurrentMemoryContext, x);
	dst->y = dst->y ? repalloc_huge(dst->y, y) : MemoryContextAllocHuge(CurrentMemoryContext, y);
	memcpy(dst->X + dst->n * F, src->X, sizeof(float) * src->n * F);
	memcpy(dst->y + dst->n, src->y, sizeof(int) * src->n);
	dst->n += src->n;
}

/*
 * Shard s's part of a sharded run: its forget and prior rows, and samples
 * of its remaining rows (sized as a run on one network of that many rows):
 * the replay sample its own, the held-out rows added to the run's.
 */
static void
read_shard_part(const UnlearnModel *model, const UnlearnData *forget, RunInputs *in,
				const UnlearnRunOptions *opts, int s, ShardPart *part)
{
	bool		only[NN_MAX_SHARDS] = {0};
	int64		n_rows;
	int64	   *rows;
	int			want;
	int			want_replay;
	UnlearnData held_out;

	only[s] = true;
	rows = unlearn_ids_in_shards(in->manifest, in->n_manifest, in->shard_map, only, &n_rows);
	unlearn_rows_in_shard(forget, s, in->shard_map, true, &part->forget);
	unlearn_rows_in_shard(&in->prior, s, in->shard_map, true, &part->prior);
	sample_sizes(model, n_rows - part->forget.n, opts, &want, &want_replay);
	unlearn_read_run_samples(model, rows, n_rows, &part->forget, want, want_replay,
							 opts->ul.seed ^ (uint64) s, in->phases, &held_out, &part->replay);
	append_rows(&in->held_out, &held_out);
	in->replay.n += part->replay.n; /* counted for the metrics; each shard holds its own */
	pfree(rows);
}

/* The method on one shard's network with its part; steps and prior rows add up into total. */
static void
run_shard_member(const UnlearnModel *model, nn_model *member, const ShardPart *part,
				 const UnlearnRunOptions *opts, RunInputs *in, ul_result *total)
{
	ul_request	req;
	ul_result	res;

	memset(&req, 0, sizeof(req));
	req.forget = core_rows(&part->forget);
	req.prior = core_rows(&part->prior);
	req.replay = core_rows(&part->replay);
	req.prior_target = part->prior.n ? part->prior.target_loss : NULL;
	core_checked(member, &req, opts, model->name, false, false, req.prior_target != NULL, &res);
	core_phases(in->phases, &res);
	total->steps += res.steps;
	total->prior_kept += res.prior_kept;
	total->forget_steps = Max(total->forget_steps, res.forget_steps);
	total->success = total->success && res.success;
}

/*
 * The forget rows the ensemble misclassifies (its prediction is what users
 * see), and their mean cross-entropy under it.
 */
static int
ensemble_forgotten(const nn_model *ens, const UnlearnData *forget, double *loss)
{
	int			C = NN_CLASSES(ens);
	int			k = (int) forget->n;
	float	   *p = palloc(sizeof(float) * k * C);
	int		   *pred = palloc(sizeof(int) * k);
	nn_workspace *ws = nn_workspace_create(ens, Min(k, 1024));
	int			wrong = 0;

	nn_predict_proba(ens, ws, forget->X, k, p);
	nn_workspace_free(ws);
	nn_logits_classes(p, k, C, pred);	/* the argmax of each row, probabilities as well as logits */
	*loss = 0;
	for (int i = 0; i < k; i++)
	{
		wrong += pred[i] != forget->y[i];
		*loss -= log(Max((double) p[(int64) i * C + forget->y[i]], 1e-30)) / k;
	}
	pfree(pred);
	pfree(p);
	return wrong;
}

/*
 * Step 2, sharded model: the approximate method on each shard that holds a
 * forgotten row, on that shard's network alone, with its rows (its forget
 * and prior rows, samples of its remaining rows); the other members stay as
 * they are, byte for byte.  The guard's held-out rows are the shards'
 * samples together, measured on the ensemble, and res->forgotten counts the
 * rows the ensemble misclassifies.  Returns the new ensemble; changed[]
 * marks the shards it changed.
 */
static nn_model *
run_sharded(const UnlearnModel *model, const UnlearnData *forget, RunInputs *in,
			const UnlearnRunOptions *opts, bool *changed, ul_result *res)
{
	nn_model   *ens = unlearn_load_weights(model, model->version);
	UnlearnShardMap *map = palloc0(sizeof(UnlearnShardMap));
	ShardPart  *part;

	/* step 1: the parent's shard map, the shards holding the rows */
	if (ens->n_members < 2)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("version %d of model \"%s\" is not an ensemble of shards", model->version, model->name)));
	unlearn_load_shard_map(model, model->version, ens->n_members, in->manifest, in->n_manifest, map);
	in->shard_map = map;
	unlearn_shards_holding(forget->ids, (int) forget->n, map, changed);
	unlearn_phase_end(in->phases, "read_model");
	/* step 2: their rows and samples; the ensemble on the held-out rows before */
	part = palloc0(sizeof(ShardPart) * map->shards);
	for (int s = 0; s < map->shards; s++)
		if (changed[s])
			read_shard_part(model, forget, in, opts, s, &part[s]);
	measure_before(ens, in, NULL);
	unlearn_phase_end(in->phases, "held_out_before");
	/* step 3: the method on their networks; the ensemble after */
	memset(res, 0, sizeof(*res));
	res->success = 1;
	for (int s = 0; s < map->shards; s++)
		if (changed[s])
			run_shard_member(model, ens->members[s], &part[s], opts, in, res);
	measure_after(ens, in);
	res->forgotten = ensemble_forgotten(ens, forget, &res->final_forget_loss);
	unlearn_phase_end(in->phases, "held_out_after");
	return ens;
}

/*
 * Step 3 (sharded, the criterion on the ensemble): each changed network
 * misclassifies its forget rows, but the ensemble averages it with members
 * that never saw them and may still predict them right.  Then the run is
 * not kept: true (retrain the shards that held the rows exactly, store_exact)
 * when that fits unlearn.retrain_budget, else an error (54000).
 */
static bool
ensemble_keeps_rows(const UnlearnModel *model, const UnlearnData *forget, const RunInputs *in,
					const UnlearnRunOptions *opts, const ul_result *res)
{
	int			k = (int) forget->n;
	double		estimate = -1;

	if (res->forgotten == k)
		return false;
	if (unlearn_retrain_budget > 0)
		estimate = estimated_retrain_seconds(model, in->n_manifest - k);
	if (estimate < 0 || estimate > unlearn_retrain_budget)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("method %s could not forget every row on the ensemble of sharded model \"%s\"",
						unlearn_method_name(opts), model->name),
				 errdetail("Each changed shard misclassifies its rows, but the ensemble misclassifies %d of %d"
						   " and no exact retrain within unlearn.retrain_budget replaces the run; nothing was changed.",
						   res->forgotten, k),
				 errhint("Use method \"exact\", or raise unlearn.retrain_budget.")));
	ereport(NOTICE,
			(errmsg("the ensemble of model \"%s\" still predicts %d of %d rows right: retraining their shards without the rows instead",
					model->name, k - res->forgotten, k),
			 errdetail("An exact retrain is estimated at %.1f s, within unlearn.retrain_budget (%d s).",
					   estimate, unlearn_retrain_budget)));
	return true;
}

/* The metrics' ", \"shards_changed\": [...]" of the marked shards. */
static char *
shards_changed_json(const bool *changed, int shards)
{
	StringInfoData s;
	bool		first = true;

	initStringInfo(&s);
	appendStringInfoString(&s, ", \"shards_changed\": [");
	for (int i = 0; i < shards; i++)
		if (changed[i])
		{
			appendStringInfo(&s, "%s%d", first ? "" : ", ", i);
			first = false;
		}
	appendStringInfoChar(&s, ']');
	return s.data;
}

/*
 * Errors (0A000) for what a sharded model cannot do: relabelling
 * approximately (its shards are retrained exactly instead).
 */
static void
check_exact_fits(const UnlearnModel *model, bool relabel, const UnlearnRunOptions *opts)
{
	bool		sharded = unlearn_shards_option(model->options) > 1;

	if (sharded && !opts->exact && relabel)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("sharded model \"%s\" relabels exactly only", model->name),
				 errdetail("Method \"%s\" is approximate; a sharded model retrains the shards that held the rows.",
						   unlearn_method_name(opts)),
				 errhint("Pass options => '{\"method\": \"exact\"}'.")));
}

/*
 * Step 3 (guard): true when the run lowered held-out accuracy by more than
 * unlearn.max_accuracy_drop and an exact retrain within
 * unlearn.retrain_budget replaces it; errors when none can.
 */
static bool
guard_wants_exact(const UnlearnModel *model, const UnlearnData *forget, bool relabel, const RunInputs *in)
{
	double		estimate = -1;

	elog(DEBUG1, "unlearning model \"%s\": %d held-out rows, accuracy %.4f before, %.4f after, drop %.2f points,"
		 " %d rows lost, %d gained", model->name, (int) in->held_out.n, in->held_out_before, in->held_out_after,
		 held_out_drop(in), in->lost, in->gained);
	if (!guard_trips(in))
		return false;
	if (!relabel && unlearn_retrain_budget > 0)
		estimate = estimated_retrain_seconds(model, in->n_manifest - forget->n);
	if (relabel || estimate < 0 || estimate > unlearn_retrain_budget)
		refuse_run(model, in, relabel, estimate);
	ereport(NOTICE,
			(errmsg("unlearning would lower the accuracy of model \"%s\" on held-out rows by %.2f points: retraining without the rows instead",
					model->name, held_out_drop(in)),
			 errdetail("An exact retrain is estimated at %.1f s, within unlearn.retrain_budget (%d s).",
					   estimate, unlearn_retrain_budget)));
	return true;
}

/*
 * Step 1b (exact directly): with the default method, when retraining the
 * rows that remain passes no more rows forward and back than the approximate
 * run is expected to, the exact version is both cheaper and better: no
 * approximate run is made.  The approximate run is expected to take twice
 * its repair phase (the default method's runs on the benchmark suite took
 * 330 to 1 315 steps for 300 repair steps, docs/benchmarks.md), each step a
 * replay batch and the rows to forget; the retrain, the recorded epochs over
 * the remaining rows (and a weight decay chosen again).  Rows, not steps: a
 * training step of a small batch costs a fraction of an unlearning step.
 * Exact too when the accuracy guard could not see the drop it must refuse
 * (guard_resolves): an approximate run it cannot verify is not made.
 * Within unlearn.retrain_budget, with unlearn.exact_when_cheaper.
 */
static bool
exact_directly(const UnlearnModel *model, const UnlearnData *forget, bool relabel,
				 const UnlearnRunOptions *opts, const RunInputs *in)
{
	Jsonb	   *stored = model->options;	/* the recorded training options, as retrains read them */
	nn_train_options t;
	int64		n = in->n_manifest - forget->n;
	double		retrain_rows;
	double		approx_rows;
	double		estimate;
	bool		unverifiable = !guard_resolves(in);

	if (!unlearn_exact_when_cheaper || relabel || opts->ul.method != UL_METHOD_DEFAULT ||
		unlearn_retrain_budget == 0 || n <= 0)
		return false;
	(void) unlearn_jsonb_take(&stored, "hidden");
	unlearn_parse_retrain_options(stored, NULL, &t);
	/* step 1: the rows each would pass */
	retrain_rows = (double) t.epochs * (double) n;
	/* a retrain of weight decay "auto" chooses it again on its rows (trainer.c) */
	if (unlearn_selects_weight_decay(&t, unlearn_shards_option(stored), n, model->n_classes))
		retrain_rows += (double) Max(nn_select_steps((int) n, model->n_classes, &t), 0) * (double) Max(t.batch_size, 1);
	approx_rows = 2.0 * opts->ul.repair_steps * (double) (opts->ul.replay_batch + forget->n);
	if (retrain_rows > approx_rows && !unverifiable)
		return false;
	/* step 2: only within the retrain budget */
	estimate = estimated_retrain_seconds(model, n);
	if (estimate < 0 || estimate > unlearn_retrain_budget)
		return false;
	if (retrain_rows > approx_rows)
		ereport(NOTICE,
				(errmsg("retraining model \"%s\" without the rows: its accuracy guard cannot verify an approximate run",
						model->name),
				 errdetail("The guard sees a drop only once %d of its %d held-out rows are lost, %.1f points,"
						   " more than unlearn.max_accuracy_drop (%g).",
						   GUARD_MIN_NET_LOSS, (int) in->held_out.n, 100.0 * GUARD_MIN_NET_LOSS / (double) in->held_out.n,
						   unlearn_max_accuracy_drop)));
	else
		elog(DEBUG1, "unlearning model \"%s\": a retrain passing %.0f rows is cheaper than the approximate run (%.0f)",
			 model->name, retrain_rows, approx_rows);
	return true;
}

/*
 * Step 1c (consolidation): approximate runs add up; the model is retrained
 * without the rows instead (within unlearn.retrain_budget), so the drift
 * from the chain's newest exact version stays bounded, when since that
 * version either the rows forgotten approximately, this run's included,
 * reach unlearn.consolidate_after of its rows, or the held-out accuracy the
 * runs lost in all reaches unlearn.consolidate_drop points.
 */
static bool
consolidation_due(const UnlearnModel *model, const UnlearnData *forget, bool relabel, const RunInputs *in)
{
	int64		exact_rows;
	int64		since;
	double		drift;
	double		estimate;
	bool		by_rows;
	bool		by_drift;

	if (relabel || unlearn_retrain_budget == 0 ||
		(unlearn_consolidate_after <= 0 && unlearn_consolidate_drop <= 0))
		return false;
	/* step 1: what the runs since the newest exact version forgot and lost */
	drift = 0;
	since = unlearn_forgotten_since_exact(model, &exact_rows,
										  unlearn_consolidate_drop > 0 ? &drift : NULL) + forget->n;
	if (exact_rows <= 0)
		return false;
	by_rows = unlearn_consolidate_after > 0 && (double) since >= unlearn_consolidate_after * (double) exact_rows;
	by_drift = unlearn_consolidate_drop > 0 && drift >= unlearn_consolidate_drop;
	if (!by_rows && !by_drift)
		return false;
	/* step 2: only within the retrain budget */
	estimate = estimated_retrain_seconds(model, in->n_manifest - forget->n);
	if (estimate < 0 || estimate > unlearn_retrain_budget)
		return false;
	ereport(NOTICE,
			(errmsg("consolidating model \"%s\": retraining without the rows", model->name),
			 by_rows ?
			 errdetail("%lld rows are forgotten approximately since its last exact version of %lld rows"
					   " (unlearn.consolidate_after = %g).",
					   (long long) since, (long long) exact_rows, unlearn_consolidate_after) :
			 errdetail("The runs since its last exact version lowered held-out accuracy by %.2f points in all"
					   " (unlearn.consolidate_drop = %g).", drift, unlearn_consolidate_drop)));
	return true;
}

/*
 * Unlearns (or relabels) the rows in `forget` from the model's current
 * version and stores the new version, its manifest and ledger rows.  When
 * change_table is set the rows are also deleted from (relabelled in) the
 * training table; the background worker passes false: the user's DELETE or
 * UPDATE already did it.  Caller: connected to SPI, model locked, rows
 * sorted by id, distinct, and checked against the manifest; out->phases
 * started (unlearn_phases_start), with the caller's own steps timed.
 * warm: the background worker's cached samples of the model (warm.c), or
 * NULL: read them from the table (always for a sharded model, whose
 * approximate runs work per shard: run_sharded).
 */
void
unlearn_execute(UnlearnModel *model, UnlearnData *forget, const int *new_labels,
				const UnlearnRunOptions *opts, const char *reason, bool change_table,
				UnlearnWarm *warm, UnlearnOutcome *out)
{
	RunInputs	in;
	nn_model   *net;
	ul_result	res;
	instr_time	t_start;
	bool		relabel = new_labels != NULL;
	bool		sharded = unlearn_shards_option(model->options) > 1;
	bool		changed[NN_MAX_SHARDS];
	bool		exact;

	Assert(forget->n > 0 && forget->n <= INT_MAX);
	Assert(forget->n_features == model->n_features);
	for (int64 i = 1; i < forget->n; i++)
		Assert(forget->ids[i - 1] < forget->ids[i]);

	check_exact_fits(model, relabel, opts);
	if (opts->exact)
	{
		run_exact(model, forget, new_labels, reason, change_table, out);
		return;
	}
	INSTR_TIME_SET_CURRENT(t_start);
	memset(&in, 0, sizeof(in));
	in.phases = &out->phases;
	if (sharded)
		warm = NULL;			/* the worker's warm samples are of the whole model: drawn per shard instead */
	in.warm_entry = warm;
	read_inputs(model, forget, opts, warm, &in);
	choose_target(model, relabel, opts, &in);
	exact = exact_directly(model, forget, relabel, opts, &in) ||
		consolidation_due(model, forget, relabel, &in);
	if (!exact && sharded)
	{
		net = run_sharded(model, forget, &in, opts, changed, &res);
		in.shards_json = shards_changed_json(changed, net->n_members);
	}
	else
		net = exact ? NULL : run_core(model, forget, new_labels, &in, opts, &res);
	out->seconds = unlearn_seconds_since(&t_start);
	exact = exact || (sharded && ensemble_keeps_rows(model, forget, &in, opts, &res)) ||
		guard_wants_exact(model, forget, relabel, &in);
	unlearn_phase_end(in.phases, "guard");

	change_table_rows(model, forget, new_labels, change_table, &in, out);
	if (exact)
	{
		if (net)
			nn_free(net);
		store_exact(model, forget, false, &in, reason, out);
		unlearn_phase_end(in.phases, "exact_retrain");
		return;
	}
	store_run(model, forget, relabel, &in, net, &res, opts, reason, out);
	unlearn_warm_keep_net(warm, net);

	out->forgotten = res.forgotten;
	out->prior_kept = res.prior_kept;
	out->steps = res.steps;
	out->method = unlearn_method_name(opts);
}

/*
 * The worker's consolidation once a model's deletes pause (consolidate.c):
 * the current version retrained from scratch on the rows of its manifest
 * that the table still has, so the rows its approximate runs forgot are
 * forgotten by construction.  Stores nothing and returns false when the
 * estimated retrain does not fit unlearn.retrain_budget.  Caller: connected
 * to SPI, model locked, as the model's owner; out->phases started.
 */
bool
unlearn_consolidate(UnlearnModel *model, UnlearnOutcome *out)
{
	RunInputs	in;
	UnlearnData none;
	double		estimate;

	/* step 1: the run's inputs, and only within the retrain budget */
	read_exact_inputs(model, out, &in);
	estimate = unlearn_retrain_budget > 0 ? estimated_retrain_seconds(model, in.n_manifest) : -1;
	if (estimate < 0 || estimate > unlearn_retrain_budget)
		return false;
	/* step 2: an exact run that forgets no row of its own */
	memset(&none, 0, sizeof(none));
	none.n_features = model->n_features;
	none.ids = palloc(sizeof(int64));	/* searched with a count of 0 */
	finish_exact(model, &none, NULL, "consolidate", false, &in, out);
	return true;
}
