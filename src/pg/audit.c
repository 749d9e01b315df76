/*
 * audit.c: what auditors run: unlearn_audit (one row per version),
 * unlearn_compare_retrain (the gap to a model retrained without the rows),
 * unlearn_verify_ledger (the hash chain) and unlearn_purge (erasing what
 * must not outlive its use).
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "common/sha2.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

#include "mia.h"
#include "queue.h"
#include "unlearn_pg.h"

#define AUDIT_REMAINING_SAMPLE 2000
#define AUDIT_SAMPLE_SEED 20240201
#define AUDIT_BATCH 1024

/* The ledger of a model: every forgotten row, with features where still kept. */
typedef struct Ledger
{
	int			n;
	int			n_features;
	int64	   *ids;
	int		   *version;		/* version that forgot it */
	int		   *y;				/* output unit of its label (-1 if unknown) */
	bool	   *has_features;
	float	   *X;				/* n x n_features (zeros where erased) */
} Ledger;

/* Reads the whole ledger of a model (caller connected to SPI). */
static void
read_ledger(const UnlearnModel *model, Ledger *out)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1] = {CStringGetTextDatum(model->name)};
	UnlearnCatalogUser saved;

	unlearn_become_catalog_owner(&saved);
	if (SPI_execute_with_args("SELECT id, label, features, version FROM unlearn.forgotten"
							  " WHERE model = $1 ORDER BY id", 1, argtypes, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read unlearn.forgotten");
	unlearn_restore_user(&saved);
	out->n = (int) SPI_processed;
	out->n_features = model->n_features;
	out->ids = palloc(sizeof(int64) * Max(out->n, 1));
	out->version = palloc(sizeof(int) * Max(out->n, 1));
	out->y = palloc(sizeof(int) * Max(out->n, 1));
	out->has_features = palloc(sizeof(bool) * Max(out->n, 1));
	out->X = palloc0(sizeof(float) * Max(out->n, 1) * model->n_features);
	for (int i = 0; i < out->n; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	td = SPI_tuptable->tupdesc;
		bool		isnull;
		Datum		f;

		out->ids[i] = DatumGetInt64(SPI_getbinval(tup, td, 1, &isnull));
		out->y[i] = unlearn_class_index(model, SPI_getvalue(tup, td, 2));
		f = SPI_getbinval(tup, td, 3, &isnull);
		out->has_features[i] = !isnull;
		if (!isnull)
		{
			float	   *x = unlearn_features_from_array(DatumGetArrayTypeP(f), model->n_features);

			memcpy(out->X + (size_t) i * model->n_features, x, sizeof(float) * model->n_features);
		}
		out->version[i] = DatumGetInt32(SPI_getbinval(tup, td, 4, &isnull));
	}
}

/* True-class probability of each row (y < 0: probability 0). */
static double *
true_class_probabilities(nn_model *net, const float *X, const int *y, int n)
{
	double	   *p = palloc(sizeof(double) * Max(n, 1));
	int			C = NN_CLASSES(net);
	nn_workspace *ws = nn_workspace_create(net, AUDIT_BATCH);
	float	   *proba = palloc(sizeof(float) * AUDIT_BATCH * C);

	for (int s = 0; s < n; s += AUDIT_BATCH)
	{
		int			nb = Min(AUDIT_BATCH, n - s);

		nn_predict_proba(net, ws, X + (size_t) s * NN_FEATURES(net), nb, proba);
		for (int i = 0; i < nb; i++)
			p[s + i] = y[s + i] >= 0 ? proba[(size_t) i * C + y[s + i]] : 0.0;
		CHECK_FOR_INTERRUPTS();
	}
	nn_workspace_free(ws);
	pfree(proba);
	return p;
}

/* Share of rows predicted right (argmax = y). */
static double
accuracy_of(nn_model *net, const float *X, const int *y, int n)
{
	int		   *pred = palloc(sizeof(int) * Max(n, 1));
	nn_workspace *ws = nn_workspace_create(net, AUDIT_BATCH);
	int			right = 0;

	for (int s = 0; s < n; s += AUDIT_BATCH)
		nn_predict(net, ws, X + (size_t) s * NN_FEATURES(net), Min(AUDIT_BATCH, n - s), pred + s);
	for (int i = 0; i < n; i++)
		right += pred[i] == y[i];
	nn_workspace_free(ws);
	pfree(pred);
	return n > 0 ? (double) right / n : 0.0;
}

/* What one version looks like to an auditor. */
typedef struct VersionFigures
{
	int			checked;		/* forgotten rows (up to the version) with features */
	int			unchecked;		/* forgotten rows without */
	int			misclassified;	/* of the checked */
	double		remaining_accuracy;
	double		test_accuracy;
	bool		has_test;
	bool		has_mia;
	double		mia_member_rate;
	double		mia_attack_accuracy;
} VersionFigures;

/*
 * Measures a version: its forgotten rows (those forgotten by versions up to
 * `upto`, or all if upto <= 0), the remaining sample, the test rows and the
 * membership-inference attack fit on remaining (members) vs test rows.
 */
static void
measure_version(nn_model *net, const Ledger *led, int upto, const UnlearnData *remaining,
				const UnlearnData *test, VersionFigures *out)
{
	int			n_sel = 0;
	float	   *Xf = palloc(sizeof(float) * Max(led->n, 1) * led->n_features);
	int		   *yf = palloc(sizeof(int) * Max(led->n, 1));
	double	   *pf;

	memset(out, 0, sizeof(*out));
	for (int i = 0; i < led->n; i++)
	{
		if (upto > 0 && led->version[i] > upto)
			continue;
		if (!led->has_features[i] || led->y[i] < 0)
		{
			out->unchecked++;
			continue;
		}
		memcpy(Xf + (size_t) n_sel * led->n_features, led->X + (size_t) i * led->n_features,
			   sizeof(float) * led->n_features);
		yf[n_sel++] = led->y[i];
	}
	out->checked = n_sel;
	out->misclassified = n_sel - (int) (accuracy_of(net, Xf, yf, n_sel) * n_sel + 0.5);
	out->remaining_accuracy = accuracy_of(net, remaining->X, remaining->y, (int) remaining->n);
	if (test && test->n > 0)
	{
		double	   *pm = true_class_probabilities(net, remaining->X, remaining->y, (int) remaining->n);
		double	   *pn = true_class_probabilities(net, test->X, test->y, (int) test->n);
		ul_mia_attack attack;

		out->has_test = true;
		out->test_accuracy = accuracy_of(net, test->X, test->y, (int) test->n);
		for (int64 i = 0; i < remaining->n; i++)
			pm[i] = ul_mia_loss(pm[i]);
		for (int64 i = 0; i < test->n; i++)
			pn[i] = ul_mia_loss(pn[i]);
		if (n_sel > 0 && ul_mia_fit(pm, (int) remaining->n, pn, (int) test->n, &attack) == 0)
		{
			int			members = 0;

			pf = true_class_probabilities(net, Xf, yf, n_sel);
			for (int i = 0; i < n_sel; i++)
				members += ul_mia_member_probability(&attack, ul_mia_loss(pf[i])) > 0.5;
			out->has_mia = true;
			out->mia_member_rate = (double) members / n_sel;
			out->mia_attack_accuracy = attack.balanced_accuracy;
		}
	}
}

/* The rows an audit measures on: a seeded sample of the remaining rows, and the test relation. */
static void
read_audit_rows(const UnlearnModel *model, Oid test_relid, UnlearnData *remaining, UnlearnData *test)
{
	int64		n_manifest;
	int64	   *manifest = unlearn_load_manifest(model, model->version, &n_manifest);

	unlearn_read_sample(model, manifest, n_manifest, NULL, 0, AUDIT_REMAINING_SAMPLE,
						AUDIT_SAMPLE_SEED, remaining);
	memset(test, 0, sizeof(*test));
	if (OidIsValid(test_relid))
	{
		UnlearnDataSpec spec;

		if (get_rel_name(test_relid) == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_TABLE),
					 errmsg("relation with OID %u does not exist", test_relid)));
		/* the model's columns, read from the test relation (no ids) */
		unlearn_model_data_spec(model, &spec);
		spec.relid = test_relid;
		spec.id_column = NULL;
		unlearn_read_data(&spec, test);
		/* rows with labels the model does not know say nothing about membership */
		unlearn_drop_unknown_labels(test);
	}
}

