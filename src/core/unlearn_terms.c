/*
 * unlearn_terms.c: the pieces of each step of the unlearning loop: the stop
 * rule over the forget and prior rows (with the default method's margin
 * term), and the gradients of the faithful methods' loss and of the default
 * method's replay and guard terms, all added to c->grad.
 */
#include <math.h>
#include <string.h>

#include "unlearn_internal.h"

#define UL_LN2 0.693147180559945f	/* ln 2: the loss of a gap of 0 */

/* Whether constraint row i is judged by a target loss (target "unseen"). */
static inline int
ul_has_target(const ul_ctx *c, int i)
{
	return c->tl != NULL && !isnan(c->tl[i]);
}

/* The best class other than y in the logits z (-1 when there is none). */
static inline int
ul_best_other(const float *z, int C, int y)
{
	int			o = -1;

	for (int j = 0; j < C; j++)
		if (j != y && (o < 0 || z[j] > z[o]))
			o = j;
	return o;
}

/*
 * Is constraint row i satisfied by the logits z?  Misclassified (forget),
 * predicted as its new label (relabel); with a target loss (unseen), its
 * loss at the target or, whichever comes first, misclassified.
 */
int
ul_satisfied(const ul_ctx *c, int i, const float *z)
{
	int			best = 0;

	for (int j = 1; j < c->C; j++)
		if (z[j] > z[best])
			best = j;
	if (ul_has_target(c, i) && best == c->yc[i])
		return ul_row_ce(z, c->C, c->yc[i]) >= c->tl[i];
	return c->want[i] ? best == c->yc[i] : best != c->yc[i];
}

/*
 * The gap of target row i in the logits z, and in w (if given) its gradient
 * with respect to z.  A target loss t below ln 2 is a gap target on
 * g = z_y - ln sum_{j != y} e^{z_j}, for which CE = ln(1 + e^-g) exactly:
 * g <= g* = -ln(e^t - 1) is CE >= t, and a row pushed there lands on its
 * target loss whatever the other classes do.  From ln 2 on, g* <= 0 and the
 * row is done once misclassified: the gap is z_y - max_{j != y} z_j, whose
 * g < 0 is exactly that.  Returns g, or NAN when the row has no other class.
 */
static double
ul_target_gap(const ul_ctx *c, int i, const float *z, float *w)
{
	int			y = c->yc[i],
				o = ul_best_other(z, c->C, y);
	double		s = 0.0;

	if (o < 0)
		return NAN;
	if (w)
		memset(w, 0, sizeof(float) * c->C);
	if (!(c->tl[i] < UL_LN2))
	{
		/* misclassification target: the best other class */
		if (w)
		{
			w[y] = 1.0f;
			w[o] = -1.0f;
		}
		return (double) z[y] - (double) z[o];
	}
	/* loss target: the log-sum-exp of the other classes, shifted by their best */
	for (int j = 0; j < c->C; j++)
		if (j != y)
			s += exp((double) z[j] - (double) z[o]);
	if (w)
	{
		w[y] = 1.0f;
		for (int j = 0; j < c->C; j++)
			if (j != y)
				w[j] = (float) (-exp((double) z[j] - (double) z[o]) / s);
	}
	return (double) z[y] - (double) z[o] - log(s);
}

/*
 * The unseen hinge of row i, on its gap g (ul_target_gap): the row is done
 * at g <= max(g*, 0).  With hi = max(g*, 0) - margin:
 *   g > hi: pushed (hinge_scale times the gap's gradient into d: a bounded
 *     push, as the margin term's, which stays strong where the CE's own
 *     gradient vanishes); returns 1 (inside the margin);
 *   g < hi, and a margin below where theta0 had it: past the push, and if
 *     i < c->pull_rows pulled back toward hi (the gradient of hinge_scale *
 *     (hi - g)^2 / (2 margin) into dp, at most hinge_scale beyond one
 *     margin): the pushes on other rows do not carry it far past its target
 *     (a row the model never saw is not an outlier either).  The pull grows
 *     with the distance, so rows coupled to each other settle near hi rather
 *     than swinging between a full push and a full pull; returns 2 when the
 *     row is out of its band (g < hi - margin), else 3;
 *   else d = 0, returns 0.
 * The push goes into d (zeroed here), the pull into dp (zeroed by the caller).
 */
