/*
 * unlearn_core.c: instance-wise unlearning (Cha et al., AAAI 2024) on nn.h.
 *
 * Three faithful methods (neggrad, adv, adv+imp) and a "default" method that
 * replaces the unbounded -CE by a margin loss, replays remaining rows and
 * runs a repair phase that never hands back a state violating a forget or
 * prior row.  See docs/method.md for the measured comparison.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "unlearn_core.h"

#define UL_CHUNK 256			/* rows per forward/backward chunk */
#define UL_CB_EVERY 10			/* progress callback period, in steps */
#define UL_MAX_GUARD 8192		/* cap on guard rows */
#define UL_ESCALATE_AFTER 1000	/* default method: steps before the replay pull starts to shrink */
#define UL_ESCALATE_EVERY 200	/* ... and the steps between its halvings */
#define UL_SELECT_EVERY 20		/* repair steps between model-selection checks */
#define UL_SELECT_ROWS 2048		/* replay rows used for model selection */

/* Writes a formatted message into err (if any). */
static void
ul_err(char *err, size_t errlen, const char *msg)
{
	if (err && errlen > 0)
		snprintf(err, errlen, "%s", msg);
}

/* nn_free_mem that tolerates NULL (pfree does not). */
static void
ul_free(void *p)
{
	if (p)
		nn_free_mem(p);
}

/* Clips row x (F floats) into the model's input box. */
static void
ul_clip_box(const nn_model *m, float *x)
{
	int			F = NN_FEATURES(m);

	for (int f = 0; f < F; f++)
	{
		if (x[f] < m->feat_lo[f])
			x[f] = m->feat_lo[f];
		else if (x[f] > m->feat_hi[f])
			x[f] = m->feat_hi[f];
	}
}

/* Rescales xa so that ||xa - x||_2 <= eps. */
static void
ul_project_ball(float *xa, const float *x, int F, float eps)
{
	double		ss = 0.0;

	for (int f = 0; f < F; f++)
	{
		double		d = (double) xa[f] - x[f];

		ss += d * d;
	}
	if (ss > (double) eps * eps)
	{
		float		s = (float) (eps / sqrt(ss));

		for (int f = 0; f < F; f++)
			xa[f] = x[f] + (xa[f] - x[f]) * s;
	}
}

/* Targeted L2 PGD, batched over UL_CHUNK adversarial rows at a time. */
void
ul_pgd_targeted(const nn_model *m, const float *X, const int *y, int n,
				int per_row, float eps, float alpha, int steps,
				nn_rng *rng, float *X_adv, int *t_adv)
{
	int			F = NN_FEATURES(m);
	int			C = NN_CLASSES(m);
	int			total = n * per_row;
	nn_workspace *ws;
	float	   *dl,
			   *g;

	if (total <= 0)
		return;

	/* targets and random starts, drawn row by row (independent of chunking) */
	for (int r = 0; r < total; r++)
	{
		int			i = r / per_row;
		const float *x = X + (size_t) i * F;
		float	   *xa = X_adv + (size_t) r * F;

		t_adv[r] = C > 1 ? (y[i] + 1 + (int) nn_rng_below(rng, (uint32_t) (C - 1))) % C : y[i];
		for (int f = 0; f < F; f++)
			xa[f] = m->feat_lo[f] + (float) nn_rng_uniform(rng) * (m->feat_hi[f] - m->feat_lo[f]);
		ul_project_ball(xa, x, F, eps);
		ul_clip_box(m, xa);
	}
	if (steps <= 0)
		return;

	ws = nn_workspace_create(m, UL_CHUNK);
	dl = nn_alloc(sizeof(float) * UL_CHUNK * C);
	g = nn_alloc(sizeof(float) * UL_CHUNK * F);

	for (int s0 = 0; s0 < total; s0 += UL_CHUNK)
	{
		int			nb = total - s0 < UL_CHUNK ? total - s0 : UL_CHUNK;
		float	   *xb = X_adv + (size_t) s0 * F;

		for (int it = 0; it < steps; it++)
		{
			const float *logits = nn_forward(m, ws, xb, nb);

			/* gradient of CE toward t; we descend it (= ascend -CE) */
			nn_softmax_ce(logits, t_adv + s0, nb, C, 1.0f, dl, NULL);
			nn_backward(m, ws, xb, nb, dl, NULL, g);
			for (int r = 0; r < nb; r++)
			{
				const float *x = X + (size_t) ((s0 + r) / per_row) * F;
				float	   *xa = xb + (size_t) r * F;
				float	   *gr = g + (size_t) r * F;
				double		ss = 0.0;
				float		step;

				for (int f = 0; f < F; f++)
					ss += (double) gr[f] * gr[f];
				step = alpha / (float) fmax(sqrt(ss), 1e-6);
				for (int f = 0; f < F; f++)
					xa[f] -= step * gr[f];
				ul_clip_box(m, xa);
				ul_project_ball(xa, x, F, eps);
			}
		}
	}
	nn_free_mem(g);
	nn_free_mem(dl);
	nn_workspace_free(ws);
}

