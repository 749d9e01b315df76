/*
 * catalog.c: the unlearn.* catalog tables: looking models up, loading
 * weights, storing versions and manifests, reading and building their id
 * arrays, and the privilege rules
 * (catalog writes run as the extension's owner after our own checks).
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "common/cryptohash.h"
#include "port/pg_bswap.h"
#include "common/sha2.h"

#include "unlearn_pg.h"

/* Text of column `col` of the current SPI row, copied to the upper context. */
static char *
spi_text(HeapTuple tup, TupleDesc desc, int col)
{
	char	   *s = SPI_getvalue(tup, desc, col);
	char	   *copy;

	if (s == NULL)
		return NULL;
	copy = SPI_palloc(strlen(s) + 1);
	strcpy(copy, s);
	return copy;
}

/* Whether the catalog table unlearn.<table> has the column (added by an upgrade). */
static bool
catalog_has_column(const char *table, const char *column)
{
	Oid			nsp = get_namespace_oid("unlearn", true);
	Oid			rel = OidIsValid(nsp) ? get_relname_relid(table, nsp) : InvalidOid;

	return OidIsValid(rel) && get_attnum(rel, column) != InvalidAttrNumber;
}

/*
 * True once the catalog has column models (0.2: unlearn.models.feature_columns
 * and unlearn.encodings).  The library also serves a catalog still at 0.1
 * until ALTER EXTENSION UPDATE, where every model is an array model.
 */
bool
unlearn_catalog_has_column_models(void)
{
	return catalog_has_column("models", "feature_columns");
}

/* True once the ledger records target losses (0.2: unlearn.forgotten.target_loss). */
bool
unlearn_catalog_has_ledger_targets(void)
{
	return catalog_has_column("forgotten", "target_loss");
}

/* True once every version records its guarantee (0.2: unlearn.versions.guarantee). */
bool
unlearn_catalog_has_guarantees(void)
{
	return catalog_has_column("versions", "guarantee");
}

/* True if unlearn.manifests records each id's shard (0.2; sharding by partition). */
bool
unlearn_catalog_has_manifest_shards(void)
{
	return catalog_has_column("manifests", "shards");
}

/* A model row's feature columns and types (text[], oid[]) for a select list: NULLs on a 0.1 catalog. */
const char *
unlearn_feature_columns_sql(const char *alias)
{
	if (!unlearn_catalog_has_column_models())
		return "NULL::text[], NULL::oid[]";
	return psprintf("%sfeature_columns::text[], %sfeature_types::oid[]", alias, alias);
}

/* A column model's encoder from columns 12-14 of its catalog row (NULL for an array model). */
static UnlearnEncoder *
load_encoder(const UnlearnModel *model, HeapTuple tup, TupleDesc desc)
{
	bool		n1,
				n2,
				n3;
	Datum		cols = SPI_getbinval(tup, desc, 12, &n1);
	Datum		types = SPI_getbinval(tup, desc, 13, &n2);
	Datum		inputs = SPI_getbinval(tup, desc, 14, &n3);
	MemoryContext old;
	UnlearnEncoder *enc;

	if (n1 && n2 && n3 && model->features_column != NULL)
		return NULL;
	if (n1 || n2 || n3 || model->features_column != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("model \"%s\" has both or neither of features_column and feature_columns",
						model->name)));
	old = MemoryContextSwitchTo(GetMemoryChunkContext((void *) model));	/* SPI_palloc'd: the caller's context */
	enc = unlearn_encoder_from_catalog(cols, types, DatumGetJsonbP(inputs), model->n_features, model->name);
	MemoryContextSwitchTo(old);
	return enc;
}

/*
 * Loads a model's catalog row (the caller is connected to SPI).  The result
 * lives in the context that was current before SPI_connect.
 */
