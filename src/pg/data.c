/*
 * data.c: reading training and evaluation rows from a table into the dense
 * float matrices the numeric core works on, with every check a user needs
 * (types, NULLs, ragged arrays, non-finite values) reported with a SQLSTATE.
 */
#include "postgres.h"

#include <float.h>
#include <math.h>

#include "access/htup_details.h"
#include "catalog/pg_attribute.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

#include "unlearn_pg.h"

#define FETCH_ROWS 4096

/* Checks that relid has the named column and returns its type. */
Oid
unlearn_column_type(Oid relid, const char *column, const char *role)
{
	AttrNumber	attnum = get_attnum(relid, column);

	if (attnum == InvalidAttrNumber || attnum < 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of relation \"%s\" does not exist",
						column, get_rel_name(relid)),
				 errdetail("It was given as the %s column.", role)));
	return get_atttype(relid, attnum);
}

/* A double precision feature value as training reads it (see data.h). */
float
unlearn_real_feature(double v)
{
	if (isfinite(v) && fabs(v) > FLT_MAX)
		return v > 0 ? INFINITY : -INFINITY;
	return (float) v;
}

/*
 * Copies one feature array into dst (n_features floats), checking it.
 * row_no names the row in messages; 0 means a function argument.
 */
static void
copy_feature_array(ArrayType *arr, int n_features, float *dst, int64 row_no)
{
	Oid			elemtype = ARR_ELEMTYPE(arr);
	int			n;

	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("feature arrays must be one-dimensional"),
				 row_no ? errdetail("Row %lld has a %d-dimensional array.", (long long) row_no, ARR_NDIM(arr)) : 0));
	n = ARR_NDIM(arr) == 0 ? 0 : ARR_DIMS(arr)[0];
	if (n != n_features)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("feature arrays must all have %d elements", n_features),
				 row_no ? errdetail("Row %lld has %d.", (long long) row_no, n) : errdetail("The array has %d.", n)));
	if (ARR_HASNULL(arr))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("feature arrays must not contain NULL elements"),
				 row_no ? errdetail("Row %lld has a NULL element.", (long long) row_no) : 0));

	if (elemtype == FLOAT4OID)
		memcpy(dst, ARR_DATA_PTR(arr), sizeof(float) * n);
	else if (elemtype == FLOAT8OID)
	{
		const double *src = (const double *) ARR_DATA_PTR(arr);

		for (int j = 0; j < n; j++)
		{
			dst[j] = unlearn_real_feature(src[j]);
			if (isinf(dst[j]) && isfinite(src[j]))
				ereport(ERROR,
						(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
						 errmsg("feature value %g is out of range for real", src[j]),
						 row_no ? errdetail("Row %lld, element %d.", (long long) row_no, j + 1)
						 : errdetail("Element %d.", j + 1)));
		}
	}
	else
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("features must be real[] or double precision[], not %s[]",
						format_type_be(elemtype))));

	for (int j = 0; j < n; j++)
		if (!isfinite(dst[j]))
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("feature values must be finite"),
					 row_no ? errdetail("Row %lld, element %d is %s.", (long long) row_no, j + 1,
										isnan(dst[j]) ? "NaN" : "infinite")
					 : errdetail("Element %d is %s.", j + 1, isnan(dst[j]) ? "NaN" : "infinite")));
}

/*
 * True if arr is a queued feature copy the worker can use: a one-dimensional
 * real[] of n_features finite values without NULLs.
 */
bool
unlearn_feature_array_ok(ArrayType *arr, int n_features)
{
	const float *v;

	if (ARR_NDIM(arr) != 1 || ARR_DIMS(arr)[0] != n_features || ARR_HASNULL(arr) ||
		ARR_ELEMTYPE(arr) != FLOAT4OID)
		return false;
	v = (const float *) ARR_DATA_PTR(arr);
	for (int j = 0; j < n_features; j++)
		if (!isfinite(v[j]))
			return false;
	return true;
}