/* Min-max normalises omega over [a, b) into w = 1 - omega_hat. */
static void
ul_norm_tensor(const float *omega, float *w, size_t a, size_t b)
{
	float		lo = omega[a],
				hi = omega[a];

	for (size_t j = a; j < b; j++)
	{
		if (omega[j] < lo)
			lo = omega[j];
		if (omega[j] > hi)
			hi = omega[j];
	}
	for (size_t j = a; j < b; j++)
		w[j] = hi > lo ? 1.0f - (omega[j] - lo) / (hi - lo) : 1.0f;
}

/* MAS importance: |grad of mean ||logits||_2|, per-tensor min-max, w = 1 - hat. */
void
ul_mas_weights(const nn_model *m, const float *X, int n,
			   float *raw_omega, float *w)
{
	int			F = NN_FEATURES(m);
	int			C = NN_CLASSES(m);
	float	   *omega = raw_omega ? raw_omega : nn_alloc(sizeof(float) * m->n_params);
	nn_workspace *ws = nn_workspace_create(m, UL_CHUNK);
	float	   *dl = nn_alloc(sizeof(float) * UL_CHUNK * C);

	memset(omega, 0, sizeof(float) * m->n_params);
	for (int s0 = 0; s0 < n; s0 += UL_CHUNK)
	{
		int			nb = n - s0 < UL_CHUNK ? n - s0 : UL_CHUNK;
		const float *xb = X + (size_t) s0 * F;
		const float *z = nn_forward(m, ws, xb, nb);

		for (int r = 0; r < nb; r++)
		{
			double		ss = 0.0;

			for (int c = 0; c < C; c++)
				ss += (double) z[r * C + c] * z[r * C + c];
			for (int c = 0; c < C; c++)
				dl[r * C + c] = ss > 0.0 ? (float) (z[r * C + c] / (sqrt(ss) * n)) : 0.0f;
		}
		nn_backward(m, ws, xb, nb, dl, omega, NULL);
	}
	for (size_t j = 0; j < m->n_params; j++)
		omega[j] = fabsf(omega[j]);
	for (int l = 0; l < m->n_layers; l++)
	{
		size_t		nw = (size_t) m->dims[l + 1] * m->dims[l];

		ul_norm_tensor(omega, w, m->w_off[l], m->w_off[l] + nw);
		ul_norm_tensor(omega, w, m->b_off[l], m->b_off[l] + m->dims[l + 1]);
	}
	nn_free_mem(dl);
	nn_workspace_free(ws);
	if (!raw_omega)
		ul_free(omega);
}

/* ---------------------------------------------------------------- methods */

static const char *const ul_names[] = {"neggrad", "adv", "adv+imp", "default"};

/* Name of a method. */
const char *
ul_method_name(ul_method m)
{
	if ((int) m < 0 || (int) m > UL_METHOD_DEFAULT)
		return "?";
	return ul_names[m];
}

/* Parses a method name ("adv_imp" is accepted for "adv+imp"); 0 on success. */
int
ul_method_from_name(const char *name, ul_method *out)
{
	if (name == NULL)
		return -1;
	for (int i = 0; i <= UL_METHOD_DEFAULT; i++)
		if (strcmp(name, ul_names[i]) == 0)
		{
			*out = (ul_method) i;
			return 0;
		}
	if (strcmp(name, "adv_imp") == 0)
	{
		*out = UL_METHOD_ADV_IMP;
		return 0;
	}
	return -1;
}

