/*
 * options.c: the jsonb options of unlearn_train and of the unlearning
 * functions, checked strictly by one table-driven parser (unknown keys and
 * wrong types are errors, never silently ignored).
 */
#include "postgres.h"

#include <math.h>

#include "lib/stringinfo.h"
#include "portability/instr_time.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#include "unlearn_pg.h"
#include "unlearn_core.h"

/* Errors about one option. */
static void
bad_option(const char *what, const char *key, const char *expected)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid %s option \"%s\"", what, key),
			 errdetail("Expected %s.", expected)));
}

/* Numeric value of a jsonb scalar within [lo, hi], or error. */
static double
option_number(const char *what, const OptionSpec *spec, JsonbValue *v)
{
	double		d;

	if (v->type != jbvNumeric)
		bad_option(what, spec->key, spec->expected);
	d = DatumGetFloat8(DirectFunctionCall1(numeric_float8, NumericGetDatum(v->val.numeric)));
	if (!isfinite(d) || d < spec->lo || d > spec->hi)
		bad_option(what, spec->key, spec->expected);
	if (spec->kind != OPT_FLOAT && d != floor(d))
		bad_option(what, spec->key, spec->expected);
	return d;
}

/* Comma-separated list of the keys, for hints. */
static char *
option_keys(const OptionSpec *specs, int n)
{
	StringInfoData s;

	initStringInfo(&s);
	for (int i = 0; i < n; i++)
		appendStringInfo(&s, "%s%s", i ? ", " : "", specs[i].key);
	return s.data;
}

/*
 * Applies a jsonb object of options to the struct at `target` following
 * `specs` (fields not named keep their values).  `what` names the options
 * in messages ("training", "unlearning").
 */
void
unlearn_parse_options(Jsonb *options, const OptionSpec *specs, int n_specs,
					  void *target, const char *what)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	char	   *key = NULL;

	if (options == NULL)
		return;
	if (!JB_ROOT_IS_OBJECT(options))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s options must be a jsonb object", what),
				 errhint("Known options: %s.", option_keys(specs, n_specs))));

	it = JsonbIteratorInit(&options->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		const OptionSpec *spec = NULL;
		char	   *field;

		if (tok == WJB_KEY)
		{
			key = pnstrdup(v.val.string.val, v.val.string.len);
			continue;
		}
		if (tok != WJB_VALUE)
			continue;
		for (int i = 0; i < n_specs; i++)
			if (strcmp(specs[i].key, key) == 0)
				spec = &specs[i];
		if (spec == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown %s option \"%s\"", what, key),
					 errhint("Known options: %s.", option_keys(specs, n_specs))));
		field = (char *) target + spec->offset;
		switch (spec->kind)
		{
			case OPT_FLOAT:
				*(float *) field = (float) option_number(what, spec, &v);
				break;
			case OPT_INT:
				*(int *) field = (int) option_number(what, spec, &v);
				break;
			case OPT_UINT64:
				*(uint64_t *) field = (uint64_t) option_number(what, spec, &v);
				break;
			case OPT_ENUM:
				{
					bool		found = false;

					if (v.type == jbvString)
						for (int j = 0; spec->names[j]; j++)
							if (strlen(spec->names[j]) == v.val.string.len &&
								strncmp(spec->names[j], v.val.string.val, v.val.string.len) == 0)
							{
								*(int *) field = j;
								found = true;
							}
					if (!found)
						bad_option(what, spec->key, spec->expected);
					break;
				}
		}
	}
}

static const char *const optimizer_names[] = {"sgd", "adam", NULL};	/* nn_optimizer_kind order */

#define MAX_SEED 9007199254740991.0		/* 2^53 - 1: exact in jsonb numbers */

/* The training options; the catalog's copy also records epochs (last entry). */
static const OptionSpec train_option_specs[] = {
	{"optimizer", OPT_ENUM, offsetof(nn_train_options, optimizer), 0, 0, "\"adam\" or \"sgd\"", optimizer_names},
	{"lr", OPT_FLOAT, offsetof(nn_train_options, lr), 1e-9, 10, "a number in (0, 10]", NULL},
	{"batch_size", OPT_INT, offsetof(nn_train_options, batch_size), 1, 65536, "an integer from 1 to 65536", NULL},
	{"momentum", OPT_FLOAT, offsetof(nn_train_options, momentum), 0, 0.999999, "a number in [0, 1)", NULL},
	{"weight_decay", OPT_FLOAT, offsetof(nn_train_options, weight_decay), 0, 1, "a number in [0, 1]", NULL},
	{"seed", OPT_UINT64, offsetof(nn_train_options, seed), 0, MAX_SEED, "a non-negative integer", NULL},
	{"epochs", OPT_INT, offsetof(nn_train_options, epochs), 1, 100000, "an integer from 1 to 100000", NULL},
};

/* Fills out from training options (defaults for absent keys). */
void
unlearn_parse_train_options(Jsonb *options, nn_train_options *out)
{
	nn_train_options_default(out);
	/* epochs is an argument of unlearn_train, not an option */
	unlearn_parse_options(options, train_option_specs, lengthof(train_option_specs) - 1, out, "training");
}

/*
 * Training options for a retrain: the model's recorded options (epochs
 * included, hidden left out), then the caller's overrides.
 */
void
unlearn_parse_retrain_options(Jsonb *stored, Jsonb *overrides, nn_train_options *out)
{
	nn_train_options_default(out);
	unlearn_parse_options(stored, train_option_specs, lengthof(train_option_specs), out, "training");
	unlearn_parse_options(overrides, train_option_specs, lengthof(train_option_specs), out, "training");
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
					 optimizer_names[o->optimizer], o->lr, o->batch_size,
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
