/*
 * warm_check.c: whether the worker's cached rows are still in the table.
 *
 * Each warm run checks every cached row (18 000 on Fashion-MNIST) against
 * the table under the run's snapshot: the row version it was read from
 * (tableoid, ctid, xmin) must still be visible there, with the same id.
 *
 * Two ways, same verdicts:
 *  - direct: one heap fetch per row through the table access method, no
 *    executor and no result tuples.  Only where the SPI read below would
 *    apply nothing more: the owner may use the table's schema and SELECT the
 *    table, no row-level security applies to it, no executor permission
 *    hook is loaded, and every table the rows come from is a heap table of
 *    the model's table tree (checked once locked).  Nothing of a user's is
 *    evaluated (no planning, no function, operator or cast: the id is an
 *    integer read from the tuple);
 *  - SPI: a TID scan of the rows' ctids on the model's table, with the
 *    executor's privilege checks and policies, where the direct way is not
 *    possible.
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/tableam.h"
#include "catalog/pg_am.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"

#include "unlearn_pg.h"
#include "warm_check.h"

#define CHECK_INTERRUPTS_EVERY 1024 /* rows fetched between interrupt checks */

/* True if two stamps name the same row version. */
static bool
same_stamp(const WarmStamp *a, const WarmStamp *b)
{
	return OidIsValid(a->tableoid) && a->tableoid == b->tableoid && a->xmin == b->xmin &&
		ItemPointerEquals((ItemPointer) &a->ctid, (ItemPointer) &b->ctid);
}

/* ------------------------------------------------------------------ SPI */

/* Orders checked rows by ctid, then tableoid. */
static int
cmp_ctid(const void *a, const void *b)
{
	const WarmStamp *x = ((const CheckedRow *) a)->stamp;
	const WarmStamp *y = ((const CheckedRow *) b)->stamp;
	int			c = ItemPointerCompare((ItemPointer) &x->ctid, (ItemPointer) &y->ctid);

	if (c != 0)
		return c;
	return (x->tableoid > y->tableoid) - (x->tableoid < y->tableoid);
}

/*
 * The SPI way: a TID scan of the rows' ctids on the model's table (one heap
 * fetch each, no index probe), as the owner, with the executor's checks;
 * each tuple found must match a row's stamp and id.
 */
static void
find_unchanged_spi(const UnlearnModel *model, CheckedRow *rows, int64 n)
{
	char	   *sql = psprintf("SELECT tableoid, ctid, xmin, %s FROM %s WHERE ctid OPERATOR(pg_catalog.=) ANY($1)",
							   quote_identifier(model->id_column), unlearn_qualified_name(model->relid));
	Datum	   *tids = palloc(sizeof(Datum) * Max(n, 1));
	Oid			argtypes[1] = {TIDARRAYOID};
	Datum		args[1];

	/* step 1: the ctids, in the order the lookups below search; no row there until found */
	qsort(rows, n, sizeof(CheckedRow), cmp_ctid);
	for (int64 i = 0; i < n; i++)
	{
		tids[i] = PointerGetDatum(&rows[i].stamp->ctid);
		rows[i].there = false;
	}
	args[0] = PointerGetDatum(construct_array(tids, (int) n, TIDOID, sizeof(ItemPointerData), false,
											  TYPALIGN_SHORT));
	/* step 2: the scan, then each tuple against the row cached at its ctid */
	if (SPI_execute_with_args(sql, 1, argtypes, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not check the cached rows of model \"%s\"", model->name);
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		HeapTuple	tup = SPI_tuptable->vals[r];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		Oid			id_type = SPI_gettypeid(desc, 4);
		bool		isnull;
		WarmStamp	found;
		CheckedRow	key = {&found, 0, 0, false};
		CheckedRow *row;
		Datum		id;

		found.tableoid = DatumGetObjectId(SPI_getbinval(tup, desc, 1, &isnull));
		ItemPointerCopy((ItemPointer) DatumGetPointer(SPI_getbinval(tup, desc, 2, &isnull)), &found.ctid);
		found.xmin = DatumGetTransactionId(SPI_getbinval(tup, desc, 3, &isnull));
		id = SPI_getbinval(tup, desc, 4, &isnull);
		row = bsearch(&key, rows, n, sizeof(CheckedRow), cmp_ctid);
		if (row && !isnull && unlearn_is_int_type(id_type) &&
			same_stamp(&found, row->stamp) && unlearn_int_datum(id, id_type) == row->id)
			row->there = true;
	}
	SPI_freetuptable(SPI_tuptable);
}

