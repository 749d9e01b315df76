/*
 * partition_shards.c: sharded models sharded by partition (training option
 * "shards": "partition"): one shard per leaf partition of a partitioned
 * training table that holds rows, in order of schema and name; each row
 * goes to the shard of the partition it was read from (its tableoid) at
 * training, and keeps it: the manifest records every id's shard
 * (unlearn.manifests.shards), so an exact delete retrains the shard that
 * held the row even after the row or its partition is gone.  See
 * docs/scale-out.md#sharding-by-partition.
 */
#include "postgres.h"

#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/lsyscache.h"

#include "unlearn_pg.h"

/* Rows a partition needs to be a shard (shards.c's MIN_SHARD_ROWS). */
#define MIN_PARTITION_ROWS 10

/* A leaf partition: its oid, its qualified name (the shard order), the rows read from it. */
typedef struct Leaf
{
	Oid			relid;
	char	   *name;
	int64		rows;
	int			shard;			/* -1: no rows, not a shard */
} Leaf;

/* Errors (22023) unless relid is a partitioned table. */
void
unlearn_check_partitioned(Oid relid)
{
	if (get_rel_relkind(relid) != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"shards\": \"partition\" needs a partitioned table, and \"%s\" is not one",
						get_rel_name(relid)),
				 errhint("Give a shard count, e.g. {\"shards\": 4}, to shard by a hash of the id.")));
}

/* Order of leaves: by qualified name (stable across a dump and restore, unlike oids). */
static int
cmp_leaf_name(const void *a, const void *b)
{
	return strcmp(((const Leaf *) a)->name, ((const Leaf *) b)->name);
}

/* Order of leaves: by oid, for bsearch. */
static int
cmp_leaf_oid(const void *a, const void *b)
{
	Oid			x = ((const Leaf *) a)->relid,
				y = ((const Leaf *) b)->relid;

	return (x > y) - (x < y);
}

/* The leaf partitions of relid (every level), sorted by oid; *n gets how many. */
static Leaf *
list_leaves(Oid relid, int *n)
{
	List	   *all = find_all_inheritors(relid, NoLock, NULL);
	Leaf	   *leaves = palloc0(sizeof(Leaf) * Max(list_length(all), 1));
	ListCell   *lc;

	*n = 0;
	foreach(lc, all)
	{
		Oid			child = lfirst_oid(lc);

		if (get_rel_relkind(child) == RELKIND_PARTITIONED_TABLE)
			continue;
		leaves[*n].relid = child;
		leaves[*n].name = unlearn_qualified_name(child);
		leaves[*n].shard = -1;
		(*n)++;
	}
	qsort(leaves, *n, sizeof(Leaf), cmp_leaf_oid);
	return leaves;
}

/* Counts the rows read from each leaf (every tableoid is one of them). */
static void
count_rows(Leaf *leaves, int n, const UnlearnData *data)
{
	for (int64 i = 0; i < data->n; i++)
	{
		Leaf		key = {.relid = data->tableoids[i]};
		Leaf	   *at = bsearch(&key, leaves, n, sizeof(Leaf), cmp_leaf_oid);

		if (at == NULL)
			elog(ERROR, "row " INT64_FORMAT " was read from relation %u, not a partition of the table",
				 data->ids[i], data->tableoids[i]);
		at->rows++;
	}
}

/*
 * Numbers the leaves that hold rows 0, 1, ... in order of name (empty ones
 * are no shard), checked: 2 to NN_MAX_SHARDS shards of MIN_PARTITION_ROWS
 * rows at least (22023).  Returns the shard count; leaves ends sorted by oid.
 */
static int
number_shards(const char *model, Oid relid, Leaf *leaves, int n)
{
	int			shards = 0;

	qsort(leaves, n, sizeof(Leaf), cmp_leaf_name);
	for (int i = 0; i < n; i++)
	{
		if (leaves[i].rows == 0)
			continue;
		if (leaves[i].rows < MIN_PARTITION_ROWS)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("partition %s of \"%s\" holds " INT64_FORMAT " rows, too few for a shard of model \"%s\"",
							leaves[i].name, get_rel_name(relid), leaves[i].rows, model),
					 errdetail("Each shard needs at least %d rows; an empty partition is left out.",
							   MIN_PARTITION_ROWS),
					 errhint("Move its rows to another partition, or shard by a hash of the id.")));
		leaves[i].shard = shards++;
	}
	if (shards > NN_MAX_SHARDS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"%s\" has %d partitions with rows; a model has at most %d shards",
						get_rel_name(relid), shards, NN_MAX_SHARDS),
				 errhint("Shard by a hash of the id, e.g. {\"shards\": 16}.")));
	if (shards < 2)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"%s\" has %d partition%s with rows; sharding by partition needs two at least",
						get_rel_name(relid), shards, shards == 1 ? "" : "s"),
				 errhint("Train without \"shards\", or shard by a hash of the id.")));
	return shards;
}

