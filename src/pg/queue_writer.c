/*
 * queue_writer.c: requests written straight into unlearn.requests.
 *
 * The capture's hot path.  A single-row DELETE used to queue its request
 * with an INSERT ... SELECT through SPI: an executor started and ended per
 * statement, the table's CHECK constraints and column defaults read back
 * from the catalog and planned, a result tuple projected.  That was half
 * the cost of a DELETE on a server without durable commits.  The writer
 * forms the request's tuple in C and inserts it with the table AM and the
 * executor's index maintenance, as the INSERT did: the same heap tuple, the
 * same WAL (so the same durability: the row commits with the DELETE), the
 * same unique check on request_id.
 *
 * It sets every column itself, with the values the table's defaults and
 * checks allow (state 'pending', attempts 0, next_attempt_at the
 * transaction's start, enqueued_at now, request_id from the table's
 * sequence), so it checks the table's shape when it opens it and refuses a
 * table that is not the one it was written for.  It checks the table's NOT
 * NULL and CHECK constraints per row as an INSERT does (the CHECKs planned
 * once per backend, kept while their stored texts stay the same); the
 * queue has no trigger, foreign key or row-level security for it to honour.
 */
#include "postgres.h"

#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "optimizer/optimizer.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "queue.h"

/* The columns of unlearn.requests, in order, as the writer fills them. */
static const struct
{
	const char *name;
	Oid			type;
}			request_columns[] =
{
	{"request_id", INT8OID}, {"model", TEXTOID}, {"kind", TEXTOID}, {"id", INT8OID},
	{"label", TEXTOID}, {"new_label", TEXTOID}, {"features", FLOAT4ARRAYOID}, {"state", TEXTOID},
	{"attempts", INT4OID}, {"last_error", TEXTOID}, {"note", TEXTOID},
	{"next_attempt_at", TIMESTAMPTZOID}, {"enqueued_at", TIMESTAMPTZOID}, {"done_at", TIMESTAMPTZOID},
	{"version", INT4OID}, {"requested_by", NAMEOID}
};

#define N_REQUEST_COLUMNS lengthof(request_columns)

struct UnlearnQueueWriter
{
	Relation	rel;
	EState	   *estate;
	ResultRelInfo *rri;
	TupleTableSlot *slot;
	Oid			seq;			/* the request_id sequence */
	Datum		requested_by;	/* name */
	Datum		pending;		/* 'pending' */
};

/*
 * The queue's CHECK constraints, parsed and planned once per backend:
 * ExecConstraints would parse each constraint's stored text again for every
 * writer, a twelfth of a single-row DELETE's time.  Valid while the table's
 * constraint texts are those they were built from (compared per writer) and
 * no function or operator has changed since (planning inlines SQL functions
 * and folds immutable ones, so a replaced function must be planned again:
 * any change to pg_proc, pg_operator or pg_type marks the cache stale, as the
 * plan cache does: a domain given a constraint must no longer be a relabel).
 */
typedef struct QueueChecks
{
	MemoryContext cxt;			/* under CacheMemoryContext; NULL until built */
	int			n;				/* -1 while (re)building */
	bool		stale;			/* a function, operator or type changed since the build */
	bool		callbacks;		/* the invalidation callbacks are registered */
	char	  **ccbin;			/* the texts they were built from */
	Expr	  **expr;			/* planned, as ExecPrepareExpr would plan them */
} QueueChecks;

static QueueChecks queue_checks = {NULL, -1, false, false, NULL, NULL};

/* Syscache callback (pg_proc, pg_operator, pg_type): the planned constraints may be out of date. */
static void
checks_invalidate(Datum arg, int cacheid, uint32 hashvalue)
{
	queue_checks.stale = true;
}

/* True if the cache was built from exactly these constraints, with nothing they use changed since. */
static bool
checks_current(const TupleConstr *constr)
{
	if (queue_checks.stale || queue_checks.n != constr->num_check)
		return false;
	for (int i = 0; i < constr->num_check; i++)
		if (strcmp(queue_checks.ccbin[i], constr->check[i].ccbin) != 0)
			return false;
	return true;
}

