/*
 * predict.c: prediction, evaluation, dropping and manifests.
 *
 * Deserialised models are cached per backend keyed by (name, version,
 * version's created_at): versions are immutable, so a cached entry never goes
 * stale; the key changes when a new version is made current.  Each query
 * resolves the model's current version once (fn_extra), so predicting over
 * 10 000 rows costs one catalog lookup and at most one weight load.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/typcache.h"

#include "unlearn_pg.h"

#define MODEL_CACHE_SIZE 8

/* One deserialised model version kept for the life of the backend. */
typedef struct CachedModel
{
	char	   *name;
	int			version;
	int64		version_stamp;
	int			n_features;
	int			n_classes;
	char	  **classes;
	UnlearnEncoder *encoder;	/* column models: how a row becomes the input */
	char	   *features_column;	/* array models: the column a row holds the features in */
	nn_model   *net;
	nn_workspace *ws;			/* single-row workspace for unlearn_predict */
	MemoryContext cxt;			/* owns everything above */
	uint64		last_used;
} CachedModel;

static CachedModel *model_cache[MODEL_CACHE_SIZE];
static uint64 cache_clock = 0;
static MemoryContext cache_parent = NULL;

/* What a call site (one query) resolved: the cache key of the current version. */
typedef struct CallSiteModel
{
	char	   *name;
	int			version;
	int64		version_stamp;
	/* row arguments: where the row type holds the inputs, for this version's encoding */
	bool		mapped;
	Oid			rowtype;
	int32		rowtypmod;
	UnlearnRowMap map;			/* column models */
	int			features_att;	/* array models */
} CallSiteModel;

/* Frees one cache slot. */
static void
cache_evict(int slot)
{
	if (model_cache[slot])
	{
		MemoryContextDelete(model_cache[slot]->cxt);
		model_cache[slot] = NULL;
	}
}

/* Drops every cached version of a model from this backend's cache. */
void
unlearn_cache_forget(const char *model)
{
	for (int i = 0; i < MODEL_CACHE_SIZE; i++)
		if (model_cache[i] && strcmp(model_cache[i]->name, model) == 0)
			cache_evict(i);
}

/* Puts a model into a free slot, or in place of the least recently used one. */
static void
cache_insert(CachedModel *c)
{
	int			slot = 0;

	for (int i = 0; i < MODEL_CACHE_SIZE; i++)
	{
		if (model_cache[i] == NULL)
		{
			slot = i;
			break;
		}
		if (model_cache[i]->last_used < model_cache[slot]->last_used)
			slot = i;
	}
	cache_evict(slot);
	model_cache[slot] = c;
}

/* Finds a cached version. */
static CachedModel *
cache_find(const char *name, int version, int64 stamp)
{
	for (int i = 0; i < MODEL_CACHE_SIZE; i++)
	{
		CachedModel *c = model_cache[i];

		if (c && c->version == version && c->version_stamp == stamp && strcmp(c->name, name) == 0)
		{
			c->last_used = ++cache_clock;
			return c;
		}
	}
	return NULL;
}

/* Loads a model's version into the cache (caller connected to SPI). */
static CachedModel *
cache_load(const UnlearnModel *model)
{
	MemoryContext cxt,
				old;
	CachedModel *c;
	nn_model   *net;

	/* older versions of this model are dead weight */
	unlearn_cache_forget(model->name);

	if (cache_parent == NULL)
		cache_parent = AllocSetContextCreate(TopMemoryContext, "unlearn model cache",
											 ALLOCSET_SMALL_SIZES);
	cxt = AllocSetContextCreate(cache_parent, "unlearn cached model", ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		net = unlearn_load_weights(model, model->version);
		MemoryContextSwitchTo(cxt);
		c = palloc0(sizeof(CachedModel));
		c->name = pstrdup(model->name);
		c->version = model->version;
		c->version_stamp = model->version_stamp;
		c->n_features = model->n_features;
		c->n_classes = model->n_classes;
		c->classes = palloc(sizeof(char *) * model->n_classes);
		for (int i = 0; i < model->n_classes; i++)
			c->classes[i] = pstrdup(model->classes[i]);
		c->encoder = model->encoder ? unlearn_encoder_copy(model->encoder) : NULL;
		c->features_column = model->features_column ? pstrdup(model->features_column) : NULL;
		c->net = net;
		c->ws = nn_workspace_create(net, 1);
		c->cxt = cxt;
		c->last_used = ++cache_clock;
		MemoryContextSwitchTo(old);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(old);
		MemoryContextDelete(cxt);
		PG_RE_THROW();
	}
	PG_END_TRY();

	cache_insert(c);
	return c;
}

