/*
 * capture.h: capture of deleted rows and the guards (capture.c, capture_row.c, capture_apply.c, guard.c), training tables (relation.c).
 */
#ifndef UNLEARN_CAPTURE_H
#define UNLEARN_CAPTURE_H

#include "postgres.h"
#include "executor/spi.h"
#include "storage/lockdefs.h"
#include "utils/rel.h"
#include "encode.h"

/* ---------- capture (capture.c, capture_apply.c; the queue is queue.h, the workers worker.h) ---------- */

/* Installs the DELETE/UPDATE/TRUNCATE triggers on a training table (idempotent). */
void		unlearn_install_capture(Oid relid);
void		unlearn_install_capture_as_owner(Oid relid);
void		unlearn_check_capture_allowed(Oid relid);

/*
 * Errors (42809) unless relid and every relation below it are tables (not
 * views or foreign tables), after taking lockmode on each (NoLock: none).
 */
void		unlearn_check_table_tree(Oid relid, LOCKMODE lockmode);

/* Remembers that this transaction queued requests: the worker is woken at commit. */
void		unlearn_note_queued(void);
bool		unlearn_take_queued(void);

/* Marks every cached capture statement of this backend for rebuilding. */
void		unlearn_capture_cache_invalidate(void);

/* Drops the triggers from the tables of relid's tree that no model trains on any more. */
void		unlearn_remove_capture_if_unused(Oid relid);

/* One model a table's changes are captured for: a row of UNLEARN_CAPTURED_MODELS_SQL, read. */
typedef struct UnlearnCapturedModel
{
	char	   *name;
	char	   *id;
	char	   *feat;			/* array models; NULL for column models */
	char	   *label;
	Oid			label_type;
	Oid			relid;			/* the model's table (this one or one above it) */
} UnlearnCapturedModel;

/*
 * Reads row i of UNLEARN_CAPTURED_MODELS_SQL's result and errors unless the
 * model's columns in rel still have the types it was trained with.
 */
void		unlearn_captured_model(Relation rel, SPITupleTable *models, uint64 i, UnlearnCapturedModel *out);

/* Where a table's tuples hold one model's columns (capture_row.c). */
typedef struct UnlearnRowColumns
{
	int			id_att,
				feat_att,
				label_att;		/* attribute numbers (feat_att 0: a column model) */
	UnlearnEncoder *encoder;	/* column models: the encoding, and where the table holds the inputs */
	UnlearnRowMap map;
} UnlearnRowColumns;

/* A removed row's values for one model, in the queue's types. */
typedef struct UnlearnCapturedRow
{
	int64		id;
	char	   *label;			/* text form */
	Datum		features;		/* real[] (a real[] column's value as stored: maybe compressed or TOASTed) */
} UnlearnCapturedRow;

void		unlearn_capture_columns(TupleDesc desc, const UnlearnCapturedModel *m, UnlearnRowColumns *out);
void		unlearn_capture_columns_encoder(TupleDesc desc, const char *model, UnlearnRowColumns *cols);
bool		unlearn_capture_read_row(TupleDesc desc, HeapTuple tup, const UnlearnRowColumns *c,
									 UnlearnCapturedRow *out);

/* Key-share locks a model's catalog row as committed now; false if the model is gone. */
bool		unlearn_lock_model_row(const char *name, Oid relid);

/* Quoted names of the models on relid or a table above it, as committed now (NULL if none); SPI connected. */
char	   *unlearn_models_above(Oid relid, bool auto_only);
/* Our triggers on relid back in their modes after an ENABLE TRIGGER (SPI connected). */
void		unlearn_reassert_trigger_modes(Oid relid);

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

/* The 1-based number of the non-dropped column `name` in desc, or 0 if it has none. */
int			unlearn_desc_attnum(TupleDesc desc, const char *name);

/* Seconds since an instr_time start. */
double		unlearn_seconds_since(const void *start);

/* SQL list of our trigger names (run elevated, search_path pinned). */
#define UNLEARN_TRIGGER_NAMES_SQL \
	"('unlearn_capture_delete', 'unlearn_capture_update', 'unlearn_guard_truncate'," \
	" 'unlearn_capture_apply')"

/* The models a table's changes are captured for: on it or above it, capture on ($1 the table). */
#define UNLEARN_CAPTURED_MODELS_SQL_FMT \
	UNLEARN_ANCESTORS_CTE \
	" SELECT name, id_column::text, features_column::text, label_column::text," \
	"  label_type::oid, relation::oid, %s" \
	" FROM unlearn.models WHERE relation::oid IN (SELECT r FROM up) AND auto_unlearn" \
	" ORDER BY name"
#define UNLEARN_CAPTURED_MODELS_SQL psprintf(UNLEARN_CAPTURED_MODELS_SQL_FMT, unlearn_feature_columns_sql(""))

#endif							/* UNLEARN_CAPTURE_H */
