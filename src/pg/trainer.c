/*
 * trainer.c: what unlearn_train and unlearn_retrain share: training a new
 * network on the rows read, checking it, and storing it as a version with
 * the manifest of those rows; and their result row.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "portability/instr_time.h"
#include "utils/builtins.h"

#include "unlearn_pg.h"

/* Per-epoch hook: lets a cancel through and reports progress. */
static int
train_epoch_callback(void *arg, int epoch, int epochs, double mean_loss)
{
	const UnlearnTrainRun *run = arg;

	CHECK_FOR_INTERRUPTS();
	if (unlearn_progress)
		ereport(NOTICE,
				(errmsg("%s \"%s\": epoch %d/%d, mean loss %.4f",
						run->retrain ? "unlearn_retrain" : "unlearn_train", run->model,
						epoch, epochs, mean_loss)));
	return 0;
}

/*
 * A new network of the run's shape: the layer list (convolutional) when it
 * has conv or maxpool layers, else the MLP of run->hidden; after the checks
 * of the feature count and unlearn.max_model_size.  NULL + err if the core
 * refuses the shape.
 */
static nn_model *
create(UnlearnTrainRun *run, const UnlearnArch *arch, char *err, size_t errlen)
{
	const UnlearnData *data = run->data;

	if (arch != NULL)
		unlearn_check_arch_features(arch, data->n_features);
	if (arch != NULL && arch->n_stages > 0)
	{
		unlearn_check_layers_size(run->model, arch, run->n_classes, run->topts, data->n);
		return nn_create_layers(arch->in_shape, arch->n_specs, arch->specs, run->n_classes,
								run->topts->seed, err, errlen);
	}
	unlearn_check_model_size(run->model, data->n_features, run->n_hidden, run->hidden,
							 run->n_classes, run->topts, data->n);
	return nn_create(data->n_features, run->n_hidden, run->hidden, run->n_classes, run->topts->seed,
					 err, errlen);
}

/*
 * True when a training with these options chooses its weight decay on
 * held-out rows: "auto", one network, no early stopping, and the selection
 * within UNLEARN_STEP_BUDGET optimiser steps for n rows.
 */
bool
unlearn_selects_weight_decay(const nn_train_options *topts, int shards, int64 n, int n_classes)
{
	return topts->weight_decay < 0 && shards <= 1 && topts->validation <= 0 && n <= INT_MAX &&
		nn_select_affordable((int) n, n_classes, topts, UNLEARN_STEP_BUDGET);
}

/*
 * The weight decay "auto" (options.c: -1) made a number for this run: chosen
 * on held-out rows of its data (select.c) when it trains one network without
 * early stopping and the selection fits in UNLEARN_STEP_BUDGET steps, else 0.
 * Sets run->weight_decay, selected, select_correct and select_seconds.
 */
static void
resolve_weight_decay(UnlearnTrainRun *run, const UnlearnArch *arch, nn_train_options *topts)
{
	const UnlearnData *data = run->data;
	nn_model   *init;
	char		err[256];
	instr_time	t_select;
	float		wd;

	run->selected = false;
	run->select_seconds = 0;
	if (topts->weight_decay >= 0)
	{
		run->weight_decay = topts->weight_decay;
		return;
	}
	/* step 1: no selection for shards, early stopping, beyond the budget, or in chunks (no rows in memory) */
	if (run->stream || !unlearn_selects_weight_decay(topts, run->shards, data->n, run->n_classes))
	{
		topts->weight_decay = 0;
		run->weight_decay = 0;
		return;
	}
	/* step 2: every candidate on every fold, from the run's initial weights */
	topts->weight_decay = 0;		/* the folds' copies set their own */
	INSTR_TIME_SET_CURRENT(t_select);
	init = create(run, arch, err, sizeof(err));
	if (init == NULL)
		return;					/* fit() reports the shape */
	wd = nn_select_weight_decay(init, data->X, data->y, (int) data->n, topts, run->select_loss,
								run->select_correct, train_epoch_callback, run);
	nn_free(init);
	if (wd < 0)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not choose the weight decay of model \"%s\"", run->model),
				 errhint("Give a weight_decay in the training options.")));
	topts->weight_decay = wd;
	run->weight_decay = wd;
	run->selected = true;
	run->select_seconds = unlearn_seconds_since(&t_select);
}

