/*
 * warm_check.h: whether the worker's cached rows are still in the table
 * (warm_check.c), for warm.c only.
 */
#ifndef UNLEARN_WARM_CHECK_H
#define UNLEARN_WARM_CHECK_H

#include "postgres.h"
#include "storage/itemptr.h"

#include "catalog.h"

/* Which row version a cached row was read from. */
typedef struct WarmStamp
{
	Oid			tableoid;		/* InvalidOid: not found */
	TransactionId xmin;
	ItemPointerData ctid;
} WarmStamp;

/* A cached row being checked: where it was read from, its id, and whether it is still there. */
typedef struct CheckedRow
{
	const WarmStamp *stamp;
	int64		id;
	int64		pos;			/* held-out rows first, then replay rows */
	bool		there;
} CheckedRow;

/*
 * Sets `there` for each of the n rows whose row version the model's table
 * (or a table below it) still holds under the active snapshot, with the
 * same tableoid, xmin and id; the order of rows may change.  Returns true
 * when it read them with direct heap fetches, false when with a scan
 * through the executor (see warm_check.c).  Caller: as the model's owner,
 * connected to SPI, the table tree checked and locked
 * (unlearn_check_table_tree).
 */
bool		unlearn_find_unchanged(const UnlearnModel *model, CheckedRow *rows, int64 n);

#endif							/* UNLEARN_WARM_CHECK_H */