/* Copies a real[] or double precision[] argument into n_features floats. */
float *
unlearn_features_from_array(ArrayType *arr, int n_features)
{
	float	   *out = palloc(sizeof(float) * n_features);

	copy_feature_array(arr, n_features, out, 0);
	return out;
}

/* Integer value of an int2/int4/int8 datum. */
int64
unlearn_int_datum(Datum d, Oid typid)
{
	switch (typid)
	{
		case INT2OID:
			return DatumGetInt16(d);
		case INT4OID:
			return DatumGetInt32(d);
		default:
			return DatumGetInt64(d);
	}
}

/* True for the types an id may have (smallint, integer, bigint), which unlearn_int_datum reads. */
bool
unlearn_is_int_type(Oid typid)
{
	return typid == INT2OID || typid == INT4OID || typid == INT8OID;
}

/* qsort/bsearch order of int64s. */
int
unlearn_cmp_int64(const void *a, const void *b)
{
	int64		x = *(const int64 *) a,
				y = *(const int64 *) b;

	return (x > y) - (x < y);
}

static int
cmp_cstring_ptr(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/* Index of v among the model's integer classes, or -1. */
static int
find_int_class(const UnlearnModel *model, int64 v)
{
	int64	   *hit = bsearch(&v, model->class_ints, model->n_classes, sizeof(int64), unlearn_cmp_int64);

	return hit ? (int) (hit - model->class_ints) : -1;
}

/* Index of s among the model's text classes, or -1. */
static int
find_text_class(const UnlearnModel *model, const char *s)
{
	char	  **hit = bsearch(&s, model->classes, model->n_classes, sizeof(char *), cmp_cstring_ptr);

	return hit ? (int) (hit - model->classes) : -1;
}

/* Output unit of a label given in text form, or -1 if it is not a class of the model. */
int
unlearn_class_index(const UnlearnModel *model, const char *label)
{
	if (model->label_kind == LABEL_INT)
	{
		char	   *end;
		long long	v;

		errno = 0;
		v = strtoll(label, &end, 10);
		if (errno != 0 || end == label || *end != '\0')
			return -1;
		return find_int_class(model, (int64) v);
	}
	return find_text_class(model, label);
}

/* Checks the types of the three columns; returns the label kind. */
static UnlearnLabelKind
check_column_types(const UnlearnDataSpec *spec, Oid *id_type, Oid *feat_type, Oid *label_type)
{
	UnlearnLabelKind kind;

	if (spec->id_column)
	{
		*id_type = unlearn_column_type(spec->relid, spec->id_column, "id");
		if (!unlearn_is_int_type(*id_type))
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("id column \"%s\" must be smallint, integer or bigint, not %s",
							spec->id_column, format_type_be(*id_type))));
	}
	*feat_type = spec->encoder ? InvalidOid : unlearn_column_type(spec->relid, spec->features_column, "features");
	if (!spec->encoder && *feat_type != FLOAT4ARRAYOID && *feat_type != FLOAT8ARRAYOID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("features column \"%s\" must be real[] or double precision[], not %s",
						spec->features_column, format_type_be(*feat_type))));
	*label_type = unlearn_column_type(spec->relid, spec->label_column, "label");
	if (!unlearn_label_kind_for_type(*label_type, &kind))
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("label column \"%s\" must be smallint, integer, bigint, text or varchar, not %s",
						spec->label_column, format_type_be(*label_type))));
	if (spec->model && kind != spec->model->label_kind)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("label column \"%s\" is %s but model \"%s\" has %s labels",
						spec->label_column, format_type_be(*label_type), spec->model->name,
						spec->model->label_kind == LABEL_INT ? "integer" : "text")));
	return kind;
}

/* One read in progress: what to read, the column types, and the buffers as they grow. */
typedef struct DataReader
{
	const UnlearnDataSpec *spec;
	Oid			id_type;
	Oid			label_type;
	UnlearnLabelKind kind;
	int64		cap;			/* rows the buffers hold */
	int			n_features;		/* 0 until the first row when the spec leaves it open */
	int64	   *int_labels;		/* labels collected for training (spec->model NULL) */
	char	  **text_labels;
	UnlearnEncoderFit *fit;		/* column models in training: the raw values */
	UnlearnRowMap map;			/* column models: where each input is in a fetched row */
	bool		mapped;
	UnlearnData *out;
} DataReader;

