/*
 * unlearn_loop.c: instance-wise unlearning (Cha et al., AAAI 2024) on nn.h:
 * ul_unlearn and its phases.
 *
 * Three faithful methods (neggrad, adv, adv+imp) and a "default" method that
 * replaces the unbounded -CE by a margin loss, replays remaining rows and
 * runs a repair phase that never hands back a state violating a forget or
 * prior row.  See docs/method.md for the measured comparison.
 *
 * Phases: check the arguments and set up the context (unlearn_setup.c); the
 * loop (each step: the stop rule, snapshot selection once every row is
 * satisfied, the stop conditions, the replay pull, one optimiser step);
 * then hand back the selected state and count what was achieved.
 */
#include <string.h>
#include <time.h>

#include "unlearn_internal.h"

#define UL_CB_EVERY 10			/* progress callback period, in steps */
#define UL_ESCALATE_AFTER 1000	/* default method: steps before the replay pull starts to shrink */
#define UL_ESCALATE_EVERY 200	/* ... and the steps between its halvings */
#define UL_SELECT_EVERY 20		/* repair steps between model-selection checks */
#define UL_TARGET_REPAIR_FACTOR 5	/* target rows: the repair phase may last this many times
									 * repair_steps while it pulls rows back into their band */

/* The loop's state, beside the context. */
typedef struct ul_loop
{
	nn_optimizer *opt;
	int			is_default;		/* the default method (else a faithful one) */
	int			cap;			/* step cap */
	int			step;
	int			first_done;		/* step every row was first satisfied (-1: not yet) */
	int			repair_left;	/* default method: repair steps still to take */
	int			repair_cap;		/* default method: most repair steps, pull-backs included */
	float	   *snap;			/* default method: the selected satisfying state */
	int			have_snap;
	int			snap_in_band;	/* snap has every target row in its band (always, without targets) */
	int			select_due;		/* target rows: a selection check waits for a satisfying step */
	int			n_active;		/* default method: constraint rows inside the margin (latest check) */
	int			repaired;		/* repair_stop: the repair phase ended on the stop rule */
	double		best_loss;		/* selection loss of snap (ul_select_check) */
	double		t_first;		/* clock when every row was first satisfied */
	int			aborted;
	ul_progress_callback cb;
	void	   *cb_arg;
} ul_loop;

/* ---------------------------------------------------------------- the loop's state */

/* A monotonic clock in seconds, for the result's phase times (never for the computation). */
static double
ul_clock(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + 1e-9 * (double) ts.tv_nsec;
}

/* The optimiser, the step cap (passes over the adversarial or forget set; see below) and the snapshot. */
static void
ul_loop_init(ul_loop *lp, const ul_ctx *c, ul_progress_callback cb, void *cb_arg)
{
	const ul_options *o = c->o;
	int			steps_per_pass;

	memset(lp, 0, sizeof(*lp));
	lp->is_default = o->method == UL_METHOD_DEFAULT;
	lp->first_done = -1;
	lp->cb = cb;
	lp->cb_arg = cb_arg;
	lp->opt = nn_optimizer_create(o->optimizer, c->m->n_params, o->lr, o->momentum, o->weight_decay);
	if (c->nadv > 0 && !lp->is_default)
		steps_per_pass = (c->nadv + o->adv_batch - 1) / o->adv_batch;
	else
		steps_per_pass = (c->k + o->forget_batch - 1) / o->forget_batch;
	lp->cap = o->max_passes * steps_per_pass;
	/* the default method keeping earlier rows forgotten meets two sets of constraints: twice the steps */
	if (lp->is_default && c->nc > c->k)
		lp->cap *= 2;
	if (o->max_steps > 0 && o->max_steps < lp->cap)
		lp->cap = o->max_steps;
	if (lp->is_default)
		lp->snap = nn_alloc(sizeof(float) * c->m->n_params);
	lp->repair_left = o->repair_steps;
	lp->repair_cap = o->repair_steps * (c->tl ? UL_TARGET_REPAIR_FACTOR : 1);
}

/* ---------------------------------------------------------------- one step */

/*
 * Adds the pulls of target rows past their push: each weighs what a pushed
 * row weighs (forget_weight / pushed rows, forget_weight when none is), so
 * the band holds against the pushes that carry rows past it; like the
 * replay pull they shrink while rows refuse to be forgotten (replay_scale).
 */
