/*
 * encode.c: the input vector of a column model.
 *
 * Each feature column becomes numbers by a built-in conversion chosen from
 * its base type, never by a cast, operator or function a user could define:
 * numbers as they are, dates and timestamps as days since 2000-01-01 (UTC
 * for timestamptz), booleans, text and enums as one indicator per category
 * seen in training (compared bytewise, so no collation is involved).  An
 * unseen category encodes as all zeros.  A NULL number takes the training
 * mean, with a missing indicator when training saw NULLs in that column; a
 * NULL category is a category of its own.  See docs/method.md.
 */
#include "postgres.h"

#include <float.h>
#include <math.h>

#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/pg_enum.h"
#include "catalog/pg_type.h"
#include "datatype/timestamp.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/timestamp.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "unlearn_pg.h"

/* The conversion of a type (domains looked through), or false if a model cannot use it. */
bool
unlearn_input_conv(Oid type, UnlearnInputConv *conv)
{
	Oid			base = getBaseType(type);

	switch (base)
	{
		case INT2OID: *conv = UL_CONV_INT2; return true;
		case INT4OID: *conv = UL_CONV_INT4; return true;
		case INT8OID: *conv = UL_CONV_INT8; return true;
		case FLOAT4OID: *conv = UL_CONV_FLOAT4; return true;
		case FLOAT8OID: *conv = UL_CONV_FLOAT8; return true;
		case NUMERICOID: *conv = UL_CONV_NUMERIC; return true;
		case DATEOID: *conv = UL_CONV_DATE; return true;
		case TIMESTAMPOID: *conv = UL_CONV_TIMESTAMP; return true;
		case TIMESTAMPTZOID: *conv = UL_CONV_TIMESTAMPTZ; return true;
		case BOOLOID: *conv = UL_CONV_BOOL; return true;
		case TEXTOID:
		case VARCHAROID:
		case BPCHAROID: *conv = UL_CONV_TEXT; return true;
		default:
			if (type_is_enum(base))
			{
				*conv = UL_CONV_ENUM;
				return true;
			}
			return false;
	}
}

/* NUMBER or CATEGORY, by conversion. */
UnlearnInputKind
unlearn_input_kind(UnlearnInputConv conv)
{
	return conv >= UL_CONV_BOOL ? UL_INPUT_CATEGORY : UL_INPUT_NUMBER;
}

/* Numbers, dates and timestamps; within them, plain numbers and points in time. */
static int
conv_family(UnlearnInputConv conv)
{
	if (conv <= UL_CONV_NUMERIC)
		return 0;
	if (conv <= UL_CONV_TIMESTAMPTZ)
		return 1;
	return 2;
}

/* Errors (42804) for a column a model cannot use. */
static void
bad_column_type(const char *column, Oid type)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATATYPE_MISMATCH),
			 errmsg("column \"%s\" has type %s, which cannot be a feature", column, format_type_be(type)),
			 errhint("Features may be numbers, boolean, text, varchar, char, enums, date, timestamp"
					 " or timestamptz; pick the columns with feature_columns.")));
}

/* Appends one input column (checked) to enc. */
static void
add_input(UnlearnEncoder *enc, const char *column, Oid type)
{
	UnlearnInput *in = &enc->inputs[enc->n_inputs++];

	memset(in, 0, sizeof(*in));
	in->column = pstrdup(column);
	in->type = type;
	if (!unlearn_input_conv(type, &in->conv))
		bad_column_type(column, type);
	in->kind = unlearn_input_kind(in->conv);
}

/* Errors (22023) if column is the id or label column or already listed. */
static void
check_pick(const UnlearnEncoder *enc, const char *column, const char *id_column, const char *label_column)
{
	if (strcmp(column, id_column) == 0 || strcmp(column, label_column) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("column \"%s\" cannot be a feature: it is the %s column", column,
						strcmp(column, id_column) == 0 ? "id" : "label")));
	for (int i = 0; i < enc->n_inputs; i++)
		if (strcmp(enc->inputs[i].column, column) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("feature column \"%s\" is listed twice", column)));
}

/*
 * The input columns of a new column model: feature_columns in their order,
 * or (NULL) every column of the relation but the id and the label, in
 * column order.  Types are checked here, before any row is read.
 */
