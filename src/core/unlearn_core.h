/*
 * unlearn_core.h: instance-wise unlearning of a trained nn_model (Cha et al.,
 * AAAI 2024, "Learning to Unlearn"), plain C on top of nn.h.
 *
 * Given the model and the forget rows D_f (features and labels), change the
 * model in place so that every forget row is misclassified (forget mode) or
 * predicted as a given new label (relabel mode), keeping accuracy elsewhere.
 * Building blocks (targeted L2 PGD, MAS importance) are exposed for tests.
 */
#ifndef UNLEARN_UNLEARN_CORE_H
#define UNLEARN_UNLEARN_CORE_H

#include "nn.h"

/* ---------- targeted L2 PGD ---------- */

/*
 * For each of the n rows of X (true labels y) make `per_row` adversarial
 * examples with targeted L2 PGD on model m: target t != y drawn uniformly with
 * rng; random start inside the eps ball and the model's input box
 * [feat_lo, feat_hi]; `steps` steps of size alpha along the normalised
 * gradient of -CE(f(x+delta), t); after each step clip into the box and
 * rescale so ||delta||_2 <= eps.  Writes n*per_row rows to X_adv (row
 * i*per_row + j comes from row i) and their targets to t_adv.
 * On a standardized model all of this happens in the standardised space
 * (x - mean) / scale: eps, alpha and the box (feat_lo/feat_hi mapped the same
 * way) are measured there, and X_adv is mapped back to raw features at the
 * end; with mean 0 and scale 1 the result is bit-identical to an
 * unstandardized model's.
 */
void		ul_pgd_targeted(const nn_model *m, const float *X, const int *y, int n,
							int per_row, float eps, float alpha, int steps,
							nn_rng *rng, float *X_adv, int *t_adv);

/* ---------- MAS importance ---------- */

/*
 * MAS importance of every parameter on the n rows of X:
 * omega = | d/dtheta mean_i ||logits_i||_2 |, then per parameter tensor
 * (each weight matrix and each bias vector separately) min-max normalised,
 * w = 1 - normalised omega; a tensor whose omega is constant (max == min)
 * gets w = 1 everywhere (it does not affect the rows, so it is anchored).
 * Writes m->n_params floats to `raw_omega` (if not NULL) and to `w`.
 */
void		ul_mas_weights(const nn_model *m, const float *X, int n,
						   float *raw_omega, float *w);

/* ---------- the unlearning loop ---------- */

typedef enum ul_method
{
	UL_METHOD_NEGGRAD = 0,		/* -CE on the forget rows only */
	UL_METHOD_ADV = 1,			/* -CE forget + CE on targeted-PGD examples */
	UL_METHOD_ADV_IMP = 2,		/* ADV + MAS-weighted L2 anchor to theta0 (the paper) */
	UL_METHOD_DEFAULT = 3		/* our measured best; see docs/method.md */
} ul_method;

const char *ul_method_name(ul_method m);			/* "neggrad", "adv", "adv+imp", "default" */
int			ul_method_from_name(const char *name, ul_method *out);	/* 0 on success */

