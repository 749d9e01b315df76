/*
 * bench_opts.c: "key=value" changes of ul_options for the core benchmarks'
 * --set / --fset arguments; see bench_opts.h.
 */
#include <stdlib.h>
#include <string.h>

#include "bench_opts.h"

/* Sets one option of o from "key=value"; 0 on success. */
int
bench_set_option(ul_options *o, const char *kv)
{
	char		key[64];
	const char *eq = strchr(kv, '=');
	double		v;

	if (!eq || eq - kv >= (long) sizeof(key))
		return -1;
	memcpy(key, kv, eq - kv);
	key[eq - kv] = '\0';
	v = atof(eq + 1);
#define F(name) if (strcmp(key, #name) == 0) { o->name = (float) v; return 0; }
#define I(name) if (strcmp(key, #name) == 0) { o->name = (int) v; return 0; }
	F(lr) F(momentum) F(weight_decay) F(margin) F(replay_weight) F(adv_weight)
	F(imp_lambda) F(pgd_eps) F(pgd_alpha) F(forget_weight) F(distill) F(guard_weight) F(repair_lr)
	F(pgd_eps_scale) F(saliency_share)
	I(guard_per_row)
	I(optimizer)
	I(replay_batch) I(repair_steps) I(repair_stop) I(forget_batch) I(adv_batch) I(adv_per_row)
	I(pgd_steps) I(max_passes) I(max_steps) I(pgd_anchor) I(imp_source)
#undef F
#undef I
	return -1;
}

/* Parses a comma list of ints into out (at most max); returns the count. */
int
bench_parse_ints(const char *s, int *out, int max)
{
	int			n = 0;

	while (*s && n < max)
	{
		out[n++] = atoi(s);
		s = strchr(s, ',');
		if (!s)
			break;
		s++;
	}
	return n;
}