/* Parses and plans the table's CHECK constraints into the cache. */
static void
build_checks(const TupleConstr *constr)
{
	MemoryContext old;

	/* step 1: drop the old cache; a failure below leaves it empty, not half built */
	queue_checks.n = -1;
	if (!queue_checks.callbacks)
	{
		CacheRegisterSyscacheCallback(PROCOID, checks_invalidate, (Datum) 0);
		CacheRegisterSyscacheCallback(OPEROID, checks_invalidate, (Datum) 0);
		CacheRegisterSyscacheCallback(TYPEOID, checks_invalidate, (Datum) 0);
		queue_checks.callbacks = true;
	}
	queue_checks.stale = false; /* a change seen while building marks it stale again */
	if (queue_checks.cxt)
		MemoryContextDelete(queue_checks.cxt);
	queue_checks.cxt = AllocSetContextCreate(CacheMemoryContext, "unlearn queue checks",
											 ALLOCSET_SMALL_SIZES);
	/* step 2: each constraint's text and its planned expression */
	old = MemoryContextSwitchTo(queue_checks.cxt);
	queue_checks.ccbin = palloc(sizeof(char *) * Max(constr->num_check, 1));
	queue_checks.expr = palloc(sizeof(Expr *) * Max(constr->num_check, 1));
	for (int i = 0; i < constr->num_check; i++)
	{
		queue_checks.ccbin[i] = pstrdup(constr->check[i].ccbin);
		queue_checks.expr[i] = expression_planner((Expr *) stringToNode(constr->check[i].ccbin));
	}
	MemoryContextSwitchTo(old);
	queue_checks.n = constr->num_check;
}

/*
 * Gives the writer's result relation its CHECK constraints ready to run, as
 * ExecConstraints would build them on its first row, from the cache (each
 * copied into the statement's memory, so a rebuild never frees what a
 * running writer uses).
 */
static void
prepare_checks(UnlearnQueueWriter *w)
{
	const TupleConstr *constr = RelationGetDescr(w->rel)->constr;
	MemoryContext old;

	if (constr == NULL || constr->num_check == 0)
		return;
	if (!checks_current(constr))
		build_checks(constr);
	Assert(queue_checks.n == constr->num_check);
	old = MemoryContextSwitchTo(w->estate->es_query_cxt);
	w->rri->ri_ConstraintExprs = palloc(sizeof(ExprState *) * constr->num_check);
	for (int i = 0; i < constr->num_check; i++)
		w->rri->ri_ConstraintExprs[i] = ExecInitExpr(copyObject(queue_checks.expr[i]), NULL);
	MemoryContextSwitchTo(old);
}

/* Errors (55000) unless unlearn.requests is a plain table with the columns the writer fills, in order. */
static void
check_shape(Relation rel)
{
	TupleDesc	desc = RelationGetDescr(rel);

	if (rel->rd_rel->relkind != RELKIND_RELATION || desc->natts != (int) N_REQUEST_COLUMNS)
		goto bad;
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped || att->atttypid != request_columns[i].type ||
			strcmp(NameStr(att->attname), request_columns[i].name) != 0)
			goto bad;
	}
	return;
bad:
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("unlearn.requests does not have the columns this version of unlearn writes"),
			 errhint("Run ALTER EXTENSION unlearn UPDATE, or reinstall the library that matches it.")));
}

/*
 * Opens the queue for inserts by a role that may write it (the catalog
 * owner), for requests made by requested_by.  Closed by
 * unlearn_queue_writer_close in the same transaction.
 */
