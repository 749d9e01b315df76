/*
 * mia.c: loss-threshold membership inference by logistic regression
 * (see mia.h), used by the audit functions.
 */
#include <math.h>

#include "mia.h"

#define MIA_MAX_LOSS 30.0
#define MIA_L2 1e-4
#define MIA_ITERATIONS 50

/* -log p, clipped to [0, MIA_MAX_LOSS]. */
double
ul_mia_loss(double p)
{
	double		l = p > 0.0 ? -log(p) : MIA_MAX_LOSS;

	if (l < 0.0)
		l = 0.0;
	return l > MIA_MAX_LOSS ? MIA_MAX_LOSS : l;
}

/* Logistic function, stable for large |z|. */
static double
sigmoid(double z)
{
	if (z >= 0)
		return 1.0 / (1.0 + exp(-z));
	else
	{
		double		e = exp(z);

		return e / (1.0 + e);
	}
}

/* Accumulates gradient and Hessian of the weighted log-loss for one side. */
static void
accumulate(const double *x, int n, double target, double weight, double a, double b,
		   double *ga, double *gb, double *haa, double *hab, double *hbb)
{
	for (int i = 0; i < n; i++)
	{
		double		p = sigmoid(a + b * x[i]);
		double		r = weight * (p - target);
		double		w = weight * p * (1.0 - p);

		*ga += r;
		*gb += r * x[i];
		*haa += w;
		*hab += w * x[i];
		*hbb += w * x[i] * x[i];
	}
}

/* Fits p(member | loss) = sigmoid(a + b * loss), members and non-members weighted equally. */
int
ul_mia_fit(const double *member_loss, int n_members,
		   const double *nonmember_loss, int n_nonmembers, ul_mia_attack *out)
{
	double		a = 0.0,
				b = 0.0;
	double		wm,
				wn;
	int			right_m = 0,
				right_n = 0;

	if (n_members <= 0 || n_nonmembers <= 0)
		return -1;
	wm = 0.5 / n_members;
	wn = 0.5 / n_nonmembers;
	for (int it = 0; it < MIA_ITERATIONS; it++)
	{
		/* the penalty is on the slope only: penalising the intercept would bias the boundary */
		double		ga = 0.0,
					gb = MIA_L2 * b,
					haa = 1e-12,
					hab = 0.0,
					hbb = MIA_L2;
		double		det,
					da,
					db;

		accumulate(member_loss, n_members, 1.0, wm, a, b, &ga, &gb, &haa, &hab, &hbb);
		accumulate(nonmember_loss, n_nonmembers, 0.0, wn, a, b, &ga, &gb, &haa, &hab, &hbb);
		det = haa * hbb - hab * hab;
		if (fabs(det) < 1e-300)
			break;
		da = (hbb * ga - hab * gb) / det;
		db = (haa * gb - hab * ga) / det;
		a -= da;
		b -= db;
		if (fabs(da) + fabs(db) < 1e-10)
			break;
	}
	out->a = a;
	out->b = b;
	for (int i = 0; i < n_members; i++)
		right_m += sigmoid(a + b * member_loss[i]) > 0.5;
	for (int i = 0; i < n_nonmembers; i++)
		right_n += sigmoid(a + b * nonmember_loss[i]) <= 0.5;
	out->balanced_accuracy = 0.5 * ((double) right_m / n_members + (double) right_n / n_nonmembers);
	return 0;
}

/* Member probability for one loss. */
double
ul_mia_member_probability(const ul_mia_attack *attack, double loss)
{
	return sigmoid(attack->a + attack->b * loss);
}
