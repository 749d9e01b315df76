/*
 * warm.c: the background worker's warm samples.
 *
 * A run reads two samples of the remaining rows from the training table: the
 * guard's held-out rows and the default method's replay rows (rows.c).  On
 * Fashion-MNIST that is 18 000 rows of 784 features per run.  The worker
 * keeps them per model between requests, in a memory context of its own,
 * for the version it stored itself:
 *
 *  - an entry holds only for the committed version the worker made, with
 *    the same table, owner and auto_options (a version made by anyone else,
 *    a new model of the same name, a failed run: the entry is emptied);
 *  - each run checks every cached row against the table under the run's
 *    snapshot, as the model's owner: the row version it was read from
 *    (tableoid, ctid, xmin; any UPDATE, a DELETE, a DELETE and INSERT or a
 *    move between partitions gives another) must still be visible, with
 *    the same id: a heap fetch per row (warm_check.c).  Rows that are not
 *    leave the cache, whether the queue knows of them or not; every cached
 *    id must be in the current manifest, else the entry is emptied;
 *  - the rows the run forgets (or relabels) leave both samples before it;
 *  - a sample above the run's want is trimmed at random; then it is
 *    topped up with a seeded draw of manifest rows outside both samples and
 *    the forget rows, read from the table like a cold run's;
 *  - after a run's commit, off the next request's path (the refresh): an
 *    eighth of each sample, chosen at random, makes way for rows drawn
 *    afresh from the new version's manifest (the rotation, so that no
 *    sample is replayed for ever), and the logits of the version stored on
 *    every cached row are computed from a copy of its weights the run kept:
 *    the next run's theta0 soft targets, repair slice and held-out
 *    accuracy.  A run whose entry was not refreshed rotates its samples
 *    itself before the top-up, and computes the logits it lacks.
 *
 * So a warm run's samples are uniform samples of rows the table holds under
 * the run's snapshot, exactly as a cold run's, with the held-out rows never
 * replayed; only which rows they are differs.  unlearn.worker_cache_size
 * bounds the memory: the least recently used entries go first.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "storage/itemptr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "unlearn_pg.h"
#include "warm.h"
#include "warm_check.h"

#define WARM_CHUNK 1024			/* rows per forward pass of the logits */
/*
 * Each warm run replaces 1 / WARM_ROTATE of each sample's rows (chosen at
 * random) with rows drawn afresh: a sample kept as it is would be replayed
 * run after run and the model fitted to it (on Fashion-MNIST, one sequence
 * of 50 runs lost 1.21 points of test accuracy kept, 0.78 rotated, 0.57
 * with a fresh sample each run: docs/benchmarks.md, "The warm worker").
 */
#define WARM_ROTATE 8

int			unlearn_worker_cache_size = 256;	/* MB */

/* One cached sample: n rows (in no particular order), room for cap. */
typedef struct WarmSample
{
	int64		n,
				cap;
	float	   *X;
	int		   *y;
	int64	   *ids;
	WarmStamp  *stamps;
	float	   *logits;			/* n x classes: the entry's version's logits on each row ... */
	bool	   *known;			/* ... where known (rows read since have none yet) */
} WarmSample;

struct UnlearnWarm
{
	char	   *name;			/* in warm_parent, like the entry */
	Oid			relid;
	Oid			owner;
	char	   *options;		/* auto_options' text, in cxt */
	int			n_features;
	int			n_classes;
	bool		filled;			/* the samples are those of version / stamp ... */
	bool		committed;		/* ... and that version is committed */
	int			version;
	int64		stamp;
	WarmSample	held,
				replay;
	nn_model   *net;			/* the weights of the version a run stored, until its logits are taken */
	bool		net_fresh;		/* net was kept by the pass being stored */
	bool		rotated;		/* the refresh renewed an eighth of each sample since the last run */
	int			want_held,		/* the last run's sample sizes and seed (for the refresh) */
				want_replay;
	uint64		seed;
	MemoryContext cxt;			/* the samples, options and net */
	uint64		last_used;
	UnlearnWarm *next;
};