/*
 * The SELECT of the id (or NULL), the label and the features (the array
 * column, or each input column), with the spec's filter, ordered by id.
 */
static char *
build_query(const UnlearnDataSpec *spec)
{
	StringInfoData query;

	initStringInfo(&query);
	appendStringInfo(&query, "SELECT %s, %s",
					 spec->id_column ? quote_identifier(spec->id_column) : "NULL::bigint",
					 quote_identifier(spec->label_column));
	if (spec->encoder == NULL)
		appendStringInfo(&query, ", %s", quote_identifier(spec->features_column));
	else
		for (int i = 0; i < spec->encoder->n_inputs; i++)
			appendStringInfo(&query, ", %s", quote_identifier(spec->encoder->inputs[i].column));
	if (spec->read_tableoid)	/* last: a system column, no user column can be named so */
		appendStringInfoString(&query, ", tableoid");
	appendStringInfo(&query, " FROM %s", unlearn_qualified_name(spec->relid));
	if (spec->where_clause)
		appendStringInfo(&query, " WHERE %s", spec->where_clause);
	if (spec->id_column)
		appendStringInfo(&query, " ORDER BY %s", quote_identifier(spec->id_column));
	return query.data;
}

/* Checks the column types and allocates the first buffers (X waits for the first row). */
static void
start_read(DataReader *r, const UnlearnDataSpec *spec, UnlearnData *out)
{
	Oid			feat_type;

	memset(r, 0, sizeof(*r));
	r->spec = spec;
	r->id_type = InvalidOid;
	r->kind = check_column_types(spec, &r->id_type, &feat_type, &r->label_type);
	r->cap = spec->expect_rows > 0 ? spec->expect_rows : 1024;
	r->n_features = spec->n_features;
	r->out = out;
	if (spec->encoder && spec->fit_encoder)
		r->fit = unlearn_fit_start(spec->encoder);
	memset(out, 0, sizeof(*out));
	out->y = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int) * r->cap);
	if (spec->id_column)
		out->ids = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int64) * r->cap);
	if (spec->read_tableoid)
		out->tableoids = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(Oid) * r->cap);
	if (spec->model == NULL)
	{
		if (r->kind == LABEL_INT)
			r->int_labels = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int64) * r->cap);
		else
			r->text_labels = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(char *) * r->cap);
	}
}

/* A row's id (0 without an id column), features and label; NULLs refused. */
static int64
row_values(const DataReader *r, HeapTuple tup, TupleDesc desc, Datum *feat_d, Datum *label_d)
{
	const UnlearnDataSpec *spec = r->spec;
	bool		isnull;
	Datum		id_d = SPI_getbinval(tup, desc, 1, &isnull);
	int64		id = 0;

	if (spec->id_column)
	{
		if (isnull)
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("id column \"%s\" must not be NULL", spec->id_column)));
		id = unlearn_int_datum(id_d, r->id_type);
	}
	*feat_d = spec->encoder ? (Datum) 0 : SPI_getbinval(tup, desc, 3, &isnull);
	if (!spec->encoder && isnull)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("features column \"%s\" must not be NULL", spec->features_column),
				 spec->id_column ? errdetail("Row with id %lld.", (long long) id) : 0));
	*label_d = SPI_getbinval(tup, desc, 2, &isnull);
	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("label column \"%s\" must not be NULL", spec->label_column),
				 spec->id_column ? errdetail("Row with id %lld.", (long long) id) : 0));
	return id;
}

/* On the first row: the feature count (learnt from it if open), checked, and X allocated. */
static void
size_features(DataReader *r, Datum feat_d)
{
	if (r->n_features == 0)
	{
		ArrayType  *first = DatumGetArrayTypeP(feat_d);

		r->n_features = ARR_NDIM(first) == 1 ? ARR_DIMS(first)[0] : 0;
	}
	if (r->n_features <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("feature arrays must be one-dimensional and not empty")));
	if (r->n_features > NN_MAX_DIM)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("feature arrays have %d elements; at most %d are supported",
						r->n_features, NN_MAX_DIM)));
	r->out->X = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(float) * r->cap * r->n_features);
}