static void
ul_step_add_pulls(ul_ctx *c, int n_act)
{
	const ul_options *o = c->o;
	float		pscale = o->forget_weight * c->replay_scale / (float) (n_act > 0 ? n_act : 1);
	float	   *restrict g = c->grad;	/* locals: the loop vectorises */
	const float *restrict pull = c->gpull;
	size_t		P = c->m->n_params;

	for (size_t j = 0; j < P; j++)
		g[j] += pscale * pull[j];
}

/*
 * The stop rule over all constraint rows: returns how many are satisfied.
 * Zeroes c->grad first; the default method also leaves there its margin
 * term, averaged over the rows still inside the margin.
 */
static int
ul_step_check(ul_ctx *c, ul_loop *lp)
{
	const ul_options *o = c->o;
	size_t		P = c->m->n_params;
	int			n_act = 0,
				sat;

	memset(c->grad, 0, sizeof(float) * P);
	if (!lp->is_default)
		return ul_check(c, 0.0f, 0.0f, NULL);
	if (c->tl)
	{
		/*
		 * pull-backs: every target row's in the repair phase; in the forget
		 * phase only the request's own rows' (prior rows left where earlier
		 * runs put them keep their slack), and only until the replay pull
		 * starts to give way (ul_step_escalate): past that, rows refuse to
		 * be forgotten, and the promise comes first
		 */
		memset(c->gpull, 0, sizeof(float) * P);
		c->pull_rows = lp->first_done >= 0 ? c->nc : lp->step < UL_ESCALATE_AFTER ? c->k : 0;
	}
	sat = ul_check(c, o->margin, 1.0f, &n_act);
	lp->n_active = n_act;
	if (n_act > 0)
	{
		float		hscale = o->forget_weight / (float) n_act;
		float	   *restrict g = c->grad;	/* a local: the loop vectorises */

		for (size_t j = 0; j < P; j++)
			g[j] *= hscale;
	}
	if (c->tl && c->pull_rows > 0)
		ul_step_add_pulls(c, n_act);
	return sat;
}

/*
 * A selection check of the default method (every row is satisfied): the
 * selection loss is the held-out replay rows' summed cross-entropy when
 * there are held-out rows (never trained on; one forward pass over them
 * serves the stop rule too), else the first UL_SELECT_ROWS replay rows'.
 * Returns 1 when the stop rule holds (repair_stop): every forget and prior
 * row beyond the margin (and a row with a target loss no further than its
 * band) and the held-out rows repaired (ul_holdout_repaired); that state is
 * the one handed back.  Otherwise keeps the state if it beats the snapshot:
 * a state with every target row in its band beats one without, then the
 * lower selection loss.
 */
static int
ul_select_check(ul_ctx *c, ul_loop *lp)
{
	size_t		bytes = sizeof(float) * c->m->n_params;
	double		l = c->nh > 0 ? ul_holdout_loss(c) : ul_replay_loss(c);
	int			in_band = c->n_pulled == 0;

	if (c->nh > 0 && lp->n_active == 0 && in_band && ul_holdout_repaired(c))
	{
		memcpy(lp->snap, c->m->params, bytes);
		lp->have_snap = 1;
		lp->repaired = 1;
		return 1;
	}
	/* every row beyond the margin: the replay pull may come back a step */
	if (lp->n_active == 0)
		c->replay_scale = c->replay_scale < 0.5f ? 2.0f * c->replay_scale : 1.0f;
	if (!lp->have_snap || (in_band && !lp->snap_in_band) ||
		(in_band == lp->snap_in_band && l < lp->best_loss))
	{
		memcpy(lp->snap, c->m->params, bytes);
		lp->best_loss = l;
		lp->have_snap = 1;
		lp->snap_in_band = in_band;
	}
	return 0;
}

/*
 * Every row is satisfied at this step: note the first such step (switch to
 * the repair lr, let the repair phase take as many steps as the forget phase
 * took); the default method keeps the satisfying state that fits best (see
 * ul_select_check) at a selection check every UL_SELECT_EVERY repair steps.
 * Returns 1 when the loop is done: faithful methods; the default method when
 * its stop rule holds at a check.
 */