static UnlearnWarm *entries = NULL;
static UnlearnWarm *current = NULL; /* the entry of the run in progress */
static UnlearnWarm *pending = NULL; /* the entry of the run just committed, until its refresh */
static uint64 warm_clock = 0;
static MemoryContext warm_parent = NULL;

/* ------------------------------------------------------------------ entries */

/* Bytes one row of a sample takes. */
static Size
row_bytes(int n_features, int n_classes)
{
	return sizeof(float) * (n_features + n_classes) + sizeof(int) + sizeof(int64) + sizeof(WarmStamp) +
		sizeof(bool);
}

/* Bytes an entry's samples take (their capacity). */
static Size
entry_bytes(const UnlearnWarm *e)
{
	return (Size) (e->held.cap + e->replay.cap) * row_bytes(e->n_features, e->n_classes);
}

/* Empties an entry's samples (it keeps its identity). */
static void
entry_empty(UnlearnWarm *e)
{
	char	   *options = pstrdup(e->options ? e->options : "");

	MemoryContextReset(e->cxt);
	e->options = MemoryContextStrdup(e->cxt, options);
	memset(&e->held, 0, sizeof(e->held));
	memset(&e->replay, 0, sizeof(e->replay));
	e->net = NULL;				/* it lived in the context */
	e->net_fresh = false;
	e->filled = e->committed = e->rotated = false;
	e->version = 0;
	e->stamp = 0;
}

/* Empties an entry and gives it a model's identity. */
static void
entry_reset(UnlearnWarm *e, const UnlearnModel *model, const char *options)
{
	e->options = NULL;
	entry_empty(e);
	e->options = MemoryContextStrdup(e->cxt, options);
	e->relid = model->relid;
	e->owner = model->owner;
	e->n_features = model->n_features;
	e->n_classes = model->n_classes;
}

/* Unlinks and frees an entry. */
static void
entry_free(UnlearnWarm *e)
{
	UnlearnWarm **p = &entries;

	while (*p != e)
		p = &(*p)->next;
	*p = e->next;
	if (current == e)
		current = NULL;
	if (pending == e)
		pending = NULL;
	MemoryContextDelete(e->cxt);
	pfree(e->name);
	pfree(e);
}

/* The entry of a model name, created empty if there is none. */
static UnlearnWarm *
entry_for(const UnlearnModel *model, const char *options)
{
	UnlearnWarm *e;

	for (e = entries; e; e = e->next)
		if (strcmp(e->name, model->name) == 0)
			return e;
	if (warm_parent == NULL)
		warm_parent = AllocSetContextCreate(TopMemoryContext, "unlearn warm samples", ALLOCSET_SMALL_SIZES);
	e = MemoryContextAllocZero(warm_parent, sizeof(UnlearnWarm));
	e->name = MemoryContextStrdup(warm_parent, model->name);
	e->cxt = AllocSetContextCreate(warm_parent, "unlearn warm model", ALLOCSET_DEFAULT_SIZES);
	entry_reset(e, model, options);
	e->next = entries;
	entries = e;
	return e;
}

/* True if the entry holds the samples of exactly this committed version, table, owner and options. */
static bool
entry_holds(const UnlearnWarm *e, const UnlearnModel *model, const char *options)
{
	return e->filled && e->committed && e->version == model->version &&
		e->stamp == model->version_stamp && e->relid == model->relid && e->owner == model->owner &&
		e->n_features == model->n_features && e->n_classes == model->n_classes &&
		strcmp(e->options, options) == 0;
}

/* Frees least recently used entries until the cache fits unlearn.worker_cache_size. */
static void
enforce_size(void)
{
	Size		limit = (Size) unlearn_worker_cache_size * 1024 * 1024;

	while (entries && unlearn_warm_bytes() > limit)
	{
		UnlearnWarm *oldest = entries;

		for (UnlearnWarm *e = entries; e; e = e->next)
			if (e->last_used < oldest->last_used)
				oldest = e;
		entry_free(oldest);
	}
}

/* Bytes the cached samples hold in all. */
Size
unlearn_warm_bytes(void)
{
	Size		bytes = 0;

	for (UnlearnWarm *e = entries; e; e = e->next)
		bytes += entry_bytes(e);
	return bytes;
}