/* Room for row n: the unlearn.max_training_rows cap, then the buffers doubled when full. */
static void
make_room(DataReader *r, int64 n)
{
	UnlearnData *out = r->out;

	if (n >= unlearn_max_rows)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("relation \"%s\" has more than %d rows",
						get_rel_name(r->spec->relid), unlearn_max_rows),
				 errhint("Raise unlearn.max_training_rows or use a sample of the table.")));
	if (n < r->cap)
		return;
	r->cap *= 2;
	/* under a bound (array rows), no room past the row that passes it */
	if (r->spec->max_held_bytes > 0 && !r->fit && r->n_features > 0)
		r->cap = Max(n + 1, Min(r->cap, r->spec->max_held_bytes / UNLEARN_ROW_BYTES(r->n_features) + 1));
	if (out->X)
		out->X = repalloc_huge(out->X, sizeof(float) * r->cap * r->n_features);
	out->y = repalloc_huge(out->y, sizeof(int) * r->cap);
	if (out->ids)
		out->ids = repalloc_huge(out->ids, sizeof(int64) * r->cap);
	if (out->tableoids)
		out->tableoids = repalloc_huge(out->tableoids, sizeof(Oid) * r->cap);
	if (r->int_labels)
		r->int_labels = repalloc_huge(r->int_labels, sizeof(int64) * r->cap);
	if (r->text_labels)
		r->text_labels = repalloc_huge(r->text_labels, sizeof(char *) * r->cap);
}

/* Row n's label: its class of spec->model (-1 if none), or collected for training. */
static void
store_label(DataReader *r, int64 n, Datum label_d)
{
	const UnlearnModel *model = r->spec->model;

	if (r->kind == LABEL_INT)
	{
		int64		v = unlearn_int_datum(label_d, r->label_type);

		if (model)
			r->out->y[n] = find_int_class(model, v);
		else
			r->int_labels[n] = v;
	}
	else
	{
		char	   *s = TextDatumGetCString(label_d);

		if (model)
		{
			r->out->y[n] = find_text_class(model, s);
			pfree(s);
		}
		else
			r->text_labels[n] = s;
	}
}

/* A column model's row n: kept raw while learning the encoding, else encoded into X. */
static void
read_inputs(DataReader *r, int64 n, int64 id, HeapTuple tup, TupleDesc desc)
{
	const UnlearnEncoder *enc = r->spec->encoder;

	if (!r->mapped)
	{
		unlearn_encoder_match(enc, desc, !r->spec->any_types, &r->map);
		r->mapped = true;
	}
	if (r->fit)
	{
		Datum	   *values = palloc(sizeof(Datum) * enc->n_inputs);
		bool	   *nulls = palloc(sizeof(bool) * enc->n_inputs);

		for (int i = 0; i < enc->n_inputs; i++)
			values[i] = heap_getattr(tup, r->map.attnums[i], desc, &nulls[i]);
		unlearn_fit_add_row(r->fit, n, values, nulls, id);
		pfree(values);
		pfree(nulls);
	}
	else
	{
		char	   *where = psprintf("Row with id %lld", (long long) id);	/* names the row in errors */

		unlearn_encode_heap(enc, &r->map, tup, desc, r->out->X + (size_t) n * r->n_features, where);
		pfree(where);
	}
}

