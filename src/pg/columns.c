/*
 * columns.c: the SQL functions of column models: unlearn.encode_row (the
 * capture's feature copy of a deleted row) and unlearn_describe (each input
 * of a model: its column, type, encoding and standardisation).
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/typcache.h"
#include "utils/acl.h"
#include "utils/rls.h"
#include "miscadmin.h"

#include "unlearn_pg.h"

/* What one call site of unlearn.encode_row keeps for a statement (fn_extra). */
typedef struct EncodeSite
{
	char	   *model;
	UnlearnEncoder *enc;
	Oid			rowtype;
	int32		rowtypmod;
	UnlearnRowMap map;
} EncodeSite;

/* The call site's encoder of model, looked up once per statement, mapped to desc. */
static EncodeSite *
encode_site(FunctionCallInfo fcinfo, const char *model, TupleDesc desc)
{
	EncodeSite *site = (EncodeSite *) fcinfo->flinfo->fn_extra;
	MemoryContext old;

	if (site && strcmp(site->model, model) == 0 && site->rowtype == desc->tdtypeid &&
		site->rowtypmod == desc->tdtypmod)
		return site;
	old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);
	site = palloc0(sizeof(EncodeSite));
	site->model = pstrdup(model);
	SPI_connect();
	{
		UnlearnModel *m = unlearn_model_lookup(model, false);

		if (m->encoder == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_WRONG_OBJECT_TYPE),
					 errmsg("model \"%s\" reads a features array, not columns", model)));
		MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);
		site->enc = unlearn_encoder_copy(m->encoder);
	}
	SPI_finish();
	MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);
	/* the capture reads the columns with the types the model was trained on, exactly */
	unlearn_encoder_match(site->enc, desc, true, &site->map);
	site->rowtype = desc->tdtypeid;
	site->rowtypmod = desc->tdtypmod;
	MemoryContextSwitchTo(old);
	fcinfo->flinfo->fn_extra = site;
	return site;
}

PG_FUNCTION_INFO_V1(unlearn_encode_row_sql);
/*
 * unlearn.encode_row(model, row) returns real[]: the input a column model
 * would read from the row, or NULL if it holds a value the model cannot
 * encode (such a row was never learned).  Revoked from PUBLIC: the capture
 * runs it as the extension's owner.
 */
Datum
unlearn_encode_row_sql(PG_FUNCTION_ARGS)
{
	char	   *model = text_to_cstring(PG_GETARG_TEXT_PP(0));
	HeapTupleHeader row = PG_GETARG_HEAPTUPLEHEADER(1);
	TupleDesc	desc = lookup_rowtype_tupdesc(HeapTupleHeaderGetTypeId(row), HeapTupleHeaderGetTypMod(row));
	EncodeSite *site = encode_site(fcinfo, model, desc);
	int			n = site->enc->n_features;
	float	   *x = palloc(sizeof(float) * n);
	HeapTupleData tmp;
	bool		ok = unlearn_encode_tuple(site->enc, &site->map, unlearn_composite_tuple(row, &tmp), desc, x, true);
	Datum	   *d;

	ReleaseTupleDesc(desc);
	if (!ok)
		PG_RETURN_NULL();
	d = palloc(sizeof(Datum) * n);
	for (int j = 0; j < n; j++)
		d[j] = Float4GetDatum(x[j]);
	PG_RETURN_ARRAYTYPE_P(construct_array(d, n, FLOAT4OID, 4, true, TYPALIGN_INT));
}

/* One row of unlearn_describe. */
static void
describe_row(ReturnSetInfo *rsi, int input, const char *column, Oid type, const char *encoding,
			 const char *category, bool has_fill, double fill, const nn_model *net)
{
	Datum		values[8];
	bool		nulls[8] = {0};

	values[0] = Int32GetDatum(input);
	values[1] = DirectFunctionCall1(namein, CStringGetDatum(column));
	values[2] = ObjectIdGetDatum(type);
	values[3] = CStringGetTextDatum(encoding);
	values[4] = category ? CStringGetTextDatum(category) : (Datum) 0;
	nulls[4] = category == NULL;
	values[5] = Float8GetDatum(fill);
	nulls[5] = !has_fill;
	/* a sharded model's shards each standardise their own rows: no one mean and scale */
	values[6] = net->n_members ? (Datum) 0 : Float8GetDatum(net->mean[input - 1]);
	values[7] = net->n_members ? (Datum) 0 : Float8GetDatum(net->scale[input - 1]);
	nulls[6] = nulls[7] = net->n_members > 0;
	tuplestore_putvalues(rsi->setResult, rsi->setDesc, values, nulls);
}

/* The rows of one input column: its value (and missing indicator), or one per category. */
static void
describe_input(ReturnSetInfo *rsi, const UnlearnInput *in, const nn_model *net)
{
	int			pos = in->offset + 1;

	if (in->kind == UL_INPUT_NUMBER)
	{
		describe_row(rsi, pos, in->column, in->type,
					 in->conv >= UL_CONV_DATE ? "days since 2000-01-01" : "number",
					 NULL, true, in->fill, net);
		if (in->indicator)
			describe_row(rsi, pos + 1, in->column, in->type, "missing indicator", NULL, false, 0, net);
		return;
	}
	for (int k = 0; k < in->n_categories; k++)
		describe_row(rsi, pos + k, in->column, in->type, "one-hot", in->categories[k], false, 0, net);
	if (in->null_category)
		describe_row(rsi, pos + in->n_categories, in->column, in->type, "one-hot (NULL)", NULL, false, 0, net);
}

PG_FUNCTION_INFO_V1(unlearn_describe);
/*
 * unlearn_describe(model): one row per input of the model's current
 * version: its column, type, encoding, category, fill value, and the mean
 * and scale its standardisation subtracts and divides by.  Needs SELECT on
 * the training table (categories are values of its rows), and, when
 * row-level security limits the caller there, to be the model's owner.
 */
Datum
unlearn_describe(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	ReturnSetInfo *rsi = (ReturnSetInfo *) fcinfo->resultinfo;
	UnlearnModel *model;
	nn_model   *net;

	InitMaterializedSRF(fcinfo, 0);
	SPI_connect();
	model = unlearn_model_lookup(name, false);
	unlearn_check_can_use(model);
	/* categories are values of the rows: a reader whose policies hide rows must not list them */
	if (model->encoder && !has_privs_of_role(GetUserId(), model->owner) &&
		check_enable_rls(model->relid, InvalidOid, true) == RLS_ENABLED)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to describe model \"%s\"", name),
				 errdetail("Row-level security hides rows of its training table from you, and the categories are values of its rows."),
				 errhint("Ask the model's owner.")));
	net = unlearn_load_weights(model, model->version);
	if (model->encoder)
		for (int i = 0; i < model->encoder->n_inputs; i++)
			describe_input(rsi, &model->encoder->inputs[i], net);
	else
		for (int j = 0; j < model->n_features; j++)
			describe_row(rsi, j + 1, model->features_column,
						 get_atttype(model->relid, get_attnum(model->relid, model->features_column)),
						 "array element", NULL, false, 0, net);
	SPI_finish();
	PG_RETURN_NULL();
}