/* A new network of the run's shape, trained on its rows; errors if it diverges. */
static nn_model *
fit(UnlearnTrainRun *run, const UnlearnArch *arch)
{
	const UnlearnData *data = run->data;
	nn_model   *net;
	char		err[256];
	instr_time	t_train;

	net = create(run, arch, err, sizeof(err));
	if (net == NULL && run->retrain)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("could not rebuild the network of model \"%s\": %s", run->model, err)));
	if (net == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid network shape: %s", err)));
	INSTR_TIME_SET_CURRENT(t_train);
	if (run->stream)
		unlearn_stream_fit(run->stream, net, run->topts, train_epoch_callback, run);
	else
		nn_train(net, data->X, data->y, (int) data->n, run->topts, train_epoch_callback, run);
	run->train_seconds = unlearn_seconds_since(&t_train);
	if (!nn_params_finite(net))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("%s diverged: the weights are no longer finite",
						run->retrain ? "retraining" : "training"),
				 errhint("%s", run->retrain ? "Lower lr." : "Lower lr, or scale the features.")));
	run->accuracy = run->stream ? unlearn_stream_accuracy(run->stream, net)
		: nn_accuracy(net, data->X, data->y, (int) data->n);
	return net;
}

/*
 * Shard `shard`'s network: a fresh one of the run's shape trained on part
 * (the shard's rows) with the run's options and the seed + shard number;
 * *seconds gets its training time.  The same in this backend and in a
 * parallel worker (shard_parallel.c).
 */
nn_model *
unlearn_fit_shard(const UnlearnTrainRun *run, const UnlearnArch *arch, int shard, const UnlearnData *part,
				  double *seconds)
{
	UnlearnTrainRun sub = *run;
	nn_train_options topts = *run->topts;
	nn_model   *net;

	topts.seed = run->topts->seed + (uint64) shard;
	sub.data = part;
	sub.topts = &topts;
	net = fit(&sub, arch);
	*seconds = sub.train_seconds;
	return net;
}