/* Reads and checks one row into slot n. */
static void
read_row(DataReader *r, int64 n, HeapTuple tup, TupleDesc desc)
{
	UnlearnData *out = r->out;
	Datum		feat_d;
	Datum		label_d;
	int64		id = row_values(r, tup, desc, &feat_d, &label_d);
	ArrayType  *arr;

	if (r->spec->encoder)
	{
		if (r->n_features == 0 && !r->fit)
			r->n_features = r->spec->encoder->n_features;
		if (out->X == NULL && !r->fit)
			out->X = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(float) * r->cap * r->n_features);
		make_room(r, n);
		read_inputs(r, n, r->spec->id_column ? id : n + 1, tup, desc);
	}
	else
	{
		if (r->n_features == 0 || out->X == NULL)
			size_features(r, feat_d);
		make_room(r, n);
		arr = DatumGetArrayTypeP(feat_d);
		/* messages name the row by its id, or by its position (1-based) without one */
		copy_feature_array(arr, r->n_features, out->X + (size_t) n * r->n_features,
						   r->spec->id_column ? id : n + 1);
		if ((Pointer) arr != DatumGetPointer(feat_d))
			pfree(arr);
	}
	if (out->ids)
		out->ids[n] = id;
	if (out->tableoids)
	{
		bool		isnull;

		out->tableoids[n] = DatumGetObjectId(SPI_getbinval(tup, desc, desc->natts, &isnull));
		Assert(!isnull);
	}
	store_label(r, n, label_d);
}

/*
 * True when the n rows read have reached spec->max_held_bytes: the bytes of
 * an array model's rows (UNLEARN_ROW_BYTES), or a column model's raw values
 * while its encoding is learned (a number or a pointer and a NULL flag per
 * input, and the label and id).
 */
static bool
held_too_much(const DataReader *r, int64 n)
{
	const UnlearnDataSpec *spec = r->spec;
	int64		row_bytes;

	if (spec->max_held_bytes <= 0)
		return false;
	if (spec->encoder && r->fit)
		row_bytes = (int64) spec->encoder->n_inputs * (sizeof(double) + 1) + 16;
	else
		row_bytes = UNLEARN_ROW_BYTES(r->n_features);
	return n * row_bytes > spec->max_held_bytes;
}

/* Integer labels: the distinct ones, sorted, become the classes; rows map to them. */
static void
map_int_labels(const int64 *labels, int64 n, UnlearnData *out)
{
	int64	   *sorted = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int64) * n);
	int			nd = 0;

	memcpy(sorted, labels, sizeof(int64) * n);
	qsort(sorted, n, sizeof(int64), unlearn_cmp_int64);
	for (int64 i = 0; i < n; i++)
		if (i == 0 || sorted[i] != sorted[i - 1])
			sorted[nd++] = sorted[i];
	out->n_labels = nd;
	out->labels = palloc(sizeof(char *) * nd);
	for (int i = 0; i < nd; i++)
		out->labels[i] = psprintf(INT64_FORMAT, sorted[i]);
	for (int64 i = 0; i < n; i++)
	{
		int64	   *hit = bsearch(&labels[i], sorted, nd, sizeof(int64), unlearn_cmp_int64);

		out->y[i] = (int) (hit - sorted);
	}
}

/* Text labels: the distinct ones, sorted, become the classes; rows map to them. */
static void
map_text_labels(char **labels, int64 n, UnlearnData *out)
{
	char	  **sorted = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(char *) * n);
	int			nd = 0;

	memcpy(sorted, labels, sizeof(char *) * n);
	qsort(sorted, n, sizeof(char *), cmp_cstring_ptr);
	for (int64 i = 0; i < n; i++)
		if (i == 0 || strcmp(sorted[i], sorted[i - 1]) != 0)
			sorted[nd++] = sorted[i];
	out->n_labels = nd;
	out->labels = sorted;
	for (int64 i = 0; i < n; i++)
	{
		char	  **hit = bsearch(&labels[i], sorted, nd, sizeof(char *), cmp_cstring_ptr);

		out->y[i] = (int) (hit - sorted);
	}
}

/* A spec reading a model's columns (ids included) from its training table, labels mapped to its classes. */
void
unlearn_model_data_spec(const UnlearnModel *model, UnlearnDataSpec *spec)
{
	memset(spec, 0, sizeof(*spec));
	spec->relid = model->relid;
	spec->id_column = model->id_column;
	spec->features_column = model->features_column;
	spec->label_column = model->label_column;
	spec->n_features = model->n_features;
	spec->encoder = model->encoder;
	spec->model = model;
}