UnlearnModel *
unlearn_model_lookup(const char *name, bool missing_ok)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1] = {CStringGetTextDatum(name)};
	UnlearnCatalogUser saved;
	UnlearnModel *model;
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	ArrayType  *classes;
	Datum	   *elems;
	int			nelems;
	int			ret;
	bool		column_models = unlearn_catalog_has_column_models();

	unlearn_become_catalog_owner(&saved);
	ret = SPI_execute_with_args(psprintf(
										 "SELECT m.owner::oid, m.relation::oid, m.id_column::text, m.features_column::text,"
										 " m.label_column::text, m.label_type::oid, m.features, m.classes,"
										 " m.current_version, m.options, v.created_at, %s, %s"
										 " FROM unlearn.models m %s"
										 " LEFT JOIN unlearn.versions v ON v.model = m.name AND v.version = m.current_version"
										 " WHERE m.name = $1",
										 unlearn_feature_columns_sql("m."),
										 column_models ? "e.inputs" : "NULL::jsonb",
										 column_models ? "LEFT JOIN unlearn.encodings e ON e.model = m.name" : ""),
								1, argtypes, args, NULL, true, 1);
	unlearn_restore_user(&saved);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read unlearn.models: %s", SPI_result_code_string(ret));
	if (SPI_processed == 0)
	{
		if (missing_ok)
			return NULL;
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("model \"%s\" does not exist", name),
				 errhint("unlearn.models lists the models; unlearn_train creates one.")));
	}

	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	model = SPI_palloc(sizeof(UnlearnModel));
	memset(model, 0, sizeof(*model));
	model->name = SPI_palloc(strlen(name) + 1);
	strcpy(model->name, name);
	model->owner = DatumGetObjectId(SPI_getbinval(tup, desc, 1, &isnull));
	model->relid = DatumGetObjectId(SPI_getbinval(tup, desc, 2, &isnull));
	model->id_column = spi_text(tup, desc, 3);
	model->features_column = spi_text(tup, desc, 4);
	model->label_column = spi_text(tup, desc, 5);
	model->label_type = DatumGetObjectId(SPI_getbinval(tup, desc, 6, &isnull));
	if (!unlearn_label_kind_for_type(model->label_type, &model->label_kind))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("model \"%s\" has unsupported label type %s", name,
						format_type_be(model->label_type))));
	model->n_features = DatumGetInt32(SPI_getbinval(tup, desc, 7, &isnull));
	classes = DatumGetArrayTypeP(SPI_getbinval(tup, desc, 8, &isnull));
	deconstruct_array(classes, TEXTOID, -1, false, TYPALIGN_INT, &elems, NULL, &nelems);
	model->n_classes = nelems;
	model->classes = SPI_palloc(sizeof(char *) * nelems);
	if (model->label_kind == LABEL_INT)
		model->class_ints = SPI_palloc(sizeof(int64) * nelems);
	for (int i = 0; i < nelems; i++)
	{
		char	   *s = TextDatumGetCString(elems[i]);

		model->classes[i] = SPI_palloc(strlen(s) + 1);
		strcpy(model->classes[i], s);
		if (model->label_kind == LABEL_INT)
			model->class_ints[i] = DatumGetInt64(DirectFunctionCall1(int8in, CStringGetDatum(s)));
	}
	model->version = DatumGetInt32(SPI_getbinval(tup, desc, 9, &isnull));
	model->version_stamp = DatumGetTimestampTz(SPI_getbinval(tup, desc, 11, &isnull));
	if (isnull)
		model->version_stamp = 0;
	{
		Jsonb	   *opts = DatumGetJsonbP(SPI_getbinval(tup, desc, 10, &isnull));

		model->options = SPI_palloc(VARSIZE(opts));
		memcpy(model->options, opts, VARSIZE(opts));
	}
	model->encoder = load_encoder(model, tup, desc);
	return model;
}

/*
 * Reads and deserialises the weights of one version (caller connected to
 * SPI) into the memory context current at the call.  Never errors on what
 * the row holds: returns NULL with *sqlerrcode and *problem set when the
 * version is missing, its weights were purged, or they do not deserialise
 * into a network of the model's shape.
 */
