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
 *    apply nothing more: the owner has SELECT on the table, no row-level
 *    security applies to it, and every table the rows come from is a heap
 *    table of the model's table tree.  Nothing of a user's is evaluated (no
 *    function, operator or cast: the id is an integer read from the tuple);
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
bool
unlearn_same_stamp(const WarmStamp *a, const WarmStamp *b)
{
	return OidIsValid(a->tableoid) && a->tableoid == b->tableoid && a->xmin == b->xmin &&
		ItemPointerEquals((ItemPointer) &a->ctid, (ItemPointer) &b->ctid);
}

/* True for the integer types an id column may have. */
static bool
is_int_type(Oid typid)
{
	return typid == INT2OID || typid == INT4OID || typid == INT8OID;
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

	/* step 1: the ctids, in the order the lookups below search */
	qsort(rows, n, sizeof(CheckedRow), cmp_ctid);
	for (int64 i = 0; i < n; i++)
		tids[i] = PointerGetDatum(&rows[i].stamp->ctid);
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
		if (row && !isnull && is_int_type(id_type) &&
			unlearn_same_stamp(&found, row->stamp) && unlearn_int_datum(id, id_type) == row->id)
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
 * current user (the owner) may SELECT the whole table and no row-level
 * security applies to it (policies of the tables below it never apply to a
 * read of it).
 */
static bool
direct_allowed(Oid relid)
{
	return pg_class_aclcheck(relid, GetUserId(), ACL_SELECT) == ACLCHECK_OK &&
		check_enable_rls(relid, InvalidOid, true) != RLS_ENABLED;
}

/*
 * True when every row's table can be read directly: a heap table (not a
 * partitioned one, not another access method) whose id column is there.
 * A table outside the model's table tree (a partition detached since) holds
 * none of its rows: those rows stay "not there", as a scan of the tree
 * would leave them.
 */
static bool
tables_readable(const UnlearnModel *model, const CheckedRow *rows, int64 n, const List *tree)
{
	for (int64 i = 0; i < n; i++)
	{
		Oid			oid = rows[i].stamp->tableoid;

		if (i > 0 && oid == rows[i - 1].stamp->tableoid)
			continue;			/* sorted by table: one look per table */
		if (!list_member_oid(tree, oid))
			continue;
		if (get_rel_relkind(oid) != RELKIND_RELATION || get_attnum(oid, model->id_column) == InvalidAttrNumber)
			return false;
		{
			Relation	rel = table_open(oid, AccessShareLock);
			bool		heap = rel->rd_rel->relam == HEAP_TABLE_AM_OID;

			table_close(rel, NoLock);
			if (!heap)
				return false;
		}
	}
	return true;
}

/* Whether one row's version is visible in rel under snapshot with the cached xmin and id (slot: rel's). */
static bool
row_there(Relation rel, Snapshot snapshot, TupleTableSlot *slot, AttrNumber id_att, Oid id_type,
		  BlockNumber nblocks, const CheckedRow *row)
{
	ItemPointerData tid = row->stamp->ctid;
	bool		isnull;
	Datum		d;
	bool		same;

	/* a page past the end (truncated since) holds nothing, as a TID scan would skip it */
	if (!ItemPointerIsValid(&tid) || ItemPointerGetBlockNumber(&tid) >= nblocks)
		return false;
	if (!table_tuple_fetch_row_version(rel, &tid, snapshot, slot))
		return false;
	d = slot_getsysattr(slot, MinTransactionIdAttributeNumber, &isnull);
	same = !isnull && DatumGetTransactionId(d) == row->stamp->xmin;
	d = slot_getattr(slot, id_att, &isnull);
	same = same && !isnull && unlearn_int_datum(d, id_type) == row->id;
	ExecClearTuple(slot);
	return same;
}

/* Checks rows [lo, hi), all of table oid (a heap table of the tree), under the active snapshot. */
static void
check_table_rows(const UnlearnModel *model, Oid oid, CheckedRow *rows, int64 lo, int64 hi)
{
	Relation	rel = table_open(oid, AccessShareLock);
	AttrNumber	id_att = get_attnum(oid, model->id_column);
	Oid			id_type = TupleDescAttr(RelationGetDescr(rel), id_att - 1)->atttypid;
	BlockNumber nblocks = RelationGetNumberOfBlocks(rel);
	Snapshot	snapshot = GetActiveSnapshot();
	TupleTableSlot *slot = table_slot_create(rel, NULL);

	Assert(id_att > 0);
	/* an id column that is no longer an integer: no row is there, as in the SPI read */
	if (is_int_type(id_type))
		for (int64 i = lo; i < hi; i++)
		{
			if ((i - lo) % CHECK_INTERRUPTS_EVERY == 0)
				CHECK_FOR_INTERRUPTS();
			rows[i].there = row_there(rel, snapshot, slot, id_att, id_type, nblocks, &rows[i]);
		}
	ExecDropSingleTupleTableSlot(slot);
	table_close(rel, NoLock);
}

/*
 * The direct way; false (nothing set) when it is not possible and the SPI
 * way must decide.
 */
static bool
find_unchanged_direct(const UnlearnModel *model, CheckedRow *rows, int64 n)
{
	List	   *tree;
	int64		lo = 0;

	/* step 1: the same rights and policies as the SPI read, and tables it can read directly */
	if (!direct_allowed(model->relid))
		return false;
	tree = find_all_inheritors(model->relid, NoLock, NULL);	/* locked by the caller */
	qsort(rows, n, sizeof(CheckedRow), cmp_table_ctid);
	if (!tables_readable(model, rows, n, tree))
		return false;
	/* step 2: one table at a time */
	while (lo < n)
	{
		Oid			oid = rows[lo].stamp->tableoid;
		int64		hi = lo;

		while (hi < n && rows[hi].stamp->tableoid == oid)
			hi++;
		if (list_member_oid(tree, oid))
			check_table_rows(model, oid, rows, lo, hi);
		lo = hi;
	}
	return true;
}

/* See warm_check.h. */
bool
unlearn_find_unchanged(const UnlearnModel *model, CheckedRow *rows, int64 n)
{
	for (int64 i = 0; i < n; i++)
		rows[i].there = false;
	if (find_unchanged_direct(model, rows, n))
		return true;
	find_unchanged_spi(model, rows, n);
	return false;
}
