/*
 * test_mia.c: the membership-inference attack: it separates members with
 * low loss from non-members with high loss, stays at chance when the two
 * sides look alike, and matches a hand-checked optimum.
 */
#include <math.h>

#include "mia.h"
#include "unit.h"

/* Members have low loss, non-members high: the attack must separate them. */
UNIT_TEST(mia_separates_low_from_high_loss)
{
	double		members[200],
				nonmembers[100];
	ul_mia_attack att;

	for (int i = 0; i < 200; i++)
		members[i] = 0.05 + 0.001 * i;		/* 0.05 .. 0.25 */
	for (int i = 0; i < 100; i++)
		nonmembers[i] = 1.0 + 0.02 * i;		/* 1.0 .. 3.0 */
	CHECK(ul_mia_fit(members, 200, nonmembers, 100, &att) == 0);
	CHECK(att.b < 0);						/* higher loss, less likely a member */
	CHECK(att.balanced_accuracy > 0.99);
	CHECK(ul_mia_member_probability(&att, 0.1) > 0.9);
	CHECK(ul_mia_member_probability(&att, 2.5) < 0.1);
}

/* Identical distributions: no signal, probability about one half everywhere. */
UNIT_TEST(mia_is_at_chance_without_signal)
{
	double		m[100],
				n[100];
	ul_mia_attack att;

	for (int i = 0; i < 100; i++)
		m[i] = n[i] = 0.01 * i;
	CHECK(ul_mia_fit(m, 100, n, 100, &att) == 0);
	CHECK(fabs(att.b) < 1e-6);
	CHECK_CLOSE(ul_mia_member_probability(&att, 0.3), 0.5, 1e-6);
}

/*
 * Two points a side: members {0, 1}, non-members {2, 3}.  By symmetry the
 * optimum has its decision boundary at 1.5 (a = -1.5 b).
 */
UNIT_TEST(mia_boundary_is_symmetric)
{
	double		m[2] = {0, 1},
				n[2] = {2, 3};
	ul_mia_attack att;

	CHECK(ul_mia_fit(m, 2, n, 2, &att) == 0);
	CHECK(att.b < 0);
	CHECK_CLOSE(-att.a / att.b, 1.5, 1e-6);
	CHECK_CLOSE(att.balanced_accuracy, 1.0, 1e-12);
}

/* Loss clipping and empty inputs. */
UNIT_TEST(mia_loss_and_bad_input)
{
	ul_mia_attack att;
	double		x = 1;

	CHECK_CLOSE(ul_mia_loss(1.0), 0.0, 1e-12);
	CHECK_CLOSE(ul_mia_loss(exp(-2.0)), 2.0, 1e-9);
	CHECK_CLOSE(ul_mia_loss(0.0), 30.0, 1e-12);
	CHECK(ul_mia_fit(&x, 0, &x, 1, &att) == -1);
	CHECK(ul_mia_fit(&x, 1, &x, 0, &att) == -1);
}

const unit_case mia_tests[] = {
	UNIT_ENTRY(mia_separates_low_from_high_loss),
	UNIT_ENTRY(mia_is_at_chance_without_signal),
	UNIT_ENTRY(mia_boundary_is_symmetric),
	UNIT_ENTRY(mia_loss_and_bad_input),
	{NULL, NULL}
};
