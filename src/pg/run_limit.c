/*
 * run_limit.c: the worker's time limit on one run (unlearn.max_run_time).
 *
 * One worker serves every model of a database, and a model's owner chooses
 * its auto_options (step budgets) and training options (what an exact
 * retrain replays).  Without a bound, one owner's model could hold the
 * worker while every other model's requests wait.  A run (or a
 * consolidation, or a samples' refresh) that lasts longer is cancelled at
 * its next interrupt check: a timeout sets the cancel flag, as PostgreSQL's
 * statement_timeout does, and the step's error says which limit it hit.  The
 * failed run counts as an attempt of its requests (queue.c), so such a
 * request fails for good after unlearn.max_attempts and stops coming back.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/latch.h"
#include "utils/elog.h"
#include "utils/timeout.h"

#include "worker.h"

int			unlearn_max_run_time = 300000;	/* ms; 0 = no limit */

static TimeoutId run_timeout = MAX_TIMEOUTS;	/* registered at the worker's start */
static volatile sig_atomic_t run_time_exceeded = false; /* the armed limit fired */
static int	armed_ms = 0;		/* the limit of the step under way, for its message */

/* The timeout's handler (signal context): ask for a cancel, as statement_timeout does. */
static void
run_timeout_handler(void)
{
	run_time_exceeded = true;
	QueryCancelPending = true;
	InterruptPending = true;
	SetLatch(MyLatch);
}

/* Worker start-up: registers the timeout (once per process). */
void
unlearn_run_limit_init(void)
{
	Assert(run_timeout == MAX_TIMEOUTS);
	run_timeout = RegisterTimeout(USER_TIMEOUT, run_timeout_handler);
}

/* Before a step that runs for a model: arms the limit, if one is set. */
void
unlearn_run_limit_arm(void)
{
	Assert(run_timeout != MAX_TIMEOUTS);
	run_time_exceeded = false;
	armed_ms = unlearn_max_run_time;
	if (armed_ms > 0)
		enable_timeout_after(run_timeout, armed_ms);
}

/*
 * At the end of every step of the worker, whether it committed or failed
 * (in its error handler, after unlearn_run_limit_explain): disarms the
 * limit, if armed.  A cancel the limit asked for and nothing took (the step
 * ended first) is withdrawn, so that it cannot cancel the queue's
 * bookkeeping that follows.
 */
void
unlearn_run_limit_disarm(void)
{
	Assert(run_timeout != MAX_TIMEOUTS);
	if (get_timeout_active(run_timeout))
		disable_timeout(run_timeout, false);
	if (run_time_exceeded)
		QueryCancelPending = false;
	run_time_exceeded = false;
}

/*
 * In the step's error handler: when the limit cancelled it, the error says
 * so (57014, with the limit) instead of "canceling statement due to user
 * request".  Returns whether it did.
 */
bool
unlearn_run_limit_explain(ErrorData *edata)
{
	if (!run_time_exceeded || edata->sqlerrcode != ERRCODE_QUERY_CANCELED)
		return false;
	if (edata->message)
		pfree(edata->message);
	edata->message = psprintf("the run exceeded unlearn.max_run_time (%d ms) and was cancelled", armed_ms);
	return true;
}
