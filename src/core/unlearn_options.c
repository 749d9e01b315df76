/*
 * unlearn_options.c: the unlearning methods' names and default options
 * (faithful paper values for neggrad, adv and adv+imp; measured ones for
 * "default", see docs/method.md).
 */
#include <string.h>

#include "unlearn_internal.h"

static const char *const ul_names[] = {"neggrad", "adv", "adv+imp", "default"};

/* Name of a method. */
const char *
ul_method_name(ul_method m)
{
	if ((int) m < 0 || (int) m > UL_METHOD_DEFAULT)
		return "?";
	return ul_names[m];
}

/* Parses a method name ("adv_imp" is accepted for "adv+imp"); 0 on success. */
int
ul_method_from_name(const char *name, ul_method *out)
{
	if (name == NULL)
		return -1;
	for (int i = 0; i <= UL_METHOD_DEFAULT; i++)
		if (strcmp(name, ul_names[i]) == 0)
		{
			*out = (ul_method) i;
			return 0;
		}
	if (strcmp(name, "adv_imp") == 0)
	{
		*out = UL_METHOD_ADV_IMP;
		return 0;
	}
	return -1;
}

/* Fills o with the defaults of method (paper values for the faithful ones). */
void
ul_options_default(ul_options *o, ul_method method)
{
	memset(o, 0, sizeof(*o));
	o->method = method;
	o->lr = 1e-3f;
	o->momentum = 0.9f;
	o->weight_decay = 1e-4f;
	o->forget_batch = 32;
	o->adv_batch = 256;
	o->adv_per_row = 20;
	o->pgd_eps = 4.0f;
	o->pgd_alpha = 0.1f;
	o->pgd_steps = 100;
	o->imp_lambda = method == UL_METHOD_ADV_IMP ? 1.0f : 0.0f;
	o->max_passes = 1000;
	o->max_steps = 0;
	o->seed = 42;
	o->margin = 0.0f;
	o->replay_weight = 0.0f;
	o->replay_batch = 0;
	o->repair_steps = 0;
	o->adv_weight = method == UL_METHOD_ADV || method == UL_METHOD_ADV_IMP ? 1.0f : 0.0f;
	o->forget_weight = 1.0f;
	o->distill = 0.0f;
	o->guard_per_row = 0;
	o->repair_lr = 0.0f;
	o->guard_weight = 0.0f;
	o->optimizer = NN_OPT_SGD;
	if (method == UL_METHOD_DEFAULT)
	{
		/* measured on Fashion-MNIST, see docs/method.md */
		o->lr = 1e-2f;
		o->momentum = 0.0f;
		o->weight_decay = 0.0f;
		o->margin = 0.2f;
		o->forget_weight = 0.5f;
		o->replay_weight = 20.0f;
		o->replay_batch = 128;
		o->distill = 0.5f;
		o->repair_steps = 300;
		o->repair_stop = 1;
		o->adv_weight = 0.0f;
		o->imp_lambda = 0.0f;
		o->max_passes = 2000;
	}
}
