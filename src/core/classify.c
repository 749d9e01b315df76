/*
 * classify.c: the output side of a model: softmax cross-entropy (loss and
 * gradient wrt the logits), softmax, predicted classes and accuracy.
 */
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "nn_internal.h"

/* Rows per forward pass when nn_accuracy makes its own workspace. */
#define NN_EVAL_BATCH		512

/* Log-sum-exp of one logit row, shifted by the row maximum so exp cannot overflow. */
double
nn_row_logsumexp(const float *row, int C)
{
	float		mx = row[0];
	double		sum = 0.0;

	for (int j = 1; j < C; j++)
		mx = row[j] > mx ? row[j] : mx;
	for (int j = 0; j < C; j++)
		sum += exp((double) row[j] - (double) mx);
	return (double) mx + log(sum);
}

/*
 * Softmax cross-entropy summed over rows, via log-sum-exp so large logits do
 * not overflow.  Each element is read before it is written, so dlogits and
 * probs may alias the logits.  An out-of-range label makes the loss NaN.
 */
double
nn_softmax_ce(const float *logits, const int *y, int n, int C,
			  float scale, float *dlogits, float *probs)
{
	double		total = 0.0;

	for (int i = 0; i < n; i++)
	{
		const float *row = logits + (size_t) i * C;
		double		lse = nn_row_logsumexp(row, C);
		int			label = y[i];

		if (label >= 0 && label < C)
			total += lse - (double) row[label];
		else
			total = NAN;

		if (dlogits || probs)
		{
			float	   *drow = dlogits ? dlogits + (size_t) i * C : NULL;
			float	   *prow = probs ? probs + (size_t) i * C : NULL;

			for (int j = 0; j < C; j++)
			{
				double		p = exp((double) row[j] - lse);

				if (prow)
					prow[j] = (float) p;
				if (drow)
					drow[j] = (float) ((double) scale * (p - (j == label ? 1.0 : 0.0)));
			}
		}
	}
	return total;
}

/* Softmax of n logit rows into out (may alias logits). */
static void
softmax_rows(const float *logits, int n, int C, float *out)
{
	for (int i = 0; i < n; i++)
	{
		const float *row = logits + (size_t) i * C;
		float	   *orow = out + (size_t) i * C;
		double		lse = nn_row_logsumexp(row, C);

		for (int j = 0; j < C; j++)
			orow[j] = (float) exp((double) row[j] - lse);
	}
}


static int
argmax(const float *v, int C)
{
	int			best = 0;

	for (int j = 1; j < C; j++)
		if (v[j] > v[best])
			best = j;
	return best;
}

/* What to do with the logits of one chunk of rows [start, start + rows). */
typedef void (*chunk_fn) (const float *logits, int start, int rows, int C, void *out);

/* Runs the forward pass over X in chunks of ws->max_batch rows, handing each chunk to emit. */
static void
forward_chunks(const nn_model *m, nn_workspace *ws, const float *X, int n, chunk_fn emit, void *out)
{
	int			F = NN_FEATURES(m);
	int			C = NN_CLASSES(m);

	NN_ASSERT(ws->max_batch >= 1);
	for (int start = 0; start < n; start += ws->max_batch)
	{
		int			rows = n - start < ws->max_batch ? n - start : ws->max_batch;

		emit(nn_forward(m, ws, X + (size_t) start * F, rows), start, rows, C, out);
	}
}

/* Chunk handler: the argmax class of each row. */
static void
emit_classes(const float *logits, int start, int rows, int C, void *out)
{
	for (int i = 0; i < rows; i++)
		((int *) out)[start + i] = argmax(logits + (size_t) i * C, C);
}

/* Chunk handler: the softmax probabilities of each row. */
static void
emit_proba(const float *logits, int start, int rows, int C, void *out)
{
	softmax_rows(logits, rows, C, (float *) out + (size_t) start * C);
}

/* Chunk handler: the logits of each row. */
static void
emit_logits(const float *logits, int start, int rows, int C, void *out)
{
	memcpy((float *) out + (size_t) start * C, logits, sizeof(float) * (size_t) rows * C);
}

/* Logits of each row, in chunks of ws->max_batch rows. */
void
nn_predict_logits(const nn_model *m, nn_workspace *ws, const float *X, int n, float *out)
{
	forward_chunks(m, ws, X, n, emit_logits, out);
}

/* The argmax class of each row of logits. */
void
nn_logits_classes(const float *logits, int n, int C, int *out)
{
	emit_classes(logits, 0, n, C, out);
}

/* Argmax class of each row, in chunks of ws->max_batch rows. */
void
nn_predict(const nn_model *m, nn_workspace *ws, const float *X, int n, int *out)
{
	forward_chunks(m, ws, X, n, emit_classes, out);
}

/* Softmax probabilities of each row into out (n x C), in chunks of ws->max_batch rows. */
void
nn_predict_proba(const nn_model *m, nn_workspace *ws, const float *X, int n, float *out)
{
	forward_chunks(m, ws, X, n, emit_proba, out);
}

double
nn_accuracy(const nn_model *m, const float *X, const int *y, int n)
{
	int			chunk;
	nn_workspace *ws;
	int		   *pred;
	long		correct = 0;

	if (n <= 0)
		return 0.0;
	chunk = n < NN_EVAL_BATCH ? n : NN_EVAL_BATCH;
	ws = nn_workspace_create(m, chunk);
	pred = nn_alloc((size_t) chunk * sizeof(int));
	if (ws == NULL || pred == NULL)
	{
		nn_workspace_free(ws);
		nn_free_mem(pred);
		return NAN;
	}
	for (int start = 0; start < n; start += chunk)
	{
		int			rows = n - start < chunk ? n - start : chunk;

		nn_predict(m, ws, X + (size_t) start * NN_FEATURES(m), rows, pred);
		for (int i = 0; i < rows; i++)
			correct += pred[i] == y[start + i];
	}
	nn_workspace_free(ws);
	nn_free_mem(pred);
	return (double) correct / (double) n;
}