/* The worker's entry for a run of this model (see warm.h); NULL when the cache is off. */
UnlearnWarm *
unlearn_warm_open(const UnlearnModel *model, const char *auto_options)
{
	UnlearnWarm *e;

	Assert(current == NULL);
	pending = NULL;				/* a refresh not taken is not taken later */
	if (unlearn_worker_cache_size <= 0)
	{
		while (entries)
			entry_free(entries);
		return NULL;
	}
	e = entry_for(model, auto_options);
	if (!entry_holds(e, model, auto_options))
		entry_reset(e, model, auto_options);
	e->last_used = ++warm_clock;
	current = e;
	return e;
}

/* A run stored a version made of these weights (an approximate run's, not a retrain's): kept for its logits. */
void
unlearn_warm_keep_net(UnlearnWarm *w, const nn_model *net)
{
	MemoryContext old;

	if (w == NULL || !w->filled)
		return;
	Assert(w == current);
	if (w->net)
		nn_free(w->net);
	old = MemoryContextSwitchTo(w->cxt);
	w->net = nn_clone(net);
	MemoryContextSwitchTo(old);
	w->net_fresh = w->net != NULL;
}

/* A pass stored a version: the samples are that version's from now on (committed later). */
void
unlearn_warm_stored(UnlearnWarm *w, const UnlearnModel *model)
{
	if (w == NULL || !w->filled)
		return;
	Assert(w == current);
	w->version = model->version;
	w->stamp = model->version_stamp;
	w->committed = false;
	/* the logits known were the previous version's; the weights, if this pass kept them, are the new one's */
	if (w->held.n > 0)
		memset(w->held.known, 0, sizeof(bool) * w->held.n);
	if (w->replay.n > 0)
		memset(w->replay.known, 0, sizeof(bool) * w->replay.n);
	if (w->net && !w->net_fresh)
	{
		nn_free(w->net);
		w->net = NULL;
	}
	w->net_fresh = false;
}

/* The logits of every row of a sample under the entry's kept weights. */
static void
sample_logits(UnlearnWarm *e, WarmSample *s)
{
	nn_workspace *ws;

	if (s->n == 0)
		return;
	ws = nn_workspace_create(e->net, (int) Min(s->n, (int64) WARM_CHUNK));
	if (ws == NULL)
		elog(ERROR, "out of memory");
	nn_predict_logits(e->net, ws, s->X, (int) s->n, s->logits);
	nn_workspace_free(ws);
	memset(s->known, 1, sizeof(bool) * s->n);
}

/*
 * After the commit, before the next request: the stored version's logits on
 * both samples (the next run's theta0 soft targets, held-out slice and
 * held-out predictions), computed from the weights the run kept; an error
 * (out of memory) only empties the entry, a cancel is raised on.
 */
static void
take_logits(UnlearnWarm *e)
{
	MemoryContext cxt = CurrentMemoryContext;

	PG_TRY();
	{
		sample_logits(e, &e->held);
		sample_logits(e, &e->replay);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		/* a cancel (unlearn.max_run_time, pg_cancel_backend) ends the refresh: the caller empties the entry */
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
			PG_RE_THROW();
		FreeErrorData(edata);
		FlushErrorState();
		entry_empty(e);
	}
	PG_END_TRY();
	if (e->net)
		nn_free(e->net);
	e->net = NULL;
}

/* The run's transaction committed: the entry holds for the version it stored; its refresh is due. */
void
unlearn_warm_commit(void)
{
	UnlearnWarm *e = current;

	if (e == NULL)
		return;
	current = NULL;
	e->committed = e->filled;
	pending = e->committed && e->net ? e : NULL;
	enforce_size();
}

/* The run failed: what it did to its entry is not trusted. */
void
unlearn_warm_abort(void)
{
	if (current == NULL)
		return;
	entry_free(current);
	current = NULL;
}

/* Whether any row of a sample has its logits. */
static bool
any_known(const WarmSample *s)
{
	for (int64 i = 0; i < s->n; i++)
		if (s->known[i])
			return true;
	return false;
}

