/*
 * unlearn_setup.c: before the unlearning loop: check a request's arguments,
 * then build the context (constraint rows, buffers, theta0, replay targets
 * and guard rows, adversarial examples, MAS weights); and free it after.
 */
#include <math.h>
#include <string.h>

#include "unlearn_internal.h"

/* ---------------------------------------------------------------- arguments */

/* Whether a numeric option is out of its range or the optimiser unknown. */
static int
ul_options_bad(const ul_options *o)
{
	return !(o->lr > 0.0f) || !(o->lr < 1e3f) || o->momentum < 0.0f || o->momentum >= 1.0f ||
		o->weight_decay < 0.0f || o->forget_batch < 1 || o->adv_batch < 1 ||
		o->adv_per_row < 0 || o->pgd_eps < 0.0f || o->pgd_alpha < 0.0f || o->pgd_steps < 0 ||
		o->imp_lambda < 0.0f || o->max_passes < 1 || o->max_steps < 0 || o->margin < 0.0f ||
		o->replay_weight < 0.0f || o->replay_batch < 0 || o->repair_steps < 0 ||
		o->repair_stop < 0 || o->repair_stop > 1 ||
		o->adv_weight < 0.0f || o->forget_weight < 0.0f || o->distill < 0.0f || o->distill > 1.0f ||
		o->guard_per_row < 0 || o->guard_weight < 0.0f || o->repair_lr < 0.0f || o->repair_lr > 1e3f ||
		o->pgd_anchor < 0 || o->pgd_anchor > 1 || !(o->pgd_eps_scale >= 0.0f) || o->pgd_eps_scale > 1e3f ||
		o->imp_source < 0 || o->imp_source > 1 ||
		!(o->saliency_share >= 0.0f) || o->saliency_share > 1.0f ||
		(o->optimizer != NN_OPT_SGD && o->optimizer != NN_OPT_ADAM);
}

/* Whether every label of the n rows is one of C classes. */
static int
ul_labels_ok(const int *y, int n, int C)
{
	for (int i = 0; i < n; i++)
		if (y[i] < 0 || y[i] >= C)
			return 0;
	return 1;
}

/* Whether n target losses (if given) are each NaN or a finite number >= 0. */
static int
ul_targets_ok(const float *t, int n)
{
	for (int i = 0; t != NULL && i < n; i++)
		if (!isnan(t[i]) && !(t[i] >= 0.0f && isfinite(t[i])))
			return 0;
	return 1;
}

/* Checks the arguments of ul_unlearn_request; 0 if fine, else -1 + err. */
int
ul_check_args(const nn_model *m, const ul_request *q, const ul_options *o,
			  char *err, size_t errlen)
{
	const char *msg = NULL;

	if (!m || !q || !o)
		msg = "model and options are required";
	else if (q->forget.n < 1 || !q->forget.X || !q->forget.y)
		msg = "at least one forget row is required";
	else if (q->prior.n < 0 || (q->prior.n > 0 && (!q->prior.X || !q->prior.y)) ||
			 q->replay.n < 0 || (q->replay.n > 0 && (!q->replay.X || !q->replay.y)))
		msg = "bad prior or replay rows";
	else if ((int) o->method < 0 || (int) o->method > UL_METHOD_DEFAULT)
		msg = "unknown unlearning method";
	else if (ul_options_bad(o))
		msg = "an unlearning option is out of range";
	else if (!ul_labels_ok(q->forget.y, q->forget.n, NN_CLASSES(m)) ||
			 (q->new_labels && !ul_labels_ok(q->new_labels, q->forget.n, NN_CLASSES(m))))
		msg = "a label is outside the model's classes";
	else if (!ul_labels_ok(q->prior.y, q->prior.n, NN_CLASSES(m)))
		msg = "a prior row's label is outside the model's classes";
	else if (!ul_labels_ok(q->replay.y, q->replay.n, NN_CLASSES(m)))
		msg = "a replay row's label is outside the model's classes";
	else if (q->new_labels && q->forget_target)
		msg = "target losses apply to forget mode only";
	else if (!ul_targets_ok(q->forget_target, q->forget.n) || !ul_targets_ok(q->prior_target, q->prior.n))
		msg = "a target loss is negative or infinite";
	if (msg == NULL)
		return 0;
	nn_set_error(err, errlen, "%s", msg);
	return -1;
}

/* ---------------------------------------------------------------- set-up */