/*
 * The cached current version of `name` for this call site: resolved from the
 * catalog once per query (with the privilege check), then from fn_extra.
 */
static CachedModel *
model_for_call(FunctionCallInfo fcinfo, text *name_text)
{
	CallSiteModel *site = (CallSiteModel *) fcinfo->flinfo->fn_extra;
	char	   *name = text_to_cstring(name_text);
	CachedModel *c;

	if (site && strcmp(site->name, name) == 0)
	{
		c = cache_find(site->name, site->version, site->version_stamp);
		if (c)
		{
			pfree(name);
			return c;
		}
	}

	SPI_connect();
	{
		UnlearnModel *model = unlearn_model_lookup(name, false);

		unlearn_check_can_use(model);
		c = cache_find(model->name, model->version, model->version_stamp);
		if (c == NULL)
			c = cache_load(model);
	}
	SPI_finish();

	if (site == NULL)
		site = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(CallSiteModel));
	else if (site->name)
		pfree(site->name);
	site->name = MemoryContextStrdup(fcinfo->flinfo->fn_mcxt, name);
	site->mapped = false;
	site->version = c->version;
	site->version_stamp = c->version_stamp;
	fcinfo->flinfo->fn_extra = site;
	pfree(name);
	return c;
}

/* Checks the features argument against the model and returns them as floats. */
static float *
features_arg(CachedModel *c, ArrayType *arr)
{
	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("feature arrays must be one-dimensional")));
	if (ARR_NDIM(arr) != 1 || ARR_DIMS(arr)[0] != c->n_features)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("model \"%s\" expects %d features, got %d",
						c->name, c->n_features, ARR_NDIM(arr) == 1 ? ARR_DIMS(arr)[0] : 0)));
	return unlearn_features_from_array(arr, c->n_features);
}

/*
 * Errors (22003) unless the logits of the last forward pass (its first
 * `rows` rows) are finite: overflowed or NaN outputs have no class, and an
 * argmax over them would answer the first class.
 */
static void
check_outputs_finite(const char *model, const nn_model *net, const nn_workspace *ws, int rows)
{
	const float *logits = ws->act[net->n_layers];
	int			bad = 0;

	for (size_t i = 0; i < (size_t) rows * NN_CLASSES(net); i++)
		if (!isfinite(logits[i]))
			bad++;
	if (bad > 0)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("model \"%s\" has no prediction for these features: its output is not finite", model),
				 errdetail("The features overflow the network's single-precision arithmetic."),
				 errhint("Scale the features like the rows the model was trained on.")));
}

/* Where a row type holds what the model reads (site cache, in fn_mcxt). */
static void
map_row_type(FunctionCallInfo fcinfo, CachedModel *c, TupleDesc desc)
{
	CallSiteModel *site = (CallSiteModel *) fcinfo->flinfo->fn_extra;
	MemoryContext old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);

	if (c->encoder)
		unlearn_encoder_match(c->encoder, desc, false, &site->map);
	else
	{
		site->features_att = unlearn_desc_attnum(desc, c->features_column);
		if (site->features_att == 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("the row has no column \"%s\", the features of model \"%s\"",
							c->features_column, c->name)));
	}
	MemoryContextSwitchTo(old);
	site->rowtype = desc->tdtypeid;
	site->rowtypmod = desc->tdtypmod;
	site->mapped = true;
}

/*
 * The input of a row argument: a column model's columns encoded, or an
 * array model's features column; matched by name, other columns ignored.
 */
static float *
row_features(FunctionCallInfo fcinfo, CachedModel *c, HeapTupleHeader row)
{
	CallSiteModel *site = (CallSiteModel *) fcinfo->flinfo->fn_extra;
	TupleDesc	desc = lookup_rowtype_tupdesc(HeapTupleHeaderGetTypeId(row), HeapTupleHeaderGetTypMod(row));
	float	   *x = NULL;
	HeapTupleData tmp;

	if (!site->mapped || site->rowtype != desc->tdtypeid || site->rowtypmod != desc->tdtypmod)
		map_row_type(fcinfo, c, desc);
	if (c->encoder)
	{
		x = palloc(sizeof(float) * c->n_features);
		(void) unlearn_encode_tuple(c->encoder, &site->map, unlearn_composite_tuple(row, &tmp), desc, x, false);
	}
	else
	{
		bool		isnull;
		Datum		d;
		Oid			type = TupleDescAttr(desc, site->features_att - 1)->atttypid;

		d = heap_getattr(unlearn_composite_tuple(row, &tmp), site->features_att, desc, &isnull);
		if (isnull || (type != FLOAT4ARRAYOID && type != FLOAT8ARRAYOID))
			ereport(ERROR,
					(errcode(isnull ? ERRCODE_NULL_VALUE_NOT_ALLOWED : ERRCODE_DATATYPE_MISMATCH),
					 errmsg("column \"%s\" of the row must be a non-NULL real[] or double precision[]",
							c->features_column)));
		x = features_arg(c, DatumGetArrayTypeP(d));
	}
	ReleaseTupleDesc(desc);
	return x;
}