static int
ul_step_satisfied(ul_ctx *c, ul_loop *lp)
{
	const ul_options *o = c->o;

	if (lp->first_done < 0)
	{
		lp->first_done = lp->step;
		lp->t_first = ul_clock();
		if (lp->is_default && o->repair_lr > 0.0f)
			lp->opt->lr = o->repair_lr;
		/* a repair phase may take as many steps as the forget phase took (target rows: more, see repair_cap) */
		if (o->repair_steps > 0 && lp->repair_left < lp->step)
			lp->repair_left = lp->step;
		lp->repair_cap = lp->repair_left * (c->tl ? UL_TARGET_REPAIR_FACTOR : 1);
	}
	if (!lp->is_default)
		return 1;
	if (c->nr == 0)
	{
		memcpy(lp->snap, c->m->params, sizeof(float) * c->m->n_params);
		lp->have_snap = 1;
	}
	else if ((lp->step - lp->first_done) % UL_SELECT_EVERY == 0 || lp->repair_left <= 0 ||
			 lp->step >= lp->cap || lp->select_due)
	{
		lp->select_due = 0;
		return ul_select_check(c, lp);
	}
	return 0;
}

/* Whether the loop stops before this step's update: callback abort, step cap, repair done. */
static int
ul_step_stop(ul_ctx *c, ul_loop *lp, int sat)
{
	if (lp->cb && lp->step % UL_CB_EVERY == 0 && lp->step > 0 &&
		lp->cb(lp->cb_arg, lp->step, sat, c->nc))
	{
		lp->aborted = 1;
		return 1;
	}
	if (lp->step >= lp->cap)
		return 1;
	if (lp->is_default && lp->first_done >= 0)
	{
		if (lp->repair_left <= 0 || lp->step - lp->first_done >= lp->repair_cap)
			return 1;
		if (c->n_pulled == 0)
			lp->repair_left--;	/* steps that pull rows back into their band are extra */
	}
	return 0;
}

/*
 * The promise comes first: while some rows still refuse to be forgotten
 * after UL_ESCALATE_AFTER steps, the pull of the replayed rows halves every
 * UL_ESCALATE_EVERY steps, so the bounded forget term wins in the end.  The
 * repair phase does not get the full pull back at once (that undid the
 * forgetting and left only the first, most damaged satisfying state to hand
 * back): it doubles at each selection check where every row is beyond the
 * margin (ul_select_check).
 */
static void
ul_step_escalate(ul_ctx *c, const ul_loop *lp)
{
	if (!lp->is_default)
		return;
	if (lp->first_done < 0 && lp->step >= UL_ESCALATE_AFTER &&
		(lp->step - UL_ESCALATE_AFTER) % UL_ESCALATE_EVERY == 0)
		c->replay_scale *= 0.5f;
}

/* Adds the rest of this step's loss gradient to c->grad (the margin term is there already). */
static void
ul_step_grad(ul_ctx *c, const ul_loop *lp)
{
	const ul_options *o = c->o;

	if (!lp->is_default)
	{
		ul_grad_faithful(c);
		return;
	}
	ul_grad_replay(c);
	if (c->nadv > 0 && c->advsoft)
		ul_anchor_grad(c);
	else if (c->nadv > 0)
	{
		int			na = o->adv_batch < c->nadv ? o->adv_batch : c->nadv;
		ul_rows		adv = {c->Xadv, c->tadv, c->nadv};

		ul_ce_grad(c, ul_take_cyclic(c, adv, &c->adv_pos, na), o->adv_weight / na);
	}
	if (c->wimp)
		ul_imp_grad(c, o->imp_lambda);
	if (c->smask)
		ul_mask_grad(c);
}

/* The loop: until every row is satisfied (and repaired), the cap, or an abort. */
static void
ul_run(ul_ctx *c, ul_loop *lp)
{
	c->replay_scale = 1.0f;
	for (;;)
	{
		int			sat = ul_step_check(c, lp);

		NN_ASSERT(sat >= 0 && sat <= c->nc);
		/*
		 * target rows: a selection check missed because some row was out of
		 * reach at that step happens at the next step where every row is
		 * satisfied (the pull-backs of the repair phase rarely leave all of
		 * them satisfied on the exact step)
		 */
		if (c->tl && lp->first_done >= 0 && (lp->step - lp->first_done) % UL_SELECT_EVERY == 0)
			lp->select_due = 1;
		if (sat == c->nc && ul_step_satisfied(c, lp))
			break;
		if (ul_step_stop(c, lp, sat))
			break;
		ul_step_escalate(c, lp);
		ul_step_grad(c, lp);
		nn_optimizer_step(lp->opt, c->m->params, c->grad);
		lp->step++;
	}
}

/* ---------------------------------------------------------------- results */

/*
 * The parameters handed back: theta0 after an abort; for the default method
 * the selected state, never one that violates a forget or prior row.
 */