/* Fills o with the defaults of method (paper values for the faithful ones). */
void
ul_options_default(ul_options *o, ul_method method)
{
	memset(o, 0, sizeof(*o));
	o->method = method;
	o->lr = 1e-3f;
	o->momentum = 0.9f;
	o->weight_decay = 1e-4f;
	o->forget_batch = 32;
	o->adv_batch = 256;
	o->adv_per_row = 20;
	o->pgd_eps = 4.0f;
	o->pgd_alpha = 0.1f;
	o->pgd_steps = 100;
	o->imp_lambda = method == UL_METHOD_ADV_IMP ? 1.0f : 0.0f;
	o->max_passes = 1000;
	o->max_steps = 0;
	o->seed = 42;
	o->margin = 0.0f;
	o->replay_weight = 0.0f;
	o->replay_batch = 0;
	o->repair_steps = 0;
	o->adv_weight = method == UL_METHOD_ADV || method == UL_METHOD_ADV_IMP ? 1.0f : 0.0f;
	o->forget_weight = 1.0f;
	o->distill = 0.0f;
	o->guard_per_row = 0;
	o->repair_lr = 0.0f;
	o->guard_weight = 0.0f;
	o->optimizer = NN_OPT_SGD;
	if (method == UL_METHOD_DEFAULT)
	{
		/* measured on Fashion-MNIST, see docs/method.md */
		o->lr = 1e-2f;
		o->momentum = 0.0f;
		o->weight_decay = 0.0f;
		o->margin = 0.2f;
		o->forget_weight = 0.5f;
		o->replay_weight = 20.0f;
		o->replay_batch = 128;
		o->distill = 0.5f;
		o->repair_steps = 300;
		o->adv_weight = 0.0f;
		o->imp_lambda = 0.0f;
		o->max_passes = 2000;
	}
}

/* ---------------------------------------------------------------- the loop */

/* Everything the loop owns; all of it nn_alloc'd. */
typedef struct ul_ctx
{
	nn_model   *m;
	const ul_options *o;
	int			F,
				C;
	int			nc;				/* constraint rows: k forget rows, then prior rows */
	int			k;
	float	   *Xc;				/* nc x F */
	int		   *yc;				/* label to avoid (mode 0) or to reach (mode 1) */
	unsigned char *want;		/* 1: must predict yc; 0: must not predict yc */
	int		   *viol;			/* indices of violated prior rows (latest check) */
	int			nviol;
	nn_workspace *ws;
	int			wsb;			/* ws->max_batch */
	float	   *grad;
	float	   *dl;				/* wsb x C */
	float	   *Xb;				/* wsb x F */
	int		   *yb;				/* wsb */
	float	   *theta0;
	float	   *wimp;			/* MAS weights or NULL */
	float	   *Xadv;
	int		   *tadv;
	int			nadv;
	int			adv_pos,
				f_pos,
				r_pos;
	int		   *rperm;
	int		   *rbi;			/* replay row of each batch slot */
	float	   *rsoft;			/* nr x C replay targets (distill > 0) or NULL */
	int		   *gidx;			/* guard rows (indices into the replay rows) */
	int			ng,
				g_pos;
	nn_rng		rng;
	float		replay_scale;	/* default method: shrinks while rows refuse to be forgotten */
} ul_ctx;

/* Is constraint row i satisfied by the logits z? */
static int
ul_satisfied(const ul_ctx *c, int i, const float *z)
{
	int			best = 0;

	for (int j = 1; j < c->C; j++)
		if (z[j] > z[best])
			best = j;
	return c->want[i] ? best == c->yc[i] : best != c->yc[i];
}

/*
 * Forward pass over all constraint rows: returns how many are satisfied and
 * records violated prior rows.  If hinge_scale != 0, also adds the gradient
 * of hinge_scale * (sum of the margin loss over the rows inside the margin)
 * to c->grad and stores the number of such rows in *n_active.
 */
