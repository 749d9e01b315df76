/*
 * layer_options.c: the training options "input_shape" and "layers" (a
 * convolutional or dense layer list such as ["conv 32 3", "maxpool 2",
 * "dense 128"]): parsing, checking them against each other and the feature
 * count (22023), and writing them back for the catalog.
 */
#include "postgres.h"

#include <limits.h>

#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#include "unlearn_pg.h"

#define LAYER_HINT "Layers are \"conv FILTERS KERNEL\", \"maxpool SIZE\" and \"dense WIDTH\"."

/* The value of key in an options object, or NULL. */
static JsonbValue *
find_key(Jsonb *options, const char *key)
{
	if (options == NULL || !JB_ROOT_IS_OBJECT(options))
		return NULL;
	return unlearn_jsonb_key(&options->root, key);
}

/* The elements of a jsonb array value (skipping nested values), or error naming key. */
static JsonbValue *
array_elements(JsonbValue *v, const char *key, const char *expected, int max, int *n)
{
	JsonbValue *out = palloc(sizeof(JsonbValue) * max);
	JsonbIterator *it;
	JsonbValue	e;
	JsonbIteratorToken tok;

	*n = 0;
	if (v->type != jbvBinary || !JsonContainerIsArray(v->val.binary.data))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid training option \"%s\"", key),
				 errdetail("Expected %s.", expected)));
	it = JsonbIteratorInit(v->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &e, true)) != WJB_DONE)
		if (tok == WJB_ELEM)
		{
			if (*n == max)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("invalid training option \"%s\"", key),
						 errdetail("Expected %s, at most %d of them.", expected, max)));
			out[(*n)++] = e;
		}
	return out;
}

/* input_shape: exactly three integers from 1 to 65536 (channels, height, width). */
static void
parse_shape(JsonbValue *v, UnlearnArch *out)
{
	const char *expected = "an array of three integers [channels, height, width], each from 1 to 65536";
	int			n;
	JsonbValue *e = array_elements(v, "input_shape", expected, 3, &n);

	for (int i = 0; i < n; i++)
	{
		double		d = e[i].type == jbvNumeric ?
			DatumGetFloat8(DirectFunctionCall1(numeric_float8, NumericGetDatum(e[i].val.numeric))) : 0;

		if (d < 1 || d > 65536 || d != (int) d)
			n = -1;
		else
			out->in_shape[i] = (int) d;
	}
	if (n != 3)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid training option \"input_shape\""),
				 errdetail("Expected %s.", expected)));
	out->has_shape = true;
}

/* One integer token from 1 to 65536, or -1. */
static int
layer_number(const char *tok)
{
	char	   *end;
	long		v;

	if (tok == NULL)
		return -1;
	v = strtol(tok, &end, 10);
	return (*end == '\0' && end != tok && v >= 1 && v <= 65536) ? (int) v : -1;
}

/* One layer: "conv F K", "maxpool P" or "dense W"; 22023 for anything else. */
static nn_layer_spec
parse_layer(const char *text)
{
	char	   *copy = pstrdup(text);
	char	   *save = NULL;
	char	   *kind = strtok_r(copy, " ", &save);
	int			a = layer_number(strtok_r(NULL, " ", &save));
	char	   *b_tok = strtok_r(NULL, " ", &save);
	int			b = b_tok ? layer_number(b_tok) : 0;
	bool		extra = strtok_r(NULL, " ", &save) != NULL;
	nn_layer_spec spec = {NN_LAYER_DENSE, 0, 0};

	if (kind != NULL && strcmp(kind, "conv") == 0 && a > 0 && b > 0 && !extra)
		spec = (nn_layer_spec) {NN_LAYER_CONV, a, b};
	else if (kind != NULL && strcmp(kind, "maxpool") == 0 && a > 0 && b_tok == NULL)
		spec = (nn_layer_spec) {NN_LAYER_POOL, 0, a};
	else if (kind != NULL && strcmp(kind, "dense") == 0 && a > 0 && b_tok == NULL)
		spec = (nn_layer_spec) {NN_LAYER_DENSE, a, 0};
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown layer \"%s\"", text),
				 errhint(LAYER_HINT " Numbers are integers from 1 to 65536.")));
	return spec;
}

