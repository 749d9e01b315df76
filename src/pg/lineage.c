/*
 * lineage.c: the model's version tree as the catalog records it (parent
 * links, reasons, which versions forgot rows, the ledger's versions) and the
 * rules that bind the current-version pointer and the ledger to it:
 *
 *   - the current version exists and is the chain's head: the newest
 *     version that is not a reference retrain (only those leave the pointer
 *     where it was);
 *   - every version that forgot rows, and every version the ledger names,
 *     is the current version or one of its ancestors.
 *
 * unlearn_verify_ledger reports breaks of these rules; unlearn_confirm_forgotten
 * answers false when the second one breaks.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"

#include "unlearn_pg.h"

/* Index of a version in the (ascending) lineage, or -1. */
int
unlearn_lineage_index(const UnlearnLineage *l, int version)
{
	int			lo = 0,
				hi = l->n - 1;

	while (lo <= hi)
	{
		int			mid = (lo + hi) / 2;

		if (l->version[mid] == version)
			return mid;
		if (l->version[mid] < version)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return -1;
}

/* Runs one catalog query about the model as the catalog owner (caller connected to SPI). */
static void
lineage_query(const char *sql, const char *model)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1] = {CStringGetTextDatum(model)};
	UnlearnCatalogUser saved;
	int			ret;

	unlearn_become_catalog_owner(&saved);
	ret = SPI_execute_with_args(sql, 1, argtypes, args, NULL, true, 0);
	unlearn_restore_user(&saved);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read the lineage of model \"%s\": %s", model, SPI_result_code_string(ret));
}

/* Marks the current version and its ancestors (a tampered cycle stops at the first repeat). */
static void
mark_chain(UnlearnLineage *l)
{
	int			i = l->current_index;

	while (i >= 0 && !l->on_chain[i])
	{
		l->on_chain[i] = true;
		i = l->parent[i] > 0 ? unlearn_lineage_index(l, l->parent[i]) : -1;
	}
}

/* Reads the lineage of a model (caller connected to SPI), into the current context. */
void
unlearn_read_lineage(const UnlearnModel *model, UnlearnLineage *out)
{
	MemoryContext cxt = CurrentMemoryContext;
	int			n;

	/* the versions, oldest first */
	lineage_query("SELECT version, coalesce(parent, 0), reason, cardinality(forgotten_ids) > 0"
				  " FROM unlearn.versions WHERE model = $1 ORDER BY version", model->name);
	MemoryContextSwitchTo(cxt);
	n = (int) SPI_processed;
	memset(out, 0, sizeof(*out));
	out->n = n;
	out->version = palloc(sizeof(int) * Max(n, 1));
	out->parent = palloc(sizeof(int) * Max(n, 1));
	out->reason = palloc(sizeof(char *) * Max(n, 1));
	out->forgot = palloc(sizeof(bool) * Max(n, 1));
	out->on_chain = palloc0(sizeof(bool) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	td = SPI_tuptable->tupdesc;
		bool		isnull;

		out->version[i] = DatumGetInt32(SPI_getbinval(tup, td, 1, &isnull));
		out->parent[i] = DatumGetInt32(SPI_getbinval(tup, td, 2, &isnull));
		out->reason[i] = SPI_getvalue(tup, td, 3);
		out->forgot[i] = DatumGetBool(SPI_getbinval(tup, td, 4, &isnull));
		if (strcmp(out->reason[i], "reference") != 0)
			out->head = out->version[i];
	}

	/* the versions the ledger names */
	lineage_query("SELECT DISTINCT version FROM unlearn.forgotten WHERE model = $1 ORDER BY 1", model->name);
	MemoryContextSwitchTo(cxt);
	out->n_ledger = (int) SPI_processed;
	out->ledger_version = palloc(sizeof(int) * Max(out->n_ledger, 1));
	for (int i = 0; i < out->n_ledger; i++)
	{
		bool		isnull;

		out->ledger_version[i] = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
	}

	/* the chain from the current version back to the root */
	out->current = model->version;
	out->current_index = unlearn_lineage_index(out, model->version);
	mark_chain(out);
}

/* True when a version exists and is the current version or one of its ancestors. */
static bool
on_chain(const UnlearnLineage *l, int version)
{
	int			i = unlearn_lineage_index(l, version);

	return i >= 0 && l->on_chain[i];
}

/*
 * The first version that forgot rows (by its forgotten_ids or by the
 * ledger) but is not the current version or one of its ancestors; 0 if none.
 */
int
unlearn_lineage_stray_forgetter(const UnlearnLineage *l)
{
	int			first = 0;

	for (int i = 0; i < l->n; i++)
		if (l->forgot[i] && !l->on_chain[i])
		{
			first = l->version[i];
			break;
		}
	for (int i = 0; i < l->n_ledger; i++)
		if (!on_chain(l, l->ledger_version[i]) && (first == 0 || l->ledger_version[i] < first))
		{
			first = l->ledger_version[i];
			break;
		}
	return first;
}

/* True when a version on the chain after `after`, up to the current one, is a retrain. */
bool
unlearn_lineage_retrained_after(const UnlearnLineage *l, int after)
{
	for (int i = 0; i < l->n; i++)
		if (l->on_chain[i] && l->version[i] > after && strcmp(l->reason[i], "retrain") == 0)
			return true;
	return false;
}

/*
 * Appends the breaks of the pointer and ledger rules to s ("; "-separated),
 * as one text about the model.
 */
