/*
 * model_size.c: the cap on what one training run allocates
 * (unlearn.max_model_size), checked before anything is allocated.
 */
#include "postgres.h"

#include <math.h>

#include "unlearn_pg.h"

int			unlearn_max_model_size = 1024 * 1024;	/* kB: 1 GB */

/*
 * Bytes a training run of this shape allocates: the parameters four times
 * over (weights, gradient, the serialised copy stored as the version, and
 * SGD's velocity) plus Adam's second moment, and the batch workspace
 * (activations, hidden deltas, probabilities, the gathered batch and, with
 * standardize, its standardised copy).
 */
static double
training_bytes(int n_features, int n_hidden, const int *hidden, int n_classes,
			   const nn_train_options *o, int64 n_rows)
{
	double		params = 0,
				units = 0;
	int			prev = n_features;
	int			batch = (int) Min((int64) Max(o->batch_size, 1), Max(n_rows, 1));
	int			copies = o->optimizer == NN_OPT_ADAM ? 5 : 4;

	/* parameters: weights and biases of every layer */
	for (int l = 0; l <= n_hidden; l++)
	{
		int			out = l < n_hidden ? hidden[l] : n_classes;

		params += (double) prev * out + out;
		units += 2.0 * out;		/* activations and deltas; logits and probabilities */
		prev = out;
	}
	/* parameters and their copies, then the batch workspace and gathered rows */
	return params * sizeof(float) * copies +
		(double) batch * (units + n_features * (o->standardize ? 2.0 : 1.0)) * sizeof(float);
}

/* Errors (54000) when a training run of this shape would exceed unlearn.max_model_size. */
void
unlearn_check_model_size(const char *model, int n_features, int n_hidden, const int *hidden,
						 int n_classes, const nn_train_options *o, int64 n_rows)
{
	double		bytes = training_bytes(n_features, n_hidden, hidden, n_classes, o, n_rows);

	if (bytes > (double) unlearn_max_model_size * 1024.0)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("training model \"%s\" would allocate about %.0f kB, more than unlearn.max_model_size (%d kB)",
						model, ceil(bytes / 1024.0), unlearn_max_model_size),
				 errdetail("Parameters, gradient and optimiser state of a %d-feature network with %d hidden layer(s) and %d classes, and a batch of %d rows.",
						   n_features, n_hidden, n_classes, (int) Min((int64) Max(o->batch_size, 1), Max(n_rows, 1))),
				 errhint("Choose narrower hidden layers, or raise unlearn.max_model_size (a superuser setting).")));
}