static int
ul_target_hinge(const ul_ctx *c, int i, const float *z, float margin, float hinge_scale, float *d, float *dp)
{
	double		gstar,
				g,
				hi,
				r;

	memset(d, 0, sizeof(float) * c->C);
	if (!(c->tl[i] > 0.0f))
		return 0;				/* a target of 0: any loss meets it */
	g = ul_target_gap(c, i, z, d);
	if (isnan(g))
		return 0;
	gstar = -log(expm1((double) c->tl[i]));
	if (gstar < 0.0)
		gstar = 0.0;			/* misclassified comes first */
	hi = gstar - margin;
	if (g > hi)
	{
		for (int j = 0; j < c->C; j++)
			d[j] *= hinge_scale;
		return 1;
	}
	if (!(margin > 0.0f) || g >= c->tg0[i] - margin)
	{
		memset(d, 0, sizeof(float) * c->C);
		return 0;
	}
	/* the pull: proportional to the distance past hi, full from one margin on */
	r = (hi - g) / margin;
	if (r > 1.0)
		r = 1.0;
	if (i < c->pull_rows)
		for (int j = 0; j < c->C; j++)
			dp[j] = (float) (-hinge_scale * r * d[j]);
	memset(d, 0, sizeof(float) * c->C);
	return r >= 1.0 ? 2 : 3;
}

/* The gap (ul_target_gap) of every target row under theta0 (c->tg0). */
void
ul_target_start_gaps(ul_ctx *c)
{
	NN_ASSERT(c->tl != NULL);
	for (int s0 = 0; s0 < c->nc; s0 += c->wsb)
	{
		int			nb = c->nc - s0 < c->wsb ? c->nc - s0 : c->wsb;
		const float *z = nn_forward(c->m, c->ws, c->Xc + (size_t) s0 * c->F, nb);

		for (int r = 0; r < nb; r++)
		{
			double		g = ul_target_gap(c, s0 + r, z + (size_t) r * c->C, NULL);

			c->tg0[s0 + r] = isnan(g) ? INFINITY : (float) g;
		}
	}
}

/*
 * Forward pass over all constraint rows: returns how many are satisfied and
 * records violated prior rows.  If hinge_scale != 0, also adds the gradient
 * of hinge_scale * (sum of the margin loss over the rows inside the margin)
 * to c->grad and stores the number of such rows in *n_active; target rows
 * out of their band are counted in c->n_pulled, and the pulls of those
 * past their push among the first c->pull_rows are added to c->gpull.
 */