void
unlearn_lineage_problems(const UnlearnLineage *l, StringInfo s)
{
	/* the pointer: an existing version, the head */
	if (l->current_index < 0)
		appendStringInfo(s, "%sthe model's current version %d does not exist", s->len ? "; " : "", l->current);
	else if (l->head != 0 && l->current != l->head)
		appendStringInfo(s, "%sthe model's current version is %d, but the newest version that is not a reference is %d",
						 s->len ? "; " : "", l->current, l->head);

	/* versions that forgot rows: on the current version's chain */
	for (int i = 0; i < l->n; i++)
		if (l->forgot[i] && !l->on_chain[i])
			appendStringInfo(s, "%sversion %d forgot rows but the current version %d does not descend from it",
							 s->len ? "; " : "", l->version[i], l->current);

	/* the ledger: existing versions on that chain */
	for (int i = 0; i < l->n_ledger; i++)
	{
		int			v = l->ledger_version[i];

		if (unlearn_lineage_index(l, v) < 0)
			appendStringInfo(s, "%sthe ledger names version %d, which does not exist", s->len ? "; " : "", v);
		else if (!on_chain(l, v) && !l->forgot[unlearn_lineage_index(l, v)])
			appendStringInfo(s, "%sthe ledger names version %d but the current version %d does not descend from it",
							 s->len ? "; " : "", v, l->current);
	}
}

/* The versions on the chain from version $2 of model $1 up to its root, as chain(version, parent). */
#define CHAIN_CTE \
	"WITH RECURSIVE chain(version, parent) AS (" \
	"  SELECT version, parent FROM unlearn.versions WHERE model = $1 AND version = $2" \
	"  UNION" /* not UNION ALL: a tampered cycle of parents ends */ \
	"  SELECT v.version, v.parent FROM unlearn.versions v JOIN chain c ON v.version = c.parent" \
	"   WHERE v.model = $1)"

/* Runs CHAIN_CTE followed by `select` for the model's current version, as the catalog owner. */
static void
chain_query(const UnlearnModel *model, const char *select)
{
	Oid			argtypes[2] = {TEXTOID, INT4OID};
	Datum		args[2] = {CStringGetTextDatum(model->name), Int32GetDatum(model->version)};
	UnlearnCatalogUser saved;
	int			ret;

	unlearn_become_catalog_owner(&saved);
	ret = SPI_execute_with_args(psprintf("%s %s", CHAIN_CTE, select), 2, argtypes, args, NULL, true, 1);
	unlearn_restore_user(&saved);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read the lineage of model \"%s\": %s", model->name, SPI_result_code_string(ret));
}

/*
 * The newest version on the current version's chain that was trained from
 * scratch (method NULL: guarantee 'exact'), with its train_seconds (-1 when
 * it has none) and rows; 0 when there is none.  Caller connected to SPI.
 */
int
unlearn_newest_exact_on_chain(const UnlearnModel *model, double *train_seconds, int64 *rows)
{
	bool		isnull;
	int			version;

	chain_query(model, "SELECT v.version, CASE WHEN jsonb_typeof(v.metrics->'train_seconds') = 'number'"
				"  THEN (v.metrics->>'train_seconds')::float8 END, v.rows"
				" FROM unlearn.versions v JOIN chain c ON v.version = c.version"
				" WHERE v.model = $1 AND v.guarantee = 'exact'"
				" ORDER BY v.version DESC LIMIT 1");
	if (SPI_processed != 1)
		return 0;
	version = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	*train_seconds = DatumGetFloat8(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	if (isnull)
		*train_seconds = -1;
	*rows = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
	return version;
}

/*
 * Since the newest exact version on the current version's chain: the rows
 * forgotten by the approximate versions after it (returned; 0 if none), the
 * rows that exact version was trained on (*exact_rows; 0 when the chain has
 * none), and *drift, the points of held-out accuracy those versions' runs
 * lost in all (each run's held_out_before - held_out_after, gains counted
 * against losses; runs without a held-out sample count 0); drift NULL: not
 * computed.
 */
int64
unlearn_forgotten_since_exact(const UnlearnModel *model, int64 *exact_rows, double *drift)
{
	bool		isnull;
	int64		since;
	HeapTuple	tup;
	TupleDesc	td;

	/* the drift reads every version's metrics: only when asked for */
	chain_query(model, psprintf(", exact AS (SELECT v.version, v.rows FROM unlearn.versions v JOIN chain c USING (version)"
								"   WHERE v.model = $1 AND v.guarantee = 'exact' ORDER BY v.version DESC LIMIT 1),"
								" since AS (SELECT v.forgotten_ids, v.metrics FROM unlearn.versions v JOIN chain c USING (version)"
								"   WHERE v.model = $1 AND v.guarantee = 'approximate'"
								"     AND v.version > (SELECT version FROM exact))"
								" SELECT (SELECT rows FROM exact),"
								"  (SELECT coalesce(sum(pg_catalog.cardinality(forgotten_ids)), 0)::int8 FROM since),"
								"  %s",
								drift == NULL ? "0::float8" :
								"(SELECT coalesce(sum(100 * ((metrics->>'held_out_before')::float8"
								"                            - (metrics->>'held_out_after')::float8)), 0)::float8"
								"   FROM since WHERE jsonb_typeof(metrics->'held_out_before') = 'number'"
								"     AND jsonb_typeof(metrics->'held_out_after') = 'number')"));
	Assert(SPI_processed == 1);
	tup = SPI_tuptable->vals[0];
	td = SPI_tuptable->tupdesc;
	*exact_rows = DatumGetInt64(SPI_getbinval(tup, td, 1, &isnull));
	if (isnull)
		*exact_rows = 0;
	if (drift != NULL)
	{
		*drift = DatumGetFloat8(SPI_getbinval(tup, td, 3, &isnull));
		if (isnull)
			*drift = 0;
	}
	since = DatumGetInt64(SPI_getbinval(tup, td, 2, &isnull));
	return isnull ? 0 : since;
}
