/*
 * mia.h: a membership-inference attack for audits, plain C.
 *
 * The attack is a one-feature logistic regression on a row's loss
 * (-log of the true-class probability): fit on rows the model trained on
 * (members) against rows it never saw (non-members), each side weighted to
 * count equally.  Applied to forgotten rows it tells how many still look
 * like training rows.
 */
#ifndef UNLEARN_MIA_H
#define UNLEARN_MIA_H

typedef struct ul_mia_attack
{
	double		a;				/* intercept */
	double		b;				/* slope on the loss */
	double		balanced_accuracy;	/* on the rows it was fit on */
} ul_mia_attack;

/* Loss of a row from its true-class probability, clipped so p = 0 stays finite. */
double		ul_mia_loss(double true_class_probability);

/*
 * Fits the attack by Newton's method (with a small L2 penalty on the slope so separable
 * data converge).  Returns 0, or -1 if either side is empty.
 */
int			ul_mia_fit(const double *member_loss, int n_members,
					   const double *nonmember_loss, int n_nonmembers,
					   ul_mia_attack *out);

/* Probability the attack gives that a row with this loss is a member. */
double		ul_mia_member_probability(const ul_mia_attack *attack, double loss);

#endif							/* UNLEARN_MIA_H */
