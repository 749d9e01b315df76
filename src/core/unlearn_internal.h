/*
 * unlearn_internal.h: what the files of the unlearning loop share (not part
 * of the API in unlearn_core.h).
 *
 *   pgd.c              targeted L2 PGD (ul_pgd_targeted)
 *   mas.c              MAS importance weights (ul_mas_weights)
 *   unlearn_options.c  method names and per-method default options
 *   unlearn_terms.c    the stop rule and the gradient of each step's loss
 *   unlearn_replay.c   what the default method prepares from the replay rows
 *   unlearn_anchors.c  PGD and MAS in the default method (eps from the data,
 *                      soft targets, boundary anchors, MAS anchor, saliency mask)
 *   unlearn_setup.c    argument checks; the context's set-up and release
 *   unlearn_loop.c     ul_unlearn: the loop's phases and its results
 */
#ifndef UNLEARN_UNLEARN_INTERNAL_H
#define UNLEARN_UNLEARN_INTERNAL_H

#include "nn_internal.h"
#include "unlearn_core.h"

#define UL_CHUNK 256			/* rows per forward/backward chunk */
#define UL_MAX_GUARD 8192		/* cap on guard rows */
#define UL_SELECT_ROWS 2048		/* replay rows for model selection (no held-out rows) and the anchors */
#define UL_STOP_ROWS 2048		/* repair_stop: held-out replay rows, at most ... */
#define UL_STOP_SHARE 8			/* ... and at most 1/8 of the replay sample ... */
#define UL_STOP_MIN_ROWS 100	/* ... and at least this many (else no early stop) */

/* Everything the loop owns (all of it nn_alloc'd) and the request it serves. */
typedef struct ul_ctx
{
	nn_model   *m;
	const ul_options *o;
	const ul_request *req;
	int			F,
				C;
	int			nc;				/* constraint rows: k forget rows, then prior rows */
	int			k;
	float	   *Xc;				/* nc x F */
	int		   *yc;				/* label to avoid (mode 0) or to reach (mode 1) */
	unsigned char *want;		/* 1: must predict yc; 0: must not predict yc */
	float	   *tl;				/* NULL, or per constraint row the target loss on yc
								 * (target "unseen"; NaN: that row must not predict yc) */
	float	   *tg0;			/* with tl: each row's logit gap under theta0 */
	int			pull_rows;		/* with tl: constraint rows 0..pull_rows-1 past their target are pulled back */
	int			n_pulled;		/* target rows out of their band at the latest check */
	float	   *dlp;			/* with tl: wsb x C, the pulls' logit gradients */
	float	   *gpull;			/* with tl: the pulls' parameter gradient (latest check) */
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
	float	   *advsoft;		/* pgd_anchor: theta0's softmax on the adversarial rows, or NULL */
	float	   *smask;			/* saliency_share: 0/1 per parameter, or NULL */
	int			nadv;
	int			adv_pos,
				f_pos,
				r_pos;
	int		   *rperm;
	int		   *rbi;			/* replay row of each batch slot */
	int			nr;				/* replay rows trained on: the first nr of the sample */
	int			nh;				/* repair_stop: held-out replay rows [nr, nr + nh), never trained on */
	int		   *h_pred0;		/* theta0's predictions on them */
	float	   *h_ce0;			/* theta0's cross-entropy on each of them */
	int		   *h_pred;			/* the predictions at the latest selection check */
	float	   *h_ce;			/* the cross-entropies at the latest selection check */
	float	   *rsoft;			/* nr x C replay targets (distill > 0) or NULL */
	int		   *gidx;			/* guard rows (indices into the replay rows) */
	int			ng,
				g_pos;
	nn_rng		rng;
	float		replay_scale;	/* default method: shrinks while rows refuse to be forgotten,
								 * doubles back in the repair phase */
} ul_ctx;

/*
 * Cross-entropy of one logit row z on class y, in the float the target
 * "unseen" compares: the stop rule (ul_satisfied) and ul_row_losses (the
 * extension's re-checks) share it, so both judge a row the same.
 */
static inline float
ul_row_ce(const float *z, int C, int y)
{
	return (float) (nn_row_logsumexp(z, C) - z[y]);
}

/* ---------- unlearn_setup.c ---------- */
int			ul_check_args(const nn_model *m, const ul_request *q, const ul_options *o,
						  char *err, size_t errlen);
void		ul_ctx_init(ul_ctx *c, nn_model *m, const ul_request *req, const ul_options *o);
void		ul_ctx_free(ul_ctx *c);

/* ---------- unlearn_terms.c ---------- */
int			ul_satisfied(const ul_ctx *c, int i, const float *z);
int			ul_check(ul_ctx *c, float margin, float hinge_scale, int *n_active);
void		ul_target_start_gaps(ul_ctx *c);
void		ul_ce_grad(ul_ctx *c, ul_rows rows, float scale);
ul_rows		ul_take_cyclic(ul_ctx *c, ul_rows src, int *pos, int nb);
void		ul_imp_grad(ul_ctx *c, float lambda);
double		ul_forget_ce(ul_ctx *c, const int *labels);
void		ul_grad_faithful(ul_ctx *c);
void		ul_grad_replay(ul_ctx *c);

/* ---------- unlearn_replay.c ---------- */
void		ul_make_guard(ul_ctx *c, int per);
double		ul_replay_loss(ul_ctx *c);
void		ul_make_soft_targets(ul_ctx *c, float distill);
void		ul_holdout_eval(ul_ctx *c, const float *logits, float *ce, int *pred);
double		ul_holdout_loss(ul_ctx *c);
int			ul_holdout_repaired(const ul_ctx *c);

/* ---------- unlearn_anchors.c ---------- */
void		ul_data_eps(ul_ctx *c, float scale, int steps, float *eps, float *alpha);
float	   *ul_softmax_rows(ul_ctx *c, const float *X, const int *y, int n, const float *logits);
void		ul_soft_ce_grad(ul_ctx *c, const float *X, const int *y, const float *T,
							const int *idx, int nb, float scale);
void		ul_anchor_grad(ul_ctx *c);
void		ul_make_imp_weights(ul_ctx *c);
void		ul_make_saliency_mask(ul_ctx *c, float share);
void		ul_mask_grad(ul_ctx *c);

#endif							/* UNLEARN_UNLEARN_INTERNAL_H */