/* ------------------------------------------------------------------ direct */

/* Orders checked rows by tableoid, then ctid (one table at a time, its pages in order). */
static int
cmp_table_ctid(const void *a, const void *b)
{
	const WarmStamp *x = ((const CheckedRow *) a)->stamp;
	const WarmStamp *y = ((const CheckedRow *) b)->stamp;

	if (x->tableoid != y->tableoid)
		return (x->tableoid > y->tableoid) - (x->tableoid < y->tableoid);
	return ItemPointerCompare((ItemPointer) &x->ctid, (ItemPointer) &y->ctid);
}

/*
 * True when the SPI read would apply no more than the direct one: the
 * current user (the owner) may use the table's schema (the query names it)
 * and SELECT the whole table (as training requires; the row versions are
 * not covered by column privileges), no row-level security applies to it
 * (policies of the tables below it never apply to a read of it), and no
 * module checks the executor's permissions beside PostgreSQL (sepgsql,
 * audit logging see the SPI read only).  Otherwise the SPI read decides,
 * and fails where the owner may not read the table.
 */
static bool
direct_allowed(Oid relid)
{
	return ExecutorCheckPerms_hook == NULL &&
		pg_namespace_aclcheck(get_rel_namespace(relid), GetUserId(), ACL_USAGE) == ACLCHECK_OK &&
		pg_class_aclcheck(relid, GetUserId(), ACL_SELECT) == ACLCHECK_OK &&
		check_enable_rls(relid, InvalidOid, true) != RLS_ENABLED;
}

/* One table the rows come from, opened and locked (rel NULL: it holds none of them). */
typedef struct DirectTable
{
	Relation	rel;
	AttrNumber	id_att;
	Oid			id_type;
} DirectTable;

/* Closes what open_table opened (its lock is held to the end of the transaction). */
static void
close_table(DirectTable *t)
{
	if (t->rel)
		table_close(t->rel, NoLock);
	t->rel = NULL;
}

/*
 * Opens and locks one table the rows come from, then checks it as locked:
 * a table outside the model's table tree (a partition detached since), gone
 * since, or another session's temporary table holds none of the rows
 * (t->rel NULL), as a scan of the tree would not read it; false when the
 * direct way cannot read it (not a heap table, no id column), and the SPI
 * way must decide.
 */
static bool
open_table(const UnlearnModel *model, Oid oid, const List *tree, DirectTable *t)
{
	Form_pg_attribute att;

	memset(t, 0, sizeof(*t));
	if (!list_member_oid(tree, oid))
		return true;
	t->rel = try_table_open(oid, AccessShareLock);
	if (t->rel != NULL && RELATION_IS_OTHER_TEMP(t->rel))
		close_table(t);
	if (t->rel == NULL)
		return true;
	t->id_att = get_attnum(oid, model->id_column);
	if (t->rel->rd_rel->relkind != RELKIND_RELATION || t->rel->rd_rel->relam != HEAP_TABLE_AM_OID ||
		t->id_att < 1 || t->id_att > RelationGetDescr(t->rel)->natts)
		return false;
	att = TupleDescAttr(RelationGetDescr(t->rel), t->id_att - 1);
	if (att->attisdropped)
		return false;
	t->id_type = att->atttypid;
	return true;
}