/* The predicted label of one input. */
static Datum
predict_one(CachedModel *c, float *x)
{
	int			cls;

	nn_predict(c->net, c->ws, x, 1, &cls);
	check_outputs_finite(c->name, c->net, c->ws, 1);
	pfree(x);
	return unlearn_label_from_cstring(c->classes[cls]);
}

/* The class probabilities of one input, classes in catalog order. */
static Datum
predict_proba_one(CachedModel *c, float *x)
{
	float	   *p = palloc(sizeof(float) * c->n_classes);
	Datum	   *d = palloc(sizeof(Datum) * c->n_classes);

	nn_predict_proba(c->net, c->ws, x, 1, p);
	check_outputs_finite(c->name, c->net, c->ws, 1);
	for (int i = 0; i < c->n_classes; i++)
		d[i] = Float8GetDatum((double) p[i]);
	pfree(x);
	return PointerGetDatum(construct_array(d, c->n_classes, FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

/* Errors (42809) when an array is given to a column model. */
static CachedModel *
array_model(CachedModel *c)
{
	if (c->encoder)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("model \"%s\" reads columns, not a features array", c->name),
				 errhint("Pass a row: unlearn_predict('%s', t) FROM t, or ROW(...) with its column names.",
						 c->name)));
	return c;
}

PG_FUNCTION_INFO_V1(unlearn_predict);
/* unlearn_predict(model, features): the predicted label. */
Datum
unlearn_predict(PG_FUNCTION_ARGS)
{
	CachedModel *c = array_model(model_for_call(fcinfo, PG_GETARG_TEXT_PP(0)));

	PG_RETURN_DATUM(predict_one(c, features_arg(c, PG_GETARG_ARRAYTYPE_P(1))));
}

PG_FUNCTION_INFO_V1(unlearn_predict_proba);
/* unlearn_predict_proba(model, features): class probabilities, classes in catalog order. */
Datum
unlearn_predict_proba(PG_FUNCTION_ARGS)
{
	CachedModel *c = array_model(model_for_call(fcinfo, PG_GETARG_TEXT_PP(0)));

	PG_RETURN_DATUM(predict_proba_one(c, features_arg(c, PG_GETARG_ARRAYTYPE_P(1))));
}

PG_FUNCTION_INFO_V1(unlearn_predict_row);
/* unlearn_predict(model, row): the predicted label of a row that has the model's columns. */
Datum
unlearn_predict_row(PG_FUNCTION_ARGS)
{
	CachedModel *c = model_for_call(fcinfo, PG_GETARG_TEXT_PP(0));

	PG_RETURN_DATUM(predict_one(c, row_features(fcinfo, c, PG_GETARG_HEAPTUPLEHEADER(1))));
}

PG_FUNCTION_INFO_V1(unlearn_predict_proba_row);
/* unlearn_predict_proba(model, row): class probabilities of a row. */
Datum
unlearn_predict_proba_row(PG_FUNCTION_ARGS)
{
	CachedModel *c = model_for_call(fcinfo, PG_GETARG_TEXT_PP(0));

	PG_RETURN_DATUM(predict_proba_one(c, row_features(fcinfo, c, PG_GETARG_HEAPTUPLEHEADER(1))));
}

PG_FUNCTION_INFO_V1(unlearn_evaluate);
/*
 * unlearn_evaluate(model, relation): rows, correct, accuracy of the current
 * version on a labelled table that has the model's column names.
 */
Datum
unlearn_evaluate(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Oid			relid = PG_GETARG_OID(1);
	TupleDesc	desc;
	UnlearnModel *model;
	UnlearnDataSpec spec;
	UnlearnData data;
	nn_model   *net;
	int64		correct = 0;
	Datum		values[3];
	bool		nulls[3] = {0};

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "unlearn_evaluate must return a composite type");
	desc = BlessTupleDesc(desc);
	if (get_rel_name(relid) == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));

	SPI_connect();
	model = unlearn_model_lookup(name, false);
	unlearn_check_can_use(model);
	net = unlearn_load_weights(model, model->version);

	memset(&spec, 0, sizeof(spec));
	spec.relid = relid;
	spec.features_column = model->features_column;
	spec.encoder = model->encoder;
	spec.any_types = true;		/* another table: numbers of another width will do */
	spec.label_column = model->label_column;
	spec.n_features = model->n_features;
	spec.model = model;
	unlearn_read_data(&spec, &data);

	if (data.n > 0)
	{
		int			batch = 1024;
		nn_workspace *ws = nn_workspace_create(net, batch);
		int		   *pred = palloc(sizeof(int) * batch);

		for (int64 start = 0; start < data.n; start += batch)
		{
			int			nb = (int) Min(batch, data.n - start);

			nn_predict(net, ws, data.X + (size_t) start * data.n_features, nb, pred);
			check_outputs_finite(name, net, ws, nb);
			for (int i = 0; i < nb; i++)
				correct += (pred[i] == data.y[start + i]);
			CHECK_FOR_INTERRUPTS();
		}
	}
	SPI_finish();

	values[0] = Int64GetDatum(data.n);
	values[1] = Int64GetDatum(correct);
	if (data.n > 0)
		values[2] = Float8GetDatum((double) correct / (double) data.n);
	else
		nulls[2] = true;
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}

