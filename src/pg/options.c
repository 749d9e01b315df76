/*
 * options.c: the jsonb options of unlearn_train, checked strictly (unknown
 * keys and wrong types are errors, not silently ignored).
 */
#include "postgres.h"

#include <math.h>

#include "portability/instr_time.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#include "unlearn_pg.h"

#define TRAIN_OPTION_KEYS "lr, batch_size, optimizer, momentum, weight_decay, seed"

/* Errors about one option. */
static void
bad_option(const char *key, const char *expected)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid training option \"%s\"", key),
			 errdetail("Expected %s.", expected)));
}

/* Numeric value of a jsonb scalar, or error. */
static double
option_number(const char *key, JsonbValue *v, double lo, double hi, const char *expected)
{
	double		d;

	if (v->type != jbvNumeric)
		bad_option(key, expected);
	d = DatumGetFloat8(DirectFunctionCall1(numeric_float8, NumericGetDatum(v->val.numeric)));
	if (!isfinite(d) || d < lo || d > hi)
		bad_option(key, expected);
	return d;
}

/* Fills out from options (defaults for absent keys). */
void
unlearn_parse_train_options(Jsonb *options, nn_train_options *out)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	char	   *key = NULL;

	nn_train_options_default(out);
	if (options == NULL)
		return;
	if (!JB_ROOT_IS_OBJECT(options))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("options must be a jsonb object"),
				 errhint("Known options: " TRAIN_OPTION_KEYS ".")));

	it = JsonbIteratorInit(&options->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			key = pnstrdup(v.val.string.val, v.val.string.len);
			continue;
		}
		if (tok != WJB_VALUE)
			continue;
		if (strcmp(key, "lr") == 0)
			out->lr = option_number(key, &v, 1e-9, 10, "a number in (0, 10]");
		else if (strcmp(key, "batch_size") == 0)
		{
			double		d = option_number(key, &v, 1, 65536, "an integer from 1 to 65536");

			if (d != floor(d))
				bad_option(key, "an integer from 1 to 65536");
			out->batch_size = (int) d;
		}
		else if (strcmp(key, "momentum") == 0)
			out->momentum = option_number(key, &v, 0, 0.999999, "a number in [0, 1)");
		else if (strcmp(key, "weight_decay") == 0)
			out->weight_decay = option_number(key, &v, 0, 1, "a number in [0, 1]");
		else if (strcmp(key, "seed") == 0)
		{
			double		d = option_number(key, &v, 0, 9007199254740991.0, "a non-negative integer");

			if (d != floor(d))
				bad_option(key, "a non-negative integer");
			out->seed = (uint64_t) d;
		}
		else if (strcmp(key, "optimizer") == 0)
		{
			if (v.type != jbvString)
				bad_option(key, "\"adam\" or \"sgd\"");
			if (v.val.string.len == 4 && strncmp(v.val.string.val, "adam", 4) == 0)
				out->optimizer = NN_OPT_ADAM;
			else if (v.val.string.len == 3 && strncmp(v.val.string.val, "sgd", 3) == 0)
				out->optimizer = NN_OPT_SGD;
			else
				bad_option(key, "\"adam\" or \"sgd\"");
		}
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown training option \"%s\"", key),
					 errhint("Known options: " TRAIN_OPTION_KEYS ".")));
	}
}

/* The options actually used, defaults included, for the catalog. */
Jsonb *
unlearn_train_options_to_jsonb(const nn_train_options *o, const int *hidden,
							   int n_hidden, int epochs)
{
	StringInfoData s;

	initStringInfo(&s);
	appendStringInfo(&s, "{\"optimizer\": \"%s\", \"lr\": %.7g, \"batch_size\": %d, "
					 "\"momentum\": %.7g, \"weight_decay\": %.7g, \"seed\": " UINT64_FORMAT
					 ", \"epochs\": %d, \"hidden\": [",
					 o->optimizer == NN_OPT_ADAM ? "adam" : "sgd", o->lr, o->batch_size,
					 o->momentum, o->weight_decay, o->seed, epochs);
	for (int i = 0; i < n_hidden; i++)
		appendStringInfo(&s, "%s%d", i ? ", " : "", hidden[i]);
	appendStringInfoString(&s, "]}");
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(s.data)));
}

/* Seconds elapsed since *start (an instr_time). */
double
unlearn_seconds_since(const void *start)
{
	instr_time	now;

	INSTR_TIME_SET_CURRENT(now);
	INSTR_TIME_SUBTRACT(now, *(const instr_time *) start);
	return INSTR_TIME_GET_DOUBLE(now);
}