typedef struct ul_options
{
	ul_method	method;
	float		lr;				/* paper: 1e-3 */
	float		momentum;		/* paper: 0.9 */
	float		weight_decay;	/* paper: 1e-4 */
	int			forget_batch;	/* paper: 32 */
	int			adv_batch;		/* paper: 256 */
	int			adv_per_row;	/* paper: 20 */
	float		pgd_eps;		/* paper: 4.0 (CIFAR, [0,1] pixels) */
	float		pgd_alpha;		/* paper: 0.1 */
	int			pgd_steps;		/* paper: 100 */
	float		imp_lambda;		/* paper: 1.0 */
	int			max_passes;		/* cap on passes over the adversarial set (over the
								 * forget set for neggrad and default); paper: 1000 */
	int			max_steps;		/* hard cap on optimiser steps (0 = none) */
	uint64_t	seed;
	/*
	 * Knobs of the default method (ignored by the faithful ones).  The
	 * default loss per step is forget_weight * mean hinge over the forget and
	 * prior rows still inside `margin` + replay_weight * CE on replay_batch
	 * replay rows (targets mixed with theta0's softmax by `distill`); after
	 * the stop, up to max(repair_steps, the steps until the stop) more steps
	 * (repair_steps = 0: none), handing back the satisfying state with the
	 * lowest replay loss.  See docs/method.md.
	 */
	float		margin;			/* bounded forget loss margin */
	float		replay_weight;	/* weight of CE on replayed remaining rows */
	int			replay_batch;	/* remaining rows per step */
	int			repair_steps;	/* steps of the repair phase after the stop (its cap, raised
								 * to the forget phase's steps when that was longer; 0 = none) */
	int			repair_stop;	/* default method: end the repair phase as soon as a
								 * held-out slice of the replay rows is repaired
								 * (0 = run all repair_steps); see docs/method.md */
	float		repair_lr;		/* default method: lr of the repair phase (0 = lr) */
	float		adv_weight;		/* default method: weight of the ADV term (0 = no PGD) */
	float		forget_weight;	/* default method: weight of the margin forget term */
	float		distill;		/* default method: replay targets mix one-hot labels
								 * (0) with theta0's softmax on the row (1) */
	int			guard_per_row;	/* default method: nearest replay rows guarded per forget/prior row */
	float		guard_weight;	/* default method: weight of CE on the guard rows */
	/*
	 * PGD and MAS inside the default method (off in it: see the ablation in
	 * docs/method.md).  pgd_anchor = 1 replays the adversarial examples of the
	 * forget rows toward theta0's softmax on them (boundary anchors) instead of
	 * their attack targets; pgd_eps_scale > 0 sets eps from the data: that
	 * share of the median distance (in the model's standardised space) from a
	 * forget row to the nearest replay row of another class, with alpha =
	 * 2.5 eps / pgd_steps.  imp_source = 1 computes the MAS importance on the
	 * replay rows and anchors the weights they rely on (w = normalised omega)
	 * instead of the paper's w = 1 - normalised omega of the forget rows.
	 * saliency_share in (0, 1] updates only that share of each tensor's
	 * parameters, those with the largest MAS importance on the forget rows
	 * (a SalUn-style mask on the whole step); 0 = off.
	 */
	int			pgd_anchor;		/* default method: 1 = adversarial rows keep theta0's soft targets */
	float		pgd_eps_scale;	/* > 0: eps from the data (see above); 0 = pgd_eps as given */
	int			imp_source;		/* 0 = forget rows (paper), 1 = replay rows (anchor what they use) */
	float		saliency_share; /* default method: share of parameters updated (0 = all) */
	nn_optimizer_kind optimizer;	/* SGD for the paper's methods */
} ul_options;

/* Fill o with the defaults of `method` (faithful paper values for the paper's methods). */
void		ul_options_default(ul_options *o, ul_method method);

typedef struct ul_result
{
	int			steps;			/* optimiser steps taken (repair included) */
	int			forgotten;		/* forget rows misclassified (forget mode) or
								 * predicted as their new label (relabel mode)
								 * at the end */
	int			prior_kept;		/* of the prior rows, how many are misclassified at the end */
	int			success;		/* every forget row (and every prior row) satisfied */
	double		final_forget_loss;	/* mean CE of the forget rows at the end, w.r.t.
									 * their true labels (forget mode) or their
									 * new labels (relabel mode) */
	int			forget_steps;	/* steps until every row was first satisfied (-1: never) */
	int			aborted;		/* the progress callback asked to stop; params restored to theta0 */
	int			repaired_stop;	/* the repair phase ended early: held-out slice repaired */
	/* wall-clock seconds of the phases (reported only; the computation never reads a clock) */
	double		setup_seconds;	/* checks, constraint rows, soft targets, guard rows, PGD, MAS */
	double		forget_seconds; /* the loop until every row was first satisfied (all of it if never) */
	double		repair_seconds; /* the rest of the loop: the repair phase and model selection */
	double		finish_seconds; /* the selected state handed back, the final accounting */
} ul_result;

/*
 * Called every few steps; nonzero return aborts (result.success = 0).  The
 * extension uses it to check for interrupts and report progress.
 */
typedef int (*ul_progress_callback) (void *arg, int step, int satisfied, int total);

/* A set of rows: n rows of X (n x features, row-major) and their labels y. */
typedef struct ul_rows
{
	const float *X;
	const int  *y;
	int			n;
} ul_rows;

/*
 * What one unlearning request asks for; see ul_unlearn for the meaning of each set.
 * Target losses (forget mode only): a row with a finite target is satisfied once
 * its cross-entropy on its true label reaches the target (it looks like a row
 * the model never saw, target "unseen") or, whichever comes first, once it is
 * misclassified; a NULL array or a NaN entry keeps the row's criterion
 * "misclassified".
 */
