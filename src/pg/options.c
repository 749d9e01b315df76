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
	if (spec->kind != OPT_FLOAT && spec->kind != OPT_FLOAT_AUTO && d != floor(d))
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
			case OPT_FLOAT_AUTO:
				if (v.type == jbvString && v.val.string.len == 4 &&
					strncmp(v.val.string.val, "auto", 4) == 0)
				{
					*(float *) field = -1.0f;
					break;
				}
				/* FALLTHROUGH */
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
			case OPT_BOOL:
				if (v.type != jbvBool)
					bad_option(what, spec->key, spec->expected);
				*(int *) field = v.val.boolean ? 1 : 0;
				break;
			case OPT_SKIP:
				break;
		}
	}
}

static const char *const optimizer_names[] = {"sgd", "adam", NULL};	/* nn_optimizer_kind order */

#define MAX_SEED 9007199254740991.0		/* 2^53 - 1: exact in jsonb numbers */

/* A jsonb value from printf-style text (metrics and recorded options). */
Jsonb *
unlearn_jsonb_printf(const char *fmt,...)
{
	StringInfoData s;

	initStringInfo(&s);
	for (;;)
	{
		va_list		args;
		int			needed;

		va_start(args, fmt);
		needed = appendStringInfoVA(&s, fmt, args);
		va_end(args);
		if (needed == 0)
			break;
		enlargeStringInfo(&s, needed);
	}
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(s.data)));
}

/*
 * The training options; the catalog's copy also records epochs (last entry).
 * standardize defaults to true for a new model (unlearn_parse_train_options)
 * and to false for a retrain whose recorded options lack it (a model of 0.1).
 */
static const OptionSpec train_option_specs[] = {
	{"optimizer", OPT_ENUM, offsetof(nn_train_options, optimizer), 0, 0, "\"adam\" or \"sgd\"", optimizer_names},
	{"lr", OPT_FLOAT, offsetof(nn_train_options, lr), 1e-9, 10, "a number in (0, 10]", NULL},
	{"batch_size", OPT_INT, offsetof(nn_train_options, batch_size), 1, 65536, "an integer from 1 to 65536", NULL},
	{"momentum", OPT_FLOAT, offsetof(nn_train_options, momentum), 0, 0.999999, "a number in [0, 1)", NULL},
	{"weight_decay", OPT_FLOAT_AUTO, offsetof(nn_train_options, weight_decay), 0, 1, "a number in [0, 1] or \"auto\"", NULL},
	{"seed", OPT_UINT64, offsetof(nn_train_options, seed), 0, MAX_SEED, "a non-negative integer", NULL},
	{"standardize", OPT_BOOL, offsetof(nn_train_options, standardize), 0, 0, "true or false", NULL},
	{"validation", OPT_FLOAT, offsetof(nn_train_options, validation), 0, 0.5, "a number in [0, 0.5]", NULL},
	{"patience", OPT_INT, offsetof(nn_train_options, patience), 1, 100000, "an integer from 1 to 100000", NULL},
	{"input_shape", OPT_SKIP, 0, 0, 0, "an array of three positive integers", NULL},
	{"layers", OPT_SKIP, 0, 0, 0, "an array of layers", NULL},
	{"shards", OPT_SKIP, 0, 1, NN_MAX_SHARDS, "an integer from 1 to 64, or \"partition\"", NULL},	/* unlearn_shards_option */
	{"shard_by", OPT_SKIP, 0, 0, 0, "\"partition\"", NULL},	/* recorded: unlearn_shard_by_partition */
	{"epochs", OPT_INT, offsetof(nn_train_options, epochs), 1, 100000, "an integer from 1 to 100000", NULL},
};

/* Fills out from training options (defaults for absent keys). */
void
unlearn_parse_train_options(Jsonb *options, nn_train_options *out)
{
	nn_train_options_default(out);
	out->standardize = 1;		/* new models learn their standardisation */
	out->validation = -1;		/* not given: unlearn_train decides (with the epochs) */
	out->weight_decay = -1;		/* "auto": chosen on held-out rows when affordable (trainer.c) */
	/* epochs is an argument of unlearn_train, not an option */
	unlearn_parse_options(options, train_option_specs, lengthof(train_option_specs) - 1, out, "training");
}

/*
 * Training options for a retrain: the model's recorded options (epochs
 * included, hidden left out), then the caller's overrides.  A model whose
 * options do not record standardize (trained by 0.1) is retrained without
 * standardisation, as it was trained.
 */
