/*
 * gradcheck.h: the finite-difference gradient check shared by the unit tests.
 */
#ifndef UNLEARN_GRADCHECK_H
#define UNLEARN_GRADCHECK_H

#include "nn.h"

/* Whether an analytic and a central-difference derivative agree to ~1% (plus a small absolute slack). */
int			grad_agrees(double analytic, double numeric);

/*
 * Compare nn_backward's parameter and input gradients on (X, y) with central
 * differences of the summed CE, skipping the few coordinates whose
 * perturbation crosses a ReLU kink or changes a pool's choice; CHECKs that
 * enough were compared and returns the number of mismatches.
 */
int			check_gradients(nn_model *m, const float *X, const int *y, int n);

#endif