nn_model *
unlearn_read_weights(const UnlearnModel *model, int version, int *sqlerrcode, char **problem)
{
	Oid			argtypes[2] = {TEXTOID, INT4OID};
	Datum		args[2] = {CStringGetTextDatum(model->name), Int32GetDatum(version)};
	UnlearnCatalogUser saved;
	bytea	   *weights;
	Datum		d;
	bool		isnull;
	char		err[256];
	nn_model   *net;
	int			ret;
	MemoryContext caller_cxt = CurrentMemoryContext;

	/* the row, as the catalog owner */
	unlearn_become_catalog_owner(&saved);
	ret = SPI_execute_with_args("SELECT weights FROM unlearn.versions WHERE model = $1 AND version = $2",
								2, argtypes, args, NULL, true, 1);
	unlearn_restore_user(&saved);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read unlearn.versions: %s", SPI_result_code_string(ret));
	/* SPI calls leave us in SPI's procedure context: the model belongs to the caller's */
	MemoryContextSwitchTo(caller_cxt);
	if (SPI_processed == 0)
	{
		*sqlerrcode = ERRCODE_UNDEFINED_OBJECT;
		*problem = psprintf("version %d of model \"%s\" does not exist", version, model->name);
		return NULL;
	}

	/* NULL before anything touches the datum: a purge (or a superuser) left none */
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (isnull)
	{
		*sqlerrcode = ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE;
		*problem = psprintf("weights of version %d of model \"%s\" have been purged", version, model->name);
		return NULL;
	}

	/* deserialise and check the shape against the catalog row */
	weights = (bytea *) PG_DETOAST_DATUM(d);
	net = nn_deserialize(VARDATA(weights), VARSIZE(weights) - VARHDRSZ, err, sizeof(err));
	*sqlerrcode = ERRCODE_DATA_CORRUPTED;
	if (net == NULL)
		*problem = psprintf("weights of version %d of model \"%s\" are corrupt: %s",
							version, model->name, err);
	else if (NN_FEATURES(net) != model->n_features || NN_CLASSES(net) != model->n_classes)
	{
		*problem = psprintf("weights of version %d of model \"%s\" do not match its catalog row",
							version, model->name);
		nn_free(net);
		net = NULL;
	}
	return net;
}

/* Loads the weights of one version like unlearn_read_weights, erroring on any problem. */
nn_model *
unlearn_load_weights(const UnlearnModel *model, int version)
{
	int			sqlerrcode;
	char	   *problem;
	nn_model   *net = unlearn_read_weights(model, version, &sqlerrcode, &problem);

	if (net == NULL)
		ereport(ERROR,
				(errcode(sqlerrcode),
				 errmsg("%s", problem),
				 sqlerrcode == ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE ?
				 errhint("unlearn_verify_ledger checks the model's versions; only superseded versions lose their weights to unlearn_purge.") : 0));
	return net;
}

/*
 * The ids of a bigint[] read from the catalog (what: e.g. "forgotten_ids"
 * of a version, "manifest"), in a new (huge-allowed) array of the current
 * context.  NULL elements, several dimensions or another element type are
 * corruption: XX001 naming the model and version, never garbage ids.
 */
int64 *
unlearn_catalog_ids(Datum d, const char *what, const char *model, int version, int64 *n_out)
{
	ArrayType  *arr = DatumGetArrayTypeP(d);
	int64		n = ArrayGetNItems(ARR_NDIM(arr), ARR_DIMS(arr));
	int64	   *ids;

	if (ARR_ELEMTYPE(arr) != INT8OID || ARR_NDIM(arr) > 1 || array_contains_nulls(arr))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("%s of version %d of model \"%s\" is corrupt", what, version, model),
				 errdetail("%s", array_contains_nulls(arr) ? "It contains NULL elements." :
						   ARR_NDIM(arr) > 1 ? "It has more than one dimension." : "It is not a bigint[]."),
				 errhint("unlearn_verify_ledger lists what else of the model was changed.")));
	ids = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int64) * Max(n, 1));
	if (n > 0)
		memcpy(ids, ARR_DATA_PTR(arr), sizeof(int64) * n);
	*n_out = n;
	return ids;
}