void
unlearn_parse_retrain_options(Jsonb *stored, Jsonb *overrides, nn_train_options *out)
{
	UnlearnArch arch;

	nn_train_options_default(out);
	unlearn_parse_options(stored, train_option_specs, lengthof(train_option_specs), out, "training");
	if (unlearn_parse_arch(overrides, &arch))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a retrain keeps the model's input_shape and layers"),
				 errhint("Train a new model for another architecture.")));
	if (overrides && (unlearn_jsonb_key(&overrides->root, "shards") || unlearn_jsonb_key(&overrides->root, "shard_by")))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a retrain keeps the model's shards"),
				 errhint("Train a new model for another shard count.")));
	unlearn_parse_options(overrides, train_option_specs, lengthof(train_option_specs), out, "training");
}

/* The spec of a training option that unlearn_parse_options skips. */
static const OptionSpec *
train_spec(const char *key)
{
	for (int i = 0; i < lengthof(train_option_specs); i++)
		if (strcmp(train_option_specs[i].key, key) == 0)
			return &train_option_specs[i];
	Assert(false);
	return NULL;
}

/* True if v is the jsonb string "partition". */
static bool
is_partition(const JsonbValue *v)
{
	return v->type == jbvString && v->val.string.len == strlen("partition") &&
		strncmp(v->val.string.val, "partition", v->val.string.len) == 0;
}

/*
 * The training option "shards" (sharded models, shards.c): an integer from
 * 1 to NN_MAX_SHARDS, 1 when absent (an ordinary model), or "partition"
 * (UNLEARN_SHARDS_BY_PARTITION: one shard per partition, partition_shards.c);
 * errors (22023) otherwise.
 */
int
unlearn_shards_option(Jsonb *options)
{
	JsonbValue *v = options ? unlearn_jsonb_key(&options->root, "shards") : NULL;

	if (v && is_partition(v))
		return UNLEARN_SHARDS_BY_PARTITION;
	return v ? (int) option_number("training", train_spec("shards"), v) : 1;
}

/*
 * True if the options shard by partition: "shards": "partition" (given), or
 * "shard_by": "partition" (recorded, with the shard count); errors (22023)
 * on another "shard_by".
 */
bool
unlearn_shard_by_partition(Jsonb *options)
{
	JsonbValue *by = options ? unlearn_jsonb_key(&options->root, "shard_by") : NULL;

	if (by && !is_partition(by))
		bad_option("training", "shard_by", train_spec("shard_by")->expected);
	return by != NULL || unlearn_shards_option(options) == UNLEARN_SHARDS_BY_PARTITION;
}

/* The options actually used, defaults included, for the catalog; the layer list as given. */
Jsonb *
unlearn_train_options_to_jsonb(const nn_train_options *o, const int *hidden,
							   int n_hidden, int epochs, const UnlearnArch *arch, int shards,
							   bool by_partition)
{
	StringInfoData s;

	initStringInfo(&s);
	appendStringInfo(&s, "{\"optimizer\": \"%s\", \"lr\": %.7g, \"batch_size\": %d, "
					 "\"momentum\": %.7g, \"weight_decay\": ",
					 optimizer_names[o->optimizer], o->lr, o->batch_size, o->momentum);
	/* "auto" recorded as such, so that a retrain chooses again on its own rows */
	if (o->weight_decay < 0)
		appendStringInfoString(&s, "\"auto\"");
	else
		appendStringInfo(&s, "%.7g", o->weight_decay);
	appendStringInfo(&s, ", \"seed\": " UINT64_FORMAT ", \"standardize\": %s, \"epochs\": %d, ",
					 o->seed, o->standardize ? "true" : "false", epochs);
	/* recorded only when on, so models without early stopping keep their options as before */
	if (o->validation > 0)
		appendStringInfo(&s, "\"validation\": %.7g, \"patience\": %d, ", o->validation, o->patience);
	if (shards > 1)				/* recorded for sharded models only, as validation */
		appendStringInfo(&s, "\"shards\": %d, %s", shards, by_partition ? "\"shard_by\": \"partition\", " : "");
	appendStringInfoString(&s, "\"hidden\": [");
	for (int i = 0; i < n_hidden; i++)
		appendStringInfo(&s, "%s%d", i ? ", " : "", hidden[i]);
	appendStringInfoChar(&s, ']');
	if (arch && arch->has_shape)
		appendStringInfo(&s, ", \"input_shape\": [%d, %d, %d]",
						 arch->in_shape[0], arch->in_shape[1], arch->in_shape[2]);
	if (arch && arch->has_layers)
		unlearn_append_layers(&s, arch);
	appendStringInfoChar(&s, '}');
	return unlearn_jsonb_printf("%s", s.data);
}

