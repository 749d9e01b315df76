/*
 * model_size.c: the cap on what one training run allocates
 * (unlearn.max_model_size), checked before anything is allocated.
 */
#include "postgres.h"

#include <math.h>

#include "options.h"
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

/* The rows of one training batch: batch_size, at most the rows there are. */
static int
batch_rows(const nn_train_options *o, int64 n_rows)
{
	return (int) Min((int64) Max(o->batch_size, 1), Max(n_rows, 1));
}

/*
 * Errors (54000) when bytes exceed unlearn.max_model_size; `what` is the run
 * ("training", "unlearning with"), detail says what was counted.
 */
static void
check_bytes(const char *what, const char *model, double bytes, const char *detail, const char *hint)
{
	if (bytes > (double) unlearn_max_model_size * 1024.0)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("%s model \"%s\" would allocate about %.0f kB, more than unlearn.max_model_size (%d kB)",
						what, model, ceil(bytes / 1024.0), unlearn_max_model_size),
				 errdetail("%s", detail),
				 errhint("%s", hint)));
}

/* Errors (54000) when a training run of this shape would exceed unlearn.max_model_size. */
void
unlearn_check_model_size(const char *model, int n_features, int n_hidden, const int *hidden,
						 int n_classes, const nn_train_options *o, int64 n_rows)
{
	check_bytes("training", model, training_bytes(n_features, n_hidden, hidden, n_classes, o, n_rows),
				psprintf("Parameters, gradient and optimiser state of a %d-feature network with %d hidden layer(s) and %d classes, and a batch of %d rows.",
						 n_features, n_hidden, n_classes, batch_rows(o, n_rows)),
				"Choose narrower hidden layers, or raise unlearn.max_model_size (a superuser setting).");
}

/*
 * The same for a layer list (convolutional): the parameters as above, and
 * the workspace the core plans for a batch (every stage's output, its
 * gradient and pool indices, the dense activations, the standardised input
 * and the two im2col buffers), plus the gathered batch.
 */
void
unlearn_check_layers_size(const char *model, const UnlearnArch *arch, int n_classes,
						  const nn_train_options *o, int64 n_rows)
{
	int			batch = batch_rows(o, n_rows);
	uint64_t	n_params,
				ws_floats;
	char		err[256];
	int			features = arch->in_shape[0] * arch->in_shape[1] * arch->in_shape[2];

	if (nn_plan_layers(arch->in_shape, arch->n_specs, arch->specs, n_classes, batch,
					   &n_params, &ws_floats, err, sizeof(err)) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid network shape: %s", err)));
	check_bytes("training", model, ((double) n_params * (o->optimizer == NN_OPT_ADAM ? 5 : 4) +
						(double) ws_floats + (double) batch * features) * sizeof(float),
				psprintf("Parameters, gradient and optimiser state of a network of %d layer(s) on %d x %d x %d inputs with %d classes, and the workspace of a batch of %d rows.",
						 arch->n_specs, arch->in_shape[0], arch->in_shape[1], arch->in_shape[2],
						 n_classes, batch),
				"Choose fewer filters or narrower layers, a smaller batch_size, or raise unlearn.max_model_size (a superuser setting).");
}

/*
 * Errors (54000) when an unlearning run of these options on this request
 * would allocate more than unlearn.max_model_size for its rows (the core's
 * estimate; the model's own size was held to the cap by its training): an
 * owner's options (adv_batch, adv_per_row) must not take the memory of the
 * worker that serves every model, or of the server.
 */
void
unlearn_check_unlearn_size(const char *model, const nn_model *net, const ul_request *req, const ul_options *o)
{
	check_bytes("unlearning with", model, ul_request_bytes(net, req, o),
				psprintf("The workspace of the largest batch (forget_batch %d, adv_batch %d, replay_batch %d, at least 256 rows), the adversarial examples (adv_per_row %d for each of %d rows, when the method makes them) and the rows' targets.",
						 o->forget_batch, o->adv_batch, o->replay_batch, o->adv_per_row, req->forget.n),
				"Lower adv_batch, adv_per_row or replay_batch in the run's options, or raise unlearn.max_model_size (a superuser setting).");
}