typedef struct ul_request
{
	ul_rows		forget;			/* the forget rows and their true (current) labels */
	const int  *new_labels;		/* NULL: forget mode; else forget.n labels (relabel mode) */
	ul_rows		prior;			/* rows of earlier requests that must stay forgotten; may be empty */
	ul_rows		replay;			/* sample of remaining rows the default method replays; may be empty */
	const float *forget_target;	/* NULL or forget.n target losses (NaN: misclassify) */
	const float *prior_target;	/* NULL or prior.n target losses (NaN: misclassify) */
	/*
	 * The model's logits on the replay rows (replay.n x classes, as
	 * nn_predict_logits gives them), when the caller has them already (the
	 * worker's warm samples): the set-up then takes theta0's soft targets
	 * and held-out slice from them instead of a forward pass.  NULL:
	 * computed.
	 */
	const float *replay_logits;
} ul_request;

/*
 * Bytes a run of these options on this request allocates for its rows (the
 * batch workspace, adversarial examples, replay targets; not the parameters'
 * copies): an estimate that errs high, which the extension checks against
 * unlearn.max_model_size before the run.
 */
double		ul_request_bytes(const nn_model *m, const ul_request *req, const ul_options *o);

/* ul_unlearn on a request (the same computation, bit for bit). */
int			ul_unlearn_request(nn_model *m, const ul_request *req, const ul_options *o,
							   ul_progress_callback cb, void *cb_arg,
							   ul_result *result, char *err, size_t errlen);

/*
 * Unlearn (or relabel) in place (kept with this signature for the tests; it
 * builds a ul_request and calls ul_unlearn_request).
 *   Xf, yf, k:      the forget rows and their true (current) labels.
 *   new_labels:     NULL for forget mode; else k target labels (relabel mode).
 *   Xp, yp, np:     prior rows (forgotten by earlier requests) that must stay
 *                   misclassified (continual unlearning); may be NULL/0.
 *   Xr, yr, nr:     a sample of remaining rows the default method may replay;
 *                   may be NULL/0 (the faithful methods ignore it).  Pass a
 *                   uniform random sample of min(remaining, 16384) rows
 *                   (measured in docs/method.md; 4096 also meets the targets).
 * Every step evaluates all k + np forget and prior rows (the stop rule).
 * Returns 0 on success, -1 on bad arguments (message in err); whether every
 * row was satisfied is result->success (0 also when the step cap was hit,
 * then the model is left in its last state, or when the callback aborted,
 * then the parameters are restored to their input values).
 * Deterministic: the same inputs, options and seed give the same bytes.
 */
int			ul_unlearn(nn_model *m,
					   const float *Xf, const int *yf, int k, const int *new_labels,
					   const float *Xp, const int *yp, int np,
					   const float *Xr, const int *yr, int nr,
					   const ul_options *o,
					   ul_progress_callback cb, void *cb_arg,
					   ul_result *result, char *err, size_t errlen);

/* ---------- target "unseen" (unseen.c) ---------- */

#define UL_UNSEEN_QUANTILES 33	/* points of the loss reference: quantiles 0, 1/32, ..., 1 */

/* Cross-entropy of each of the n rows of X on its label y under m, into loss (n). */
void		ul_row_losses(const nn_model *m, const float *X, const int *y, int n, float *loss);

/*
 * The nq quantiles (at j / (nq - 1), linear between order statistics) of n
 * losses, ascending, into q; loss is sorted in place.  n >= 1, nq >= 2.
 */
void		ul_loss_quantiles(float *loss, int n, int nq, float *q);

/*
 * The floor of a target: a row's target is at least its loss under the model
 * before the run with UL_UNSEEN_FLOOR_ODDS times the odds against its label
 * (ln(1 + 2 (e^l - 1)): about 2 l for small losses, its logit gap lowered by
 * ln 2), and at least UL_UNSEEN_MIN_TARGET (a loss of 0 in float), so always
 * above that loss: a reference that collapsed (held-out rows that duplicate
 * training rows) cannot make a row "forgotten" without the run changing it.
 */
#define UL_UNSEEN_FLOOR_ODDS 2.0
#define UL_UNSEEN_MIN_TARGET 1e-6f
float		ul_unseen_floor(float loss);

/*
 * Target losses for n forget rows from a reference of rows the model never saw
 * (nq quantiles, ascending): the rows are ranked by their loss under m, and
 * the row of rank r (0 = lowest) gets the reference's quantile at (r + 0.5) / n,
 * so the targets follow the reference's distribution and keep the rows' order
 * (a row that is hard for the model stays among the hard ones); a target not
 * above ul_unseen_floor(the row's loss under m) is raised to it.  Returns how
 * many targets the floor raised (0 to n), or -1 when memory runs out.
 */
int			ul_unseen_targets(const nn_model *m, const float *X, const int *y, int n,
							  const float *ref, int nq, float *target);

#endif							/* UNLEARN_UNLEARN_CORE_H */