/* Bytes of one serialised network of the run's shape (every shard has it). */
static Size
shard_net_size(UnlearnTrainRun *run, const UnlearnArch *arch)
{
	char		err[256];
	nn_model   *net = create(run, arch, err, sizeof(err));
	Size		size;

	if (net == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid network shape: %s", err)));
	size = nn_serialized_size(net);
	nn_free(net);
	return size;
}

/*
 * The shards of a sharded model: each retrained one a fresh network trained
 * on its rows of the run's data (unlearn_fit_shard), in parallel workers
 * with unlearn.shard_workers, else one after the other; the others the
 * parent's copied; then the ensemble, and its accuracy on the rows read.
 * run->train_seconds sums the shards' training.
 */
static nn_model *
fit_shards(UnlearnTrainRun *run, const UnlearnArch *arch)
{
	nn_model   *members[NN_MAX_SHARDS];
	nn_model   *ensemble;
	char		err[256];
	double		seconds = 0;
	int			todo[NN_MAX_SHARDS];
	int			n_todo = 0;

	Assert(run->shards >= 2 && run->shards <= NN_MAX_SHARDS);
	Assert(run->parent_net == NULL || run->parent_net->n_members == run->shards);
	/* step 1: the shards kept from the parent, and those to train */
	for (int s = 0; s < run->shards; s++)
		if (run->parent_net && !run->retrain_shard[s])
			members[s] = nn_clone(run->parent_net->members[s]);
		else
			todo[n_todo++] = s;
	/* step 2: train them, in parallel workers when asked to */
	if (unlearn_shard_workers > 0 && n_todo > 1)
		seconds = unlearn_fit_shards_parallel(run, arch, todo, n_todo, shard_net_size(run, arch), members);
	else
		for (int j = 0; j < n_todo; j++)
		{
			UnlearnData part;
			double		shard_seconds;

			unlearn_shard_rows(run->model, run->data, todo[j], &run->shard_map, !run->retrain, &part);
			members[todo[j]] = unlearn_fit_shard(run, arch, todo[j], &part, &shard_seconds);
			seconds += shard_seconds;
			unlearn_free_shard_rows(&part);
		}
	ensemble = nn_ensemble_create(members, run->shards, err, sizeof(err));
	if (ensemble == NULL)
		elog(ERROR, "could not assemble the shards of model \"%s\": %s", run->model, err);
	run->train_seconds = seconds;
	run->accuracy = nn_accuracy(ensemble, run->data->X, run->data->y, (int) run->data->n);
	return ensemble;
}

/* The metrics' "shards" and "retrained_shards" entries of a sharded run ("" for one network). */
static char *
shard_metrics(const UnlearnTrainRun *run)
{
	StringInfoData s;

	if (run->shards <= 1)
		return "";
	initStringInfo(&s);
	appendStringInfo(&s, ", \"shards\": %d, \"retrained_shards\": [", run->shards);
	for (int k = 0, n = 0; k < run->shards; k++)
		if (run->parent_net == NULL || run->retrain_shard[k])
			appendStringInfo(&s, "%s%d", n++ ? ", " : "", k);
	appendStringInfoChar(&s, ']');
	if (run->shard_workers > 0)
		appendStringInfo(&s, ", \"shard_workers\": %d", run->shard_workers);
	if (run->shard_map.ids != NULL)
		appendStringInfoString(&s, ", \"shard_by\": \"partition\"");
	if (run->partitions_json != NULL)
		appendStringInfo(&s, ", \"shard_partitions\": %s", run->partitions_json);
	return s.data;
}

/* The metrics' "weight_decay" entry of a run whose options said "auto" ("" otherwise). */
static char *
selection_metrics(const UnlearnTrainRun *run, const nn_train_options *asked)
{
	StringInfoData s;

	if (asked->weight_decay >= 0)
		return "";
	initStringInfo(&s);
	appendStringInfo(&s, ", \"weight_decay\": {\"chosen\": %.7g, \"selected\": %s",
					 run->weight_decay, run->selected ? "true" : "false");
	if (run->selected)
	{
		appendStringInfoString(&s, ", \"candidates\": [");
		for (int c = 0; c < NN_SELECT_CANDIDATES; c++)
			appendStringInfo(&s, "%s%.7g", c ? ", " : "", nn_select_candidates[c]);
		appendStringInfo(&s, "], \"folds\": %d, \"held_out_loss\": [", NN_SELECT_FOLDS);
		for (int c = 0; c < NN_SELECT_CANDIDATES; c++)
			appendStringInfo(&s, "%s%.6f", c ? ", " : "", run->select_loss[c] / (double) run->data->n);
		appendStringInfoString(&s, "], \"held_out_right\": [");
		for (int c = 0; c < NN_SELECT_CANDIDATES; c++)
			appendStringInfo(&s, "%s%ld", c ? ", " : "", run->select_correct[c]);
		appendStringInfo(&s, "], \"seconds\": %.3f", run->select_seconds);
	}
	appendStringInfoChar(&s, '}');
	return s.data;
}

/* The run's layer list: the caller's, or for a retrain the one the model recorded (NULL: none). */
static const UnlearnArch *
run_arch(const UnlearnTrainRun *run)
{
	UnlearnArch *arch = palloc(sizeof(UnlearnArch));
	int		   *hidden;
	int			n_hidden;
	Jsonb	   *stored;

	if (run->arch != NULL || !run->retrain)
		return run->arch;
	unlearn_read_model_training(run->model, &hidden, &n_hidden, &stored);
	return unlearn_parse_arch(stored, arch) ? arch : NULL;
}

/*
 * Trains the run's network and stores it: version 1 of a new model, or
 * (retrain) the next version, child of run->parent.  run->before_store, if
 * set, runs between the two with the options to be recorded.  Sets
 * run->version, accuracy and train_seconds.  Caller: connected to SPI.
 */
void
unlearn_train_and_store(UnlearnTrainRun *run)
{
	const UnlearnData *data = run->data;
	nn_model   *net;
	Jsonb	   *options;
	Jsonb	   *metrics;
	const UnlearnArch *arch = run_arch(run);
	float		ref[UL_UNSEEN_QUANTILES];
	bool		has_ref;
	const int64 *manifest = run->manifest ? run->manifest : data->ids;
	int64		n_manifest = run->manifest ? run->n_manifest : data->n;
	const int16 *manifest_shards = NULL;
	const nn_train_options *asked = run->topts;
	nn_train_options topts = *run->topts;

	Assert(data->n > 0 && data->n <= INT_MAX);
	Assert(run->n_classes >= 2 || run->retrain);
	if (run->stream)
		unlearn_stream_check_options(run->stream, run->model, run->shards, run->topts);
	for (int64 i = 1; i < n_manifest; i++)
		Assert(manifest[i - 1] < manifest[i]);	/* the manifest: sorted, unique */

	/* a sharded model without a map of its own is sharded by the hash of the id */
	if (run->shards > 1 && run->shard_map.shards == 0)
		run->shard_map.shards = run->shards;
	Assert(run->shards <= 1 || run->shard_map.shards == run->shards);
	/* step 1: the weight decay ("auto": chosen on held-out rows), then the network */
	resolve_weight_decay(run, arch, &topts);
	run->topts = &topts;
	net = run->shards > 1 ? fit_shards(run, arch) : fit(run, arch);
	run->train_seconds += run->select_seconds;
	/* sharded by partition: each id's shard goes with the manifest */
	if (run->shards > 1 && run->shard_map.ids != NULL)
		manifest_shards = unlearn_shards_of_ids(&run->shard_map, manifest, n_manifest);
	/* step 2: the options as asked ("auto" stays "auto": a retrain chooses again) */
	options = unlearn_train_options_to_jsonb(asked, run->hidden, run->n_hidden, asked->epochs, arch,
											 run->shards, manifest_shards != NULL);
	if (run->before_store)
		run->before_store(run->before_store_arg, options);
	run->version = run->retrain ? unlearn_next_version(run->model) : 1;
	/* the loss reference of the rows training held out (target "unseen"; not for sharded models) */
	has_ref = run->shards <= 1 && run->stream == NULL &&
		unlearn_unseen_reference_of_training(net, data, run->topts, ref);
	/* the metrics: shards, chunks read, and that reference */
	metrics = unlearn_jsonb_printf("{\"train_accuracy\": %.6f, \"load_seconds\": %.3f,"
								   " \"train_seconds\": %.3f, \"rows\": " INT64_FORMAT "%s%s%s%s}",
								   run->accuracy, run->load_seconds, run->train_seconds, data->n,
								   shard_metrics(run), run->stream ? unlearn_stream_metrics(run->stream) : "",
								   selection_metrics(run, asked),
								   has_ref ? unlearn_unseen_reference_json(ref) : "");
	unlearn_store_version(run->model, run->version, run->retrain ? run->parent : 0, run->reason, NULL,
						  options, net, manifest, n_manifest, manifest_shards, run->forgotten, run->n_forgotten, metrics);
	run->topts = asked;
}

/* The unlearn_train_result row of a run (in the current memory context). */
Datum
unlearn_train_result(TupleDesc desc, const UnlearnTrainRun *run, double total_seconds)
{
	Datum		values[8];
	bool		nulls[8] = {0};

	values[0] = CStringGetTextDatum(run->model);
	values[1] = Int32GetDatum(run->version);
	values[2] = Int64GetDatum(run->data->n);
	values[3] = Int32GetDatum(run->n_classes);
	values[4] = Float8GetDatum(run->accuracy);
	values[5] = Float8GetDatum(total_seconds);
	values[6] = Float8GetDatum(run->load_seconds);
	values[7] = Float8GetDatum(run->train_seconds);
	return HeapTupleGetDatum(heap_form_tuple(desc, values, nulls));
}