/* The logits of the rows of a sample that have none yet, computed with net. */
static void
fill_unknown(const UnlearnWarm *e, WarmSample *s, const nn_model *net)
{
	int			F = e->n_features;
	int			C = e->n_classes;
	int64		m = 0;
	int64	   *rows = palloc(sizeof(int64) * Max(s->n, 1));
	float	   *X;
	float	   *L;
	nn_workspace *ws;

	for (int64 i = 0; i < s->n; i++)
		if (!s->known[i])
			rows[m++] = i;
	if (m == 0)
		return;
	X = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(float) * (Size) m * F);
	L = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(float) * (Size) m * C);
	for (int64 j = 0; j < m; j++)
		memcpy(X + (Size) j * F, s->X + (Size) rows[j] * F, sizeof(float) * F);
	ws = nn_workspace_create(net, (int) Min(m, (int64) WARM_CHUNK));
	if (ws == NULL)
		elog(ERROR, "out of memory");
	nn_predict_logits(net, ws, X, (int) m, L);
	nn_workspace_free(ws);
	for (int64 j = 0; j < m; j++)
	{
		memcpy(s->logits + (Size) rows[j] * C, L + (Size) j * C, sizeof(float) * C);
		s->known[rows[j]] = true;
	}
}

/* theta0's logits on the run's samples (see warm.h). */
void
unlearn_warm_logits(UnlearnWarm *w, const nn_model *net, const float **held_logits,
					const float **replay_logits)
{
	*held_logits = *replay_logits = NULL;
	if (w == NULL || !w->filled || (!any_known(&w->held) && !any_known(&w->replay)))
		return;
	Assert(w == current);
	Assert(NN_FEATURES(net) == w->n_features && NN_CLASSES(net) == w->n_classes);
	fill_unknown(w, &w->held, net);
	fill_unknown(w, &w->replay, net);
	*held_logits = w->held.logits;
	*replay_logits = w->replay.logits;
}

/* Frees the entries of models that are gone or whose current version is not the entry's. */
void
unlearn_warm_prune(void)
{
	UnlearnWarm *e = entries;

	Assert(current == NULL);
	while (e)
	{
		UnlearnWarm *next = e->next;
		UnlearnModel *model = unlearn_model_lookup(e->name, true);

		if (model == NULL || !e->filled || model->version != e->version ||
			model->version_stamp != e->stamp)
			entry_free(e);
		e = next;
	}
}

/* ------------------------------------------------------------------ row stamps */

/* Index of id in the sorted ids, or -1. */
static int64
find_id(const int64 *ids, int64 n, int64 id)
{
	const int64 *p = bsearch(&id, ids, n, sizeof(int64), unlearn_cmp_int64);

	return p ? p - ids : -1;
}

/*
 * The stamps of the rows with these sorted ids under the active snapshot
 * (tableoid InvalidOid where none); false when an id is there twice or the
 * id column is no longer an integer column (the caller then reads cold,
 * which reports the problem).
 */
