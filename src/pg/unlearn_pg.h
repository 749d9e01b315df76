/*
 * unlearn_pg.h: shared declarations of the PostgreSQL glue of unlearn
 * (SQL functions, catalog access, data loading).  The numeric core
 * (src/core) knows nothing of PostgreSQL; everything here adapts it.
 */
#ifndef UNLEARN_PG_H
#define UNLEARN_PG_H

#include "postgres.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "nodes/parsenodes.h"
#include "utils/jsonb.h"
#include "utils/rel.h"

#include "nn.h"
#include "privilege.h"

/* ---------- settings (unlearn.c) ---------- */
extern int	unlearn_threads;			/* unlearn.threads: BLAS threads per backend */
extern int	unlearn_max_rows;			/* unlearn.max_training_rows */
extern bool unlearn_progress;			/* unlearn.progress: NOTICEs from long runs */
extern int	unlearn_feature_retention;	/* unlearn.feature_retention, s: -1 keep, 0 erase at once */
/* Rows unlearning is deleting from a model's table itself: not queued again for that model. */
typedef struct UnlearnSuppress
{
	const char *model;			/* NULL: nothing suppressed */
	Datum		ids;			/* int8[] of the ids being unlearned */
} UnlearnSuppress;
extern UnlearnSuppress unlearn_suppress_capture;
extern int	unlearn_max_model_size;		/* unlearn.max_model_size, kB one training run may allocate */

/* ---------- BLAS and core set-up (blas.c) ---------- */

/* Loads OpenBLAS on first use in this process (never in the postmaster). */
void		unlearn_blas_ensure_loaded(void);

/* Route core allocations into CurrentMemoryContext (palloc, huge allowed). */
void		unlearn_core_use_palloc(void);

/* ---------- labels (label.c) ---------- */

/* Kinds of label column we accept. */
typedef enum UnlearnLabelKind
{
	LABEL_INT,					/* int2, int4, int8 */
	LABEL_TEXT					/* text, varchar, bpchar */
} UnlearnLabelKind;

bool		unlearn_label_kind_for_type(Oid typid, UnlearnLabelKind *kind);
Datum		unlearn_label_from_cstring(const char *s);

/* ---------- catalog (catalog.c) ---------- */

/* What the catalog says about a model, plus its current weights. */
typedef struct UnlearnModel
{
	char	   *name;
	Oid			owner;
	Oid			relid;
	char	   *id_column;
	char	   *features_column;
	char	   *label_column;
	Oid			label_type;
	UnlearnLabelKind label_kind;
	int			n_features;
	int			n_classes;
	char	  **classes;		/* text form, output-unit order */
	int64	   *class_ints;		/* numeric form when label_kind == LABEL_INT */
	int			version;		/* current version */
	int64		version_stamp;	/* created_at of that version: with name and version, a cache key */
	Jsonb	   *options;
} UnlearnModel;

/* Loads model metadata (not weights); errors if unknown (or returns NULL if missing_ok). */
UnlearnModel *unlearn_model_lookup(const char *name, bool missing_ok);

/* Loads the serialised weights of a version and deserialises them; errors on any problem. */
nn_model   *unlearn_load_weights(const UnlearnModel *model, int version);

/* The same, but NULL with the SQLSTATE and message of the problem instead of an error. */
nn_model   *unlearn_read_weights(const UnlearnModel *model, int version, int *sqlerrcode, char **problem);

/* The ids of a catalog bigint[] (no NULLs, one dimension, else XX001 naming model and version). */
int64	   *unlearn_catalog_ids(Datum d, const char *what, const char *model, int version, int64 *n_out);

/* An int8[] datum of n ids (n may be 0): the one builder of id arrays. */
Datum		unlearn_int8_array(const int64 *ids, int64 n);

/* Errors unless the current user owns the model or is superuser. */
void		unlearn_check_owner(const UnlearnModel *model, const char *action);

/* Errors unless the current user may read the model's training table. */
void		unlearn_check_can_use(const UnlearnModel *model);

/* Stores a version (and its manifest); ids sorted ascending. */
void		unlearn_store_version(const char *model, int version, int parent,
								  const char *reason, const char *method,
								  Jsonb *options, const nn_model *net,
								  const int64 *ids, int64 n_ids,
								  const int64 *forgotten, int n_forgotten, Jsonb *metrics);

/* sha256 of a buffer into out[32]. */
void		unlearn_sha256(const void *data, size_t len, uint8 *out);

/* Chain hash of a version: parent's hash, weights hash, identity and forgotten ids. */
void		unlearn_version_hash(const uint8 *parent_hash, const uint8 *weights_sha256,
								 const char *model, int version, const int64 *forgotten,
								 int n_forgotten, uint8 *out);

/* Sets models.current_version. */
void		unlearn_set_current_version(const char *model, int version);

/* Invalidates this backend's cached weights of a model (after drop). */
void		unlearn_cache_forget(const char *model);

/* ---------- the size cap (model_size.c) ---------- */