/* layers: an array of layer strings; counts the stages and collects the dense widths. */
static void
parse_layers(JsonbValue *v, UnlearnArch *out)
{
	JsonbValue *e = array_elements(v, "layers", "an array of layers such as \"conv 32 3\"",
								   UNLEARN_MAX_LAYER_SPECS, &out->n_specs);

	for (int i = 0; i < out->n_specs; i++)
	{
		if (e[i].type != jbvString)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid training option \"layers\""),
					 errdetail("Element %d is not a string.", i + 1),
					 errhint(LAYER_HINT)));
		out->specs[i] = parse_layer(pnstrdup(e[i].val.string.val, e[i].val.string.len));
		if (out->specs[i].kind != NN_LAYER_DENSE)
			out->n_stages++;
		else if (out->n_dense < NN_MAX_LAYERS - 1)
			out->dense[out->n_dense++] = out->specs[i].units;
	}
	out->has_layers = true;
}

/*
 * Reads "input_shape" and "layers" from options (either may be absent) and
 * checks that the layers fit the shape (as the core plans them); true when
 * either was given.  conv and maxpool layers need input_shape.
 */
bool
unlearn_parse_arch(Jsonb *options, UnlearnArch *out)
{
	JsonbValue *shape = find_key(options, "input_shape");
	JsonbValue *layers = find_key(options, "layers");
	char		err[256];
	uint64_t	n_params,
				ws_floats;

	memset(out, 0, sizeof(*out));
	if (shape)
		parse_shape(shape, out);
	if (layers)
		parse_layers(layers, out);
	if (out->n_stages > 0 && !out->has_shape)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("conv and maxpool layers need the training option \"input_shape\""),
				 errhint("For example \"input_shape\": [1, 28, 28] for 28 x 28 grey images.")));
	if (out->n_stages > 0 &&
		nn_plan_layers(out->in_shape, out->n_specs, out->specs, 2, 1, &n_params, &ws_floats,
					   err, sizeof(err)) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("layers do not fit input_shape [%d, %d, %d]",
						out->in_shape[0], out->in_shape[1], out->in_shape[2]),
				 errdetail("%s.", err)));
	if (out->n_specs - out->n_stages > NN_MAX_LAYERS - 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("at most %d dense layers are supported, got %d",
						NN_MAX_LAYERS - 1, out->n_specs - out->n_stages)));
	return shape != NULL || layers != NULL;
}

/* 22023 unless input_shape (when given) has as many values as the rows' features. */
void
unlearn_check_arch_features(const UnlearnArch *arch, int n_features)
{
	int64		want;

	if (!arch->has_shape)
		return;
	want = (int64) arch->in_shape[0] * arch->in_shape[1] * arch->in_shape[2];
	if (want != n_features)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("input_shape [%d, %d, %d] needs " INT64_FORMAT " features, the rows have %d",
						arch->in_shape[0], arch->in_shape[1], arch->in_shape[2], want, n_features)));
}

/* Appends ', "layers": [...]' in the canonical spelling of each layer. */
void
unlearn_append_layers(StringInfo s, const UnlearnArch *arch)
{
	appendStringInfoString(s, ", \"layers\": [");
	for (int i = 0; i < arch->n_specs; i++)
	{
		const nn_layer_spec *l = &arch->specs[i];

		appendStringInfoString(s, i ? ", " : "");
		if (l->kind == NN_LAYER_CONV)
			appendStringInfo(s, "\"conv %d %d\"", l->units, l->size);
		else if (l->kind == NN_LAYER_POOL)
			appendStringInfo(s, "\"maxpool %d\"", l->size);
		else
			appendStringInfo(s, "\"dense %d\"", l->units);
	}
	appendStringInfoChar(s, ']');
}