static bool
read_stamps(const UnlearnModel *model, const int64 *ids, int64 n, WarmStamp *out)
{
	const char *id = quote_identifier(model->id_column);
	char	   *sql = psprintf("SELECT %s, tableoid, ctid, xmin FROM %s WHERE %s OPERATOR(pg_catalog.=) ANY($1)",
							   id, unlearn_qualified_name(model->relid), id);
	Oid			argtypes[1] = {INT8ARRAYOID};
	Datum		args[1] = {unlearn_int8_array(ids, n)};
	bool		ok = true;
	Oid			id_type;

	memset(out, 0, sizeof(WarmStamp) * n);
	if (n == 0)
		return true;
	if (SPI_execute_with_args(sql, 1, argtypes, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the row versions of model \"%s\"", model->name);
	id_type = SPI_gettypeid(SPI_tuptable->tupdesc, 1);
	if (!unlearn_is_int_type(id_type))
		ok = false;
	for (uint64 r = 0; ok && r < SPI_processed; r++)
	{
		HeapTuple	tup = SPI_tuptable->vals[r];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		Datum		d = SPI_getbinval(tup, desc, 1, &isnull);
		int64		i = isnull ? -1 : find_id(ids, n, unlearn_int_datum(d, id_type));

		if (i < 0 || OidIsValid(out[i].tableoid))
		{
			ok = false;			/* not asked for (cannot be), or twice */
			break;
		}
		out[i].tableoid = DatumGetObjectId(SPI_getbinval(tup, desc, 2, &isnull));
		ItemPointerCopy((ItemPointer) DatumGetPointer(SPI_getbinval(tup, desc, 3, &isnull)), &out[i].ctid);
		out[i].xmin = DatumGetTransactionId(SPI_getbinval(tup, desc, 4, &isnull));
	}
	SPI_freetuptable(SPI_tuptable);
	return ok;
}

/* ------------------------------------------------------------------ samples */

/* One array of a sample at a new size: allocated in the entry's context, or resized. */
static void *
sample_grow(UnlearnWarm *e, void *p, Size bytes)
{
	return p == NULL ? MemoryContextAllocHuge(e->cxt, bytes) : repalloc_huge(p, bytes);
}

/* Makes room for cap rows in a sample (in the entry's context). */
static void
sample_reserve(UnlearnWarm *e, WarmSample *s, int64 cap)
{
	int			F = e->n_features;
	int			C = e->n_classes;

	Assert((s->cap == 0) == (s->X == NULL));	/* entry_empty zeroes a sample with its context */
	if (cap <= s->cap)
		return;
	cap = Max(cap, s->cap + s->cap / 4);
	s->X = sample_grow(e, s->X, sizeof(float) * (Size) cap * F);
	s->y = sample_grow(e, s->y, sizeof(int) * cap);
	s->ids = sample_grow(e, s->ids, sizeof(int64) * cap);
	s->stamps = sample_grow(e, s->stamps, sizeof(WarmStamp) * cap);
	s->logits = sample_grow(e, s->logits, sizeof(float) * (Size) cap * C);
	s->known = sample_grow(e, s->known, sizeof(bool) * cap);
	s->cap = cap;
}

/* Appends rows read from the table, with their stamps. */
static void
sample_append(UnlearnWarm *e, WarmSample *s, const UnlearnData *d, const WarmStamp *stamps)
{
	int			F = e->n_features;

	if (d->n == 0)
		return;					/* its arrays may be NULL */
	Assert(d->n_features == F);
	sample_reserve(e, s, s->n + d->n);
	memcpy(s->X + (Size) s->n * F, d->X, sizeof(float) * (Size) d->n * F);
	memcpy(s->y + s->n, d->y, sizeof(int) * d->n);
	memcpy(s->ids + s->n, d->ids, sizeof(int64) * d->n);
	memcpy(s->stamps + s->n, stamps, sizeof(WarmStamp) * d->n);
	memset(s->known + s->n, 0, sizeof(bool) * d->n);
	s->n += d->n;
}

/* Removes row i (the last row takes its place). */
static void
sample_remove(const UnlearnWarm *e, WarmSample *s, int64 i)
{
	int			F = e->n_features;
	int			C = e->n_classes;
	int64		last = s->n - 1;

	Assert(i >= 0 && i <= last);
	if (i != last)
	{
		memcpy(s->X + (Size) i * F, s->X + (Size) last * F, sizeof(float) * F);
		memcpy(s->logits + (Size) i * C, s->logits + (Size) last * C, sizeof(float) * C);
		s->y[i] = s->y[last];
		s->ids[i] = s->ids[last];
		s->stamps[i] = s->stamps[last];
		s->known[i] = s->known[last];
	}
	s->n--;
}

/* Removes the rows whose id is in the sorted ids. */
static void
sample_remove_ids(const UnlearnWarm *e, WarmSample *s, const int64 *ids, int64 n)
{
	for (int64 i = s->n - 1; i >= 0; i--)
		if (find_id(ids, n, s->ids[i]) >= 0)
			sample_remove(e, s, i);
}

/* Removes rows at random (seeded) until at most want are left. */
static void
sample_trim(const UnlearnWarm *e, WarmSample *s, int64 want, uint64 seed)
{
	nn_rng		rng;

	nn_rng_seed(&rng, seed ^ UINT64CONST(0x7472696d));	/* "trim" */
	while (s->n > Max(want, 0))
		sample_remove(e, s, (int64) nn_rng_below(&rng, (uint32) Min(s->n, (int64) PG_UINT32_MAX)));
}

/*
 * Moves up to `count` rows chosen at random (seeded) from one sample to the
 * other: the held-out sample is drawn first in a cold run, so when the
 * manifest has no row left outside both samples it takes replay rows.
 */
static void
sample_move(UnlearnWarm *e, WarmSample *from, WarmSample *to, int64 count, uint64 seed)
{
	int			F = e->n_features;
	int			C = e->n_classes;
	nn_rng		rng;

	nn_rng_seed(&rng, seed ^ UINT64CONST(0x6d6f7665));	/* "move" */
	count = Min(count, from->n);
	sample_reserve(e, to, to->n + count);
	for (int64 j = 0; j < count; j++)
	{
		int64		i = (int64) nn_rng_below(&rng, (uint32) Min(from->n, (int64) PG_UINT32_MAX));

		memcpy(to->X + (Size) to->n * F, from->X + (Size) i * F, sizeof(float) * F);
		memcpy(to->logits + (Size) to->n * C, from->logits + (Size) i * C, sizeof(float) * C);
		to->y[to->n] = from->y[i];
		to->ids[to->n] = from->ids[i];
		to->stamps[to->n] = from->stamps[i];
		to->known[to->n] = from->known[i];
		to->n++;
		sample_remove(e, from, i);
	}
}

/* The sample as the run takes it (the entry keeps owning the rows). */
static void
sample_view(const UnlearnWarm *e, const WarmSample *s, UnlearnData *d)
{
	memset(d, 0, sizeof(*d));
	d->n = s->n;
	d->n_features = e->n_features;
	d->X = s->X;
	d->y = s->y;
	d->ids = s->ids;
}

/* The sorted ids of both samples and of the forget rows (what a top-up must not draw). */
static int64 *
taken_ids(const UnlearnWarm *e, const UnlearnData *forget, int64 *n_out)
{
	int64		n = e->held.n + e->replay.n + forget->n;
	int64	   *ids = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int64) * Max(n, 1));

	/* (an empty sample's arrays are NULL) */
	if (e->held.n > 0)
		memcpy(ids, e->held.ids, sizeof(int64) * e->held.n);
	if (e->replay.n > 0)
		memcpy(ids + e->held.n, e->replay.ids, sizeof(int64) * e->replay.n);
	if (forget->n > 0)
		memcpy(ids + e->held.n + e->replay.n, forget->ids, sizeof(int64) * forget->n);
	qsort(ids, n, sizeof(int64), unlearn_cmp_int64);
	*n_out = n;
	return ids;
}