/* An int8[] datum of n ids (wide, v8), or an int2[] of n shard numbers (v2); n may be 0, v NULL then. */
static Datum
int_array(bool wide, const int64 *v8, const int16 *v2, int64 n)
{
	Datum	   *d = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(Datum) * Max(n, 1));

	Assert(n >= 0 && n <= INT_MAX && (n == 0 || (wide ? v8 != NULL : v2 != NULL)));
	for (int64 i = 0; i < n; i++)
		d[i] = wide ? Int64GetDatum(v8[i]) : Int16GetDatum(v2[i]);
	if (wide)
		return PointerGetDatum(construct_array(d, (int) n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	return PointerGetDatum(construct_array(d, (int) n, INT2OID, 2, true, TYPALIGN_SHORT));
}

/* An int8[] datum of n ids (the form the catalog stores ids in); n may be 0. */
Datum
unlearn_int8_array(const int64 *ids, int64 n)
{
	return int_array(true, ids, NULL, n);
}

/* An int2[] datum of n shard numbers (unlearn.manifests.shards); n may be 0. */
Datum
unlearn_int2_array(const int16 *v, int64 n)
{
	return int_array(false, NULL, v, n);
}

/*
 * Runs sql ($1 .. $nargs) on the rows as committed now and as this
 * transaction left them (the latest snapshot), whatever the isolation level:
 * a REPEATABLE READ or SERIALIZABLE transaction's snapshot predates the
 * waits for locks its caller made.  Caller: the catalog owner, connected to
 * SPI.  Returns SPI's code (results in SPI_tuptable, SPI_processed).  No
 * crosscheck snapshot: under SERIALIZABLE the conflict with a transaction
 * that committed rows after ours began is not recorded, which the callers
 * (cleanups of a model dropped or made, the guard's and the drop's looks at
 * the models) do not need.
 */
int
unlearn_catalog_execute_latest(const char *sql, int nargs, Oid *argtypes, Datum *args, long count)
{
	SPIPlanPtr	plan = SPI_prepare(sql, nargs, argtypes);
	int			ret;

	if (plan == NULL)
		elog(ERROR, "could not prepare \"%s\": %s", sql, SPI_result_code_string(SPI_result));
	ret = SPI_execute_snapshot(plan, args, NULL, GetLatestSnapshot(), InvalidSnapshot, false, true, count);
	SPI_freeplan(plan);
	return ret;
}

/*
 * A DELETE of one catalog table's rows of a model ($1: its name) on the rows
 * as committed now (unlearn_catalog_execute_latest).  Returns the rows deleted.
 */
uint64
unlearn_catalog_delete_latest(const char *sql, const char *name)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1] = {CStringGetTextDatum(name)};
	int			ret = unlearn_catalog_execute_latest(sql, 1, argtypes, args, 0);

	if (ret != SPI_OK_DELETE)
		elog(ERROR, "could not run \"%s\": %s", sql, SPI_result_code_string(ret));
	return SPI_processed;
}

/* Errors unless the current user owns the model (or is a member of its owner) or is superuser. */
void
unlearn_check_owner(const UnlearnModel *model, const char *action)
{
	if (!has_privs_of_role(GetUserId(), model->owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be owner of model \"%s\" to %s it", model->name, action)));
}

/* Errors unless the current user may read the model's training table. */
void
unlearn_check_can_use(const UnlearnModel *model)
{
	if (has_privs_of_role(GetUserId(), model->owner))
		return;
	if (pg_class_aclcheck(model->relid, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for model \"%s\"", model->name),
				 errdetail("Using a model requires owning it or SELECT on its training table.")));
}