UnlearnEncoder *
unlearn_encoder_columns(Oid relid, const char *id_column, const char *label_column,
						ArrayType *feature_columns, bool nulls_error)
{
	UnlearnEncoder *enc = palloc0(sizeof(UnlearnEncoder));
	Relation	rel = table_open(relid, AccessShareLock);
	TupleDesc	desc = RelationGetDescr(rel);

	enc->nulls_error = nulls_error;
	enc->inputs = palloc0(sizeof(UnlearnInput) * Max(desc->natts, 1));
	if (feature_columns == NULL)
	{
		/* step 1a: every other column */
		for (int i = 0; i < desc->natts; i++)
		{
			Form_pg_attribute att = TupleDescAttr(desc, i);

			if (att->attisdropped || strcmp(NameStr(att->attname), id_column) == 0 ||
				strcmp(NameStr(att->attname), label_column) == 0)
				continue;
			add_input(enc, NameStr(att->attname), att->atttypid);
		}
	}
	else
	{
		/* step 1b: the columns named, each checked */
		Datum	   *names;
		bool	   *nulls;
		int			n;

		if (ARR_NDIM(feature_columns) > 1)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("feature_columns must be a one-dimensional array of column names")));
		deconstruct_array(feature_columns, NAMEOID, NAMEDATALEN, false, TYPALIGN_CHAR, &names, &nulls, &n);
		if (n > desc->natts)
			enc->inputs = repalloc(enc->inputs, sizeof(UnlearnInput) * n);
		for (int i = 0; i < n; i++)
		{
			const char *col;

			if (nulls[i])
				ereport(ERROR,
						(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						 errmsg("feature_columns must not contain NULL")));
			col = NameStr(*DatumGetName(names[i]));
			check_pick(enc, col, id_column, label_column);
			add_input(enc, col, unlearn_column_type(relid, col, "feature"));
		}
	}
	table_close(rel, AccessShareLock);
	/* step 2: something to learn from */
	if (enc->n_inputs == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("relation \"%s\" has no feature columns", get_rel_name(relid)),
				 errhint("Give feature_columns, or features_column for an array column.")));
	return enc;
}

/* A number, checked: finite and within real's range. */
double
unlearn_checked_number(double v, const char *column, const char *where)
{
	if (!isfinite(v) || fabs(v) > FLT_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("feature column \"%s\" must hold finite values within the range of real", column),
				 errdetail("%s has %g.", where, v)));
	return v;
}

/* A value of a NUMBER conversion as a double (dates and timestamps in days since 2000-01-01). */
static double
number_of(UnlearnInputConv conv, Datum d)
{
	switch (conv)
	{
		case UL_CONV_INT2: return DatumGetInt16(d);
		case UL_CONV_INT4: return DatumGetInt32(d);
		case UL_CONV_INT8: return (double) DatumGetInt64(d);
		case UL_CONV_FLOAT4: return DatumGetFloat4(d);
		case UL_CONV_FLOAT8: return DatumGetFloat8(d);
		case UL_CONV_NUMERIC:
			return DatumGetFloat8(DirectFunctionCall1(numeric_float8_no_overflow, d));
		case UL_CONV_DATE:
			return DATE_NOT_FINITE(DatumGetDateADT(d)) ? INFINITY : (double) DatumGetDateADT(d);
		case UL_CONV_TIMESTAMP:
		case UL_CONV_TIMESTAMPTZ:
			return TIMESTAMP_NOT_FINITE(DatumGetTimestamp(d)) ? INFINITY :
				(double) DatumGetTimestamp(d) / (double) USECS_PER_DAY;
		default:
			Assert(false);
			return 0;
	}
}

/* A value of a CATEGORY conversion as text: "true"/"false", the string, the enum label. */
static char *
category_of(UnlearnInputConv conv, Datum d)
{
	HeapTuple	tup;
	char	   *s;

	switch (conv)
	{
		case UL_CONV_BOOL:
			return pstrdup(DatumGetBool(d) ? "true" : "false");
		case UL_CONV_TEXT:
			return TextDatumGetCString(d);
		case UL_CONV_ENUM:
			tup = SearchSysCache1(ENUMOID, d);
			if (!HeapTupleIsValid(tup))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
						 errmsg("invalid internal value for enum: %u", DatumGetObjectId(d))));
			s = pstrdup(NameStr(((Form_pg_enum) GETSTRUCT(tup))->enumlabel));
			ReleaseSysCache(tup);
			return s;
		default:
			Assert(false);
			return NULL;
	}
}

/* A column's value as a number (NUMBER inputs), unchecked. */
double
unlearn_input_number(const UnlearnInput *in, Datum d)
{
	Assert(in->kind == UL_INPUT_NUMBER);
	return number_of(in->conv, d);
}

/* A column's value as its category text (CATEGORY inputs). */
char *
unlearn_input_category(const UnlearnInput *in, Datum d)
{
	Assert(in->kind == UL_INPUT_CATEGORY);
	return category_of(in->conv, d);
}