int
ul_check(ul_ctx *c, float margin, float hinge_scale, int *n_active)
{
	int			sat = 0,
				act = 0;

	c->nviol = 0;
	c->n_pulled = 0;
	for (int s0 = 0; s0 < c->nc; s0 += c->wsb)
	{
		int			nb = c->nc - s0 < c->wsb ? c->nc - s0 : c->wsb;
		const float *xb = c->Xc + (size_t) s0 * c->F;
		const float *z = nn_forward(c->m, c->ws, xb, nb);
		int			any = 0,
					any_pull = 0;

		if (c->dlp)
			memset(c->dlp, 0, sizeof(float) * (size_t) nb * c->C);
		for (int r = 0; r < nb; r++)
		{
			int			i = s0 + r;
			const float *zr = z + (size_t) r * c->C;
			float	   *d = c->dl + (size_t) r * c->C;
			int			yi = c->yc[i],
						o;
			float		gap;

			if (ul_satisfied(c, i, zr))
				sat++;
			else if (i >= c->k)
				c->viol[c->nviol++] = i;
			if (hinge_scale == 0.0f)
				continue;
			if (ul_has_target(c, i))
			{
				/* unseen: the row's loss into the band at its target; a pull goes to c->dlp */
				int			h = ul_target_hinge(c, i, zr, margin, hinge_scale, d, c->dlp + (size_t) r * c->C);

				act += h == 1;
				c->n_pulled += h == 2;
				any |= h == 1;
				any_pull |= h >= 2 && i < c->pull_rows;
				continue;
			}
			/* best other class */
			o = ul_best_other(zr, c->C, yi);
			memset(d, 0, sizeof(float) * c->C);
			if (o < 0)
				continue;
			/* forget: want z_o > z_y + margin; relabel: z_y > z_o + margin */
			gap = c->want[i] ? zr[o] - zr[yi] + margin : zr[yi] - zr[o] + margin;
			if (gap > 0.0f)
			{
				float		sgn = c->want[i] ? -1.0f : 1.0f;

				d[yi] = sgn * hinge_scale;
				d[o] = -sgn * hinge_scale;
				act++;
				any = 1;
			}
		}
		if (any_pull)			/* the pulls, into their own gradient (scaled apart by the loop) */
			nn_backward(c->m, c->ws, xb, nb, c->dlp, c->gpull, NULL);
		if (any)
			nn_backward(c->m, c->ws, xb, nb, c->dl, c->grad, NULL);
	}
	NN_ASSERT(c->nviol <= c->nc - c->k && sat + c->nviol <= c->nc);
	if (n_active)
		*n_active = act;
	return sat;
}

/* Adds scale * grad of sum CE(f(X), y) over the rows (chunked) to c->grad. */
void
ul_ce_grad(ul_ctx *c, ul_rows rows, float scale)
{
	for (int s0 = 0; s0 < rows.n; s0 += c->wsb)
	{
		int			nb = rows.n - s0 < c->wsb ? rows.n - s0 : c->wsb;
		const float *xb = rows.X + (size_t) s0 * c->F;
		const float *z = nn_forward(c->m, c->ws, xb, nb);

		nn_softmax_ce(z, rows.y + s0, nb, c->C, scale, c->dl, NULL);
		nn_backward(c->m, c->ws, xb, nb, c->dl, c->grad, NULL);
	}
}

/* Copies the next nb rows of src cycling from *pos into Xb/yb; returns that batch. */
ul_rows
ul_take_cyclic(ul_ctx *c, ul_rows src, int *pos, int nb)
{
	ul_rows		batch = {c->Xb, c->yb, nb};

	NN_ASSERT(nb <= c->wsb && src.n > 0 && *pos >= 0 && *pos < src.n);
	for (int r = 0; r < nb; r++)
	{
		memcpy(c->Xb + (size_t) r * c->F, src.X + (size_t) (*pos) * c->F, sizeof(float) * c->F);
		c->yb[r] = src.y[*pos];
		*pos = (*pos + 1) % src.n;
	}
	return batch;
}

/* Adds grad of (lambda/2) sum w (theta - theta0)^2 to c->grad. */
void
ul_imp_grad(ul_ctx *c, float lambda)
{
	const float *p = c->m->params;

	for (size_t j = 0; j < c->m->n_params; j++)
		c->grad[j] += lambda * c->wimp[j] * (p[j] - c->theta0[j]);
}

/* Mean CE of the k forget rows w.r.t. the labels they are judged by. */
double
ul_forget_ce(ul_ctx *c, const int *labels)
{
	double		s = 0.0;

	for (int s0 = 0; s0 < c->k; s0 += c->wsb)
	{
		int			nb = c->k - s0 < c->wsb ? c->k - s0 : c->wsb;
		const float *z = nn_forward(c->m, c->ws, c->Xc + (size_t) s0 * c->F, nb);

		s += nn_softmax_ce(z, labels + s0, nb, c->C, 1.0f, NULL, NULL);
	}
	return c->k > 0 ? s / c->k : 0.0;
}