/*
 * Loads a version's weights for the audit: NULL when they were purged (no
 * problem for a superseded version) or cannot be used (*problem says why),
 * so one bad version does not hide the others.
 */
static nn_model *
weights_if_kept(const UnlearnModel *model, int version, char **problem)
{
	int			sqlerrcode;
	nn_model   *net = unlearn_read_weights(model, version, &sqlerrcode, problem);

	if (net == NULL && sqlerrcode == ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE && version != model->version)
		*problem = NULL;
	return net;
}

PG_FUNCTION_INFO_V1(unlearn_audit);
/* unlearn_audit(model, test_relation): one row per version with what an auditor needs. */
Datum
unlearn_audit(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *name;
	Oid			test_relid = PG_ARGISNULL(1) ? InvalidOid : PG_GETARG_OID(1);
	UnlearnModel *model;
	Ledger		led;
	UnlearnData remaining,
				test;
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1];
	UnlearnCatalogUser saved;
	SPITupleTable *versions;
	uint64		n_versions;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("model must not be NULL")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	args[0] = CStringGetTextDatum(name);
	InitMaterializedSRF(fcinfo, 0);

	SPI_connect();
	model = unlearn_model_lookup(name, false);
	unlearn_check_can_use(model);
	read_ledger(model, &led);
	read_audit_rows(model, test_relid, &remaining, &test);

	unlearn_become_catalog_owner(&saved);
	if (SPI_execute_with_args("SELECT version, parent, reason, method, cardinality(forgotten_ids),"
							  " (metrics->>'steps')::int, coalesce((metrics->>'seconds')::float8,"
							  "  (metrics->>'train_seconds')::float8), created_by, created_at, guarantee"
							  " FROM unlearn.versions WHERE model = $1 ORDER BY version",
							  1, argtypes, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read unlearn.versions");
	unlearn_restore_user(&saved);
	versions = SPI_tuptable;
	n_versions = SPI_processed;

	for (uint64 r = 0; r < n_versions; r++)
	{
		HeapTuple	tup = versions->vals[r];
		TupleDesc	td = versions->tupdesc;
		Datum		values[20];
		bool		nulls[20] = {0};
		bool		isnull;
		int			version = DatumGetInt32(SPI_getbinval(tup, td, 1, &isnull));
		char	   *problem = NULL;
		nn_model   *net = weights_if_kept(model, version, &problem);
		VersionFigures fig;

		values[0] = Int32GetDatum(version);
		values[1] = SPI_getbinval(tup, td, 2, &nulls[1]);
		values[2] = SPI_getbinval(tup, td, 3, &nulls[2]);
		values[3] = SPI_getbinval(tup, td, 4, &nulls[3]);
		values[4] = SPI_getbinval(tup, td, 5, &nulls[4]);
		if (net)
		{
			measure_version(net, &led, version, &remaining, test_relid ? &test : NULL, &fig);
			values[5] = Int32GetDatum(fig.checked);
			values[6] = Int32GetDatum(fig.unchecked);
			values[7] = BoolGetDatum(fig.misclassified == fig.checked);
			nulls[7] = fig.checked == 0;	/* nothing to check is not a yes */
			values[8] = Float8GetDatum(fig.checked ? 1.0 - (double) fig.misclassified / fig.checked : 0);
			nulls[8] = fig.checked == 0;
			values[9] = Float8GetDatum(fig.remaining_accuracy);
			nulls[9] = remaining.n == 0;
			values[10] = Int32GetDatum((int) remaining.n);
			values[11] = Float8GetDatum(fig.test_accuracy);
			nulls[11] = !fig.has_test;
			values[12] = Float8GetDatum(fig.mia_member_rate);
			nulls[12] = !fig.has_mia;
			values[13] = Float8GetDatum(fig.mia_attack_accuracy);
			nulls[13] = !fig.has_mia;
			nn_free(net);
		}
		else
		{
			/* weights purged or unusable: only the lineage (and the problem) is left to report */
			for (int c = 5; c <= 13; c++)
				nulls[c] = true;
		}
		values[14] = SPI_getbinval(tup, td, 6, &nulls[14]);
		values[15] = SPI_getbinval(tup, td, 7, &nulls[15]);
		values[16] = SPI_getbinval(tup, td, 8, &nulls[16]);
		values[17] = SPI_getbinval(tup, td, 9, &nulls[17]);
		values[18] = problem ? CStringGetTextDatum(problem) : (Datum) 0;
		nulls[18] = problem == NULL;
		values[19] = SPI_getbinval(tup, td, 10, &nulls[19]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	SPI_finish();
	return (Datum) 0;
}

/* Latest version (with weights) whose reason is (or is not) a retrain; 0 if none. */
static int
latest_version(const char *model, bool retrained)
{
	Oid			argtypes[2] = {TEXTOID, BOOLOID};
	Datum		args[2] = {CStringGetTextDatum(model), BoolGetDatum(retrained)};
	UnlearnCatalogUser saved;
	bool		isnull;
	Datum		v;

	unlearn_become_catalog_owner(&saved);
	if (SPI_execute_with_args("SELECT max(version) FROM unlearn.versions WHERE model = $1"
							  " AND weights IS NOT NULL AND (reason IN ('retrain', 'reference')) = $2"
							  " AND (reason <> 'train' OR $2)",
							  2, argtypes, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read unlearn.versions");
	unlearn_restore_user(&saved);
	v = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? 0 : DatumGetInt32(v);
}

PG_FUNCTION_INFO_V1(unlearn_compare_retrain);
/*
 * unlearn_compare_retrain(model, test_relation): the latest unlearned
 * version against the latest version retrained from scratch, on the same
 * forgotten rows, remaining sample and test rows.
 */
Datum
unlearn_compare_retrain(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Oid			test_relid = PG_GETARG_OID(1);
	UnlearnModel *model;
	Ledger		led;
	UnlearnData remaining,
				test;
	int			v_unlearned,
				v_retrained;
	VersionFigures fu,
				fr;
	nn_model   *net;

	InitMaterializedSRF(fcinfo, 0);
	SPI_connect();
	model = unlearn_model_lookup(name, false);
	unlearn_check_can_use(model);
	v_unlearned = latest_version(name, false);
	v_retrained = latest_version(name, true);
	if (v_unlearned == 0 || v_retrained == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("model \"%s\" needs an unlearned version and a retrained one to compare", name),
				 errhint("unlearn_retrain('%s', '{\"reference\": true}') trains a reference without making it current.",
						 name)));
	read_ledger(model, &led);
	read_audit_rows(model, test_relid, &remaining, &test);

	net = unlearn_load_weights(model, v_unlearned);
	measure_version(net, &led, 0, &remaining, &test, &fu);
	nn_free(net);
	net = unlearn_load_weights(model, v_retrained);
	measure_version(net, &led, 0, &remaining, &test, &fr);
	nn_free(net);
	SPI_finish();

	{
		const char *metrics[4] = {"test_accuracy", "remaining_accuracy", "forget_accuracy", "mia_member_rate"};
		double		u[4],
					t[4];
		bool		known[4];

		u[0] = fu.test_accuracy;
		t[0] = fr.test_accuracy;
		known[0] = fu.has_test && fr.has_test;
		u[1] = fu.remaining_accuracy;
		t[1] = fr.remaining_accuracy;
		known[1] = remaining.n > 0;
		u[2] = fu.checked ? 1.0 - (double) fu.misclassified / fu.checked : 0;
		t[2] = fr.checked ? 1.0 - (double) fr.misclassified / fr.checked : 0;
		known[2] = fu.checked > 0;
		u[3] = fu.mia_member_rate;
		t[3] = fr.mia_member_rate;
		known[3] = fu.has_mia && fr.has_mia;
		for (int i = 0; i < 4; i++)
		{
			Datum		values[4];
			bool		nulls[4] = {false, !known[i], !known[i], !known[i]};

			values[0] = CStringGetTextDatum(metrics[i]);
			values[1] = Float8GetDatum(u[i]);
			values[2] = Float8GetDatum(t[i]);
			values[3] = Float8GetDatum(u[i] - t[i]);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
	}
	return (Datum) 0;
}

/* Hex of a digest, for messages. */
static char *
hex_of(const uint8 *d, int n)
{
	char	   *s = palloc(2 * n + 1);

	for (int i = 0; i < n; i++)
		sprintf(s + 2 * i, "%02x", d[i]);
	return s;
}

/* Appends one problem to a "; "-separated list. */
static void
add_problem(StringInfo s, const char *problem)
{
	appendStringInfo(s, "%s%s", s->len > 0 ? "; " : "", problem);
}

/*
 * What is wrong with the model as a whole: the lineage rules (lineage.c) and
 * no forgotten row back in the current version's manifest unless a retrain
 * on the chain since its forgetting learned it again from the table.  Returns
 * the version whose row reports it: the current one, else the head.
 */
static int
lineage_problems(const UnlearnModel *model, const Ledger *led, StringInfo out)
{
	UnlearnLineage lin;

	initStringInfo(out);
	unlearn_read_lineage(model, &lin);
	unlearn_lineage_problems(&lin, out);
	if (lin.current_index >= 0)
	{
		int64		n_manifest;
		int64	   *manifest = unlearn_load_manifest(model, model->version, &n_manifest);

		for (int j = 0; j < led->n; j++)
			if (bsearch(&led->ids[j], manifest, n_manifest, sizeof(int64), unlearn_cmp_int64) &&
				!unlearn_lineage_retrained_after(&lin, led->version[j]))
				add_problem(out, psprintf("forgotten row " INT64_FORMAT " (version %d) is in the manifest of the current version",
										  led->ids[j], led->version[j]));
		return model->version;
	}
	return lin.n > 0 ? (lin.head ? lin.head : lin.version[lin.n - 1]) : 0;
}

/*
 * Checks one version's row of unlearn.versions (columns: version, parent,
 * weights, weights_sha256, forgotten_ids, hash): its weights against their
 * sha256, its parent, and its chain hash, which it stores in expected[r]
 * (earlier versions' are in expected[0..r-1], their numbers in ver[]).
 */
static void
check_version_hash(HeapTuple tup, TupleDesc td, const char *name, int version, const int64 *ids,
				   int64 n_fids, const int *ver, uint8 *expected, uint64 r, StringInfo problems)
{
	bool		isnull,
				parent_null,
				weights_null;
	Datum		parent_d = SPI_getbinval(tup, td, 2, &parent_null);
	Datum		weights_d = SPI_getbinval(tup, td, 3, &weights_null);
	bytea	   *wsha = DatumGetByteaPP(SPI_getbinval(tup, td, 4, &isnull));
	bytea	   *stored = DatumGetByteaPP(SPI_getbinval(tup, td, 6, &isnull));
	const uint8 *parent_hash = NULL;
	uint8	   *mine = expected + r * PG_SHA256_DIGEST_LENGTH;

	if (VARSIZE_ANY_EXHDR(wsha) != PG_SHA256_DIGEST_LENGTH ||
		VARSIZE_ANY_EXHDR(stored) != PG_SHA256_DIGEST_LENGTH)
	{
		add_problem(problems, "a stored hash is malformed");
		memset(mine, 0, PG_SHA256_DIGEST_LENGTH);
		return;
	}
	if (!weights_null)
	{
		bytea	   *w = DatumGetByteaPP(weights_d);
		uint8		actual[PG_SHA256_DIGEST_LENGTH];

		unlearn_sha256(VARDATA_ANY(w), VARSIZE_ANY_EXHDR(w), actual);
		if (memcmp(actual, VARDATA_ANY(wsha), PG_SHA256_DIGEST_LENGTH) != 0)
			add_problem(problems, "the weights do not match their recorded sha256");
	}
	if (!parent_null)
	{
		int			parent = DatumGetInt32(parent_d);

		for (uint64 q = 0; q < r; q++)
			if (ver[q] == parent)
				parent_hash = expected + q * PG_SHA256_DIGEST_LENGTH;
		if (parent_hash == NULL)
			add_problem(problems, psprintf("its parent version %d is missing", parent));
	}
	/* the chain continues from what the hashes should be, so a bad link shows once per version after it */
	unlearn_version_hash(parent_hash, (const uint8 *) VARDATA_ANY(wsha), name, version,
						 ids, (int) n_fids, mine);
	if (memcmp(mine, VARDATA_ANY(stored), PG_SHA256_DIGEST_LENGTH) != 0)
		add_problem(problems,
					psprintf("its hash %s does not follow from its parent, weights and forgotten ids (expected %s)",
							 hex_of((const uint8 *) VARDATA_ANY(stored), PG_SHA256_DIGEST_LENGTH),
							 hex_of(mine, PG_SHA256_DIGEST_LENGTH)));
}

/* Checks that the ledger and a version's forgotten ids agree, both ways. */
static void
check_version_ledger(const Ledger *led, int version, const int64 *ids, int64 n_fids, StringInfo problems)
{
	/* every id it forgot is in the ledger (at this version or a later re-forget) */
	for (int64 i = 0; i < n_fids; i++)
	{
		bool		found = false;

		for (int j = 0; j < led->n && !found; j++)
			found = led->ids[j] == ids[i] && led->version[j] >= version;
		if (!found)
			add_problem(problems, psprintf("forgotten row " INT64_FORMAT " is missing from unlearn.forgotten", ids[i]));
	}
	/* and every ledger row of this version is one it forgot */
	for (int j = 0; j < led->n; j++)
		if (led->version[j] == version)
		{
			bool		found = false;

			for (int64 i = 0; i < n_fids && !found; i++)
				found = ids[i] == led->ids[j];
			if (!found)
				add_problem(problems, psprintf("ledger row " INT64_FORMAT " is not among the rows the version forgot",
												led->ids[j]));
		}
}

PG_FUNCTION_INFO_V1(unlearn_verify_ledger);
/*
 * unlearn_verify_ledger(model): recomputes the hash chain, the weights'
 * hashes and the agreement between versions and the ledger; one row per
 * version, valid = false with the problem where it breaks.
 */
Datum
unlearn_verify_ledger(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	UnlearnModel *model;
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1] = {CStringGetTextDatum(name)};
	UnlearnCatalogUser saved;
	SPITupleTable *vt;
	uint64		nv;
	int		   *ver;
	uint8	   *expected;		/* recomputed hash per version */
	Ledger		led;
	StringInfoData model_problems;	/* the pointer and the ledger against the lineage */
	int			model_row;		/* the version whose row reports them */

	InitMaterializedSRF(fcinfo, 0);
	SPI_connect();
	model = unlearn_model_lookup(name, false);
	unlearn_check_can_use(model);
	read_ledger(model, &led);
	model_row = lineage_problems(model, &led, &model_problems);

	unlearn_become_catalog_owner(&saved);
	if (SPI_execute_with_args("SELECT version, parent, weights, weights_sha256, forgotten_ids, hash"
							  " FROM unlearn.versions WHERE model = $1 ORDER BY version",
							  1, argtypes, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read unlearn.versions");
	unlearn_restore_user(&saved);
	vt = SPI_tuptable;
	nv = SPI_processed;
	ver = palloc(sizeof(int) * Max(nv, 1));
	expected = palloc(PG_SHA256_DIGEST_LENGTH * Max(nv, 1));

	for (uint64 r = 0; r < nv; r++)
	{
		HeapTuple	tup = vt->vals[r];
		TupleDesc	td = vt->tupdesc;
		bool		isnull;
		int			version = DatumGetInt32(SPI_getbinval(tup, td, 1, &isnull));
		int64		n_fids;
		int64	   *ids = unlearn_catalog_ids(SPI_getbinval(tup, td, 5, &isnull), "forgotten_ids",
											  name, version, &n_fids);
		StringInfoData problems;
		char	   *problem;
		Datum		values[3];
		bool		nulls[3] = {0};

		ver[r] = version;
		initStringInfo(&problems);
		/* step 1: the weights, the parent link and the chain hash */
		check_version_hash(tup, td, name, version, ids, n_fids, ver, expected, r, &problems);
		/* step 2: the ledger agrees with the ids the version forgot */
		check_version_ledger(&led, version, ids, n_fids, &problems);
		/* what is wrong with the model as a whole shows on the row it concerns */
		if (version == model_row && model_problems.len > 0)
			add_problem(&problems, model_problems.data);
		problem = problems.len > 0 ? problems.data : NULL;
		values[0] = Int32GetDatum(version);
		values[1] = BoolGetDatum(problem == NULL);
		if (problem)
			values[2] = CStringGetTextDatum(problem);
		else
			nulls[2] = true;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	SPI_finish();
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(unlearn_purge);
/*
 * unlearn_purge(model, older_than): drops the weights of superseded versions
 * (old weights still encode forgotten rows) and erases feature copies in the
 * ledger and the queue, all older than older_than; ids, hashes and lineage
 * stay.
 */
Datum
unlearn_purge(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Interval   *older_than = PG_GETARG_INTERVAL_P(1);
	UnlearnModel *model;
	UnlearnCatalogUser saved;
	Oid			argtypes[3] = {TEXTOID, INTERVALOID, INT4OID};
	Datum		args[3];
	TupleDesc	desc;
	Datum		values[3];
	bool		nulls[3] = {0};
	uint64		n_versions,
				n_ledger,
				n_requests;

	if (older_than->time < 0 || older_than->day < 0 || older_than->month < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("older_than must not be negative")));
	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	desc = BlessTupleDesc(desc);

	SPI_connect();
	/* locked like an unlearning call: the current version is decided after the lock, and stays */
	model = unlearn_open_model_for_change(name, "purge", 0);
	args[0] = CStringGetTextDatum(name);
	args[1] = IntervalPGetDatum(older_than);
	args[2] = Int32GetDatum(model->version);
	unlearn_become_catalog_owner(&saved);
	if (SPI_execute_with_args("UPDATE unlearn.versions SET weights = NULL"
							  " WHERE model = $1 AND version <> $3 AND weights IS NOT NULL"
							  "   AND created_at <= clock_timestamp() - $2",
							  3, argtypes, args, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not purge versions");
	n_versions = SPI_processed;
	if (SPI_execute_with_args("UPDATE unlearn.forgotten SET features = NULL"
							  " WHERE model = $1 AND features IS NOT NULL"
							  "   AND forgotten_at <= clock_timestamp() - $2",
							  2, argtypes, args, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not purge the ledger");
	n_ledger = SPI_processed;
	n_requests = unlearn_queue_erase_features(name, older_than);
	unlearn_restore_user(&saved);
	unlearn_close_model_change();
	SPI_finish();

	values[0] = Int32GetDatum((int32) n_versions);
	values[1] = Int64GetDatum((int64) n_ledger);
	values[2] = Int64GetDatum((int64) n_requests);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}