static void
ul_finish_params(ul_ctx *c, const ul_loop *lp)
{
	size_t		bytes = sizeof(float) * c->m->n_params;

	if (lp->aborted)
		memcpy(c->m->params, c->theta0, bytes);
	else if (lp->is_default && lp->have_snap)
	{
		if (c->nr > 0 || ul_check(c, 0.0f, 0.0f, NULL) != c->nc)
			memcpy(c->m->params, lp->snap, bytes);
	}
}

/* Final accounting: satisfied forget and prior rows, steps, the forget rows' CE. */
static void
ul_account(ul_ctx *c, const ul_loop *lp, ul_result *res)
{
	const ul_request *q = c->req;
	int			fsat = 0,
				psat = 0;

	for (int s0 = 0; s0 < c->nc; s0 += c->wsb)
	{
		int			nb = c->nc - s0 < c->wsb ? c->nc - s0 : c->wsb;
		const float *z = nn_forward(c->m, c->ws, c->Xc + (size_t) s0 * c->F, nb);

		for (int r = 0; r < nb; r++)
			if (ul_satisfied(c, s0 + r, z + (size_t) r * c->C))
			{
				if (s0 + r < c->k)
					fsat++;
				else
					psat++;
			}
	}
	res->forgotten = fsat;
	res->prior_kept = psat;
	res->aborted = lp->aborted;
	res->repaired_stop = lp->repaired;
	res->success = !lp->aborted && fsat == c->k && psat == q->prior.n;
	res->steps = lp->step;
	res->forget_steps = lp->first_done;
	res->final_forget_loss = ul_forget_ce(c, q->new_labels ? q->new_labels : q->forget.y);
}

/* ---------------------------------------------------------------- entry points */

/* The loop from the current parameters, the state handed back, its results. */
static void
ul_attempt(ul_ctx *c, ul_progress_callback cb, void *cb_arg, double t0, ul_result *res)
{
	ul_loop		lp;
	double		t_loop,
				t_end;

	ul_loop_init(&lp, c, cb, cb_arg);
	t_loop = ul_clock();
	ul_run(c, &lp);
	t_end = ul_clock();
	ul_finish_params(c, &lp);
	ul_account(c, &lp, res);
	res->setup_seconds = t_loop - t0;
	res->forget_seconds = (lp.first_done >= 0 ? lp.t_first : t_end) - t_loop;
	res->repair_seconds = lp.first_done >= 0 ? t_end - lp.t_first : 0.0;
	res->finish_seconds = ul_clock() - t_end;
	nn_free_mem(lp.snap);
	nn_optimizer_free(lp.opt);
}

/* The unlearning loop on a request; see unlearn_core.h. */
int
ul_unlearn_request(nn_model *m, const ul_request *req, const ul_options *o,
				   ul_progress_callback cb, void *cb_arg,
				   ul_result *result, char *err, size_t errlen)
{
	ul_ctx		c;
	ul_result	res;
	double		t0 = ul_clock();

	memset(&res, 0, sizeof(res));
	res.forget_steps = -1;
	if (result)
		*result = res;
	if (ul_check_args(m, req, o, err, errlen))
		return -1;

	/* set-up: the RNG first, then everything computed on theta0 */
	ul_ctx_init(&c, m, req, o);

	/* the loop, then the state handed back and what it achieves */
	ul_attempt(&c, cb, cb_arg, t0, &res);
	if (result)
		*result = res;
	ul_ctx_free(&c);
	return 0;
}

/* The old signature (the unit tests and bench/core_bench.c call it): builds the request. */
int
ul_unlearn(nn_model *m,
		   const float *Xf, const int *yf, int k, const int *new_labels,
		   const float *Xp, const int *yp, int np,
		   const float *Xr, const int *yr, int nr,
		   const ul_options *o,
		   ul_progress_callback cb, void *cb_arg,
		   ul_result *result, char *err, size_t errlen)
{
	ul_request	req;

	req.forget.X = Xf;
	req.forget.y = yf;
	req.forget.n = k;
	req.new_labels = new_labels;
	req.prior.X = Xp;
	req.prior.y = yp;
	req.prior.n = np;
	req.replay.X = Xr;
	req.replay.y = yr;
	req.replay.n = nr;
	req.forget_target = NULL;
	req.prior_target = NULL;
	req.replay_logits = NULL;
	return ul_unlearn_request(m, &req, o, cb, cb_arg, result, err, errlen);
}