static int
ul_check(ul_ctx *c, float margin, float hinge_scale, int *n_active)
{
	int			sat = 0,
				act = 0;

	c->nviol = 0;
	for (int s0 = 0; s0 < c->nc; s0 += c->wsb)
	{
		int			nb = c->nc - s0 < c->wsb ? c->nc - s0 : c->wsb;
		const float *xb = c->Xc + (size_t) s0 * c->F;
		const float *z = nn_forward(c->m, c->ws, xb, nb);
		int			any = 0;

		for (int r = 0; r < nb; r++)
		{
			int			i = s0 + r;
			const float *zr = z + (size_t) r * c->C;
			float	   *d = c->dl + (size_t) r * c->C;
			int			yi = c->yc[i],
						o = -1;
			float		gap;

			if (ul_satisfied(c, i, zr))
				sat++;
			else if (i >= c->k)
				c->viol[c->nviol++] = i;
			if (hinge_scale == 0.0f)
				continue;
			/* best other class */
			for (int j = 0; j < c->C; j++)
				if (j != yi && (o < 0 || zr[j] > zr[o]))
					o = j;
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
		if (any)
			nn_backward(c->m, c->ws, xb, nb, c->dl, c->grad, NULL);
	}
	if (n_active)
		*n_active = act;
	return sat;
}

/* Adds scale * grad of sum CE(f(X), y) over n rows (chunked) to c->grad. */
static void
ul_ce_grad(ul_ctx *c, const float *X, const int *y, int n, float scale)
{
	for (int s0 = 0; s0 < n; s0 += c->wsb)
	{
		int			nb = n - s0 < c->wsb ? n - s0 : c->wsb;
		const float *xb = X + (size_t) s0 * c->F;
		const float *z = nn_forward(c->m, c->ws, xb, nb);

		nn_softmax_ce(z, y + s0, nb, c->C, scale, c->dl, NULL);
		nn_backward(c->m, c->ws, xb, nb, c->dl, c->grad, NULL);
	}
}

/* Copies the next nb rows of (X, y) cycling from *pos into Xb/yb. */
static void
ul_take_cyclic(ul_ctx *c, const float *X, const int *y, int n, int *pos, int nb)
{
	for (int r = 0; r < nb; r++)
	{
		memcpy(c->Xb + (size_t) r * c->F, X + (size_t) (*pos) * c->F, sizeof(float) * c->F);
		c->yb[r] = y[*pos];
		*pos = (*pos + 1) % n;
	}
}

/* Adds grad of (lambda/2) sum w (theta - theta0)^2 to c->grad. */
static void
ul_imp_grad(ul_ctx *c, float lambda)
{
	const float *p = c->m->params;

	for (size_t j = 0; j < c->m->n_params; j++)
		c->grad[j] += lambda * c->wimp[j] * (p[j] - c->theta0[j]);
}

/* Mean CE of the k forget rows w.r.t. the labels they are judged by. */
static double
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
static void
ul_grad_faithful(ul_ctx *c, const int *new_labels, const int *yf)
{
	const ul_options *o = c->o;
	int			nf = o->forget_batch < c->k ? o->forget_batch : c->k;
	int			na = 0,
				npv = c->nviol;
	int			use_adv = o->method != UL_METHOD_NEGGRAD && c->nadv > 0;
	float		denom;

	if (use_adv)
		na = o->adv_batch < c->nadv ? o->adv_batch : c->nadv;
	denom = (float) (nf + na + npv);

	/* forget term: -CE on true labels (forget) or +CE on new labels (relabel) */
	ul_take_cyclic(c, c->Xc, new_labels ? new_labels : yf, c->k, &c->f_pos, nf);
	ul_ce_grad(c, c->Xb, c->yb, nf, (new_labels ? 1.0f : -1.0f) / denom);

	/* prior rows that are classified correctly again: -CE on them too */
	for (int s0 = 0; s0 < npv; s0 += c->wsb)
	{
		int			nb = npv - s0 < c->wsb ? npv - s0 : c->wsb;

		for (int r = 0; r < nb; r++)
		{
			int			i = c->viol[s0 + r];

			memcpy(c->Xb + (size_t) r * c->F, c->Xc + (size_t) i * c->F, sizeof(float) * c->F);
			c->yb[r] = c->yc[i];
		}
		ul_ce_grad(c, c->Xb, c->yb, nb, -1.0f / denom);
	}

	/* ADV term: CE toward the attack targets */
	if (use_adv)
	{
		ul_take_cyclic(c, c->Xadv, c->tadv, c->nadv, &c->adv_pos, na);
		ul_ce_grad(c, c->Xb, c->yb, na, 1.0f / denom);
	}
	if (c->wimp && o->imp_lambda != 0.0f)
		ul_imp_grad(c, o->imp_lambda);
}

/* Adds weight * mean CE gradient over the replay rows c->rbi[0..nb). */
static void
ul_replay_rows_grad(ul_ctx *c, const float *Xr, const int *yr, int nb, float weight)
{
	const float *z;
	float		sc = weight / nb;

	for (int r = 0; r < nb; r++)
	{
		memcpy(c->Xb + (size_t) r * c->F, Xr + (size_t) c->rbi[r] * c->F, sizeof(float) * c->F);
		c->yb[r] = yr[c->rbi[r]];
	}
	if (!c->rsoft)
	{
		ul_ce_grad(c, c->Xb, c->yb, nb, sc);
		return;
	}
	/* soft targets: d CE / d z = softmax(z) - target */
	z = nn_forward(c->m, c->ws, c->Xb, nb);
	nn_softmax_ce(z, c->yb, nb, c->C, 1.0f, NULL, c->dl);
	for (int r = 0; r < nb; r++)
	{
		const float *tg = c->rsoft + (size_t) c->rbi[r] * c->C;

		for (int j = 0; j < c->C; j++)
			c->dl[r * c->C + j] = sc * (c->dl[r * c->C + j] - tg[j]);
	}
	nn_backward(c->m, c->ws, c->Xb, nb, c->dl, c->grad, NULL);
}

/* Adds the replay gradient: a shuffled batch of remaining rows, then a batch of guard rows. */
static void
ul_grad_replay(ul_ctx *c, const float *Xr, const int *yr, int nr)
{
	const ul_options *o = c->o;
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
	ul_replay_rows_grad(c, Xr, yr, nb, o->replay_weight * c->replay_scale);
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
		ul_replay_rows_grad(c, Xr, yr, nb, o->guard_weight * c->replay_scale);
	}
}

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
static void
ul_make_guard(ul_ctx *c, const float *Xr, int nr, int per)
{
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
	nn_free_mem(taken);
	nn_free_mem(best_i);
	nn_free_mem(best_d);
	nn_free_mem(Hc);
	nn_free_mem(Hr);
}