/* Errors (54000) when training this shape would allocate more than unlearn.max_model_size. */
void		unlearn_check_model_size(const char *model, int n_features, int n_hidden, const int *hidden,
									 int n_classes, const nn_train_options *o, int64 n_rows);

/* ---------- lineage (lineage.c) ---------- */

/* A model's versions (ascending), their links, and the versions its ledger names. */
typedef struct UnlearnLineage
{
	int			n;
	int		   *version;
	int		   *parent;			/* 0: a root */
	char	  **reason;
	bool	   *forgot;			/* its forgotten_ids are not empty */
	bool	   *on_chain;		/* the current version or one of its ancestors */
	int			current;		/* models.current_version */
	int			current_index;	/* its index, -1 if it does not exist */
	int			head;			/* newest version that is not a reference; 0 if none */
	int			n_ledger;
	int		   *ledger_version; /* distinct versions of unlearn.forgotten, ascending */
} UnlearnLineage;

void		unlearn_read_lineage(const UnlearnModel *model, UnlearnLineage *out);
int			unlearn_lineage_index(const UnlearnLineage *l, int version);
int			unlearn_lineage_stray_forgetter(const UnlearnLineage *l);
bool		unlearn_lineage_retrained_after(const UnlearnLineage *l, int after);
void		unlearn_lineage_problems(const UnlearnLineage *l, StringInfo s);

/* ---------- data (data.c) ---------- */

/* Rows of a training or evaluation table, ready for the core. */
typedef struct UnlearnData
{
	int64		n;				/* rows */
	int			n_features;
	float	   *X;				/* n x n_features */
	int		   *y;				/* class index per row; -1 = label unknown to the model */
	int64	   *ids;			/* id per row (NULL if not read) */
	char	  **labels;			/* distinct labels found, sorted (training only) */
	int			n_labels;
	char	  **requested_by;	/* per row, who asked to forget it (NULL: the current user) */
} UnlearnData;

/* Which columns to read and how to map labels. */
typedef struct UnlearnDataSpec
{
	Oid			relid;
	const char *id_column;		/* NULL: don't read ids */
	const char *features_column;
	const char *label_column;
	int			n_features;		/* 0: learn from the first row */
	const UnlearnModel *model;	/* map labels to this model's classes; NULL: collect */
	const char *where_clause;	/* optional SQL condition, e.g. "id = ANY($1)" */
	int			nargs;
	Oid		   *argtypes;
	Datum	   *args;
} UnlearnDataSpec;

/*
 * Reads the rows with SPI (the caller must be connected), checking types,
 * NULLs, ragged arrays and non-finite values, with clear SQLSTATEs.
 */
void		unlearn_read_data(const UnlearnDataSpec *spec, UnlearnData *out);

/* A spec of a model's columns (ids included) in its training table, labels mapped to its classes. */
void		unlearn_model_data_spec(const UnlearnModel *model, UnlearnDataSpec *spec);

/* Checks that relid has the named column and returns its type (errors otherwise). */
Oid			unlearn_column_type(Oid relid, const char *column, const char *role);

/* qsort/bsearch order of int64s. */
int			unlearn_cmp_int64(const void *a, const void *b);

/* Output unit of a label given in text form, or -1 if it is not a class of the model. */
int			unlearn_class_index(const UnlearnModel *model, const char *label);

/* Drops the rows whose label is not a class of the model (y < 0), keeping the order. */
void		unlearn_drop_unknown_labels(UnlearnData *rows);

/* True if arr is a usable queued feature copy (1-D real[], n_features finite values). */
bool		unlearn_feature_array_ok(ArrayType *arr, int n_features);

/* Copies a real[] or double precision[] argument into a float buffer of n_features. */
float	   *unlearn_features_from_array(ArrayType *arr, int n_features);

/* ---------- options (options.c) ---------- */