/* Reads up to `need` more rows into a sample, drawn (seeded) from the manifest outside every taken id. */
static bool
sample_top_up(UnlearnWarm *e, WarmSample *s, const UnlearnModel *model, const int64 *manifest,
			  int64 n_manifest, const UnlearnData *forget, int64 need, uint64 seed, int64 *read)
{
	int64		n_taken;
	int64	   *taken;
	UnlearnData rows;
	WarmStamp  *stamps;

	if (need <= 0)
		return true;
	taken = taken_ids(e, forget, &n_taken);
	Assert(n_taken <= INT_MAX);
	unlearn_read_sample(model, manifest, n_manifest, taken, (int) n_taken, (int) Min(need, (int64) INT_MAX),
						seed, &rows);
	stamps = palloc(sizeof(WarmStamp) * Max(rows.n, 1));
	if (!read_stamps(model, rows.ids, rows.n, stamps))
		return false;
	sample_append(e, s, &rows, stamps);
	*read += rows.n;
	return true;
}

/*
 * Step 1 of a warm run: drops the forget rows, then every cached row the
 * table no longer has in the same row version, counting those; false when
 * the cache cannot be accounted for (a cached id outside the manifest).
 */
static bool
check_cached(UnlearnWarm *e, const UnlearnModel *model, const int64 *manifest, int64 n_manifest,
			 const UnlearnData *forget, UnlearnWarmReport *report)
{
	WarmSample *samples[2] = {&e->held, &e->replay};
	CheckedRow *rows;
	bool	   *there;
	int64		n = 0;

	sample_remove_ids(e, &e->held, forget->ids, forget->n);
	sample_remove_ids(e, &e->replay, forget->ids, forget->n);
	/* step 1: every cached row, by where it was read from */
	rows = palloc(sizeof(CheckedRow) * Max(e->held.n + e->replay.n, 1));
	for (int k = 0; k < 2; k++)
		for (int64 i = 0; i < samples[k]->n; i++)
		{
			if (find_id(manifest, n_manifest, samples[k]->ids[i]) < 0)
				return false;
			rows[n].stamp = &samples[k]->stamps[i];
			rows[n].id = samples[k]->ids[i];
			rows[n].pos = n;
			rows[n++].there = false;
		}
	report->checked_directly = unlearn_find_unchanged(model, rows, n);
	/* step 2: the verdicts in sample order (the stamps are the samples' own) */
	there = palloc(sizeof(bool) * Max(n, 1));
	for (int64 i = 0; i < n; i++)
		there[rows[i].pos] = rows[i].there;
	/* step 3: drop the others (from the end: a removal moves the last row into its place) */
	for (int k = 1; k >= 0; k--)
	{
		int64		base = k == 0 ? 0 : e->held.n;

		for (int64 i = samples[k]->n - 1; i >= 0; i--)
			if (!there[base + i])
			{
				sample_remove(e, samples[k], i);
				report->dropped++;
			}
	}
	return true;
}

