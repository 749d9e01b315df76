/*
 * unlearn_replay.c: what the default method prepares from the replay rows
 * (a sample of the remaining rows): soft targets mixed with theta0's
 * softmax, the guard rows nearest to the forget and prior rows, and the
 * losses that pick the state handed back after the repair phase: on the
 * held-out rows (repair_stop) when there are, else on replay rows trained on.
 */
#include <math.h>
#include <string.h>

#include "unlearn_internal.h"

/* Representation used to find neighbours: the last hidden layer of theta0 (or the input). */
static float *
ul_represent(ul_ctx *c, const float *X, int n, int *dim)
{
	int			L = c->m->n_layers;
	int			H = L > 1 ? c->m->dims[L - 1] : c->F;
	float	   *out = nn_alloc(sizeof(float) * (size_t) (n > 0 ? n : 1) * H);

	*dim = H;
	for (int s0 = 0; s0 < n; s0 += c->wsb)
	{
		int			nb = n - s0 < c->wsb ? n - s0 : c->wsb;
		const float *xb = X + (size_t) s0 * c->F;

		if (L > 1)
		{
			nn_forward(c->m, c->ws, xb, nb);
			memcpy(out + (size_t) s0 * H, c->ws->act[L - 1], sizeof(float) * (size_t) nb * H);
		}
		else
			memcpy(out + (size_t) s0 * H, xb, sizeof(float) * (size_t) nb * H);
	}
	return out;
}

/*
 * Guard rows: for each constraint row, the `per` replay rows nearest to it
 * in theta0's last hidden layer (distinct, at most UL_MAX_GUARD in all).
 * They are replayed every step so the change stays local to the forget rows.
 */
void
ul_make_guard(ul_ctx *c, int per)
{
	int			nr = c->nr;
	const float *Xr = c->req->replay.X;
	int			H;
	float	   *Hr = ul_represent(c, Xr, nr, &H);
	float	   *Hc = ul_represent(c, c->Xc, c->nc, &H);
	float	   *best_d = nn_alloc(sizeof(float) * per);
	int		   *best_i = nn_alloc(sizeof(int) * per);
	unsigned char *taken = nn_alloc_zero(nr);
	int			cap = c->nc * per < UL_MAX_GUARD ? c->nc * per : UL_MAX_GUARD;

	c->gidx = nn_alloc(sizeof(int) * (cap > 0 ? cap : 1));
	c->ng = 0;
	for (int i = 0; i < c->nc && c->ng < cap; i++)
	{
		const float *h = Hc + (size_t) i * H;
		int			nb = 0;

		for (int r = 0; r < nr; r++)
		{
			const float *hr = Hr + (size_t) r * H;
			float		d = 0.0f;
			int			p;

			for (int j = 0; j < H; j++)
				d += (h[j] - hr[j]) * (h[j] - hr[j]);
			if (nb == per && d >= best_d[nb - 1])
				continue;
			/* insertion into the sorted top-per list */
			p = nb < per ? nb++ : nb - 1;
			while (p > 0 && best_d[p - 1] > d)
			{
				best_d[p] = best_d[p - 1];
				best_i[p] = best_i[p - 1];
				p--;
			}
			best_d[p] = d;
			best_i[p] = r;
		}
		for (int j = 0; j < nb && c->ng < cap; j++)
			if (!taken[best_i[j]])
			{
				taken[best_i[j]] = 1;
				c->gidx[c->ng++] = best_i[j];
			}
	}
	NN_ASSERT(c->ng <= cap);
	nn_free_mem(taken);
	nn_free_mem(best_i);
	nn_free_mem(best_d);
	nn_free_mem(Hc);
	nn_free_mem(Hr);
}

/*
 * Sum CE of the first UL_SELECT_ROWS replay rows trained on: the repair
 * phase's selection loss when no rows are held out (nh == 0).
 */
double
ul_replay_loss(ul_ctx *c)
{
	const float *Xr = c->req->replay.X;
	const int  *yr = c->req->replay.y;
	int			nr = c->nr;
	int			n = nr < UL_SELECT_ROWS ? nr : UL_SELECT_ROWS;
	double		s = 0.0;

	for (int s0 = 0; s0 < n; s0 += c->wsb)
	{
		int			nb = n - s0 < c->wsb ? n - s0 : c->wsb;
		const float *z = nn_forward(c->m, c->ws, Xr + (size_t) s0 * c->F, nb);

		s += nn_softmax_ce(z, yr + s0, nb, c->C, 1.0f, NULL, NULL);
	}
	return s;
}