/* One jsonb option: its key, the struct field it sets, and what it accepts. */
typedef enum OptionKind
{
	OPT_FLOAT,					/* float field */
	OPT_INT,					/* int field, integral value */
	OPT_UINT64,					/* uint64_t field, integral value */
	OPT_ENUM					/* int-sized enum field, from a string in names[] */
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
Jsonb	   *unlearn_train_options_to_jsonb(const nn_train_options *o, const int *hidden,
										   int n_hidden, int epochs);

/* A jsonb value from printf-style text: metrics and recorded options. */
Jsonb	   *unlearn_jsonb_printf(const char *fmt,...) pg_attribute_printf(1, 2);

#include "unlearn_core.h"

/* Options of the unlearning functions: the core's plus how many rows to replay. */
typedef struct UnlearnRunOptions
{
	ul_options	ul;
	int			replay_rows;	/* remaining rows sampled for the default method */
} UnlearnRunOptions;

void		unlearn_parse_run_options(Jsonb *options, UnlearnRunOptions *out);
Jsonb	   *run_options_to_jsonb(const UnlearnRunOptions *o);
const char *unlearn_method_name(const UnlearnRunOptions *o);

/* ---------- changing a model (change.c) ---------- */

/*
 * Looks up and checks ownership of a model (and the table privilege a change
 * needs, or 0), locks its catalog row and returns the row as it is after the
 * lock, under a snapshot that unlearn_close_model_change pops.
 */
UnlearnModel *unlearn_open_model_for_change(const char *name, const char *action, AclMode table_privilege);
void		unlearn_close_model_change(void);

/* The sorted manifest of a version. */
int64	   *unlearn_load_manifest(const UnlearnModel *model, int version, int64 *n_out);

/* Next free version number of a model (caller holds the model lock). */
int			unlearn_next_version(const char *name);

/* ---------- training (trainer.c, for train.c and retrain.c) ---------- */

/* One training run: what it trains on and how, where it stores, and what it measured. */
typedef struct UnlearnTrainRun
{
	const char *model;			/* the model's name */
	bool		retrain;		/* unlearn_retrain: the next version of an existing model */
	int			parent;			/* retrain: the version it replaces */
	const char *reason;			/* "train", "retrain" or "reference" */
	const int  *hidden;
	int			n_hidden;
	int			n_classes;
	const nn_train_options *topts;
	const UnlearnData *data;	/* the rows, ids sorted and unique: the manifest */
	double		load_seconds;	/* reading them, for the metrics */
	/* runs after training, before the version is stored, with the options to record */
	void		(*before_store) (void *arg, Jsonb *options);
	void	   *before_store_arg;
	/* set by unlearn_train_and_store */
	int			version;
	double		accuracy;
	double		train_seconds;
} UnlearnTrainRun;

void		unlearn_train_and_store(UnlearnTrainRun *run);
Datum		unlearn_train_result(TupleDesc desc, const UnlearnTrainRun *run, double total_seconds);

/* ---------- unlearning (rows.c, execute.c, ledger.c) ---------- */

/* What one unlearning run did. */
typedef struct UnlearnOutcome
{
	int			version;		/* the version it stored */
	int			rows;
	int			forgotten;
	int			prior;
	int			prior_kept;
	int			steps;
	double		seconds;
	const char *method;
} UnlearnOutcome;

/* The rows with these sorted, distinct ids, checked against the table and the current manifest. */
void		unlearn_read_forget_rows(const UnlearnModel *model, const int64 *ids, int k, UnlearnData *out);
void		unlearn_read_sample(const UnlearnModel *model, const int64 *manifest, int64 n_manifest,
								const int64 *forget, int k, int want, uint64 seed, UnlearnData *out);
void		unlearn_execute(UnlearnModel *model, UnlearnData *forget, const int *new_labels,
							const UnlearnRunOptions *opts, const char *reason, bool change_table,
							UnlearnOutcome *out);

/* The ledger: rows a version forgot; the earlier ones whose features it keeps. */
void		unlearn_record_forgotten(const UnlearnModel *model, const UnlearnData *rows, int version);
void		unlearn_read_prior_rows(const UnlearnModel *model, UnlearnData *out);

/* ---------- capture (capture.c, capture_apply.c; the queue is queue.h, the workers worker.h) ---------- */

/* Installs the DELETE/UPDATE/TRUNCATE triggers on a training table (idempotent). */
void		unlearn_install_capture(Oid relid);
void		unlearn_install_capture_as_owner(Oid relid);
void		unlearn_check_capture_allowed(Oid relid);

/* Remembers that this transaction queued requests: the worker is woken at commit. */
void		unlearn_note_queued(void);
bool		unlearn_take_queued(void);

/* Marks every cached capture statement of this backend for rebuilding. */
void		unlearn_capture_cache_invalidate(void);

/* Drops the triggers from the tables of relid's tree that no model trains on any more. */
void		unlearn_remove_capture_if_unused(Oid relid);

/* Errors unless a model's columns in rel still have the built-in types it was trained with. */
void		unlearn_check_capture_columns(Relation rel, const char *model, const char *id,
										  const char *feat, const char *label, Oid label_type);

/* Key-share locks a model's catalog row as committed now; false if the model is gone. */
bool		unlearn_lock_model_row(const char *name, Oid relid);

/* Quoted names of the models on relid or a table above it (NULL if none); SPI connected. */
char	   *unlearn_models_above(Oid relid, bool auto_only);

/* True while unlearn drops its own triggers (the DROP guard lets them go). */
extern bool unlearn_dropping_own_triggers;
extern bool unlearn_installing_capture;

/*
 * SQL prefix binding "up(r)" to $1 (an oid) and every table above it
 * (partitioned and inheritance parents).  Run only with search_path pinned.
 */
#define UNLEARN_ANCESTORS_CTE \
	"WITH RECURSIVE up(r) AS (SELECT $1::oid UNION" \
	" SELECT i.inhparent FROM pg_catalog.pg_inherits i JOIN up ON i.inhrelid = up.r)"

/* ---------- relations (relation.c) ---------- */

/* The relation's schema-qualified, quoted name (errors if it is gone). */
char	   *unlearn_qualified_name(Oid relid);

/* Seconds since an instr_time start. */
double		unlearn_seconds_since(const void *start);

#endif							/* UNLEARN_PG_H */