UnlearnQueueWriter *
unlearn_queue_writer_open(const char *requested_by)
{
	Oid			ns = get_namespace_oid("unlearn", false);
	Oid			relid = get_relname_relid("requests", ns);
	UnlearnQueueWriter *w = palloc0(sizeof(UnlearnQueueWriter));

	/* step 1: the table and its sequence, with the rights an INSERT would check */
	if (!OidIsValid(relid))
		elog(ERROR, "unlearn.requests is missing");
	w->seq = get_relname_relid("requests_request_id_seq", ns);
	if (!OidIsValid(w->seq))
		elog(ERROR, "unlearn.requests_request_id_seq is missing");
	if (pg_class_aclcheck(relid, GetUserId(), ACL_INSERT) != ACLCHECK_OK)
		elog(ERROR, "permission denied to queue unlearning requests");
	w->rel = table_open(relid, RowExclusiveLock);
	check_shape(w->rel);
	/*
	 * step 2: an executor state for the constraints and the index inserts
	 * (unique check, partial index predicate); no range table, so the result
	 * relation has range table index 0 (what an error report reads from it)
	 */
	w->estate = CreateExecutorState();
	w->estate->es_output_cid = GetCurrentCommandId(true);
	w->rri = makeNode(ResultRelInfo);
	InitResultRelInfo(w->rri, w->rel, 0, NULL, 0);
	ExecOpenIndices(w->rri, false);
	prepare_checks(w);
	w->slot = MakeSingleTupleTableSlot(RelationGetDescr(w->rel), &TTSOpsVirtual);
	w->requested_by = DirectFunctionCall1(namein, CStringGetDatum(requested_by));
	w->pending = CStringGetTextDatum("pending");
	return w;
}

/* Sets column i (0-based, in request_columns' order) of the row being formed. */
static inline void
set_column(TupleTableSlot *slot, int i, Datum value)
{
	Assert(i >= 0 && i < (int) N_REQUEST_COLUMNS);
	slot->tts_values[i] = value;
	slot->tts_isnull[i] = false;
}

/* Inserts one request (kind 'forget' or 'relabel'; new_label NULL unless relabel). */
void
unlearn_queue_writer_put(UnlearnQueueWriter *w, const char *model, const char *kind, int64 id,
						 const char *label, const char *new_label, Datum features)
{
	TupleTableSlot *slot = w->slot;
	bool	   *n = slot->tts_isnull;

	Assert(strcmp(kind, "forget") == 0 || (strcmp(kind, "relabel") == 0 && new_label != NULL));
	Assert(DatumGetPointer(features) != NULL);
	/* step 1: the row: every column the defaults would fill set here, the rest NULL */
	ExecClearTuple(slot);
	memset(n, true, sizeof(bool) * N_REQUEST_COLUMNS);
	set_column(slot, 0, Int64GetDatum(nextval_internal(w->seq, false)));
	set_column(slot, 1, CStringGetTextDatum(model));
	set_column(slot, 2, CStringGetTextDatum(kind));
	set_column(slot, 3, Int64GetDatum(id));
	set_column(slot, 4, CStringGetTextDatum(label));
	if (new_label)
		set_column(slot, 5, CStringGetTextDatum(new_label));
	set_column(slot, 6, features);	/* as the capture read it: compressed or out of line stays so */
	set_column(slot, 7, w->pending);
	set_column(slot, 8, Int32GetDatum(0));
	set_column(slot, 11, TimestampTzGetDatum(GetCurrentTransactionStartTimestamp()));	/* now() */
	set_column(slot, 12, TimestampTzGetDatum(GetCurrentTimestamp()));	/* clock_timestamp() */
	set_column(slot, 15, w->requested_by);
	ExecStoreVirtualTuple(slot);
	/*
	 * step 2: the table's NOT NULL and CHECK constraints, as an INSERT checks
	 * them (each CHECK planned once per backend, see prepare_checks), so no
	 * request the SQL path would refuse gets in (a constraint an
	 * administrator added included)
	 */
	if (RelationGetDescr(w->rel)->constr)
		ExecConstraints(w->rri, slot, w->estate);
	/* step 3: the heap tuple (TOASTed as the column's storage says), then the indexes */
	table_tuple_insert(w->rel, slot, w->estate->es_output_cid, 0, NULL);
	ExecInsertIndexTuples(w->rri, slot, w->estate, false, false, NULL, NIL);
	ResetPerTupleExprContext(w->estate);
}

/* Closes the writer: indexes, slot and executor state released, the table's lock kept. */
void
unlearn_queue_writer_close(UnlearnQueueWriter *w)
{
	ExecDropSingleTupleTableSlot(w->slot);
	ExecCloseIndices(w->rri);
	FreeExecutorState(w->estate);
	table_close(w->rel, NoLock);
	pfree(w);
}