/* The metrics' "shard_partitions": the shards' partitions, by shard number. */
static const char *
names_json(const Leaf *leaves_by_name, int n)
{
	StringInfoData s;
	bool		first = true;

	initStringInfo(&s);
	appendStringInfoChar(&s, '[');
	for (int i = 0; i < n; i++)
		if (leaves_by_name[i].shard >= 0)
		{
			if (!first)
				appendStringInfoString(&s, ", ");
			escape_json(&s, leaves_by_name[i].name);
			first = false;
		}
	appendStringInfoChar(&s, ']');
	return s.data;
}

/*
 * The shard map of the rows read (data: ids sorted, tableoids read): each
 * row in the shard of its partition.
 */
static void
partition_shard_map(const char *model, Oid relid, const UnlearnData *data,
					UnlearnShardMap *map, const char **partitions_json)
{
	int			n;
	Leaf	   *leaves = list_leaves(relid, &n);
	int16	   *of = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int16) * Max(data->n, 1));

	Assert(data->tableoids != NULL && data->ids != NULL);
	/* step 1: the rows of each leaf; the leaves with rows numbered, by name */
	count_rows(leaves, n, data);
	map->shards = number_shards(model, relid, leaves, n);
	*partitions_json = names_json(leaves, n);
	/* step 2: each row's shard, its leaf's */
	qsort(leaves, n, sizeof(Leaf), cmp_leaf_oid);
	for (int64 i = 0; i < data->n; i++)
	{
		Leaf		key = {.relid = data->tableoids[i]};
		Leaf	   *at = bsearch(&key, leaves, n, sizeof(Leaf), cmp_leaf_oid);

		Assert(at != NULL && at->shard >= 0);
		of[i] = (int16) at->shard;
	}
	map->ids = data->ids;
	map->of = of;
	map->n = data->n;
}

/*
 * Shards a training run (train or retrain) by the partitions of relid:
 * run->shard_map from its rows' tableoids, run->shards their count (which
 * must be `expected` when that is a shard count the options gave),
 * run->partitions_json the shards' partitions.  Errors (22023) as
 * number_shards; (0A000) on a catalog without unlearn.manifests.shards.
 */
void
unlearn_shard_run_by_partition(UnlearnTrainRun *run, Oid relid, int expected)
{
	if (!unlearn_catalog_has_manifest_shards())
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("sharding by partition needs version 0.2 of extension unlearn"),
				 errhint("Run ALTER EXTENSION unlearn UPDATE.")));
	unlearn_check_partitioned(relid);
	partition_shard_map(run->model, relid, run->data, &run->shard_map, &run->partitions_json);
	if (expected > 1 && expected != run->shard_map.shards)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"%s\" has %d partitions with rows, but the options give %d shards",
						get_rel_name(relid), run->shard_map.shards, expected),
				 errhint("Give \"shards\": \"partition\" alone.")));
	run->shards = run->shard_map.shards;
}

/*
 * The shard map of a version: by hash of the id unless its manifest row
 * records each id's shard (a model sharded by partition), checked against
 * the manifest and the shard count.
 */
void
unlearn_load_shard_map(const UnlearnModel *model, int version, int shards, const int64 *manifest,
					   int64 n_manifest, UnlearnShardMap *map)
{
	Oid			argtypes[2] = {TEXTOID, INT4OID};
	Datum		args[2] = {CStringGetTextDatum(model->name), Int32GetDatum(version)};
	UnlearnCatalogUser saved;
	bool		isnull = true;
	int			ret = SPI_OK_SELECT;
	int16	   *of;

	memset(map, 0, sizeof(*map));
	map->shards = shards;
	if (!unlearn_catalog_has_manifest_shards())
		return;
	unlearn_become_catalog_owner(&saved);
	ret = SPI_execute_with_args("SELECT shards FROM unlearn.manifests WHERE model = $1 AND version = $2",
								2, argtypes, args, NULL, true, 1);
	unlearn_restore_user(&saved);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not read the manifest of version %d of model \"%s\"", version, model->name);
	(void) SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (isnull)
		return;
	{
		ArrayType  *arr = DatumGetArrayTypePCopy(SPI_getbinval(SPI_tuptable->vals[0],
															   SPI_tuptable->tupdesc, 1, &isnull));

		if (ARR_NDIM(arr) > 1 || ARR_ELEMTYPE(arr) != INT2OID || array_contains_nulls(arr) ||
			ArrayGetNItems(ARR_NDIM(arr), ARR_DIMS(arr)) != n_manifest)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("the shards of the manifest of version %d of model \"%s\" are corrupt",
							version, model->name),
					 errdetail("unlearn.manifests.shards must be a smallint[] of one shard per id, without NULLs.")));
		of = (int16 *) ARR_DATA_PTR(arr);
	}
	for (int64 i = 0; i < n_manifest; i++)
		if (of[i] < 0 || of[i] >= shards)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("id " INT64_FORMAT " of version %d of model \"%s\" is in shard %d of %d",
							manifest[i], version, model->name, of[i], shards)));
	map->ids = manifest;
	map->of = of;
	map->n = n_manifest;
}
