/*
 * encode_fit.c: learning a column model's encoding from its training rows.
 *
 * The rows are read once: each value is converted (numbers) or copied
 * (categories) into a raw table, and once every row is in, the categories
 * (sorted bytewise, at most unlearn.max_categories per column), the fill
 * values (training means) and the missing indicators are fixed and the rows
 * are encoded into the training matrix.
 */
#include "postgres.h"

#include <float.h>
#include <math.h>

#include "utils/memutils.h"

#include "unlearn_pg.h"

/* One raw value: a number, or a category's text. */
typedef union RawCell
{
	double		num;
	char	   *cat;
} RawCell;

struct UnlearnEncoderFit
{
	UnlearnEncoder *enc;
	int64		cap;			/* rows the buffers hold */
	RawCell    *cells;			/* cap x n_inputs */
	bool	   *nulls;			/* cap x n_inputs */
};

/* Starts learning enc's encoding (its inputs set, offsets not yet). */
UnlearnEncoderFit *
unlearn_fit_start(UnlearnEncoder *enc)
{
	UnlearnEncoderFit *fit = palloc0(sizeof(UnlearnEncoderFit));

	fit->enc = enc;
	fit->cap = 1024;
	fit->cells = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(RawCell) * fit->cap * enc->n_inputs);
	fit->nulls = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(bool) * fit->cap * enc->n_inputs);
	return fit;
}

/* Keeps row `row` (values in input order), converted and checked; id names it in errors. */
void
unlearn_fit_add_row(UnlearnEncoderFit *fit, int64 row, const Datum *values, const bool *nulls, int64 id)
{
	const UnlearnEncoder *enc = fit->enc;
	int			k = enc->n_inputs;

	if (row >= fit->cap)
	{
		fit->cap *= 2;
		fit->cells = repalloc_huge(fit->cells, sizeof(RawCell) * fit->cap * k);
		fit->nulls = repalloc_huge(fit->nulls, sizeof(bool) * fit->cap * k);
	}
	for (int i = 0; i < k; i++)
	{
		const UnlearnInput *in = &enc->inputs[i];
		RawCell    *cell = &fit->cells[row * k + i];

		fit->nulls[row * k + i] = nulls[i];
		if (nulls[i])
		{
			if (enc->nulls_error)
				ereport(ERROR,
						(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						 errmsg("feature column \"%s\" must not be NULL", in->column),
						 errdetail("Row with id %lld; the options say {\"nulls\": \"error\"}.", (long long) id),
						 errhint("Leave out \"nulls\" to impute NULLs (docs/method.md).")));
			continue;
		}
		if (in->kind == UL_INPUT_CATEGORY)
		{
			cell->cat = unlearn_input_category(in, values[i]);
			continue;
		}
		cell->num = unlearn_input_number(in, values[i]);
		if (!isfinite(cell->num) || fabs(cell->num) > FLT_MAX)
			unlearn_checked_number(cell->num, in->column, psprintf("Row with id %lld", (long long) id));
	}
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/* A number column's fill (the mean of its values) and missing indicator (NULLs seen). */
static void
learn_number(UnlearnEncoderFit *fit, int i, int64 n)
{
	UnlearnInput *in = &fit->enc->inputs[i];
	int			k = fit->enc->n_inputs;
	double		sum = 0;
	int64		seen = 0;

	for (int64 r = 0; r < n; r++)
		if (!fit->nulls[r * k + i])
		{
			sum += fit->cells[r * k + i].num;
			seen++;
		}
	in->fill = seen > 0 ? sum / seen : 0.0;
	in->indicator = seen < n;
	in->width = in->indicator ? 2 : 1;
}

/* A category column's sorted distinct categories, and whether NULL is one; capped. */
static void
learn_categories(UnlearnEncoderFit *fit, int i, int64 n)
{
	UnlearnInput *in = &fit->enc->inputs[i];
	int			k = fit->enc->n_inputs;
	char	  **all = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(char *) * Max(n, 1));
	int64		m = 0;
	int			d = 0;

	for (int64 r = 0; r < n; r++)
	{
		if (fit->nulls[r * k + i])
			in->null_category = true;
		else
			all[m++] = fit->cells[r * k + i].cat;
	}
	qsort(all, m, sizeof(char *), cmp_str);
	for (int64 r = 0; r < m; r++)
		if (r == 0 || strcmp(all[r], all[d - 1]) != 0)
		{
			if (d >= unlearn_max_categories)
				ereport(ERROR,
						(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						 errmsg("column \"%s\" has more than %d categories", in->column, unlearn_max_categories),
						 errdetail("Each category becomes one input of the model."),
						 errhint("Leave the column out with feature_columns, group its values, or raise"
								 " unlearn.max_categories.")));
			all[d++] = all[r];
		}
	in->n_categories = d;
	in->categories = all;
	in->width = d + (in->null_category ? 1 : 0);
}

/*
 * Learns the encoding from the n rows kept (categories, fills, indicators,
 * offsets), then encodes them into a new n x n_features matrix.
 */
float *
unlearn_fit_finish(UnlearnEncoderFit *fit, int64 n)
{
	UnlearnEncoder *enc = fit->enc;
	int			k = enc->n_inputs;
	float	   *X;

	/* step 1: each column's encoding, placed after the one before */
	enc->n_features = 0;
	for (int i = 0; i < k; i++)
	{
		if (enc->inputs[i].kind == UL_INPUT_NUMBER)
			learn_number(fit, i, n);
		else
			learn_categories(fit, i, n);
		enc->inputs[i].offset = enc->n_features;
		enc->n_features += enc->inputs[i].width;
	}
	if (enc->n_features == 0 || enc->n_features > NN_MAX_DIM)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("the feature columns encode into %d inputs; 1 to %d are supported",
						enc->n_features, NN_MAX_DIM)));
	/* step 2: every row encoded (numbers and category texts as kept) */
	X = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(float) * Max(n, 1) * enc->n_features);
	for (int64 r = 0; r < n; r++)
		for (int i = 0; i < k; i++)
		{
			const RawCell *cell = &fit->cells[r * k + i];
			bool		isnull = fit->nulls[r * k + i];
			bool		is_cat = enc->inputs[i].kind == UL_INPUT_CATEGORY;

			unlearn_encode_value(enc, &enc->inputs[i], isnull, isnull || is_cat ? 0 : cell->num,
								 isnull || !is_cat ? NULL : cell->cat, X + r * enc->n_features, "A row");
		}
	return X;
}