/* One step of a faithful method (neggrad / adv / adv+imp): fills c->grad. */
void
ul_grad_faithful(ul_ctx *c)
{
	const ul_options *o = c->o;
	const int  *new_labels = c->req->new_labels;
	ul_rows		forget = {c->Xc, new_labels ? new_labels : c->req->forget.y, c->k};
	ul_rows		adv = {c->Xadv, c->tadv, c->nadv};
	int			nf = o->forget_batch < c->k ? o->forget_batch : c->k;
	int			na = 0,
				npv = c->nviol;
	int			use_adv = o->method != UL_METHOD_NEGGRAD && c->nadv > 0;
	float		denom;

	if (use_adv)
		na = o->adv_batch < c->nadv ? o->adv_batch : c->nadv;
	denom = (float) (nf + na + npv);

	/* forget term: -CE on true labels (forget) or +CE on new labels (relabel) */
	ul_ce_grad(c, ul_take_cyclic(c, forget, &c->f_pos, nf), (new_labels ? 1.0f : -1.0f) / denom);

	/* prior rows that are classified correctly again: -CE on them too */
	for (int s0 = 0; s0 < npv; s0 += c->wsb)
	{
		int			nb = npv - s0 < c->wsb ? npv - s0 : c->wsb;
		ul_rows		batch = {c->Xb, c->yb, nb};

		for (int r = 0; r < nb; r++)
		{
			int			i = c->viol[s0 + r];

			memcpy(c->Xb + (size_t) r * c->F, c->Xc + (size_t) i * c->F, sizeof(float) * c->F);
			c->yb[r] = c->yc[i];
		}
		ul_ce_grad(c, batch, -1.0f / denom);
	}

	/* ADV term: CE toward the attack targets */
	if (use_adv)
	{
		ul_ce_grad(c, ul_take_cyclic(c, adv, &c->adv_pos, na), 1.0f / denom);
	}
	if (c->wimp && o->imp_lambda != 0.0f)
		ul_imp_grad(c, o->imp_lambda);
}

/* Adds weight * mean CE gradient over the replay rows c->rbi[0..nb). */
static void
ul_replay_rows_grad(ul_ctx *c, int nb, float weight)
{
	const float *Xr = c->req->replay.X;
	const int  *yr = c->req->replay.y;
	ul_rows		batch = {c->Xb, c->yb, nb};
	float		sc = weight / nb;

	if (c->rsoft)
	{
		ul_soft_ce_grad(c, Xr, yr, c->rsoft, c->rbi, nb, sc);
		return;
	}
	for (int r = 0; r < nb; r++)
	{
		memcpy(c->Xb + (size_t) r * c->F, Xr + (size_t) c->rbi[r] * c->F, sizeof(float) * c->F);
		c->yb[r] = yr[c->rbi[r]];
	}
	ul_ce_grad(c, batch, sc);
}

/* Adds the replay gradient: a shuffled batch of remaining rows, then a batch of guard rows. */
void
ul_grad_replay(ul_ctx *c)
{
	const ul_options *o = c->o;
	int			nr = c->nr;
	int			nb = o->replay_batch < nr ? o->replay_batch : nr;

	if (nb <= 0 || o->replay_weight == 0.0f)
		return;
	if (nb > c->wsb)
		nb = c->wsb;
	for (int r = 0; r < nb; r++)
	{
		if (c->r_pos == 0)
			nn_rng_shuffle(&c->rng, c->rperm, nr);
		c->rbi[r] = c->rperm[c->r_pos];
		c->r_pos = (c->r_pos + 1) % nr;
	}
	ul_replay_rows_grad(c, nb, o->replay_weight * c->replay_scale);
	if (c->ng > 0 && o->guard_weight > 0.0f)
	{
		nb = o->replay_batch < c->ng ? o->replay_batch : c->ng;
		if (nb > c->wsb)
			nb = c->wsb;
		for (int r = 0; r < nb; r++)
		{
			c->rbi[r] = c->gidx[c->g_pos];
			c->g_pos = (c->g_pos + 1) % c->ng;
		}
		ul_replay_rows_grad(c, nb, o->guard_weight * c->replay_scale);
	}
}