/* A cold run's samples, read from the table (rows.c), kept in the entry if their stamps can be read. */
static void
fill_cold(UnlearnWarm *e, const UnlearnModel *model, const int64 *manifest, int64 n_manifest,
		  const UnlearnData *forget, int want_held_out, int want_replay, uint64 seed,
		  UnlearnPhases *phases, UnlearnData *held_out, UnlearnData *replay, UnlearnWarmReport *report)
{
	WarmStamp  *held_stamps;
	WarmStamp  *replay_stamps;

	unlearn_read_run_samples(model, manifest, n_manifest, forget, want_held_out, want_replay, seed,
							 phases, held_out, replay);
	report->read = held_out->n + replay->n;
	held_stamps = palloc(sizeof(WarmStamp) * Max(held_out->n, 1));
	replay_stamps = palloc(sizeof(WarmStamp) * Max(replay->n, 1));
	entry_empty(e);
	if (!read_stamps(model, held_out->ids, held_out->n, held_stamps) ||
		!read_stamps(model, replay->ids, replay->n, replay_stamps))
		return;
	sample_append(e, &e->held, held_out, held_stamps);
	sample_append(e, &e->replay, replay, replay_stamps);
	e->filled = true;
	e->version = model->version;
	e->stamp = model->version_stamp;
	unlearn_phase_end(phases, "read_replay");
}

/*
 * Steps 2 and 3 of a warm run: each sample trimmed to its want at random,
 * less the 1 / WARM_ROTATE of its rows that make way for new ones unless
 * the refresh renewed them already, then topped up (the held-out sample
 * first, so replay draws stay outside it); false when the rows read cannot
 * be stamped.
 */
static bool
patch_samples(UnlearnWarm *e, const UnlearnModel *model, const int64 *manifest, int64 n_manifest,
			  const UnlearnData *forget, int want_held_out, int want_replay, uint64 seed,
			  UnlearnPhases *phases, UnlearnWarmReport *report)
{
	/* a fresh draw each version: the pool changed, and a repeated seed would favour the same rows */
	uint64		draw = seed ^ ((uint64) model->version * UINT64CONST(0x9e3779b97f4a7c15));
	int			rotate = e->rotated ? 0 : WARM_ROTATE;

	sample_trim(e, &e->held, Min((int64) want_held_out, e->held.n) - (rotate ? e->held.n / rotate : 0), draw);
	if (!sample_top_up(e, &e->held, model, manifest, n_manifest, forget, want_held_out - e->held.n,
					   draw ^ UNLEARN_HELD_OUT_SEED, &report->read))
		return false;
	/* no row left outside both samples (a small table): held-out rows come first, as in a cold run */
	if (e->held.n < want_held_out)
		sample_move(e, &e->replay, &e->held, want_held_out - e->held.n, draw);
	unlearn_phase_end(phases, "read_held_out");
	sample_trim(e, &e->replay, Min((int64) want_replay, e->replay.n) - (rotate ? e->replay.n / rotate : 0),
				draw ^ 1);
	if (!sample_top_up(e, &e->replay, model, manifest, n_manifest, forget, want_replay - e->replay.n,
					   draw, &report->read))
		return false;
	unlearn_phase_end(phases, "read_replay");
	return true;
}