/* Sum CE of the first UL_SELECT_ROWS replay rows (model selection in the repair phase). */
static double
ul_replay_loss(ul_ctx *c, const float *Xr, const int *yr, int nr)
{
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

/* Replay targets: (1 - distill) * onehot(y) + distill * softmax_theta0(x). */
static void
ul_make_soft_targets(ul_ctx *c, const float *Xr, const int *yr, int nr, float distill)
{
	c->rsoft = nn_alloc(sizeof(float) * (size_t) nr * c->C);
	for (int s0 = 0; s0 < nr; s0 += c->wsb)
	{
		int			nb = nr - s0 < c->wsb ? nr - s0 : c->wsb;
		float	   *out = c->rsoft + (size_t) s0 * c->C;

		nn_softmax_ce(nn_forward(c->m, c->ws, Xr + (size_t) s0 * c->F, nb), yr + s0, nb, c->C,
					  1.0f, NULL, out);
		for (int r = 0; r < nb; r++)
			for (int j = 0; j < c->C; j++)
				out[r * c->C + j] = distill * out[r * c->C + j] + (1.0f - distill) * (j == yr[s0 + r]);
	}
}

/* Frees what the context holds. */
static void
ul_ctx_free(ul_ctx *c)
{
	ul_free(c->Xc);
	ul_free(c->yc);
	ul_free(c->want);
	ul_free(c->viol);
	if (c->ws)
		nn_workspace_free(c->ws);
	ul_free(c->grad);
	ul_free(c->dl);
	ul_free(c->Xb);
	ul_free(c->yb);
	ul_free(c->theta0);
	ul_free(c->wimp);
	ul_free(c->Xadv);
	ul_free(c->tadv);
	ul_free(c->rperm);
	ul_free(c->rbi);
	ul_free(c->rsoft);
	ul_free(c->gidx);
}

/* Checks the arguments of ul_unlearn; 0 if fine. */
static int
ul_check_args(const nn_model *m, const float *Xf, const int *yf, int k,
			  const int *new_labels, const float *Xp, const int *yp, int np,
			  const float *Xr, const int *yr, int nr, const ul_options *o,
			  char *err, size_t errlen)
{
	int			C;

	if (!m || !o)
	{
		ul_err(err, errlen, "model and options are required");
		return -1;
	}
	C = NN_CLASSES(m);
	if (k < 1 || !Xf || !yf)
	{
		ul_err(err, errlen, "at least one forget row is required");
		return -1;
	}
	if (np < 0 || (np > 0 && (!Xp || !yp)) || nr < 0 || (nr > 0 && (!Xr || !yr)))
	{
		ul_err(err, errlen, "bad prior or replay rows");
		return -1;
	}
	if ((int) o->method < 0 || (int) o->method > UL_METHOD_DEFAULT)
	{
		ul_err(err, errlen, "unknown unlearning method");
		return -1;
	}
	if (!(o->lr > 0.0f) || !(o->lr < 1e3f) || o->momentum < 0.0f || o->momentum >= 1.0f ||
		o->weight_decay < 0.0f || o->forget_batch < 1 || o->adv_batch < 1 ||
		o->adv_per_row < 0 || o->pgd_eps < 0.0f || o->pgd_alpha < 0.0f || o->pgd_steps < 0 ||
		o->imp_lambda < 0.0f || o->max_passes < 1 || o->max_steps < 0 || o->margin < 0.0f ||
		o->replay_weight < 0.0f || o->replay_batch < 0 || o->repair_steps < 0 ||
		o->adv_weight < 0.0f || o->forget_weight < 0.0f || o->distill < 0.0f || o->distill > 1.0f ||
		o->guard_per_row < 0 || o->guard_weight < 0.0f || o->repair_lr < 0.0f || o->repair_lr > 1e3f ||
		(o->optimizer != NN_OPT_SGD && o->optimizer != NN_OPT_ADAM))
	{
		ul_err(err, errlen, "an unlearning option is out of range");
		return -1;
	}
	for (int i = 0; i < k; i++)
		if (yf[i] < 0 || yf[i] >= C || (new_labels && (new_labels[i] < 0 || new_labels[i] >= C)))
		{
			ul_err(err, errlen, "a label is outside the model's classes");
			return -1;
		}
	for (int i = 0; i < np; i++)
		if (yp[i] < 0 || yp[i] >= C)
		{
			ul_err(err, errlen, "a prior row's label is outside the model's classes");
			return -1;
		}
	for (int i = 0; i < nr; i++)
		if (yr[i] < 0 || yr[i] >= C)
		{
			ul_err(err, errlen, "a replay row's label is outside the model's classes");
			return -1;
		}
	return 0;
}

/* The unlearning loop; see unlearn_core.h. */
int
ul_unlearn(nn_model *m,
		   const float *Xf, const int *yf, int k, const int *new_labels,
		   const float *Xp, const int *yp, int np,
		   const float *Xr, const int *yr, int nr,
		   const ul_options *o,
		   ul_progress_callback cb, void *cb_arg,
		   ul_result *result, char *err, size_t errlen)
{
	ul_ctx		c;
	ul_result	res;
	nn_optimizer *opt;
	int			is_default,
				F,
				steps_per_pass,
				cap,
				step = 0,
				sat,
				first_done = -1,
				have_snap = 0,
				repair_left;
	float	   *snap = NULL;
	double		best_loss = 0.0;
	size_t		P;

	memset(&res, 0, sizeof(res));
	res.forget_steps = -1;
	if (result)
		*result = res;
	if (ul_check_args(m, Xf, yf, k, new_labels, Xp, yp, np, Xr, yr, nr, o, err, errlen))
		return -1;

	memset(&c, 0, sizeof(c));
	c.m = m;
	c.o = o;
	F = c.F = NN_FEATURES(m);
	c.C = NN_CLASSES(m);
	c.k = k;
	c.nc = k + np;
	P = m->n_params;
	is_default = o->method == UL_METHOD_DEFAULT;
	nn_rng_seed(&c.rng, o->seed);

	/* constraint rows: forget rows then prior rows */
	c.Xc = nn_alloc(sizeof(float) * (size_t) c.nc * F);
	c.yc = nn_alloc(sizeof(int) * c.nc);
	c.want = nn_alloc(c.nc);
	c.viol = nn_alloc(sizeof(int) * (np > 0 ? np : 1));
	memcpy(c.Xc, Xf, sizeof(float) * (size_t) k * F);
	if (np > 0)
		memcpy(c.Xc + (size_t) k * F, Xp, sizeof(float) * (size_t) np * F);
	for (int i = 0; i < k; i++)
	{
		c.yc[i] = new_labels ? new_labels[i] : yf[i];
		c.want[i] = new_labels ? 1 : 0;
	}
	for (int i = 0; i < np; i++)
	{
		c.yc[k + i] = yp[i];
		c.want[k + i] = 0;
	}

	c.wsb = UL_CHUNK;
	if (o->forget_batch > c.wsb)
		c.wsb = o->forget_batch;
	if (o->adv_batch > c.wsb)
		c.wsb = o->adv_batch;
	if (o->replay_batch > c.wsb)
		c.wsb = o->replay_batch;
	c.ws = nn_workspace_create(m, c.wsb);
	c.grad = nn_alloc(sizeof(float) * P);
	c.dl = nn_alloc(sizeof(float) * (size_t) c.wsb * c.C);
	c.Xb = nn_alloc(sizeof(float) * (size_t) c.wsb * F);
	c.yb = nn_alloc(sizeof(int) * c.wsb);
	c.theta0 = nn_alloc(sizeof(float) * P);
	memcpy(c.theta0, m->params, sizeof(float) * P);
	if (nr > 0)
	{
		c.rperm = nn_alloc(sizeof(int) * nr);
		for (int i = 0; i < nr; i++)
			c.rperm[i] = i;
		c.rbi = nn_alloc(sizeof(int) * c.wsb);
		if (is_default && o->distill > 0.0f)
			ul_make_soft_targets(&c, Xr, yr, nr, o->distill);
		if (is_default && o->guard_per_row > 0 && o->guard_weight > 0.0f)
			ul_make_guard(&c, Xr, nr, o->guard_per_row);
	}

	/* adversarial examples on theta0 (targets drawn against the true labels) */
	if (o->adv_per_row > 0 && o->pgd_steps >= 0 &&
		((!is_default && o->method != UL_METHOD_NEGGRAD) || (is_default && o->adv_weight > 0.0f)))
	{
		c.nadv = k * o->adv_per_row;
		c.Xadv = nn_alloc(sizeof(float) * (size_t) c.nadv * F);
		c.tadv = nn_alloc(sizeof(int) * c.nadv);
		ul_pgd_targeted(m, Xf, yf, k, o->adv_per_row, o->pgd_eps, o->pgd_alpha,
						o->pgd_steps, &c.rng, c.Xadv, c.tadv);
	}
	/* MAS weights on the forget rows */
	if (o->imp_lambda > 0.0f)
	{
		c.wimp = nn_alloc(sizeof(float) * P);
		ul_mas_weights(m, Xf, k, NULL, c.wimp);
	}

	opt = nn_optimizer_create(o->optimizer, P, o->lr, o->momentum, o->weight_decay);
	if (c.nadv > 0 && !is_default)
		steps_per_pass = (c.nadv + o->adv_batch - 1) / o->adv_batch;
	else
		steps_per_pass = (k + o->forget_batch - 1) / o->forget_batch;
	cap = o->max_passes * steps_per_pass;
	if (o->max_steps > 0 && o->max_steps < cap)
		cap = o->max_steps;
	if (is_default)
		snap = nn_alloc(sizeof(float) * P);
	repair_left = o->repair_steps;
	c.replay_scale = 1.0f;

	for (;;)
	{
		int			n_act = 0;
		float		hscale = 0.0f;

		memset(c.grad, 0, sizeof(float) * P);
		if (is_default)
		{
			/* margin term, averaged over the rows still inside the margin */
			sat = ul_check(&c, o->margin, 1.0f, &n_act);
			if (n_act > 0)
			{
				hscale = o->forget_weight / (float) n_act;
				for (size_t j = 0; j < P; j++)
					c.grad[j] *= hscale;
			}
		}
		else
			sat = ul_check(&c, 0.0f, 0.0f, NULL);

		if (sat == c.nc)
		{
			if (first_done < 0)
			{
				first_done = step;
				if (is_default && o->repair_lr > 0.0f)
					opt->lr = o->repair_lr;
			}
			if (!is_default)
				break;
			/* keep the satisfying state that fits the replay rows best */
			if (nr == 0)
			{
				memcpy(snap, m->params, sizeof(float) * P);
				have_snap = 1;
			}
			else if ((step - first_done) % UL_SELECT_EVERY == 0 || repair_left <= 0 || step >= cap)
			{
				double		l = ul_replay_loss(&c, Xr, yr, nr);

				if (!have_snap || l < best_loss)
				{
					memcpy(snap, m->params, sizeof(float) * P);
					best_loss = l;
					have_snap = 1;
				}
			}
		}
		if (cb && step % UL_CB_EVERY == 0 && step > 0 && cb(cb_arg, step, sat, c.nc))
		{
			res.aborted = 1;
			break;
		}
		if (step >= cap)
			break;
		if (is_default && first_done >= 0)
		{
			if (repair_left <= 0)
				break;
			repair_left--;
		}

		/*
		 * The promise comes first: while some rows still refuse to be
		 * forgotten after UL_ESCALATE_AFTER steps, the pull of the replayed
		 * rows halves every UL_ESCALATE_EVERY steps, so the bounded forget
		 * term wins in the end.  The repair phase gets the full pull back.
		 */
		if (is_default && first_done < 0 && step >= UL_ESCALATE_AFTER &&
			(step - UL_ESCALATE_AFTER) % UL_ESCALATE_EVERY == 0)
			c.replay_scale *= 0.5f;
		if (is_default && first_done >= 0)
			c.replay_scale = 1.0f;

		/* gradient of this step's loss */
		if (is_default)
		{
			ul_grad_replay(&c, Xr, yr, nr);
			if (c.nadv > 0)
			{
				int			na = o->adv_batch < c.nadv ? o->adv_batch : c.nadv;

				ul_take_cyclic(&c, c.Xadv, c.tadv, c.nadv, &c.adv_pos, na);
				ul_ce_grad(&c, c.Xb, c.yb, na, o->adv_weight / na);
			}
			if (c.wimp)
				ul_imp_grad(&c, o->imp_lambda);
		}
		else
			ul_grad_faithful(&c, new_labels, yf);
		nn_optimizer_step(opt, m->params, c.grad);
		step++;
	}

	if (res.aborted)
		memcpy(m->params, c.theta0, sizeof(float) * P);
	else if (is_default && have_snap)
	{
		/* the selected state; never one that violates a forget or prior row */
		if (nr > 0 || ul_check(&c, 0.0f, 0.0f, NULL) != c.nc)
			memcpy(m->params, snap, sizeof(float) * P);
	}

	/* final accounting */
	sat = 0;
	{
		int			fsat = 0,
					psat = 0;

		for (int s0 = 0; s0 < c.nc; s0 += c.wsb)
		{
			int			nb = c.nc - s0 < c.wsb ? c.nc - s0 : c.wsb;
			const float *z = nn_forward(m, c.ws, c.Xc + (size_t) s0 * F, nb);

			for (int r = 0; r < nb; r++)
				if (ul_satisfied(&c, s0 + r, z + (size_t) r * c.C))
				{
					if (s0 + r < k)
						fsat++;
					else
						psat++;
				}
		}
		res.forgotten = fsat;
		res.prior_kept = psat;
		res.success = !res.aborted && fsat == k && psat == np;
	}
	res.steps = step;
	res.forget_steps = first_done;
	res.final_forget_loss = ul_forget_ce(&c, new_labels ? new_labels : yf);
	if (result)
		*result = res;

	ul_free(snap);
	nn_optimizer_free(opt);
	ul_ctx_free(&c);
	return 0;
}
