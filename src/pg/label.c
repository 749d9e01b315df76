/*
 * label.c: the unlearn_label type returned by unlearn_predict.
 *
 * A model's labels are integers or text, but a SQL function has one return
 * type.  unlearn_label stores the label's text form (the same bytes as text)
 * and has = and <> against integer, bigint and text, so
 * `unlearn_predict(m, x) = label` works without casts for both kinds.
 */
#include "postgres.h"

#include "access/hash.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "fmgr.h"
#include "libpq/pqformat.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"

#include "unlearn_pg.h"

#define PG_GETARG_LABEL_PP(n) PG_GETARG_TEXT_PP(n)

/* Which label column types we accept, and as which kind. */
bool
unlearn_label_kind_for_type(Oid typid, UnlearnLabelKind *kind)
{
	switch (typid)
	{
		case INT2OID:
		case INT4OID:
		case INT8OID:
			*kind = LABEL_INT;
			return true;
			/* not char(n): its padding would make labels compare unequal */
		case TEXTOID:
		case VARCHAROID:
			*kind = LABEL_TEXT;
			return true;
		default:
			return false;
	}
}

/* Builds a label datum from its text form. */
Datum
unlearn_label_from_cstring(const char *s)
{
	return PointerGetDatum(cstring_to_text(s));
}

PG_FUNCTION_INFO_V1(unlearn_label_in);
/* Text input: any string is a label. */
Datum
unlearn_label_in(PG_FUNCTION_ARGS)
{
	PG_RETURN_DATUM(unlearn_label_from_cstring(PG_GETARG_CSTRING(0)));
}

PG_FUNCTION_INFO_V1(unlearn_label_out);
/* Text output: the label as stored. */
Datum
unlearn_label_out(PG_FUNCTION_ARGS)
{
	PG_RETURN_CSTRING(text_to_cstring(PG_GETARG_LABEL_PP(0)));
}

PG_FUNCTION_INFO_V1(unlearn_label_recv);
/* Binary input: same wire format as text. */
Datum
unlearn_label_recv(PG_FUNCTION_ARGS)
{
	StringInfo	buf = (StringInfo) PG_GETARG_POINTER(0);
	int			nbytes;
	char	   *str = pq_getmsgtext(buf, buf->len - buf->cursor, &nbytes);

	PG_RETURN_DATUM(PointerGetDatum(cstring_to_text_with_len(str, nbytes)));
}