static int
cmp_category(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/* Errors (22004) for a NULL feature under {"nulls": "error"}. */
static void
null_refused(const UnlearnInput *in, const char *where)
{
	ereport(ERROR,
			(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
			 errmsg("feature column \"%s\" must not be NULL", in->column),
			 errdetail("%s has a NULL; the model was trained with {\"nulls\": \"error\"}.", where)));
}

/*
 * Encodes one input's value into dst + in->offset: a number already
 * converted (num), or a category's text (cat), or a NULL.
 */
void
unlearn_encode_value(const UnlearnEncoder *enc, const UnlearnInput *in, bool isnull,
					 double num, const char *cat, float *dst, const char *where)
{
	float	   *out = dst + in->offset;
	char	  **hit;

	memset(out, 0, sizeof(float) * in->width);
	if (isnull && enc->nulls_error)
		null_refused(in, where);
	if (in->kind == UL_INPUT_NUMBER)
	{
		out[0] = (float) (isnull ? in->fill : unlearn_checked_number(num, in->column, where));
		if (in->indicator)
			out[1] = isnull ? 1.0f : 0.0f;
		return;
	}
	if (isnull)
	{
		if (in->null_category)
			out[in->n_categories] = 1.0f;
		return;					/* a NULL training never saw: "other", all zeros */
	}
	hit = bsearch(&cat, in->categories, in->n_categories, sizeof(char *), cmp_category);
	if (hit)
		out[hit - in->categories] = 1.0f;
}

/* Encodes one input given as a datum of conversion conv (the value's own type). */
static void
encode_datum(const UnlearnEncoder *enc, const UnlearnInput *in, UnlearnInputConv conv,
			 Datum d, bool isnull, float *dst, const char *where)
{
	char	   *cat = NULL;
	double		num = 0;

	if (!isnull && in->kind == UL_INPUT_CATEGORY)
		cat = category_of(conv, d);
	else if (!isnull)
		num = number_of(conv, d);
	unlearn_encode_value(enc, in, isnull, num, cat, dst, where);
	if (cat)
		pfree(cat);
}

/*
 * Where each input is in a row type, matched by name, with the conversion of
 * that column's own type.  same_type asks for the trained types exactly (the
 * capture, the training table); otherwise any type of the same family will
 * do (numbers for numbers, dates and timestamps for either, any category
 * type for categories).  Errors 42703 / 42804 naming the column.
 */
void
unlearn_encoder_match(const UnlearnEncoder *enc, TupleDesc desc, bool same_type, UnlearnRowMap *map)
{
	map->attnums = palloc(sizeof(int) * enc->n_inputs);
	map->convs = palloc(sizeof(UnlearnInputConv) * enc->n_inputs);
	for (int i = 0; i < enc->n_inputs; i++)
	{
		const UnlearnInput *in = &enc->inputs[i];
		Oid			type;
		int			att = unlearn_desc_attnum(desc, in->column);

		if (att == 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("the row has no column \"%s\", a feature of the model", in->column)));
		type = TupleDescAttr(desc, att - 1)->atttypid;
		if (same_type ? type != in->type :
			(!unlearn_input_conv(type, &map->convs[i]) || conv_family(map->convs[i]) != conv_family(in->conv)))
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("column \"%s\" of the row is %s, but the model was trained on %s",
							in->column, format_type_be(type), format_type_be(in->type))));
		map->convs[i] = same_type ? in->conv : map->convs[i];
		map->attnums[i] = att;
	}
}

/* Encodes the inputs of a tuple of desc (map from unlearn_encoder_match) into dst[n_features]. */
void
unlearn_encode_heap(const UnlearnEncoder *enc, const UnlearnRowMap *map, HeapTuple tup, TupleDesc desc,
					float *dst, const char *where)
{
	for (int i = 0; i < enc->n_inputs; i++)
	{
		bool		isnull;
		Datum		d = heap_getattr(tup, map->attnums[i], desc, &isnull);

		encode_datum(enc, &enc->inputs[i], map->convs[i], d, isnull, dst, where);
	}
}

/* True if every input of the tuple can be encoded: no NULL under "nulls": "error", numbers finite. */
static bool
tuple_encodable(const UnlearnEncoder *enc, const UnlearnRowMap *map, HeapTuple tup, TupleDesc desc)
{
	for (int i = 0; i < enc->n_inputs; i++)
	{
		bool		isnull;
		Datum		d = heap_getattr(tup, map->attnums[i], desc, &isnull);
		double		v;

		if (isnull)
		{
			if (enc->nulls_error)
				return false;
			continue;
		}
		if (enc->inputs[i].kind != UL_INPUT_NUMBER)
			continue;
		v = number_of(map->convs[i], d);
		if (!isfinite(v) || fabs(v) > FLT_MAX)
			return false;
	}
	return true;
}

/* A HeapTuple over a composite datum's header (a row given to a function). */
HeapTuple
unlearn_composite_tuple(HeapTupleHeader row, HeapTupleData *tmp)
{
	tmp->t_len = HeapTupleHeaderGetDatumLength(row);
	ItemPointerSetInvalid(&tmp->t_self);
	tmp->t_tableOid = InvalidOid;
	tmp->t_data = row;
	return tmp;
}

/*
 * Encodes the inputs of a tuple of desc.  lenient: a row with a value the
 * model cannot encode returns false instead of erroring (the capture: such
 * a row was never learned).
 */
bool
unlearn_encode_tuple(const UnlearnEncoder *enc, const UnlearnRowMap *map, HeapTuple tup,
					 TupleDesc desc, float *dst, bool lenient)
{
	if (lenient && !tuple_encodable(enc, map, tup, desc))
		return false;
	unlearn_encode_heap(enc, map, tup, desc, dst, "The row");
	return true;
}
