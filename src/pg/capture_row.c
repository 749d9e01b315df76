/*
 * capture_row.c: a removed row's values for one model, in the queue's types.
 *
 * Shared by the statement capture of DELETE (capture.c) and the row capture
 * of logical replication apply (capture_apply.c): the id as bigint, the
 * label in its text form (as label::text gives it for the label types a
 * model accepts), the features as real[] (a double precision[] column
 * converted element by element as training reads it, a column model's row
 * encoded as training encoded it).  The columns have the built-in types the
 * capture checks (unlearn_captured_model), so no user-defined function runs
 * while elevated.  Also unlearn.real_features, the same conversion for the
 * statement capture of UPDATE.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "unlearn_pg.h"

/* Where desc holds model m's id, features and label columns (an array model's, or a column model's first three). */
void
unlearn_capture_columns(TupleDesc desc, const UnlearnCapturedModel *m, UnlearnRowColumns *out)
{
	memset(out, 0, sizeof(*out));
	out->id_att = unlearn_desc_attnum(desc, m->id);
	out->feat_att = m->feat ? unlearn_desc_attnum(desc, m->feat) : 0;
	out->label_att = unlearn_desc_attnum(desc, m->label);
	Assert(out->id_att > 0 && out->label_att > 0 && (m->feat == NULL || out->feat_att > 0));
}

/* A column model's encoding, and where desc holds its inputs (SPI connected). */
void
unlearn_capture_columns_encoder(TupleDesc desc, const char *model, UnlearnRowColumns *cols)
{
	Assert(cols->feat_att == 0);
	cols->encoder = unlearn_model_lookup(model, false)->encoder;
	unlearn_encoder_match(cols->encoder, desc, true, &cols->map);
}

/*
 * The features as real[]: a real[] column's value as stored (compressed or
 * out of line, it is copied as is, as features::real[] copies it), a double
 * precision[] one converted element by element as training reads it
 * (unlearn_real_feature: no error where the cast to real[] errors, on
 * values too small or too large for real), keeping its dimensions and lower
 * bounds as the cast does.
 */
static Datum
as_real_array(Datum d, Oid typid)
{
	ArrayType  *arr;
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	if (typid == FLOAT4ARRAYOID)
		return d;
	Assert(typid == FLOAT8ARRAYOID);
	arr = DatumGetArrayTypeP(d);
	deconstruct_array(arr, FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &elems, &nulls, &n);
	for (int i = 0; i < n; i++)
		if (!nulls[i])
			elems[i] = Float4GetDatum(unlearn_real_feature(DatumGetFloat8(elems[i])));
	return PointerGetDatum(construct_md_array(elems, nulls, ARR_NDIM(arr), ARR_DIMS(arr), ARR_LBOUND(arr),
											  FLOAT4OID, 4, true, TYPALIGN_INT));
}

PG_FUNCTION_INFO_V1(unlearn_real_features_sql);
/*
 * unlearn.real_features(double precision[]) returns real[]: the capture's
 * copy of a double precision[] features column (the statement capture of
 * UPDATE), converted as the row capture converts it.  Revoked from PUBLIC.
 */
Datum
unlearn_real_features_sql(PG_FUNCTION_ARGS)
{
	PG_RETURN_DATUM(as_real_array(PG_GETARG_DATUM(0), FLOAT8ARRAYOID));
}

/* A column model's input from a tuple as real[], or NULL if it cannot be encoded (never learned). */
static ArrayType *
encoded_array(const UnlearnRowColumns *c, HeapTuple tup, TupleDesc desc)
{
	int			n = c->encoder->n_features;
	float	   *x = palloc(sizeof(float) * n);
	Datum	   *d = palloc(sizeof(Datum) * n);

	if (!unlearn_encode_tuple(c->encoder, &c->map, tup, desc, x, true))
		return NULL;
	for (int j = 0; j < n; j++)
		d[j] = Float4GetDatum(x[j]);
	return construct_array(d, n, FLOAT4OID, 4, true, TYPALIGN_INT);
}

/*
 * Reads one model's columns from a tuple; false if the model could not have
 * learned the row (id, label or features NULL, or a column model's row it
 * cannot encode).
 */
bool
unlearn_capture_read_row(TupleDesc desc, HeapTuple tup, const UnlearnRowColumns *c, UnlearnCapturedRow *out)
{
	bool		n1,
				n2,
				n3;
	Datum		id = heap_getattr(tup, c->id_att, desc, &n1);
	Datum		label = heap_getattr(tup, c->label_att, desc, &n2);
	Datum		feat = c->feat_att ? heap_getattr(tup, c->feat_att, desc, &n3) : (Datum) 0;
	Oid			label_type = TupleDescAttr(desc, c->label_att - 1)->atttypid;

	if (n1 || n2 || (c->feat_att && n3))
		return false;
	switch (TupleDescAttr(desc, c->id_att - 1)->atttypid)
	{
		case INT2OID:
			out->id = DatumGetInt16(id);
			break;
		case INT4OID:
			out->id = DatumGetInt32(id);
			break;
		default:
			out->id = DatumGetInt64(id);
	}
	if (label_type == INT2OID || label_type == INT4OID || label_type == INT8OID)
		out->label = psprintf(INT64_FORMAT, label_type == INT2OID ? (int64) DatumGetInt16(label) :
							  label_type == INT4OID ? (int64) DatumGetInt32(label) : DatumGetInt64(label));
	else
		out->label = TextDatumGetCString(label);
	if (c->feat_att)
		out->features = as_real_array(feat, TupleDescAttr(desc, c->feat_att - 1)->atttypid);
	else
	{
		ArrayType  *x = encoded_array(c, tup, desc);

		if (x == NULL)
			return false;
		out->features = PointerGetDatum(x);
	}
	return true;
}
