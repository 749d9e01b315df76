/*
 * capture_apply.c: capture of rows that logical replication removes.
 *
 * The apply worker of a subscription fires row-level triggers only, never
 * statement-level ones, so the capture of capture.c sees nothing it deletes
 * or updates.  A row-level AFTER DELETE OR UPDATE trigger, ENABLE REPLICA
 * (it fires only under session_replication_role = replica, so ordinary
 * statements queue no trigger event for it), queues each row here, and only
 * inside an apply worker: a replica-mode session is captured by the
 * statement triggers, which fire there too (ENABLE ALWAYS).
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
	UnlearnRowColumns cols;		/* where the trigger's relation holds its columns */
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
		unlearn_capture_columns(RelationGetDescr(rel), &m, &models[i].cols);
	}
	/* column models: their encodings, read once the list above is complete */
	for (int i = 0; i < n; i++)
		if (models[i].cols.feat_att == 0)
			unlearn_capture_columns_encoder(RelationGetDescr(rel), models[i].name, &models[i].cols);
	*n_out = n;
	return models;
}

/* True if two real[] copies differ (shape, NULLs or any value, bit for bit). */
static bool
features_differ(Datum x, Datum y)
{
	ArrayType  *a = DatumGetArrayTypeP(x);
	ArrayType  *b = DatumGetArrayTypeP(y);

	return VARSIZE(a) != VARSIZE(b) || memcmp(a, b, VARSIZE(a)) != 0;
}

/* Queues one request as the catalog owner (SPI connected). */
static void
queue_request(const char *model, const char *kind, const UnlearnCapturedRow *old, const char *new_label)
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
	UnlearnCapturedRow	old,
				new;
	UnlearnCatalogUser saved;
	bool		locked;

	/* step 1: a row the model could not have learned (a NULL column) needs nothing */
	if (!unlearn_capture_read_row(RelationGetDescr(rel), old_tup, &m->cols, &old))
		return;
	/* step 2: the model's row must still be there (locked as committed now) */
	unlearn_become_catalog_owner(&saved);
	locked = unlearn_lock_model_row(m->name, m->relid);
	unlearn_restore_user(&saved);
	if (!locked)
		return;
	/* step 3: a DELETE, or an UPDATE of the id or features, forgets; of the label, relabels */
	if (new_tup == NULL || !unlearn_capture_read_row(RelationGetDescr(rel), new_tup, &m->cols, &new) || new.id != old.id ||
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
