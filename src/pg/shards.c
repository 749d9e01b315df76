/*
 * shards.c: sharded models (SISA, training option "shards"): which rows a
 * shard holds (a shard map: nn_shard_of on the int8 id, computed here in C,
 * never by a user's function or operator; or, sharded by partition, the
 * shard each id of the manifest was given at training, partition_shards.c),
 * the rows of one shard, the shards an exact delete retrains, and
 * unlearn_shard(id, shards) for SQL.  Training the shards is trainer.c's;
 * the exact delete, execute.c's.
 */
#include "postgres.h"

#include "fmgr.h"

#include "unlearn_pg.h"

/*
 * Rows a shard needs when a model is trained: fewer, and its network would
 * learn little but noise (an exact delete may leave fewer, never none).
 */
#define MIN_SHARD_ROWS 10

/* Errors (22023) unless shards is a shard count (1 to NN_MAX_SHARDS). */
static void
check_shards(int shards)
{
	if (shards < 1 || shards > NN_MAX_SHARDS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("shards must be an integer from 1 to %d, got %d", NN_MAX_SHARDS, shards)));
}

/* The shard of an id: by the map's ids (errors if it has none of them), else by its hash. */
int
unlearn_shard_of(const UnlearnShardMap *map, int64 id)
{
	const int64 *at;

	Assert(map->shards >= 1 && map->shards <= NN_MAX_SHARDS);
	if (map->ids == NULL)
		return nn_shard_of(id, map->shards);
	at = bsearch(&id, map->ids, map->n, sizeof(int64), unlearn_cmp_int64);
	if (at == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("id " INT64_FORMAT " has no shard in the manifest", id)));
	Assert(map->of[at - map->ids] >= 0 && map->of[at - map->ids] < map->shards);
	return map->of[at - map->ids];
}

/* The shards of n sorted ids of map (a new int16 array, for the manifest). */
int16 *
unlearn_shards_of_ids(const UnlearnShardMap *map, const int64 *ids, int64 n)
{
	int16	   *of = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int16) * Max(n, 1));

	for (int64 i = 0; i < n; i++)
		of[i] = (int16) unlearn_shard_of(map, ids[i]);
	return of;
}

/*
 * The rows of `all` in shard `shard` of the map, in their order (ids sorted
 * stay sorted), with their target losses when `all` has them.  An id the
 * map lacks is an error, or with skip_unmapped (a partition map, whose
 * manifest no longer holds rows forgotten earlier) left out.
 */
void
unlearn_rows_in_shard(const UnlearnData *all, int shard, const UnlearnShardMap *map, bool skip_unmapped,
					  UnlearnData *out)
{
	int			F = all->n_features;
	Size		rows = Max(all->n, 1);

	Assert(shard >= 0 && shard < map->shards && all->ids != NULL);
	memset(out, 0, sizeof(*out));
	out->n_features = F;
	out->X = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(float) * rows * F);
	out->y = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int) * rows);
	out->ids = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int64) * rows);
	out->target_loss = all->target_loss ? MemoryContextAllocHuge(CurrentMemoryContext, sizeof(float) * rows) : NULL;
	for (int64 i = 0; i < all->n; i++)
	{
		if (skip_unmapped && map->ids &&
			!bsearch(&all->ids[i], map->ids, map->n, sizeof(int64), unlearn_cmp_int64))
			continue;
		if (unlearn_shard_of(map, all->ids[i]) != shard)
			continue;
		memcpy(out->X + out->n * F, all->X + i * F, sizeof(float) * F);
		out->y[out->n] = all->y[i];
		if (out->target_loss)
			out->target_loss[out->n] = all->target_loss[i];
		out->ids[out->n++] = all->ids[i];
	}
}

/*
 * The rows of `all` in shard `shard` of the map (unlearn_rows_in_shard).
 * training: errors (22023) if the shard holds fewer than MIN_SHARD_ROWS;
 * else (an exact delete) if it holds none.
 */
void
unlearn_shard_rows(const char *model, const UnlearnData *all, int shard, const UnlearnShardMap *map,
				   bool training, UnlearnData *out)
{
	unlearn_rows_in_shard(all, shard, map, false, out);
	if (training && out->n < MIN_SHARD_ROWS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("too many shards for the rows of model \"%s\": shard %d of %d would hold "
						INT64_FORMAT " rows", model, shard, map->shards, out->n),
				 errdetail("Each shard needs at least %d rows; the table has " INT64_FORMAT ".",
						   MIN_SHARD_ROWS, all->n),
				 errhint("Use fewer shards.")));
	if (out->n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("shard %d of model \"%s\" would have no rows left", shard, model),
				 errhint("Retrain the model with fewer shards (unlearn_train), or keep a row of the shard.")));
}

/* Frees what unlearn_rows_in_shard or unlearn_shard_rows allocated. */
void
unlearn_free_shard_rows(UnlearnData *rows)
{
	pfree(rows->X);
	pfree(rows->y);
	pfree(rows->ids);
	if (rows->target_loss)
		pfree(rows->target_loss);
	memset(rows, 0, sizeof(*rows));
}

/* Marks in retrain[0 .. shards-1] the shards that hold one of the k ids; returns how many. */
int
unlearn_shards_holding(const int64 *ids, int k, const UnlearnShardMap *map, bool *retrain)
{
	int			n = 0;

	memset(retrain, 0, sizeof(bool) * map->shards);
	for (int i = 0; i < k; i++)
		retrain[unlearn_shard_of(map, ids[i])] = true;
	for (int s = 0; s < map->shards; s++)
		n += retrain[s] ? 1 : 0;
	return n;
}

/* The ids (sorted stay sorted) that lie in a marked shard. */
int64 *
unlearn_ids_in_shards(const int64 *ids, int64 n, const UnlearnShardMap *map, const bool *which, int64 *n_out)
{
	int64	   *out = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int64) * Max(n, 1));
	int64		m = 0;

	for (int64 i = 0; i < n; i++)
		if (which[unlearn_shard_of(map, ids[i])])
			out[m++] = ids[i];
	*n_out = m;
	return out;
}

PG_FUNCTION_INFO_V1(unlearn_shard_sql);
/*
 * unlearn_shard(id bigint, shards integer) returns integer: the shard (0 to
 * shards - 1) that holds the row of this id in a model of `shards` shards.
 */
Datum
unlearn_shard_sql(PG_FUNCTION_ARGS)
{
	int64		id = PG_GETARG_INT64(0);
	int32		shards = PG_GETARG_INT32(1);

	check_shards(shards);
	PG_RETURN_INT32(nn_shard_of(id, shards));
}
