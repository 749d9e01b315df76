/*
 * model_lock.c: the capture's key-share lock on a model's catalog row.
 *
 * Each captured DELETE or UPDATE locks its model's row in unlearn.models
 * FOR KEY SHARE, as committed now, and holds the lock to the end of its
 * transaction: unlearn_drop_model locks the row FOR UPDATE first, so it
 * waits for the requests to commit and then removes them, and they never
 * reach a new model of the same name.  This was an SPI query, SELECT ...
 * FOR KEY SHARE under the latest snapshot: an executor started and ended
 * per statement, a tenth of a single-row DELETE's time.  Here the same is
 * done with the table AM: the row found through the primary key under the
 * latest snapshot, locked with table_tuple_lock following the row's updates
 * as READ COMMITTED's row locks do, and the locked version checked again
 * (EvalPlanQual's re-check).  It follows them in every isolation level: the
 * lock is about the row as committed now, not about the transaction's
 * snapshot, so a worker's version committed meanwhile does not fail a
 * REPEATABLE READ DELETE with 40001 as the SQL lock did, and a drop
 * committed while we waited means the model is gone: nothing is queued for
 * it (the drop removed its requests anyway).  No operator or function of a
 * user's runs: the lookup compares text with the built-in texteq under the
 * index's collation, and the caller runs as the catalog owner.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/relscan.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_relation.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "capture.h"

/* Where unlearn.models keeps what the lock looks at. */
typedef struct ModelsTable
{
	Relation	rel;
	AttrNumber	name_att;		/* text, the primary key */
	AttrNumber	relation_att;	/* regclass */
	Oid			pkey;
} ModelsTable;

/* Errors (55000) unless unlearn.models has the columns and primary key the lock reads. */
static void
check_models_shape(ModelsTable *t)
{
	TupleDesc	desc = RelationGetDescr(t->rel);

	t->name_att = attnameAttNum(t->rel, "name", false);
	t->relation_att = attnameAttNum(t->rel, "relation", false);
	t->pkey = RelationGetPrimaryKeyIndex(t->rel);
	if (t->name_att <= 0 || t->relation_att <= 0 || !OidIsValid(t->pkey) ||
		TupleDescAttr(desc, t->name_att - 1)->atttypid != TEXTOID ||
		TupleDescAttr(desc, t->relation_att - 1)->atttypid != REGCLASSOID)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("unlearn.models does not have the columns this version of unlearn reads"),
				 errhint("Run ALTER EXTENSION unlearn UPDATE, or reinstall the library that matches it.")));
}

/* True if the row in slot is model `name` on table relid. */
static bool
row_is_model(const ModelsTable *t, TupleTableSlot *slot, const char *name, Oid relid)
{
	bool		isnull;
	Datum		d = slot_getattr(slot, t->name_att, &isnull);

	if (isnull || strcmp(TextDatumGetCString(d), name) != 0)
		return false;
	d = slot_getattr(slot, t->relation_att, &isnull);
	return !isnull && DatumGetObjectId(d) == relid;
}

/* Finds model `name` on relid under snap through the primary key; true with the row in slot. */
static bool
find_model_row(const ModelsTable *t, Snapshot snap, const char *name, Oid relid, TupleTableSlot *slot)
{
	Relation	idx = index_open(t->pkey, AccessShareLock);
	ScanKeyData key;
	IndexScanDesc scan;
	bool		found = false;

	/* step 1: the index must be the one on name alone */
	if (idx->rd_index->indnatts != 1 || idx->rd_index->indkey.values[0] != t->name_att)
		elog(ERROR, "the primary key of unlearn.models is not on its column name");
	/* step 2: name = $1 with texteq under the index's collation */
	ScanKeyEntryInitialize(&key, 0, 1, BTEqualStrategyNumber, InvalidOid, idx->rd_indcollation[0],
						   F_TEXTEQ, CStringGetTextDatum(name));
	scan = index_beginscan(t->rel, idx, snap, 1, 0);
	index_rescan(scan, &key, 1, NULL, 0);
	/* step 3: the visible row, if it is on relid (a model of that name on another table is not ours) */
	while (!found && index_getnext_slot(scan, ForwardScanDirection, slot))
		found = row_is_model(t, slot, name, relid);
	index_endscan(scan);
	index_close(idx, NoLock);
	return found;
}

/*
 * Locks the row in slot FOR KEY SHARE, waiting for a transaction that holds
 * a conflicting lock (a drop), following updates committed since snap;
 * true if a version of the row is locked and still this model's.
 */
static bool
lock_found_row(const ModelsTable *t, Snapshot snap, TupleTableSlot *slot, const char *name, Oid relid)
{
	ItemPointerData tid = slot->tts_tid;
	TM_FailureData tmfd;
	TM_Result	res;

	res = table_tuple_lock(t->rel, &tid, snap, slot, GetCurrentCommandId(true), LockTupleKeyShare,
						   LockWaitBlock,
						   TUPLE_LOCK_FLAG_LOCK_UPDATE_IN_PROGRESS | TUPLE_LOCK_FLAG_FIND_LAST_VERSION, &tmfd);
	switch (res)
	{
		case TM_Ok:
			return row_is_model(t, slot, name, relid);
		case TM_Deleted:
			return false;		/* dropped while we waited */
		default:
			/* our own later change, or one the chain could not follow: never skip a capture silently */
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("could not lock the catalog row of model \"%s\" (result %d)", name, (int) res)));
	}
	return false;				/* not reached */
}

/*
 * Key-share locks model `name`'s catalog row as committed now (not as the
 * statement's snapshot sees it); false if the model is gone or now belongs
 * to another table.  Runs as the catalog owner.
 */
bool
unlearn_lock_model_row(const char *name, Oid relid)
{
	ModelsTable t;
	Snapshot	snap;
	TupleTableSlot *slot;
	bool		locked = false;

	/* step 1: the table, opened and checked as SELECT ... FOR KEY SHARE would */
	t.rel = table_open(RangeVarGetRelid(makeRangeVar("unlearn", "models", -1), RowShareLock, false),
					   NoLock);
	if (pg_class_aclcheck(RelationGetRelid(t.rel), GetUserId(), ACL_UPDATE) != ACLCHECK_OK)
		aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_TABLE, RelationGetRelationName(t.rel));
	check_models_shape(&t);
	/* step 2: the row as committed now, then its lock */
	snap = RegisterSnapshot(GetLatestSnapshot());
	slot = table_slot_create(t.rel, NULL);
	if (find_model_row(&t, snap, name, relid, slot))
		locked = lock_found_row(&t, snap, slot, name, relid);
	/* step 3: release all but the locks */
	ExecDropSingleTupleTableSlot(slot);
	UnregisterSnapshot(snap);
	table_close(t.rel, NoLock);
	return locked;
}