/* Replay targets of the rows trained on: (1 - distill) * onehot(y) + distill * softmax_theta0(x). */
void
ul_make_soft_targets(ul_ctx *c, float distill)
{
	const int  *yr = c->req->replay.y;
	/* theta0's softmax: from the caller's logits when it has them (the worker's warm samples) */
	c->rsoft = ul_softmax_rows(c, c->req->replay.X, yr, c->nr, c->req->replay_logits);
	for (int r = 0; r < c->nr; r++)
		for (int j = 0; j < c->C; j++)
			c->rsoft[(size_t) r * c->C + j] = distill * c->rsoft[(size_t) r * c->C + j] +
				(1.0f - distill) * (j == yr[r]);
}

/*
 * The held-out replay rows [nr, nr + nh) under the current model (or under
 * the given logits of theirs, nh x C): each row's cross-entropy toward its
 * label into ce, its predicted class into pred.
 */
void
ul_holdout_eval(ul_ctx *c, const float *logits, float *ce, int *pred)
{
	const float *Xh = c->req->replay.X + (size_t) c->nr * c->F;
	const int  *yh = c->req->replay.y + c->nr;

	for (int s0 = 0; s0 < c->nh; s0 += c->wsb)
	{
		int			nb = c->nh - s0 < c->wsb ? c->nh - s0 : c->wsb;
		const float *z = logits ? logits + (size_t) s0 * c->C :
			nn_forward(c->m, c->ws, Xh + (size_t) s0 * c->F, nb);

		for (int r = 0; r < nb; r++)
		{
			const float *zr = z + (size_t) r * c->C;
			int			best = 0;
			double		se = 0.0;

			for (int j = 1; j < c->C; j++)
				if (zr[j] > zr[best])
					best = j;
			for (int j = 0; j < c->C; j++)
				se += exp((double) (zr[j] - zr[best]));
			pred[s0 + r] = best;
			ce[s0 + r] = (float) (log(se) - (double) (zr[yh[s0 + r]] - zr[best]));
		}
	}
}

/*
 * The held-out replay rows under the current model: evaluates them into
 * c->h_ce and c->h_pred (what ul_holdout_repaired reads) and returns the sum
 * of their cross-entropies, the repair phase's selection loss when nh > 0.
 */
double
ul_holdout_loss(ul_ctx *c)
{
	double		s = 0.0;

	ul_holdout_eval(c, NULL, c->h_ce, c->h_pred);
	for (int i = 0; i < c->nh; i++)
		s += c->h_ce[i];
	return s;
}

/*
 * The stop rule of the repair phase (repair_stop): is the model that
 * ul_holdout_loss last evaluated back to theta0's fit of the held-out replay
 * rows, within their sampling noise?
 * Two paired comparisons against theta0 on the same rows, both within one
 * standard error of "no change":
 *  - cross-entropy: the per-row differences d_i = CE_i(theta) - CE_i(theta0)
 *    have a mean of at most their standard error sd(d) / sqrt(nh - 1);
 *  - accuracy: `lost` rows theta0 got right and the model gets wrong,
 *    `gained` the reverse; under "no change" lost - gained has mean 0 and
 *    standard deviation sqrt(lost + gained): lost - gained <= sqrt(lost + gained).
 * No threshold is tuned to a data set: both scales come from the rows
 * themselves.
 */
int
ul_holdout_repaired(const ul_ctx *c)
{
	const int  *yh = c->req->replay.y + c->nr;
	int			lost = 0,
				gained = 0;
	double		sd = 0.0,
				sd2 = 0.0,
				mean,
				sem;

	for (int i = 0; i < c->nh; i++)
	{
		int			was = c->h_pred0[i] == yh[i],
					is = c->h_pred[i] == yh[i];
		double		d = (double) c->h_ce[i] - (double) c->h_ce0[i];

		lost += was && !is;
		gained += !was && is;
		sd += d;
		sd2 += d * d;
	}
	mean = sd / c->nh;
	sem = sqrt(fmax(sd2 / c->nh - mean * mean, 0.0) / (c->nh - 1));
	return mean <= sem && (double) (lost - gained) <= sqrt((double) (lost + gained));
}
