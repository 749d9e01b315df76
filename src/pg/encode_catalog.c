/*
 * encode_catalog.c: a column model's encoding in the catalog:
 * unlearn.models.feature_columns (name[]), feature_types (regtype[], so a
 * dump restores enum and domain types by name) and inputs (jsonb: each
 * column's encoding, fill value and categories), written at training and
 * checked when read back.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"

#include "unlearn_pg.h"

/* The columns' names as a name[] datum. */
Datum
unlearn_encoder_column_array(const UnlearnEncoder *enc)
{
	Datum	   *d = palloc(sizeof(Datum) * enc->n_inputs);

	for (int i = 0; i < enc->n_inputs; i++)
		d[i] = DirectFunctionCall1(namein, CStringGetDatum(enc->inputs[i].column));
	return PointerGetDatum(construct_array(d, enc->n_inputs, NAMEOID, NAMEDATALEN, false, TYPALIGN_CHAR));
}

/* Appends one input's jsonb object to s. */
static void
input_to_json(StringInfo s, const UnlearnInput *in)
{
	appendStringInfoString(s, "{\"column\": ");
	escape_json(s, in->column);
	appendStringInfoString(s, ", \"type\": ");
	escape_json(s, format_type_be(in->type));
	if (in->kind == UL_INPUT_NUMBER)
	{
		appendStringInfo(s, ", \"encoding\": \"%s\", \"fill\": %.9g, \"missing_indicator\": %s}",
						 in->conv >= UL_CONV_DATE ? "days since 2000-01-01" : "number",
						 in->fill, in->indicator ? "true" : "false");
		return;
	}
	appendStringInfoString(s, ", \"encoding\": \"one-hot\", \"categories\": [");
	for (int c = 0; c < in->n_categories; c++)
	{
		if (c)
			appendStringInfoString(s, ", ");
		escape_json(s, in->categories[c]);
	}
	appendStringInfo(s, "], \"null_category\": %s}", in->null_category ? "true" : "false");
}

/* The jsonb the catalog records (unlearn.models.inputs). */
Jsonb *
unlearn_encoder_to_jsonb(const UnlearnEncoder *enc)
{
	StringInfoData s;

	initStringInfo(&s);
	appendStringInfo(&s, "{\"nulls\": \"%s\", \"features\": %d, \"columns\": [",
					 enc->nulls_error ? "error" : "impute", enc->n_features);
	for (int i = 0; i < enc->n_inputs; i++)
	{
		if (i)
			appendStringInfoString(&s, ", ");
		input_to_json(&s, &enc->inputs[i]);
	}
	appendStringInfoString(&s, "]}");
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(s.data)));
}

/* The columns' types as a regtype[] datum. */
Datum
unlearn_encoder_type_array(const UnlearnEncoder *enc)
{
	Datum	   *d = palloc(sizeof(Datum) * enc->n_inputs);

	for (int i = 0; i < enc->n_inputs; i++)
		d[i] = ObjectIdGetDatum(enc->inputs[i].type);
	return PointerGetDatum(construct_array(d, enc->n_inputs, REGTYPEOID, 4, true, TYPALIGN_INT));
}

/* Errors (XX001) about a model's corrupt encoding. */
static void
corrupt(const char *model, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("the feature encoding of model \"%s\" is corrupt", model),
			 errdetail("%s", detail)));
}

/* The value of key in a jsonb object container, of the given type, or NULL. */
static JsonbValue *
get_key(JsonbContainer *obj, const char *key, enum jbvType type)
{
	JsonbValue *v = unlearn_jsonb_key(obj, key);

	return v && v->type == type ? v : NULL;
}

/* A jsonb number as a double. */
static double
jb_number(JsonbValue *v)
{
	return DatumGetFloat8(DirectFunctionCall1(numeric_float8, NumericGetDatum(v->val.numeric)));
}