/*
 * Reads the rows with an SPI cursor (the caller is connected) into the
 * caller's memory context: features into a dense matrix, labels mapped to
 * class indices (collected and sorted when spec->model is NULL), ids if
 * asked for.
 */
void
unlearn_read_data(const UnlearnDataSpec *spec, UnlearnData *out)
{
	DataReader	r;
	Portal		portal;
	int64		n = 0;
	MemoryContext cxt = CurrentMemoryContext;	/* SPI's calls return in its procedure context */

	start_read(&r, spec, out);
	portal = SPI_cursor_open_with_args(NULL, build_query(spec), spec->nargs, spec->argtypes,
									   spec->args, NULL, true, CURSOR_OPT_NO_SCROLL);
	MemoryContextSwitchTo(cxt);
	for (;;)
	{
		SPI_cursor_fetch(portal, true, spec->expect_rows > 0 ? Min(FETCH_ROWS, spec->expect_rows) : FETCH_ROWS);
		MemoryContextSwitchTo(cxt);
		if (SPI_processed == 0)
			break;
		for (uint64 i = 0; i < SPI_processed && !out->truncated; i++)
		{
			read_row(&r, n++, SPI_tuptable->vals[i], SPI_tuptable->tupdesc);
			out->truncated = held_too_much(&r, n);
		}
		SPI_freetuptable(SPI_tuptable);
		CHECK_FOR_INTERRUPTS();
		unlearn_throttle_point();	/* the worker gives way to writing sessions (throttle.c) */
		if (out->truncated)
			break;				/* the caller reads the table in chunks instead */
	}
	SPI_cursor_close(portal);
	MemoryContextSwitchTo(cxt);

	out->n = n;
	if (out->truncated)
	{
		out->n_features = r.n_features;
		return;
	}
	if (r.fit && n > 0)
	{
		out->X = unlearn_fit_finish(r.fit, n);
		r.n_features = spec->encoder->n_features;
	}
	out->n_features = r.n_features;
	if (spec->model == NULL && n > 0)
	{
		if (r.kind == LABEL_INT)
			map_int_labels(r.int_labels, n, out);
		else
			map_text_labels(r.text_labels, n, out);
	}
}

/* Drops the rows whose label is not a class of the model, keeping the others in order. */
void
unlearn_drop_unknown_labels(UnlearnData *rows)
{
	int64		m = 0;

	for (int64 i = 0; i < rows->n; i++)
	{
		if (rows->y[i] < 0)
			continue;
		if (m != i)
		{
			memcpy(rows->X + m * rows->n_features, rows->X + i * rows->n_features,
				   sizeof(float) * rows->n_features);
			rows->y[m] = rows->y[i];
			if (rows->ids)
				rows->ids[m] = rows->ids[i];
			if (rows->requested_by)
				rows->requested_by[m] = rows->requested_by[i];
		}
		m++;
	}
	rows->n = m;
}

/*
 * Reads the rows as unlearn_read_data does, under unlearn.max_training_memory:
 * with a bound, in a memory context of their own, and when they would hold
 * more, stops, drops them and returns true (out has only n_features: the
 * caller reads the table in chunks, stream.c).  Without a bound it is
 * unlearn_read_data.
 */
bool
unlearn_read_data_bounded(UnlearnDataSpec *spec, UnlearnData *out)
{
	MemoryContext cxt;
	MemoryContext old;
	int			n_features;

	spec->max_held_bytes = unlearn_training_memory_bytes();
	if (spec->max_held_bytes == 0)
	{
		unlearn_read_data(spec, out);
		return false;
	}
	cxt = AllocSetContextCreate(CurrentMemoryContext, "unlearn training rows", ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(cxt);
	unlearn_read_data(spec, out);
	MemoryContextSwitchTo(old);
	spec->max_held_bytes = 0;
	if (!out->truncated)
		return false;
	n_features = out->n_features;
	MemoryContextDelete(cxt);
	memset(out, 0, sizeof(*out));
	out->n_features = n_features;
	return true;
}
