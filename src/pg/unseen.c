/*
 * unseen.c: the unlearning target "unseen" in the glue (docs/method.md).
 *
 * A model trained with held-out rows ({"validation": v}) records, in its
 * version's metrics as "unseen_loss", the quantiles of those rows' losses:
 * rows it never saw.  A run with the target "unseen" reads that reference
 * back and gives each forgotten row a target loss from it (the core's
 * ul_unseen_targets); approximate versions carry the reference forward.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "unlearn_pg.h"
#include "unlearn_core.h"

/* The metrics fragment `, "unseen_loss": [q0, ..., q32]` of a reference. */
char *
unlearn_unseen_reference_json(const float *ref)
{
	StringInfoData s;

	initStringInfo(&s);
	appendStringInfoString(&s, ", \"unseen_loss\": [");
	for (int j = 0; j < UL_UNSEEN_QUANTILES; j++)
		appendStringInfo(&s, "%s%.7g", j ? ", " : "", ref[j]);
	appendStringInfoChar(&s, ']');
	return s.data;
}

/*
 * The reference of a network just trained: the loss quantiles of the rows
 * nn_train held out (nn_validation_split over the training rows, in their
 * order).  False when training held out none.
 */
bool
unlearn_unseen_reference_of_training(const nn_model *net, const UnlearnData *data,
									 const nn_train_options *o, float *ref)
{
	int			n = (int) data->n;
	int		   *order = palloc(sizeof(int) * n);
	int			n_val;
	float	   *X;
	int		   *y;
	float	   *loss;

	Assert(data->n <= INT_MAX);
	for (int i = 0; i < n; i++)
		order[i] = i;
	n_val = nn_validation_split(n, o, order);
	if (n_val == 0)
		return false;
	/* step 1: the held-out rows, copied out */
	X = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(float) * (Size) n_val * data->n_features);
	y = palloc(sizeof(int) * n_val);
	for (int i = 0; i < n_val; i++)
	{
		int			r = order[n - n_val + i];

		memcpy(X + (Size) i * data->n_features, data->X + (Size) r * data->n_features,
			   sizeof(float) * data->n_features);
		y[i] = data->y[r];
	}
	/* step 2: their losses, summarised */
	loss = palloc(sizeof(float) * n_val);
	ul_row_losses(net, X, y, n_val, loss);
	ul_loss_quantiles(loss, n_val, UL_UNSEEN_QUANTILES, ref);
	pfree(X);
	pfree(y);
	pfree(loss);
	pfree(order);
	return true;
}

/*
 * Reads the reference recorded with the model's current version into ref;
 * false when the version has none (or not a well-formed one).
 */
bool
unlearn_read_unseen_reference(const UnlearnModel *model, float *ref)
{
	Oid			argtypes[2] = {TEXTOID, INT4OID};
	Datum		args[2] = {CStringGetTextDatum(model->name), Int32GetDatum(model->version)};
	UnlearnCatalogUser saved;
	bool		isnull;
	int			ret;
	int			n = 0;

	unlearn_become_catalog_owner(&saved);
	ret = SPI_execute_with_args("SELECT a.e::float4 FROM unlearn.versions v,"
								"  pg_catalog.jsonb_array_elements_text(v.metrics->'unseen_loss') WITH ORDINALITY a(e, i)"
								" WHERE v.model = $1 AND v.version = $2"
								"  AND pg_catalog.jsonb_typeof(v.metrics->'unseen_loss') = 'array'"
								" ORDER BY a.i",
								2, argtypes, args, NULL, true, 0);
	unlearn_restore_user(&saved);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read the metrics of model \"%s\"", model->name);
	if (SPI_processed != UL_UNSEEN_QUANTILES)
		return false;
	for (uint64 j = 0; j < SPI_processed; j++)
	{
		ref[j] = DatumGetFloat4(SPI_getbinval(SPI_tuptable->vals[j], SPI_tuptable->tupdesc, 1, &isnull));
		if (isnull || !isfinite(ref[j]) || ref[j] < 0 || (j > 0 && ref[j] < ref[j - 1]))
			return false;
		n++;
	}
	return n == UL_UNSEEN_QUANTILES;
}

/*
 * Each forgotten row's target loss under net (theta0), from the reference;
 * *floored gets how many the floor raised (ul_unseen_floor: a target is
 * always above the row's loss before the run), reported in a NOTICE: a
 * reference below the rows' own losses is what duplicate rows give.
 */
float *
unlearn_unseen_targets(const nn_model *net, const UnlearnData *forget, const float *ref,
					   const char *model, int *floored)
{
	float	   *target = palloc(sizeof(float) * forget->n);

	Assert(forget->n <= INT_MAX);
	*floored = ul_unseen_targets(net, forget->X, forget->y, (int) forget->n, ref, UL_UNSEEN_QUANTILES, target);
	if (*floored < 0)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory computing target losses")));
	if (*floored > 0)
		ereport(NOTICE,
				(errmsg("the loss reference of model \"%s\" is not above the loss of %d of the %d rows to forget",
						model, *floored, (int) forget->n),
				 errdetail("Their targets were raised above their loss before the run (twice the odds against the label)."),
				 errhint("Rows the model never saw should have higher losses: the table may hold duplicate rows.")));
	return target;
}