/* Whether one row's version is visible in t under snapshot with the cached xmin and id (slot: t's). */
static bool
row_there(const DirectTable *t, Snapshot snapshot, TupleTableSlot *slot, BlockNumber nblocks,
		  const CheckedRow *row)
{
	ItemPointerData tid = row->stamp->ctid;
	bool		isnull;
	Datum		d;
	bool		same;

	/* a page past the end (truncated since) holds nothing, as a TID scan would skip it */
	if (!ItemPointerIsValid(&tid) || ItemPointerGetBlockNumber(&tid) >= nblocks)
		return false;
	if (!table_tuple_fetch_row_version(t->rel, &tid, snapshot, slot))
		return false;
	d = slot_getsysattr(slot, MinTransactionIdAttributeNumber, &isnull);
	same = !isnull && DatumGetTransactionId(d) == row->stamp->xmin;
	d = slot_getattr(slot, t->id_att, &isnull);
	same = same && !isnull && unlearn_int_datum(d, t->id_type) == row->id;
	ExecClearTuple(slot);
	return same;
}

/* Rows [lo, hi) are not there. */
static void
set_not_there(CheckedRow *rows, int64 lo, int64 hi)
{
	for (int64 i = lo; i < hi; i++)
		rows[i].there = false;
}

/* Checks rows [lo, hi), all of table t (open and checked), under the active snapshot. */
static void
check_table_rows(const DirectTable *t, CheckedRow *rows, int64 lo, int64 hi)
{
	BlockNumber nblocks = RelationGetNumberOfBlocks(t->rel);
	Snapshot	snapshot = GetActiveSnapshot();
	TupleTableSlot *slot;

	Assert(t->id_att > 0);
	/* an id column that is no longer an integer: no row is there, as in the SPI read */
	if (!unlearn_is_int_type(t->id_type))
	{
		set_not_there(rows, lo, hi);
		return;
	}
	slot = table_slot_create(t->rel, NULL);
	for (int64 i = lo; i < hi; i++)
	{
		if ((i - lo) % CHECK_INTERRUPTS_EVERY == 0)
			CHECK_FOR_INTERRUPTS();
		rows[i].there = row_there(t, snapshot, slot, nblocks, &rows[i]);
	}
	ExecDropSingleTupleTableSlot(slot);
}

/*
 * The direct way: sets `there` for every row; false when it is not possible
 * and the SPI way must decide (which sets every row again).
 */
static bool
find_unchanged_direct(const UnlearnModel *model, CheckedRow *rows, int64 n)
{
	List	   *tree;
	int64		lo = 0;

	/* step 1: an MVCC snapshot (the caller saw to the rights and policies) */
	if (!ActiveSnapshotSet() || !IsMVCCSnapshot(GetActiveSnapshot()))
		elog(ERROR, "checking the cached rows of model \"%s\" needs an MVCC snapshot", model->name);
	tree = find_all_inheritors(model->relid, NoLock, NULL);	/* locked by the caller */
	/* rows of several tables: grouped by table (sorting 18 000 rows took a third of the check) */
	for (int64 i = 1; i < n; i++)
		if (rows[i].stamp->tableoid != rows[0].stamp->tableoid)
		{
			qsort(rows, n, sizeof(CheckedRow), cmp_table_ctid);
			break;
		}
	/* step 2: one table at a time, opened and checked as locked */
	while (lo < n)
	{
		Oid			oid = rows[lo].stamp->tableoid;
		int64		hi = lo;
		DirectTable t;
		bool		readable;

		while (hi < n && rows[hi].stamp->tableoid == oid)
			hi++;
		readable = open_table(model, oid, tree, &t);
		if (readable && t.rel)
			check_table_rows(&t, rows, lo, hi);
		else
			set_not_there(rows, lo, hi);
		close_table(&t);
		if (!readable)
			return false;
		lo = hi;
	}
	return true;
}

/* See warm_check.h. */
bool
unlearn_find_unchanged(const UnlearnModel *model, CheckedRow *rows, int64 n)
{
	if (direct_allowed(model->relid) && find_unchanged_direct(model, rows, n))
		return true;
	find_unchanged_spi(model, rows, n);
	return false;
}