/* Constraint rows: the forget rows (to avoid or reach yc) then the prior rows (to avoid). */
static void
ul_ctx_constraints(ul_ctx *c)
{
	const ul_request *q = c->req;
	int			k = q->forget.n,
				np = q->prior.n,
				F = c->F;

	c->Xc = nn_alloc(sizeof(float) * (size_t) c->nc * F);
	c->yc = nn_alloc(sizeof(int) * c->nc);
	c->want = nn_alloc(c->nc);
	c->viol = nn_alloc(sizeof(int) * (np > 0 ? np : 1));
	memcpy(c->Xc, q->forget.X, sizeof(float) * (size_t) k * F);
	if (np > 0)
		memcpy(c->Xc + (size_t) k * F, q->prior.X, sizeof(float) * (size_t) np * F);
	for (int i = 0; i < k; i++)
	{
		c->yc[i] = q->new_labels ? q->new_labels[i] : q->forget.y[i];
		c->want[i] = q->new_labels ? 1 : 0;
	}
	for (int i = 0; i < np; i++)
	{
		c->yc[k + i] = q->prior.y[i];
		c->want[k + i] = 0;
	}
	/* target losses (unseen), NaN where a row keeps "misclassified" */
	if (q->forget_target || (np > 0 && q->prior_target))
	{
		c->tl = nn_alloc(sizeof(float) * c->nc);
		for (int i = 0; i < c->nc; i++)
		{
			const float *t = i < k ? q->forget_target : q->prior_target;

			c->tl[i] = t ? t[i < k ? i : i - k] : NAN;
		}
	}
}

/* The rows of the run's largest batch, which the workspace is sized for. */
static int
ul_batch_rows(const ul_options *o)
{
	int			b = UL_CHUNK;

	if (o->forget_batch > b)
		b = o->forget_batch;
	if (o->adv_batch > b)
		b = o->adv_batch;
	if (o->replay_batch > b)
		b = o->replay_batch;
	return b;
}

/* Whether the run makes targeted-PGD examples of the forget rows. */
static int
ul_makes_adversarial(const ul_options *o, int is_default)
{
	return o->adv_per_row > 0 && o->pgd_steps >= 0 &&
		((!is_default && o->method != UL_METHOD_NEGGRAD) || (is_default && o->adv_weight > 0.0f));
}

/*
 * Bytes a run of these options on this request allocates for its rows,
 * erring high: the workspace and batch buffers of the largest batch (dense
 * layers, and a convolutional model's stages: outputs, gradients, pool
 * indices, im2col scratch), the forget and prior rows' copy, the
 * adversarial examples with their soft targets and PGD's own workspace, and
 * the replay rows' soft targets and order.  The parameters' copies
 * (gradient, theta0, optimiser state, snapshots) are not counted: they
 * scale with the model, whose size its training was held to.
 */
double
ul_request_bytes(const nn_model *m, const ul_request *q, const ul_options *o)
{
	double		F = NN_FEATURES(m),
				C = NN_CLASSES(m),
				units = F + 2.0 * C;	/* standardised input, probabilities, batch logit gradient */
	double		nc = (double) q->forget.n + q->prior.n;
	int			batch = ul_batch_rows(o);
	double		floats;

	for (int l = 1; l <= m->n_layers; l++)
		units += (double) m->dims[l] * (l < m->n_layers ? 2.0 : 1.0);
	floats = (double) batch * (units + F + 2.0 * C);
	if (m->n_stages > 0)
		floats += nn_stages_floats(m, batch);
	floats += nc * (F + 4.0);
	if (ul_makes_adversarial(o, o->method == UL_METHOD_DEFAULT))
	{
		floats += (double) q->forget.n * o->adv_per_row * (F + C + 1.0);
		/* PGD's own workspace of UL_CHUNK rows and their input gradient (pgd.c) */
		if (o->pgd_steps > 0)
			floats += (double) UL_CHUNK * (units + 2.0 * F + C) +
				(m->n_stages > 0 ? nn_stages_floats(m, UL_CHUNK) : 0.0);
	}
	floats += (double) q->replay.n * (2.0 * C + 1.0);
	return floats * sizeof(float);
}

/* The workspace and batch buffers (sized for the largest batch) and theta0. */
static void
ul_ctx_buffers(ul_ctx *c)
{
	const ul_options *o = c->o;
	size_t		P = c->m->n_params;

	c->wsb = ul_batch_rows(o);
	c->ws = nn_workspace_create(c->m, c->wsb);
	c->grad = nn_alloc(sizeof(float) * P);
	c->dl = nn_alloc(sizeof(float) * (size_t) c->wsb * c->C);
	c->Xb = nn_alloc(sizeof(float) * (size_t) c->wsb * c->F);
	c->yb = nn_alloc(sizeof(int) * c->wsb);
	c->theta0 = nn_alloc(sizeof(float) * P);
	memcpy(c->theta0, c->m->params, sizeof(float) * P);
}

/*
 * The targeted-PGD examples of the forget rows (targets drawn against the
 * true labels), eps from the data when asked (pgd_eps_scale); as boundary
 * anchors (pgd_anchor) they keep theta0's softmax on them as targets.
 */
