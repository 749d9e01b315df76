/*
 * catalog.h: the unlearn.* catalog: models, weights, versions, the hash chain (catalog.c), the size cap (model_size.c) and the version tree (lineage.c).
 */
#ifndef UNLEARN_CATALOG_H
#define UNLEARN_CATALOG_H

#include "postgres.h"
#include "utils/jsonb.h"
#include "nn.h"
#include "label.h"

/* ---------- catalog (catalog.c) ---------- */

struct UnlearnEncoder;

/* What the catalog says about a model, plus its current weights. */
typedef struct UnlearnModel
{
	char	   *name;
	Oid			owner;
	Oid			relid;
	char	   *id_column;
	char	   *features_column;	/* array models; NULL for column models */
	struct UnlearnEncoder *encoder; /* column models: input columns and encoding; NULL otherwise */
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

/* True once the catalog has column models (0.2); a 0.1 catalog has array models only. */
bool		unlearn_catalog_has_column_models(void);
bool		unlearn_catalog_has_ledger_targets(void);
/* True once unlearn.versions records each version's guarantee (0.2). */
bool		unlearn_catalog_has_guarantees(void);
/* True if unlearn.manifests has the column shards (0.2: sharding by partition). */
bool		unlearn_catalog_has_manifest_shards(void);

/* A model row's feature columns and types (text[], oid[]) for a select list, alias included ("m."). */
const char *unlearn_feature_columns_sql(const char *alias);

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
/* An int2[] datum of n shard numbers. */
Datum		unlearn_int2_array(const int16 *v, int64 n);

/* Errors unless the current user owns the model or is superuser. */
/* sql on the rows as committed now (the latest snapshot); SPI's code (catalog owner, SPI). */
int			unlearn_catalog_execute_latest(const char *sql, int nargs, Oid *argtypes, Datum *args, long count);
/* A DELETE of a model's rows ($1 = name) on the rows as committed now; how many (catalog owner, SPI). */
uint64		unlearn_catalog_delete_latest(const char *sql, const char *name);
void		unlearn_check_owner(const UnlearnModel *model, const char *action);

/* Errors unless the current user may read the model's training table. */
void		unlearn_check_can_use(const UnlearnModel *model);

/* Stores a version (and its manifest); ids sorted ascending; id_shards: each id's shard, or NULL. */
void		unlearn_store_version(const char *model, int version, int parent,
								  const char *reason, const char *method,
								  Jsonb *options, const nn_model *net,
								  const int64 *ids, int64 n_ids, const int16 *id_shards,
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
/* Rows forgotten approximately since the chain's newest exact version, and that version's rows. */
int64		unlearn_forgotten_since_exact(const UnlearnModel *model, int64 *exact_rows, double *drift);
/* The newest version trained from scratch (guarantee 'exact') on the current chain, or 0. */
int			unlearn_newest_exact_on_chain(const UnlearnModel *model, double *train_seconds, int64 *rows);

#endif							/* UNLEARN_CATALOG_H */
