/*
 * throttle.c: the background worker's share of the CPU while sessions write.
 *
 * On a machine with few cores, a worker computing flat out slows the
 * sessions' durable commits, whatever its scheduling priority: on 2 cores,
 * two busy threads at SCHED_IDLE halved a durable server's commit rate, and
 * the worker retraining a model during a stream of single-row DELETEs cut
 * it to 0.5 (docs/benchmarks.md, "The worker's share of the CPU").  So while
 * other sessions commit transactions that were given an xid, the worker
 * runs OpenBLAS on one thread, in slices of THROTTLE_SLICE_MS, and pauses
 * after each, so that it computes unlearn.worker_cpu_share percent of the
 * wall-clock time (each pause at most THROTTLE_MAX_PAUSE_MS, so below about
 * 10 % the share is not kept).  When no session has committed a write since
 * the last slice, it computes flat out on unlearn.threads threads: on a quiet
 * server a request's latency is what it was.
 *
 * The slices end at the core's forward passes (its interrupt hook, blas.c),
 * which every training batch, unlearning step and evaluation chunk makes on
 * the process's own thread, and between the chunks of rows read from a
 * table (data.c), so each costs one clock read here.  Sessions count their
 * commits in shared memory (launcher.c); the worker's own are not counted.
 * A pause shows in pg_stat_activity as the worker's wait event
 * Timeout:PgSleep (test/crash scenario l).
 */
#include "postgres.h"

#include "miscadmin.h"
#include "pgstat.h"
#include "portability/instr_time.h"
#include "utils/wait_event.h"

#include "unlearn_pg.h"
#include "worker.h"

#define THROTTLE_SLICE_MS 10.0	/* compute at least this long between checks */
#define THROTTLE_MAX_PAUSE_MS 100.0 /* longest pause: a run's latency stays bounded */

int			unlearn_worker_cpu_share = 50;	/* percent */

static bool armed = false;		/* this process throttles (the worker, share < 100) */
static instr_time slice_start;
static uint64 commits_seen;
static double paused_total = 0;	/* seconds paused since the process started */

/* Milliseconds since the current slice started. */
static double
slice_ms(void)
{
	instr_time	now;

	INSTR_TIME_SET_CURRENT(now);
	INSTR_TIME_SUBTRACT(now, slice_start);
	return INSTR_TIME_GET_MILLISEC(now);
}

/* Seconds this process has paused for the sessions since it started (a run's metrics take a difference). */
double
unlearn_throttle_paused(void)
{
	return paused_total;
}

/* Starts a fresh slice: commits before now do not count (called when the worker claims work). */
void
unlearn_throttle_reset(void)
{
	if (armed)
		unlearn_blas_limit_threads(false);
	armed = unlearn_in_worker && unlearn_worker_cpu_share < 100;
	commits_seen = unlearn_session_commits();
	INSTR_TIME_SET_CURRENT(slice_start);
}

/*
 * At a forward pass: once the slice has lasted THROTTLE_SLICE_MS, pause for
 * the time that keeps the share if sessions committed writes meanwhile,
 * then start the next slice.
 */
void
unlearn_throttle_point(void)
{
	double		busy_ms;
	uint64		commits;
	bool		writing;

	if (!armed)
		return;
	/* step 1: is the slice over? */
	busy_ms = slice_ms();
	if (busy_ms < THROTTLE_SLICE_MS)
		return;
	/* step 2: did sessions write meanwhile?  Then OpenBLAS on one thread, and a pause for the rest of the share. */
	commits = unlearn_session_commits();
	writing = commits != commits_seen;
	unlearn_blas_limit_threads(writing);
	if (writing)
	{
		double		pause_ms = busy_ms * (100 - unlearn_worker_cpu_share) / unlearn_worker_cpu_share;

		Assert(unlearn_worker_cpu_share >= 1 && unlearn_worker_cpu_share < 100);
		commits_seen = commits;
		/* pg_usleep, not WaitLatch: the latch is set by every commit that queues requests */
		pgstat_report_wait_start(WAIT_EVENT_PG_SLEEP);
		pg_usleep((long) (Min(pause_ms, THROTTLE_MAX_PAUSE_MS) * 1000.0));
		pgstat_report_wait_end();
		/* the time actually paused: a signal may end the sleep early */
		paused_total += Max(slice_ms() - busy_ms, 0.0) / 1000.0;
	}
	/* step 3: the next slice */
	INSTR_TIME_SET_CURRENT(slice_start);
}