/* A jsonb string as a C string. */
static char *
jb_string(JsonbValue *v)
{
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/* Reads one input's encoding from its object, checking it against its column's type. */
static void
input_from_json(UnlearnInput *in, JsonbContainer *obj, const char *model)
{
	JsonbValue *col = get_key(obj, "column", jbvString);
	JsonbValue *v;

	if (col == NULL || strcmp(jb_string(col), in->column) != 0)
		corrupt(model, psprintf("inputs does not describe column \"%s\" in its place.", in->column));
	if (in->kind == UL_INPUT_NUMBER)
	{
		v = get_key(obj, "fill", jbvNumeric);
		if (v == NULL || !isfinite(jb_number(v)) || (v = get_key(obj, "missing_indicator", jbvBool)) == NULL)
			corrupt(model, psprintf("Column \"%s\" lacks a finite fill or its missing_indicator.", in->column));
		in->indicator = v->val.boolean;
		in->fill = jb_number(get_key(obj, "fill", jbvNumeric));
		in->width = in->indicator ? 2 : 1;
		return;
	}
	v = get_key(obj, "categories", jbvBinary);
	if (v == NULL || !JsonContainerIsArray(v->val.binary.data) ||
		get_key(obj, "null_category", jbvBool) == NULL)
		corrupt(model, psprintf("Column \"%s\" lacks its categories or null_category.", in->column));
	in->null_category = get_key(obj, "null_category", jbvBool)->val.boolean;
	in->n_categories = JsonContainerSize(v->val.binary.data);
	in->categories = palloc(sizeof(char *) * Max(in->n_categories, 1));
	for (int c = 0; c < in->n_categories; c++)
	{
		JsonbValue *e = getIthJsonbValueFromContainer(v->val.binary.data, c);

		if (e == NULL || e->type != jbvString)
			corrupt(model, psprintf("A category of column \"%s\" is not a string.", in->column));
		in->categories[c] = jb_string(e);
		if (c > 0 && strcmp(in->categories[c - 1], in->categories[c]) >= 0)
			corrupt(model, psprintf("The categories of column \"%s\" are not sorted and distinct.", in->column));
	}
	in->width = in->n_categories + (in->null_category ? 1 : 0);
}

/*
 * The encoder a model's catalog row records: feature_columns (as text[]),
 * feature_types (regtype[]) and inputs (jsonb), checked against each other
 * and against the model's feature count.
 */
UnlearnEncoder *
unlearn_encoder_from_catalog(Datum columns, Datum types, Jsonb *inputs, int n_features, const char *model)
{
	UnlearnEncoder *enc = palloc0(sizeof(UnlearnEncoder));
	Datum	   *names,
			   *typs;
	bool	   *nn,
			   *tn;
	int			n,
				nt;
	JsonbValue *cols;
	JsonbValue *nulls;

	/* step 1: the names and types, one of each per column */
	deconstruct_array(DatumGetArrayTypeP(columns), TEXTOID, -1, false, TYPALIGN_INT, &names, &nn, &n);
	deconstruct_array(DatumGetArrayTypeP(types), REGTYPEOID, 4, true, TYPALIGN_INT, &typs, &tn, &nt);
	if (n == 0 || n != nt || !JB_ROOT_IS_OBJECT(inputs) ||
		(cols = get_key(&inputs->root, "columns", jbvBinary)) == NULL ||
		!JsonContainerIsArray(cols->val.binary.data) || JsonContainerSize(cols->val.binary.data) != n ||
		(nulls = get_key(&inputs->root, "nulls", jbvString)) == NULL)
		corrupt(model, "feature_columns, feature_types and inputs do not describe the same columns.");
	enc->nulls_error = strcmp(jb_string(nulls), "error") == 0;
	enc->inputs = palloc0(sizeof(UnlearnInput) * n);
	/* step 2: each column's encoding, placed after the one before */
	for (int i = 0; i < n; i++)
	{
		UnlearnInput *in = &enc->inputs[i];
		JsonbValue *obj = getIthJsonbValueFromContainer(cols->val.binary.data, i);

		if (nn[i] || tn[i] || obj == NULL || obj->type != jbvBinary)
			corrupt(model, "feature_columns, feature_types and inputs do not describe the same columns.");
		in->column = TextDatumGetCString(names[i]);
		in->type = DatumGetObjectId(typs[i]);
		if (!unlearn_input_conv(in->type, &in->conv))
			corrupt(model, psprintf("Column \"%s\" has type %s.", in->column, format_type_be(in->type)));
		in->kind = unlearn_input_kind(in->conv);
		input_from_json(in, obj->val.binary.data, model);
		in->offset = enc->n_features;
		enc->n_features += in->width;
		enc->n_inputs++;
	}
	/* step 3: the widths add up to the network's input */
	if (enc->n_features != n_features)
		corrupt(model, psprintf("The encoding has %d features, the model %d.", enc->n_features, n_features));
	return enc;
}

/* A deep copy of enc in the current memory context (caches keep one). */
UnlearnEncoder *
unlearn_encoder_copy(const UnlearnEncoder *enc)
{
	UnlearnEncoder *c = palloc(sizeof(UnlearnEncoder));

	*c = *enc;
	c->inputs = palloc(sizeof(UnlearnInput) * Max(enc->n_inputs, 1));
	for (int i = 0; i < enc->n_inputs; i++)
	{
		UnlearnInput *in = &c->inputs[i];

		*in = enc->inputs[i];
		in->column = pstrdup(in->column);
		in->categories = palloc(sizeof(char *) * Max(in->n_categories, 1));
		for (int k = 0; k < in->n_categories; k++)
			in->categories[k] = pstrdup(enc->inputs[i].categories[k]);
	}
	return c;
}