static void
ul_ctx_adversarial(ul_ctx *c, int is_default)
{
	const ul_options *o = c->o;
	float		eps = o->pgd_eps,
				alpha = o->pgd_alpha;

	if (is_default && o->pgd_eps_scale > 0.0f)
		ul_data_eps(c, o->pgd_eps_scale, o->pgd_steps, &eps, &alpha);
	c->nadv = c->k * o->adv_per_row;
	c->Xadv = nn_alloc(sizeof(float) * (size_t) c->nadv * c->F);
	c->tadv = nn_alloc(sizeof(int) * c->nadv);
	ul_pgd_targeted(c->m, c->req->forget.X, c->req->forget.y, c->k, o->adv_per_row, eps,
					alpha, o->pgd_steps, &c->rng, c->Xadv, c->tadv);
	if (is_default && o->pgd_anchor)
	{
		c->advsoft = ul_softmax_rows(c, c->Xadv, c->tadv, c->nadv, NULL);
		if (!c->rbi)
			c->rbi = nn_alloc(sizeof(int) * c->wsb);
	}
}

/*
 * What the loss terms need, all computed on theta0: the replay order, soft
 * targets and guard rows; the adversarial examples (targets drawn against
 * the true labels); the MAS weights; the saliency mask.
 */
static void
ul_ctx_terms(ul_ctx *c, int is_default)
{
	const ul_options *o = c->o;
	const ul_request *q = c->req;
	int			nr;

	/* repair_stop: the tail of the (random) replay sample is held out, never trained on */
	c->nr = q->replay.n;
	if (is_default && o->repair_stop && o->repair_steps > 0)
	{
		int			nh = q->replay.n / UL_STOP_SHARE;

		if (nh > UL_STOP_ROWS)
			nh = UL_STOP_ROWS;
		if (nh >= UL_STOP_MIN_ROWS)
		{
			c->nh = nh;
			c->nr = q->replay.n - nh;
			c->h_pred0 = nn_alloc(sizeof(int) * nh);
			c->h_pred = nn_alloc(sizeof(int) * nh);
			c->h_ce0 = nn_alloc(sizeof(float) * nh);
			c->h_ce = nn_alloc(sizeof(float) * nh);
			ul_holdout_eval(c, q->replay_logits ? q->replay_logits + (size_t) c->nr * c->C : NULL,
							c->h_ce0, c->h_pred0);
		}
	}
	/* target rows: where theta0 has them (the pull-back never goes past it) */
	if (c->tl)
	{
		c->tg0 = nn_alloc(sizeof(float) * c->nc);
		c->dlp = nn_alloc(sizeof(float) * (size_t) c->wsb * c->C);
		c->gpull = nn_alloc(sizeof(float) * c->m->n_params);
		ul_target_start_gaps(c);
	}
	nr = c->nr;
	if (nr > 0)
	{
		c->rperm = nn_alloc(sizeof(int) * nr);
		for (int i = 0; i < nr; i++)
			c->rperm[i] = i;
		c->rbi = nn_alloc(sizeof(int) * c->wsb);
		if (is_default && o->distill > 0.0f)
			ul_make_soft_targets(c, o->distill);
		if (is_default && o->guard_per_row > 0 && o->guard_weight > 0.0f)
			ul_make_guard(c, o->guard_per_row);
	}
	if (ul_makes_adversarial(o, is_default))
		ul_ctx_adversarial(c, is_default);
	if (o->imp_lambda > 0.0f)
		ul_make_imp_weights(c);
	if (is_default && o->saliency_share > 0.0f && o->saliency_share < 1.0f)
		ul_make_saliency_mask(c, o->saliency_share);
}

/* Frees what the context holds. */
void
ul_ctx_free(ul_ctx *c)
{
	nn_free_mem(c->Xc);
	nn_free_mem(c->yc);
	nn_free_mem(c->want);
	nn_free_mem(c->tl);
	nn_free_mem(c->tg0);
	nn_free_mem(c->dlp);
	nn_free_mem(c->gpull);
	nn_free_mem(c->viol);
	nn_workspace_free(c->ws);
	nn_free_mem(c->grad);
	nn_free_mem(c->dl);
	nn_free_mem(c->Xb);
	nn_free_mem(c->yb);
	nn_free_mem(c->theta0);
	nn_free_mem(c->wimp);
	nn_free_mem(c->Xadv);
	nn_free_mem(c->tadv);
	nn_free_mem(c->advsoft);
	nn_free_mem(c->smask);
	nn_free_mem(c->rperm);
	nn_free_mem(c->rbi);
	nn_free_mem(c->rsoft);
	nn_free_mem(c->h_pred0);
	nn_free_mem(c->h_pred);
	nn_free_mem(c->h_ce0);
	nn_free_mem(c->h_ce);
	nn_free_mem(c->gidx);
}

/* The context for a checked request: the RNG first, then everything computed on theta0. */
void
ul_ctx_init(ul_ctx *c, nn_model *m, const ul_request *req, const ul_options *o)
{
	memset(c, 0, sizeof(*c));
	c->m = m;
	c->o = o;
	c->req = req;
	c->F = NN_FEATURES(m);
	c->C = NN_CLASSES(m);
	c->k = req->forget.n;
	c->nc = req->forget.n + req->prior.n;
	nn_rng_seed(&c->rng, o->seed);
	ul_ctx_constraints(c);
	ul_ctx_buffers(c);
	ul_ctx_terms(c, o->method == UL_METHOD_DEFAULT);
}
