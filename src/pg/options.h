/*
 * options.h: the jsonb option parser, training and unlearning options (options.c).
 */
#ifndef UNLEARN_OPTIONS_H
#define UNLEARN_OPTIONS_H

#include "postgres.h"
#include "lib/stringinfo.h"
#include "utils/jsonb.h"
#include "nn.h"
#include "unlearn_core.h"

/* ---------- options (options.c) ---------- */

/* One jsonb option: its key, the struct field it sets, and what it accepts. */
typedef enum OptionKind
{
	OPT_FLOAT,					/* float field */
	OPT_FLOAT_AUTO,				/* float field, or the string "auto": -1 */
	OPT_INT,					/* int field, integral value */
	OPT_UINT64,					/* uint64_t field, integral value */
	OPT_ENUM,					/* int-sized enum field, from a string in names[] */
	OPT_BOOL,					/* int field, 0 or 1, from a jsonb boolean */
	OPT_SKIP					/* parsed elsewhere (unlearn_parse_arch): no field */
} OptionKind;

typedef struct OptionSpec
{
	const char *key;
	OptionKind	kind;
	size_t		offset;			/* of the field in the target struct */
	double		lo, hi;			/* accepted range (numbers) */
	const char *expected;		/* for messages */
	const char *const *names;	/* OPT_ENUM: NULL-terminated, index = value */
} OptionSpec;

void		unlearn_parse_options(Jsonb *options, const OptionSpec *specs, int n_specs,
								  void *target, const char *what);
void		unlearn_parse_train_options(Jsonb *options, nn_train_options *out);
void		unlearn_parse_retrain_options(Jsonb *stored, Jsonb *overrides, nn_train_options *out);

/* The layer list of a model (options "input_shape" and "layers"), convolutional or not. */
#define UNLEARN_MAX_LAYER_SPECS (NN_MAX_STAGES + NN_MAX_LAYERS - 1)
typedef struct UnlearnArch
{
	bool		has_shape;		/* "input_shape" given */
	int			in_shape[3];	/* C, H, W */
	bool		has_layers;		/* "layers" given: it takes precedence over hidden */
	int			n_specs;
	nn_layer_spec specs[UNLEARN_MAX_LAYER_SPECS];
	int			n_stages;		/* conv and maxpool layers among them */
	int			dense[NN_MAX_LAYERS];	/* the dense widths, for unlearn.models.hidden */
	int			n_dense;
} UnlearnArch;

/* layer_options.c: read and check the options; the feature count; the recorded layer list. */
bool		unlearn_parse_arch(Jsonb *options, UnlearnArch *out);
void		unlearn_check_arch_features(const UnlearnArch *arch, int n_features);
void		unlearn_append_layers(StringInfo s, const UnlearnArch *arch);
Jsonb	   *unlearn_train_options_to_jsonb(const nn_train_options *o, const int *hidden,
										   int n_hidden, int epochs, const UnlearnArch *arch, int shards,
										   bool by_partition);
/* The training option "shards": 1 to 64, 1 when absent, or "partition" (errors 22023 otherwise). */
#define UNLEARN_SHARDS_BY_PARTITION 0
int			unlearn_shards_option(Jsonb *options);
/* True if the options shard by partition ("shards": "partition", or recorded "shard_by"). */
bool		unlearn_shard_by_partition(Jsonb *options);

/* A jsonb value from printf-style text: metrics and recorded options. */
/* The value of key in a jsonb object container, or NULL. */
JsonbValue *unlearn_jsonb_key(JsonbContainer *obj, const char *key);

/* Takes key out of a jsonb object of options: its value, or NULL (and a string's text). */
JsonbValue *unlearn_jsonb_take(Jsonb **options, const char *key);
char	   *unlearn_jsonb_take_string(Jsonb **options, const char *key, const char *what,
									  const char *expected);
Jsonb	   *unlearn_jsonb_printf(const char *fmt,...) pg_attribute_printf(1, 2);


/* Options of the unlearning functions: the core's plus how many rows to replay. */
typedef struct UnlearnRunOptions
{
	ul_options	ul;
	int			replay_rows;	/* remaining rows sampled for the default method */
	bool		exact;			/* {"method": "exact"}: retrain without the rows (the shards that held them) */
	int			target;			/* UnlearnTarget: the option "target", else unlearn.target */
	bool		target_from_setting;	/* the option was not given */
} UnlearnRunOptions;

void		unlearn_parse_run_options(Jsonb *options, UnlearnRunOptions *out);
Jsonb	   *run_options_to_jsonb(const UnlearnRunOptions *o);
const char *unlearn_method_name(const UnlearnRunOptions *o);

/* Errors (54000) when an unlearning run of options o on request req would allocate more than unlearn.max_model_size (model_size.c). */
void		unlearn_check_unlearn_size(const char *model, const nn_model *net, const ul_request *req, const ul_options *o);

#endif							/* UNLEARN_OPTIONS_H */
