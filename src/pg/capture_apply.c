/*
 * capture_apply.c: capture of rows that logical replication removes.
 *
 * The apply worker of a subscription fires row-level triggers only, never
 * statement-level ones, so the capture of capture.c sees nothing it deletes
 * or updates.  A row-level AFTER DELETE OR UPDATE trigger, ENABLE ALWAYS,
 * whose WHEN clause is false outside session_replication_role = replica
 * (so ordinary statements queue no trigger event for it), queues each row
 * here, and only inside an apply worker: a replica-mode session is captured
 * by the statement triggers, which fire there too.
 *
 * The row is converted in C (its columns have the built-in types the capture
 * checks), so no user-defined function runs while elevated.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "replication/logicalworker.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "queue.h"
#include "unlearn_pg.h"

/* One model of the table, as the row capture needs it. */
typedef struct ApplyModel
{
	char	   *name;
	Oid			relid;
	int			id_att,
				feat_att,
				label_att;		/* attribute numbers in the trigger's relation (feat_att 0: columns) */
	UnlearnEncoder *encoder;	/* column models: the encoding, and where rel holds the inputs */
	UnlearnRowMap map;
} ApplyModel;

/* The models of rel (or a table above it) with capture on, their columns checked; SPI connected. */
static ApplyModel *
apply_models(Relation rel, int *n_out)
{
	Oid			argtypes[1] = {OIDOID};
	Datum		args[1] = {ObjectIdGetDatum(RelationGetRelid(rel))};
	UnlearnCatalogUser saved;
	ApplyModel *models;
	int			n;

	unlearn_become_catalog_owner(&saved);
	if (SPI_execute_with_args(UNLEARN_CAPTURED_MODELS_SQL, 1, argtypes, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read unlearn.models");
	unlearn_restore_user(&saved);
	n = (int) SPI_processed;
	models = palloc0(sizeof(ApplyModel) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		UnlearnCapturedModel m;

		unlearn_captured_model(rel, SPI_tuptable, i, &m);
		models[i].name = m.name;
		models[i].relid = m.relid;
		models[i].id_att = unlearn_desc_attnum(RelationGetDescr(rel), m.id);
		models[i].feat_att = m.feat ? unlearn_desc_attnum(RelationGetDescr(rel), m.feat) : 0;
		models[i].label_att = unlearn_desc_attnum(RelationGetDescr(rel), m.label);
	}
	/* column models: their encodings, read once the list above is complete */
	for (int i = 0; i < n; i++)
		if (models[i].feat_att == 0)
		{
			models[i].encoder = unlearn_model_lookup(models[i].name, false)->encoder;
			unlearn_encoder_match(models[i].encoder, RelationGetDescr(rel), true, &models[i].map);
		}
	*n_out = n;
	return models;
}

/* A row's values for one model, in the queue's types; false if id, label or features is NULL. */
typedef struct ApplyRow
{
	int64		id;
	char	   *label;
	ArrayType  *features;		/* real[] */
} ApplyRow;

/* The features as real[] (a double precision[] column is converted element by element). */
static ArrayType *
as_real_array(Datum d, Oid typid)
{
	ArrayType  *arr = DatumGetArrayTypeP(d);
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	if (typid == FLOAT4ARRAYOID)
		return arr;
	Assert(typid == FLOAT8ARRAYOID);
	deconstruct_array(arr, FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &elems, &nulls, &n);
	for (int i = 0; i < n; i++)
		if (!nulls[i])
			elems[i] = Float4GetDatum((float4) DatumGetFloat8(elems[i]));
	return construct_md_array(elems, nulls, 1, (int[]) {n}, (int[]) {1}, FLOAT4OID, 4, true, TYPALIGN_INT);
}

/* A column model's input from a tuple of rel as real[], or NULL if it cannot be encoded (never learned). */
static ArrayType *
encoded_array(const ApplyModel *m, HeapTuple tup, TupleDesc desc)
{
	int			n = m->encoder->n_features;
	float	   *x = palloc(sizeof(float) * n);
	Datum	   *d = palloc(sizeof(Datum) * n);

	if (!unlearn_encode_tuple(m->encoder, &m->map, tup, desc, x, true))
		return NULL;
	for (int j = 0; j < n; j++)
		d[j] = Float4GetDatum(x[j]);
	return construct_array(d, n, FLOAT4OID, 4, true, TYPALIGN_INT);
}

/* Reads one model's columns from a tuple of rel. */
static bool
read_row(Relation rel, HeapTuple tup, const ApplyModel *m, ApplyRow *out)
{
	TupleDesc	desc = RelationGetDescr(rel);
	bool		n1,
				n2,
				n3;
	Datum		id = heap_getattr(tup, m->id_att, desc, &n1);
	Datum		label = heap_getattr(tup, m->label_att, desc, &n2);
	Datum		feat = m->feat_att ? heap_getattr(tup, m->feat_att, desc, &n3) : (Datum) 0;
	Oid			label_type = TupleDescAttr(desc, m->label_att - 1)->atttypid;

	if (n1 || n2 || (m->feat_att && n3))
		return false;
	switch (TupleDescAttr(desc, m->id_att - 1)->atttypid)
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
	if (m->feat_att)
		out->features = as_real_array(feat, TupleDescAttr(desc, m->feat_att - 1)->atttypid);
	else
		out->features = encoded_array(m, tup, desc);
	return out->features != NULL;
}

/* True if two real[] copies differ (shape, NULLs or any value, bit for bit). */
static bool
features_differ(ArrayType *a, ArrayType *b)
{
	return VARSIZE(a) != VARSIZE(b) || memcmp(a, b, VARSIZE(a)) != 0;
}

/* Queues one request as the catalog owner (SPI connected). */
static void
queue_request(const char *model, const char *kind, const ApplyRow *old, const char *new_label)
{
	UnlearnCatalogUser saved;
	char	   *requested_by = GetUserNameFromId(GetUserId(), false);	/* the apply worker's role */

	unlearn_become_catalog_owner(&saved);
	unlearn_queue_insert_row(model, kind, old->id, old->label, new_label, old->features, requested_by);
	unlearn_restore_user(&saved);
	unlearn_note_queued();
}

/* Queues what one row change means for one model, as the statement capture would. */
static void
capture_one(Relation rel, const ApplyModel *m, HeapTuple old_tup, HeapTuple new_tup)
{
	ApplyRow	old,
				new;
	UnlearnCatalogUser saved;
	bool		locked;

	/* step 1: a row the model could not have learned (a NULL column) needs nothing */
	if (!read_row(rel, old_tup, m, &old))
		return;
	/* step 2: the model's row must still be there (locked as committed now) */
	unlearn_become_catalog_owner(&saved);
	locked = unlearn_lock_model_row(m->name, m->relid);
	unlearn_restore_user(&saved);
	if (!locked)
		return;
	/* step 3: a DELETE, or an UPDATE of the id or features, forgets; of the label, relabels */
	if (new_tup == NULL || !read_row(rel, new_tup, m, &new) || new.id != old.id ||
		features_differ(new.features, old.features))
		queue_request(m->name, "forget", &old, NULL);
	else if (strcmp(new.label, old.label) != 0)
		queue_request(m->name, "relabel", &old, new.label);
}

PG_FUNCTION_INFO_V1(unlearn_capture_row);
/*
 * Trigger: AFTER DELETE OR UPDATE FOR EACH ROW, WHEN in replica mode.  Inside
 * a logical replication apply worker, queues the row for every model of the
 * table with automatic unlearning on; elsewhere does nothing (the statement
 * triggers capture).
 */
Datum
unlearn_capture_row(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	ApplyModel *models;
	int			n;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		strcmp(trigdata->tg_trigger->tgname, "unlearn_capture_apply") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("unlearn.capture_row() may only run as the trigger unlearn installs")));
	if (!IsLogicalWorker())
		return PointerGetDatum(NULL);
	SPI_connect();
	models = apply_models(trigdata->tg_relation, &n);
	for (int i = 0; i < n; i++)
		capture_one(trigdata->tg_relation, &models[i], trigdata->tg_trigtuple,
					TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) ? trigdata->tg_newtuple : NULL);
	SPI_finish();
	return PointerGetDatum(NULL);
}