/* ---------- the unlearning functions' options ---------- */

#define DEFAULT_REPLAY_ROWS 16384

static const char *const method_names[] = {"neggrad", "adv", "adv+imp", "default", NULL};	/* ul_method order */
static const char *const target_names[] = {"misclassify", "unseen", NULL};	/* UnlearnTarget order */

#define UL_OPT(key, kind, field, lo, hi, expected) \
	{key, kind, offsetof(UnlearnRunOptions, field), lo, hi, expected, NULL}

static const OptionSpec run_option_specs[] = {
	{"method", OPT_ENUM, offsetof(UnlearnRunOptions, ul.method), 0, 0,
	"\"default\", \"exact\", \"neggrad\", \"adv\" or \"adv+imp\"", method_names},
	{"optimizer", OPT_ENUM, offsetof(UnlearnRunOptions, ul.optimizer), 0, 0, "\"sgd\" or \"adam\"", optimizer_names},
	UL_OPT("lr", OPT_FLOAT, ul.lr, 1e-9, 10, "a number in (0, 10]"),
	UL_OPT("momentum", OPT_FLOAT, ul.momentum, 0, 0.999999, "a number in [0, 1)"),
	UL_OPT("weight_decay", OPT_FLOAT, ul.weight_decay, 0, 1, "a number in [0, 1]"),
	UL_OPT("forget_batch", OPT_INT, ul.forget_batch, 1, 65536, "an integer from 1 to 65536"),
	UL_OPT("adv_batch", OPT_INT, ul.adv_batch, 1, 65536, "an integer from 1 to 65536"),
	UL_OPT("adv_per_row", OPT_INT, ul.adv_per_row, 0, 1000, "an integer from 0 to 1000"),
	UL_OPT("pgd_eps", OPT_FLOAT, ul.pgd_eps, 0, 1e6, "a non-negative number"),
	UL_OPT("pgd_alpha", OPT_FLOAT, ul.pgd_alpha, 0, 1e6, "a non-negative number"),
	UL_OPT("pgd_steps", OPT_INT, ul.pgd_steps, 0, 100000, "an integer from 0 to 100000"),
	UL_OPT("imp_lambda", OPT_FLOAT, ul.imp_lambda, 0, 1e9, "a non-negative number"),
	UL_OPT("max_passes", OPT_INT, ul.max_passes, 1, 1000000, "an integer from 1 to 1000000"),
	UL_OPT("max_steps", OPT_INT, ul.max_steps, 0, 100000000, "a non-negative integer (0 = no cap)"),
	UL_OPT("seed", OPT_UINT64, ul.seed, 0, MAX_SEED, "a non-negative integer"),
	UL_OPT("margin", OPT_FLOAT, ul.margin, 0, 1e6, "a non-negative number"),
	UL_OPT("replay_weight", OPT_FLOAT, ul.replay_weight, 0, 1e6, "a non-negative number"),
	UL_OPT("replay_batch", OPT_INT, ul.replay_batch, 1, 65536, "an integer from 1 to 65536"),
	UL_OPT("repair_steps", OPT_INT, ul.repair_steps, 0, 1000000, "an integer from 0 to 1000000"),
	UL_OPT("repair_stop", OPT_INT, ul.repair_stop, 0, 1, "0 or 1"),
	UL_OPT("adv_weight", OPT_FLOAT, ul.adv_weight, 0, 1e6, "a non-negative number"),
	UL_OPT("forget_weight", OPT_FLOAT, ul.forget_weight, 0, 1e6, "a non-negative number"),
	UL_OPT("distill", OPT_FLOAT, ul.distill, 0, 1, "a number in [0, 1]"),
	UL_OPT("replay_rows", OPT_INT, replay_rows, 0, 10000000, "an integer from 0 to 10000000"),
	{"target", OPT_ENUM, offsetof(UnlearnRunOptions, target), 0, 0, "\"misclassify\" or \"unseen\"", target_names},
};

/*
 * Takes {"method": "exact"} out of the options: true if it was there.  The
 * exact method retrains, so it takes no other option (22023).
 */
static bool
take_exact_method(Jsonb **options)
{
	JsonbValue *v = *options && JB_ROOT_IS_OBJECT(*options) ?
		unlearn_jsonb_key(&(*options)->root, "method") : NULL;

	if (v == NULL || v->type != jbvString || v->val.string.len != 5 ||
		strncmp(v->val.string.val, "exact", 5) != 0)
		return false;
	(void) unlearn_jsonb_take(options, "method");
	if (JB_ROOT_COUNT(*options) > 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unlearning method \"exact\" takes no other option"),
				 errdetail("It retrains with the model's training options.")));
	return true;
}