/* A run's held-out and replay samples, warm when the entry holds them (see warm.h). */
void
unlearn_warm_samples(UnlearnWarm *w, const UnlearnModel *model, const int64 *manifest,
					 int64 n_manifest, const UnlearnData *forget, int want_held_out,
					 int want_replay, uint64 seed, UnlearnPhases *phases,
					 UnlearnData *held_out, UnlearnData *replay, UnlearnWarmReport *report)
{
	Assert(w == current && w != NULL);
	Assert(w->n_features == model->n_features);
	memset(report, 0, sizeof(*report));
	w->want_held = want_held_out;
	w->want_replay = want_replay;
	w->seed = seed;
	if (w->filled && w->version == model->version && w->stamp == model->version_stamp &&
		check_cached(w, model, manifest, n_manifest, forget, report) &&
		patch_samples(w, model, manifest, n_manifest, forget, want_held_out, want_replay, seed,
					  phases, report))
	{
		report->cached = true;
		w->rotated = false;		/* the next run rotates unless a refresh does it first */
		sample_view(w, &w->held, held_out);
		sample_view(w, &w->replay, replay);
		return;
	}
	/* nothing usable: read as a cold run does */
	memset(report, 0, sizeof(*report));
	fill_cold(w, model, manifest, n_manifest, forget, want_held_out, want_replay, seed, phases,
			  held_out, replay, report);
}

/* ------------------------------------------------------------------ the refresh */

/*
 * The rotation after a commit: 1 / WARM_ROTATE of each sample, at random
 * (seeded by the run's seed and the new version), makes way for rows drawn
 * afresh from the new version's manifest outside both samples; the entry is
 * emptied when the rows read cannot be stamped.
 */
static void
rotate_samples(UnlearnWarm *e, const UnlearnModel *model)
{
	int64		n_manifest;
	int64	   *manifest = unlearn_load_manifest(model, model->version, &n_manifest);
	uint64		draw = e->seed ^ ((uint64) model->version * UINT64CONST(0x9e3779b97f4a7c15)) ^
		UINT64CONST(0x726f74617465);	/* "rotate" */
	UnlearnData none;
	int64		read = 0;

	memset(&none, 0, sizeof(none));
	none.n_features = e->n_features;
	sample_trim(e, &e->held, e->held.n - e->held.n / WARM_ROTATE, draw);
	sample_trim(e, &e->replay, e->replay.n - e->replay.n / WARM_ROTATE, draw ^ 1);
	if (!sample_top_up(e, &e->held, model, manifest, n_manifest, &none, e->want_held - e->held.n,
					   draw ^ UNLEARN_HELD_OUT_SEED, &read) ||
		!sample_top_up(e, &e->replay, model, manifest, n_manifest, &none, e->want_replay - e->replay.n,
					   draw, &read))
	{
		entry_empty(e);
		return;
	}
	e->rotated = true;
}

/* After a run's commit: the rotation and the stored version's logits, off the next request's path (see warm.h). */
void
unlearn_warm_refresh(void)
{
	UnlearnWarm *e = pending;
	UnlearnModel *model;
	UnlearnCatalogUser saved;

	if (e == NULL)
		return;
	Assert(current == NULL);
	pending = NULL;
	model = unlearn_model_lookup(e->name, true);
	/* a version made since by anyone else, a new model of the name: the entry would not hold */
	if (model == NULL || !e->committed || model->version != e->version || model->version_stamp != e->stamp ||
		model->relid != e->relid || model->owner != e->owner)
	{
		entry_free(e);
		return;
	}
	current = e;				/* an error from here empties it (unlearn_warm_abort) */
	/* tables only, locked to the end: as a run reads them (a view would run its owner's code here) */
	unlearn_check_table_tree(model->relid, AccessShareLock);
	unlearn_become_role(model->owner, &saved);
	rotate_samples(e, model);
	unlearn_restore_user(&saved);
	if (e->filled && e->net)
		take_logits(e);
	current = NULL;
	enforce_size();
}
