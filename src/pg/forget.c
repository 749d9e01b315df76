/*
 * forget.c: the unlearning functions users call: unlearn_rows (forget rows)
 * and unlearn_relabel (correct their labels).  Each checks its arguments,
 * opens the model for the change (ownership, the table privilege, the lock
 * on its catalog row), reads the rows (rows.c) and runs unlearn_execute
 * (execute.c), all in the caller's transaction.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "unlearn_pg.h"

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

	if (!unlearn_is_int_type(elemtype))
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

/* The labels argument as text, one per id; checks its shape, length and NULLs. */
static char **
labels_from_array(ArrayType *labels, int n)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n_labels;
	char	  **label_text;
	Oid			out_func;
	bool		is_varlena;
	int16		typlen;
	bool		typbyval;
	char		typalign;

	if (ARR_NDIM(labels) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("labels must be a one-dimensional array")));
	get_typlenbyvalalign(ARR_ELEMTYPE(labels), &typlen, &typbyval, &typalign);
	deconstruct_array(labels, ARR_ELEMTYPE(labels), typlen, typbyval, typalign, &elems, &nulls, &n_labels);
	if (n_labels != n)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("ids and labels must have the same length, got %d and %d", n, n_labels)));
	getTypeOutputInfo(ARR_ELEMTYPE(labels), &out_func, &is_varlena);
	label_text = palloc(sizeof(char *) * n);
	for (int i = 0; i < n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("labels must not contain NULL")));
		label_text[i] = OidOutputFunctionCall(out_func, elems[i]);
	}
	return label_text;
}

/* The positions 0..n-1 in ascending id order, equal ids in argument order (a stable sort). */
static int *
order_by_id(const int64 *ids, int n)
{
	int		   *order = palloc(sizeof(int) * n);

	for (int i = 0; i < n; i++)
		order[i] = i;
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && ids[order[j - 1]] > ids[order[j]]; j--)
		{
			int			t = order[j];

			order[j] = order[j - 1];
			order[j - 1] = t;
		}
	return order;
}

/*
 * The (id, label) pairs sorted by id, each label mapped to its class; an id
 * given twice must agree with itself.  Returns the number of distinct ids.
 */
static int
relabel_pairs(const UnlearnModel *model, const int64 *ids, char **label_text, int n,
			  int64 *sorted_ids, int *new_labels)
{
	int		   *order = order_by_id(ids, n);
	int			k = 0;

	for (int i = 0; i < n; i++)
	{
		int			src = order[i];
		int			cls = unlearn_class_index(model, label_text[src]);

		if (cls < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("label \"%s\" is not a class of model \"%s\"", label_text[src], model->name),
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
	Assert(k > 0);
	return k;
}

/* The unlearn_result row of an outcome, copied out of SPI to the caller's context. */
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
	return SPI_datumTransfer(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)), false, -1);
}

/*
 * Errors (55000) if a request of the model for one of the sorted ids is
 * still queued (pending or running, this transaction's included): the row
 * changed or left after the model learned it, the queue holds the copy it
 * learned, and a call reading the row as it is now would unlearn other
 * values and leave that request to be skipped.  Caller: the model locked.
 */
static void
refuse_queued_rows(const UnlearnModel *model, const int64 *ids, int k)
{
	Oid			argtypes[2] = {TEXTOID, INT8ARRAYOID};
	Datum		args[2] = {CStringGetTextDatum(model->name), unlearn_int8_array(ids, k)};
	UnlearnCatalogUser saved;
	bool		isnull;
	Datum		first;

	unlearn_become_catalog_owner(&saved);
	if (SPI_execute_with_args("SELECT min(id) FROM unlearn.requests WHERE model = $1 AND id = ANY ($2)"
							  " AND state IN ('pending', 'running')", 2, argtypes, args, NULL, false, 1)
		!= SPI_OK_SELECT)
		elog(ERROR, "could not read unlearn.requests");
	unlearn_restore_user(&saved);
	first = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (!isnull)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("row " INT64_FORMAT " of model \"%s\" has a queued request", DatumGetInt64(first),
						model->name),
				 errdetail("The row changed after the model learned it; the queue holds the copy it learned,"
						   " and this call would read the row as it is now."),
				 errhint("Commit the change and let the worker unlearn it first (unlearn_wait).")));
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
	unlearn_phases_start(&outcome.phases);
	model = unlearn_open_model_for_change(name, "unlearn", ACL_DELETE);
	unlearn_phase_end(&outcome.phases, "lock");
	refuse_queued_rows(model, ids, k);
	unlearn_read_forget_rows(model, ids, k, &forget);
	unlearn_phase_end(&outcome.phases, "read_forget_rows");
	unlearn_execute(model, &forget, NULL, &opts, "unlearn", true, NULL, &outcome);
	result = outcome_datum(fcinfo, name, &outcome);
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
	char	  **label_text;
	int			n,
				k;
	UnlearnRunOptions opts;
	UnlearnModel *model;
	UnlearnData forget;
	UnlearnOutcome outcome;
	Datum		result;

	for (int i = 0; i < 3; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("model, ids and labels must not be NULL")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	ids = ids_from_array(PG_GETARG_ARRAYTYPE_P(1), &n);
	label_text = labels_from_array(PG_GETARG_ARRAYTYPE_P(2), n);
	unlearn_parse_run_options(PG_ARGISNULL(3) ? NULL : PG_GETARG_JSONB_P(3), &opts);

	SPI_connect();
	unlearn_phases_start(&outcome.phases);
	model = unlearn_open_model_for_change(name, "relabel", ACL_UPDATE);
	unlearn_phase_end(&outcome.phases, "lock");
	sorted_ids = palloc(sizeof(int64) * n);
	new_labels = palloc(sizeof(int) * n);
	k = relabel_pairs(model, ids, label_text, n, sorted_ids, new_labels);
	refuse_queued_rows(model, sorted_ids, k);
	unlearn_read_forget_rows(model, sorted_ids, k, &forget);
	unlearn_phase_end(&outcome.phases, "read_forget_rows");
	unlearn_execute(model, &forget, new_labels, &opts, "relabel", true, NULL, &outcome);
	result = outcome_datum(fcinfo, name, &outcome);
	unlearn_close_model_change();
	SPI_finish();
	PG_RETURN_DATUM(result);
}