/* Feeds one buffer to a hash context, erroring on failure. */
static void
hash_update(pg_cryptohash_ctx *ctx, const void *data, size_t len)
{
	if (pg_cryptohash_update(ctx, (const uint8 *) data, len) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not compute sha256: %s", pg_cryptohash_error(ctx))));
}

/* sha256 of a buffer into out[32]. */
void
unlearn_sha256(const void *data, size_t len, uint8 *out)
{
	pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);

	if (ctx == NULL || pg_cryptohash_init(ctx) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not initialise sha256")));
	hash_update(ctx, data, len);
	if (pg_cryptohash_final(ctx, out, PG_SHA256_DIGEST_LENGTH) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not compute sha256: %s", pg_cryptohash_error(ctx))));
	pg_cryptohash_free(ctx);
}

/*
 * Chain hash of a version: sha256 over a domain tag, the parent's hash
 * (nothing for a root), the weights' sha256, the model name, the version
 * number and the forgotten ids (big-endian), so changing any version, its
 * weights or its forgotten ids breaks every later link.
 */
void
unlearn_version_hash(const uint8 *parent_hash, const uint8 *weights_sha256,
					 const char *model, int version, const int64 *forgotten,
					 int n_forgotten, uint8 *out)
{
	pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);
	uint32		v = pg_hton32((uint32) version);
	uint32		namelen = pg_hton32((uint32) strlen(model));

	if (ctx == NULL || pg_cryptohash_init(ctx) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not initialise sha256")));
	hash_update(ctx, "unlearn-ledger-v1", 17);
	if (parent_hash)
		hash_update(ctx, parent_hash, PG_SHA256_DIGEST_LENGTH);
	hash_update(ctx, weights_sha256, PG_SHA256_DIGEST_LENGTH);
	hash_update(ctx, &namelen, sizeof(namelen));
	hash_update(ctx, model, strlen(model));
	hash_update(ctx, &v, sizeof(v));
	for (int i = 0; i < n_forgotten; i++)
	{
		uint64		id = pg_hton64((uint64) forgotten[i]);

		hash_update(ctx, &id, sizeof(id));
	}
	if (pg_cryptohash_final(ctx, out, PG_SHA256_DIGEST_LENGTH) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not compute sha256: %s", pg_cryptohash_error(ctx))));
	pg_cryptohash_free(ctx);
}

/* A bytea datum holding n bytes. */
static Datum
bytea_datum(const uint8 *data, size_t n)
{
	bytea	   *b = palloc(n + VARHDRSZ);

	SET_VARSIZE(b, n + VARHDRSZ);
	memcpy(VARDATA(b), data, n);
	return PointerGetDatum(b);
}

/*
 * Stores one immutable version with its manifest (caller connected to SPI),
 * linked into the model's hash chain.  forgotten: sorted ids this version
 * forgot.
 */
void
unlearn_store_version(const char *model, int version, int parent,
					  const char *reason, const char *method,
					  Jsonb *options, const nn_model *net,
					  const int64 *ids, int64 n_ids, const int16 *id_shards,
					  const int64 *forgotten, int n_forgotten, Jsonb *metrics)
{
	Oid			argtypes[13] = {TEXTOID, INT4OID, INT4OID, TEXTOID, TEXTOID, JSONBOID, INT8OID,
	BYTEAOID, JSONBOID, TEXTOID, BYTEAOID, INT8ARRAYOID, BYTEAOID};
	Datum		args[13];
	char		nulls[13] = "             ";
	size_t		size = nn_serialized_size(net);
	bytea	   *weights = MemoryContextAllocHuge(CurrentMemoryContext, size + VARHDRSZ);
	UnlearnCatalogUser saved;
	uint8		weights_sha[PG_SHA256_DIGEST_LENGTH];
	uint8		parent_hash[PG_SHA256_DIGEST_LENGTH];
	uint8		chain[PG_SHA256_DIGEST_LENGTH];
	bool		has_parent = false;
	int			ret;

	SET_VARSIZE(weights, size + VARHDRSZ);
	nn_serialize(net, VARDATA(weights));
	unlearn_sha256(VARDATA(weights), size, weights_sha);

	args[0] = CStringGetTextDatum(model);
	args[1] = Int32GetDatum(version);
	args[2] = Int32GetDatum(parent);
	if (parent <= 0)
		nulls[2] = 'n';
	args[3] = CStringGetTextDatum(reason);
	if (method)
		args[4] = CStringGetTextDatum(method);
	else
		nulls[4] = 'n';
	args[5] = JsonbPGetDatum(options);
	args[6] = Int64GetDatum(n_ids);
	args[7] = PointerGetDatum(weights);
	args[8] = JsonbPGetDatum(metrics);
	/* who made it: the caller (the model's owner when the worker runs it), not the catalog owner */
	args[9] = CStringGetTextDatum(GetUserNameFromId(GetUserId(), false));
	args[10] = bytea_datum(weights_sha, sizeof(weights_sha));
	args[11] = unlearn_int8_array(forgotten, n_forgotten);

	unlearn_become_catalog_owner(&saved);
	if (parent > 0)
	{
		Oid			ptypes[2] = {TEXTOID, INT4OID};
		Datum		pargs[2] = {args[0], args[2]};
		bool		isnull;

		ret = SPI_execute_with_args("SELECT hash FROM unlearn.versions WHERE model = $1 AND version = $2",
									2, ptypes, pargs, NULL, true, 1);
		if (ret != SPI_OK_SELECT || SPI_processed != 1)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("parent version %d of model \"%s\" is missing", parent, model)));
		{
			bytea	   *ph = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));

			if (VARSIZE_ANY_EXHDR(ph) != PG_SHA256_DIGEST_LENGTH)
				ereport(ERROR,
						(errcode(ERRCODE_DATA_CORRUPTED),
						 errmsg("hash of version %d of model \"%s\" is malformed", parent, model)));
			memcpy(parent_hash, VARDATA_ANY(ph), PG_SHA256_DIGEST_LENGTH);
			has_parent = true;
		}
	}
	unlearn_version_hash(has_parent ? parent_hash : NULL, weights_sha, model, version,
						 forgotten, n_forgotten, chain);
	args[12] = bytea_datum(chain, sizeof(chain));

	ret = SPI_execute_with_args("INSERT INTO unlearn.versions"
								" (model, version, parent, reason, method, options, rows, weights, metrics,"
								"  created_by, weights_sha256, forgotten_ids, hash)"
								" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::name, $11, $12, $13)",
								13, argtypes, args, nulls, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "could not store version: %s", SPI_result_code_string(ret));

	{
		Oid			mtypes[4] = {TEXTOID, INT4OID, INT8ARRAYOID, INT2ARRAYOID};
		Datum		margs[4] = {args[0], args[1], unlearn_int8_array(ids, n_ids),
		id_shards ? unlearn_int2_array(id_shards, n_ids) : (Datum) 0};

		/* each id's shard: a model sharded by partition only (a 0.1 catalog has no column) */
		ret = SPI_execute_with_args(id_shards ? "INSERT INTO unlearn.manifests (model, version, ids, shards)"
									" VALUES ($1, $2, $3, $4)"
									: "INSERT INTO unlearn.manifests (model, version, ids) VALUES ($1, $2, $3)",
									id_shards ? 4 : 3, mtypes, margs, NULL, false, 0);
		if (ret != SPI_OK_INSERT)
			elog(ERROR, "could not store manifest: %s", SPI_result_code_string(ret));
	}
	unlearn_restore_user(&saved);
}

/* Points models.current_version at a stored version. */
void
unlearn_set_current_version(const char *model, int version)
{
	Oid			argtypes[2] = {TEXTOID, INT4OID};
	Datum		args[2] = {CStringGetTextDatum(model), Int32GetDatum(version)};
	UnlearnCatalogUser saved;
	int			ret;

	unlearn_become_catalog_owner(&saved);
	ret = SPI_execute_with_args("UPDATE unlearn.models SET current_version = $2 WHERE name = $1",
								2, argtypes, args, NULL, false, 0);
	unlearn_restore_user(&saved);
	if (ret != SPI_OK_UPDATE || SPI_processed != 1)
		elog(ERROR, "could not update current version of model \"%s\"", model);
}