PG_FUNCTION_INFO_V1(unlearn_drop_model);
/* unlearn_drop_model(model): removes the model, its queue, versions, manifests and ledger. */
Datum
unlearn_drop_model(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	UnlearnModel *model;
	UnlearnCatalogUser saved;

	/* no foreign keys between the catalog tables: each is cleared here */
	const char *const deletes[] = {
		"DELETE FROM unlearn.requests WHERE model = $1",
		"DELETE FROM unlearn.forgotten WHERE model = $1",
		"DELETE FROM unlearn.manifests WHERE model = $1",
		"DELETE FROM unlearn.versions WHERE model = $1",
		"DELETE FROM unlearn.models WHERE name = $1",
		"DELETE FROM unlearn.encodings WHERE model = $1"	/* last: not in a 0.1 catalog */
	};
	int			n = unlearn_catalog_has_column_models() ? lengthof(deletes) : lengthof(deletes) - 1;

	SPI_connect();
	/*
	 * step 1: the model's row, locked after the transactions still queueing
	 * requests for it (see capture.c), then checked as it is now
	 */
	model = unlearn_open_model_for_drop(name);
	/* step 2: its rows in every catalog table, the requests those transactions committed among them */
	unlearn_become_catalog_owner(&saved);
	for (int i = 0; i < n; i++)
		(void) unlearn_catalog_delete_latest(deletes[i], name);
	unlearn_restore_user(&saved);
	/* step 3: the capture triggers, if no other model of the table needs them */
	unlearn_remove_capture_if_unused(model->relid);
	unlearn_close_model_change();
	SPI_finish();
	unlearn_cache_forget(name);
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(unlearn_manifest);
/* unlearn_manifest(model, version): ids of the rows a version was trained on. */
Datum
unlearn_manifest(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *name;
	UnlearnModel *model;
	int			version;
	UnlearnCatalogUser saved;
	Oid			argtypes[2] = {TEXTOID, INT4OID};
	Datum		args[2];
	int			ret;
	int64	   *ids;
	int64		n_ids;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("model must not be NULL")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);

	SPI_connect();
	model = unlearn_model_lookup(name, false);
	unlearn_check_can_use(model);
	version = PG_ARGISNULL(1) ? model->version : PG_GETARG_INT32(1);
	args[0] = CStringGetTextDatum(name);
	args[1] = Int32GetDatum(version);

	/* a missing version is not an empty manifest */
	unlearn_become_catalog_owner(&saved);
	ret = SPI_execute_with_args("SELECT 1 FROM unlearn.versions WHERE model = $1 AND version = $2",
								2, argtypes, args, NULL, true, 1);
	unlearn_restore_user(&saved);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read unlearn.versions: %s", SPI_result_code_string(ret));
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("version %d of model \"%s\" does not exist", version, name)));

	/* the ids, checked like every catalog id array */
	ids = unlearn_load_manifest(model, version, &n_ids);
	for (int64 i = 0; i < n_ids; i++)
	{
		Datum		v = Int64GetDatum(ids[i]);
		bool		isnull = false;

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &v, &isnull);
	}
	SPI_finish();
	return (Datum) 0;
}