/* Parses unlearning options: the method's defaults, then the given keys; or the exact method. */
void
unlearn_parse_run_options(Jsonb *options, UnlearnRunOptions *out)
{
	UnlearnRunOptions probe;
	bool		exact = take_exact_method(&options);

	/* the method decides the defaults of everything else */
	memset(&probe, 0, sizeof(probe));
	probe.ul.method = UL_METHOD_DEFAULT;
	unlearn_parse_options(options, run_option_specs, lengthof(run_option_specs), &probe, "unlearning");
	memset(out, 0, sizeof(*out));
	ul_options_default(&out->ul, probe.ul.method);
	out->replay_rows = DEFAULT_REPLAY_ROWS;
	out->target = -1;
	unlearn_parse_options(options, run_option_specs, lengthof(run_option_specs), out, "unlearning");
	out->exact = exact;
	/* the target: the option, else the setting */
	out->target_from_setting = out->target < 0;
	if (out->target < 0)
		out->target = unlearn_target;
	Assert(out->target == UNLEARN_TARGET_MISCLASSIFY || out->target == UNLEARN_TARGET_UNSEEN);
}

/* The name of a run's method, as the options spell it. */
const char *
unlearn_method_name(const UnlearnRunOptions *o)
{
	if (o->exact)
		return "exact";
	Assert(o->ul.method >= 0 && o->ul.method < lengthof(method_names) - 1);
	return method_names[o->ul.method];
}

/* The options a run used, every key spelled out, for the catalog. */
Jsonb *
run_options_to_jsonb(const UnlearnRunOptions *o)
{
	StringInfoData s;

	initStringInfo(&s);
	appendStringInfoChar(&s, '{');
	for (int i = 0; i < lengthof(run_option_specs); i++)
	{
		const OptionSpec *spec = &run_option_specs[i];
		const char *field = (const char *) o + spec->offset;

		appendStringInfo(&s, "%s\"%s\": ", i ? ", " : "", spec->key);
		switch (spec->kind)
		{
			case OPT_FLOAT_AUTO:
				if (*(const float *) field < 0)
				{
					appendStringInfoString(&s, "\"auto\"");
					break;
				}
				/* FALLTHROUGH */
			case OPT_FLOAT:
				appendStringInfo(&s, "%.7g", *(const float *) field);
				break;
			case OPT_INT:
				appendStringInfo(&s, "%d", *(const int *) field);
				break;
			case OPT_UINT64:
				appendStringInfo(&s, UINT64_FORMAT, (uint64) *(const uint64_t *) field);
				break;
			case OPT_ENUM:
				appendStringInfo(&s, "\"%s\"", spec->names[*(const int *) field]);
				break;
			case OPT_BOOL:
				appendStringInfoString(&s, *(const int *) field ? "true" : "false");
				break;
			case OPT_SKIP:
				elog(ERROR, "option \"%s\" has no field", spec->key);
		}
	}
	appendStringInfoChar(&s, '}');
	return unlearn_jsonb_printf("%s", s.data);
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

/* The value of key in a jsonb object container, or NULL. */
JsonbValue *
unlearn_jsonb_key(JsonbContainer *obj, const char *key)
{
	JsonbValue	k;

	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	return findJsonbValueFromContainer(obj, JB_FOBJECT, &k);
}

/*
 * Takes key out of a jsonb object of options: its value (a copy), or NULL
 * if absent; *options becomes the object without it.
 */
JsonbValue *
unlearn_jsonb_take(Jsonb **options, const char *key)
{
	JsonbValue *v;

	if (*options == NULL || !JB_ROOT_IS_OBJECT(*options))
		return NULL;
	v = unlearn_jsonb_key(&(*options)->root, key);
	if (v == NULL)
		return NULL;
	*options = DatumGetJsonbP(DirectFunctionCall2(jsonb_delete, JsonbPGetDatum(*options),
												  CStringGetTextDatum(key)));
	return v;
}

/* The same for a string option: its text, NULL if absent; errors (22023) if not a string. */
char *
unlearn_jsonb_take_string(Jsonb **options, const char *key, const char *what, const char *expected)
{
	JsonbValue *v = unlearn_jsonb_take(options, key);

	if (v == NULL)
		return NULL;
	if (v->type != jbvString)
		bad_option(what, key, expected);
	return pnstrdup(v->val.string.val, v->val.string.len);
}
