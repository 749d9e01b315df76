/*
 * encode.h: column models: how ordinary columns (numbers, dates, booleans,
 * text, enums, NULLs) become the model's input vector (encode.c), and how
 * the encoding is learned from the training rows (encode_fit.c).
 */
#ifndef UNLEARN_ENCODE_H
#define UNLEARN_ENCODE_H

#include "postgres.h"
#include "access/htup.h"
#include "access/tupdesc.h"
#include "utils/array.h"
#include "utils/jsonb.h"

/* How one column's value becomes numbers. */
typedef enum UnlearnInputKind
{
	UL_INPUT_NUMBER,			/* one feature (+ a missing indicator when NULLs were seen) */
	UL_INPUT_CATEGORY			/* one indicator per category seen in training */
} UnlearnInputKind;

/* The built-in conversion a column's type needs (decided once, from its base type). */
typedef enum UnlearnInputConv
{
	UL_CONV_INT2, UL_CONV_INT4, UL_CONV_INT8, UL_CONV_FLOAT4, UL_CONV_FLOAT8, UL_CONV_NUMERIC,
	UL_CONV_DATE, UL_CONV_TIMESTAMP, UL_CONV_TIMESTAMPTZ,
	UL_CONV_BOOL, UL_CONV_TEXT, UL_CONV_ENUM
} UnlearnInputConv;

/* One input column of a column model. */
typedef struct UnlearnInput
{
	char	   *column;
	Oid			type;			/* the column's type when trained (domains included) */
	UnlearnInputConv conv;
	UnlearnInputKind kind;
	int			offset;			/* first feature of this column in the input vector */
	int			width;			/* features it takes */
	double		fill;			/* number: the training mean, used for NULL */
	bool		indicator;		/* number: a missing-indicator feature follows the value */
	int			n_categories;	/* category: the non-NULL categories, sorted bytewise */
	char	  **categories;
	bool		null_category;	/* category: NULL is a category (its indicator is the last) */
} UnlearnInput;

/* A column model's whole encoding. */
typedef struct UnlearnEncoder
{
	int			n_inputs;
	UnlearnInput *inputs;
	int			n_features;		/* sum of the widths */
	bool		nulls_error;	/* {"nulls": "error"}: a NULL feature value is refused */
} UnlearnEncoder;

/* ---------- encode.c ---------- */

/* The conversion of a type (domains looked through), or false if a model cannot use it. */
bool		unlearn_input_conv(Oid type, UnlearnInputConv *conv);

/* NUMBER or CATEGORY, by conversion. */
UnlearnInputKind unlearn_input_kind(UnlearnInputConv conv);

/* The input columns of a new model, types checked (42804, 42703, 22023); offsets not yet known. */
UnlearnEncoder *unlearn_encoder_columns(Oid relid, const char *id_column, const char *label_column,
										ArrayType *feature_columns, bool nulls_error);

/* ---------- encode_catalog.c ---------- */

/* The encoder a model's catalog row records: columns (text[]), their types (oid[]), inputs (XX001 if corrupt). */
UnlearnEncoder *unlearn_encoder_from_catalog(Datum columns, Datum types, Jsonb *inputs,
											 int n_features, const char *model);

/* The jsonb the catalog records (unlearn.models.inputs). */
Jsonb	   *unlearn_encoder_to_jsonb(const UnlearnEncoder *enc);

/* The columns' names as a name[] datum, and their types as a regtype[] datum. */
Datum		unlearn_encoder_column_array(const UnlearnEncoder *enc);
Datum		unlearn_encoder_type_array(const UnlearnEncoder *enc);

/* A column's value as a number (NUMBER inputs; dates and timestamps in days), unchecked. */
double		unlearn_input_number(const UnlearnInput *in, Datum d);

/* v checked finite and within real's range (22000 naming column and where). */
double		unlearn_checked_number(double v, const char *column, const char *where);

/* A column's value as its category text (CATEGORY inputs). */
char	   *unlearn_input_category(const UnlearnInput *in, Datum d);

/* Encodes one input's value (a converted number, a category's text, or NULL) into dst + offset. */
void		unlearn_encode_value(const UnlearnEncoder *enc, const UnlearnInput *in, bool isnull,
								 double num, const char *cat, float *dst, const char *where);

/* Where a row type holds each input, and the conversion of its type (unlearn_encoder_match). */
typedef struct UnlearnRowMap
{
	int		   *attnums;
	UnlearnInputConv *convs;
} UnlearnRowMap;

/* Matches the inputs to desc's columns by name, types checked; errors 42703 / 42804 naming the column. */
void		unlearn_encoder_match(const UnlearnEncoder *enc, TupleDesc desc, bool same_type, UnlearnRowMap *map);

/* Encodes the inputs of a tuple of desc into dst[n_features]; where names it in errors. */
void		unlearn_encode_heap(const UnlearnEncoder *enc, const UnlearnRowMap *map, HeapTuple tup,
								TupleDesc desc, float *dst, const char *where);

/*
 * Encodes the inputs of a tuple of desc; lenient: false instead of an error for a value the model cannot
 * encode (a NULL under "nulls": "error", a non-finite number).
 */
bool		unlearn_encode_tuple(const UnlearnEncoder *enc, const UnlearnRowMap *map, HeapTuple tup,
								 TupleDesc desc, float *dst, bool lenient);

/* A HeapTuple over a composite datum's header (a row given to a function), in tmp. */
HeapTuple	unlearn_composite_tuple(HeapTupleHeader row, HeapTupleData *tmp);

/* A deep copy of enc in the current memory context. */
UnlearnEncoder *unlearn_encoder_copy(const UnlearnEncoder *enc);

/* ---------- encode_fit.c ---------- */

/* Raw values of the training rows, kept until the encoding is known. */
typedef struct UnlearnEncoderFit UnlearnEncoderFit;

UnlearnEncoderFit *unlearn_fit_start(UnlearnEncoder *enc);
void		unlearn_fit_add_row(UnlearnEncoderFit *fit, int64 row, const Datum *values, const bool *nulls,
								int64 id);
/* Learns categories, means and indicators, then encodes the n rows into X (allocated). */
float	   *unlearn_fit_finish(UnlearnEncoderFit *fit, int64 n);

#endif							/* UNLEARN_ENCODE_H */