PG_FUNCTION_INFO_V1(unlearn_label_send);
/* Binary output: same wire format as text. */
Datum
unlearn_label_send(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_LABEL_PP(0);
	StringInfoData buf;

	pq_begintypsend(&buf);
	pq_sendtext(&buf, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

/* Byte-wise comparison of two labels (shorter prefix first). */
static int
label_compare(text *a, text *b)
{
	int			la = VARSIZE_ANY_EXHDR(a),
				lb = VARSIZE_ANY_EXHDR(b);
	int			c = memcmp(VARDATA_ANY(a), VARDATA_ANY(b), Min(la, lb));

	if (c != 0)
		return c < 0 ? -1 : 1;
	return (la > lb) - (la < lb);
}

/* Compares the label text with a string of given length. */
static bool
label_equals_bytes(text *a, const char *s, int len)
{
	return VARSIZE_ANY_EXHDR(a) == len && memcmp(VARDATA_ANY(a), s, len) == 0;
}

/* True when the label is the decimal form of v (labels of integer models are canonical). */
static bool
label_equals_int(text *a, int64 v)
{
	char		buf[MAXINT8LEN + 1];
	int			len = pg_lltoa(v, buf);

	return label_equals_bytes(a, buf, len);
}

PG_FUNCTION_INFO_V1(unlearn_label_cmp);
Datum
unlearn_label_cmp(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT32(label_compare(PG_GETARG_LABEL_PP(0), PG_GETARG_LABEL_PP(1)));
}

#define LABEL_CMP_FN(fname, op) \
PG_FUNCTION_INFO_V1(fname); \
Datum \
fname(PG_FUNCTION_ARGS) \
{ \
	PG_RETURN_BOOL(label_compare(PG_GETARG_LABEL_PP(0), PG_GETARG_LABEL_PP(1)) op 0); \
}

LABEL_CMP_FN(unlearn_label_eq, ==)
LABEL_CMP_FN(unlearn_label_ne, !=)
LABEL_CMP_FN(unlearn_label_lt, <)
LABEL_CMP_FN(unlearn_label_le, <=)
LABEL_CMP_FN(unlearn_label_gt, >)
LABEL_CMP_FN(unlearn_label_ge, >=)

PG_FUNCTION_INFO_V1(unlearn_label_hash);
/* Hash consistent with byte equality. */
Datum
unlearn_label_hash(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_LABEL_PP(0);

	return hash_any((unsigned char *) VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
}

#define LABEL_INT_FNS(eqname, nename, reqname, rnename, getter) \
PG_FUNCTION_INFO_V1(eqname); \
Datum eqname(PG_FUNCTION_ARGS) \
{ PG_RETURN_BOOL(label_equals_int(PG_GETARG_LABEL_PP(0), (int64) getter(1))); } \
PG_FUNCTION_INFO_V1(nename); \
Datum nename(PG_FUNCTION_ARGS) \
{ PG_RETURN_BOOL(!label_equals_int(PG_GETARG_LABEL_PP(0), (int64) getter(1))); } \
PG_FUNCTION_INFO_V1(reqname); \
Datum reqname(PG_FUNCTION_ARGS) \
{ PG_RETURN_BOOL(label_equals_int(PG_GETARG_LABEL_PP(1), (int64) getter(0))); } \
PG_FUNCTION_INFO_V1(rnename); \
Datum rnename(PG_FUNCTION_ARGS) \
{ PG_RETURN_BOOL(!label_equals_int(PG_GETARG_LABEL_PP(1), (int64) getter(0))); }

LABEL_INT_FNS(unlearn_label_eq_int8, unlearn_label_ne_int8,
			  unlearn_int8_eq_label, unlearn_int8_ne_label, PG_GETARG_INT64)
LABEL_INT_FNS(unlearn_label_eq_int4, unlearn_label_ne_int4,
			  unlearn_int4_eq_label, unlearn_int4_ne_label, PG_GETARG_INT32)
LABEL_INT_FNS(unlearn_label_eq_int2, unlearn_label_ne_int2,
			  unlearn_int2_eq_label, unlearn_int2_ne_label, PG_GETARG_INT16)

/* Label vs text: byte equality of the text forms. */
static bool
label_equals_text(text *label, text *t)
{
	return label_equals_bytes(label, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
}

PG_FUNCTION_INFO_V1(unlearn_label_eq_text);
Datum
unlearn_label_eq_text(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(label_equals_text(PG_GETARG_LABEL_PP(0), PG_GETARG_TEXT_PP(1)));
}

PG_FUNCTION_INFO_V1(unlearn_label_ne_text);
Datum
unlearn_label_ne_text(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(!label_equals_text(PG_GETARG_LABEL_PP(0), PG_GETARG_TEXT_PP(1)));
}

PG_FUNCTION_INFO_V1(unlearn_text_eq_label);
Datum
unlearn_text_eq_label(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(label_equals_text(PG_GETARG_LABEL_PP(1), PG_GETARG_TEXT_PP(0)));
}

PG_FUNCTION_INFO_V1(unlearn_text_ne_label);
Datum
unlearn_text_ne_label(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(!label_equals_text(PG_GETARG_LABEL_PP(1), PG_GETARG_TEXT_PP(0)));
}

/* Parses an integer label or errors with invalid_text_representation. */
static int64
label_to_int64(text *t)
{
	char	   *s = text_to_cstring(t);

	return DatumGetInt64(DirectFunctionCall1(int8in, CStringGetDatum(s)));
}

PG_FUNCTION_INFO_V1(unlearn_label_to_int8);
Datum
unlearn_label_to_int8(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(label_to_int64(PG_GETARG_LABEL_PP(0)));
}

PG_FUNCTION_INFO_V1(unlearn_label_to_int4);
Datum
unlearn_label_to_int4(PG_FUNCTION_ARGS)
{
	int64		v = label_to_int64(PG_GETARG_LABEL_PP(0));

	if (v < PG_INT32_MIN || v > PG_INT32_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("label %lld is out of range for type integer", (long long) v)));
	PG_RETURN_INT32((int32) v);
}
