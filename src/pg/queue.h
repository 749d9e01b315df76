/*
 * queue.h: the queue of unlearning requests, unlearn.requests (queue.c).
 *
 * queue.c holds the only SQL on unlearn.requests.  Every function runs in
 * the caller's transaction with SPI connected, as a role that may read and
 * write the queue: a backend after unlearn_become_catalog_owner, or the
 * worker's own session (the bootstrap superuser, search_path pinned).
 * Nothing in queue.c changes the user.
 */
#ifndef UNLEARN_QUEUE_H
#define UNLEARN_QUEUE_H

#include "postgres.h"
#include "data.h"
#include "utils/array.h"
#include "utils/timestamp.h"

/* ---------- settings (defined in queue.c, registered in unlearn.c) ---------- */
extern int	unlearn_batch_window;		/* unlearn.batch_window, ms */
extern int	unlearn_max_batch;			/* unlearn.max_batch rows per run */
extern int	unlearn_max_attempts;		/* unlearn.max_attempts before a request fails */
extern int	unlearn_retry_delay;		/* unlearn.retry_delay, ms, doubled per failed attempt */
extern int	unlearn_request_history;	/* unlearn.request_history, s: finished requests kept; -1 forever */

/* ---------- queueing (the capture triggers) ---------- */

/*
 * Text of the INSERT ... SELECT that queues one model's requests for one
 * statement, reading the transition tables unlearn_old (and unlearn_new for
 * an UPDATE); the column names come quoted.  real_features: feat is double
 * precision[], copied through unlearn.real_features.  Parameters: $1 model
 * (text), $2 requesting role (text), $3 ids not to queue (int8[]).
 */
char	   *unlearn_queue_capture_sql(bool is_update, const char *id, const char *feat, bool real_features,
									  const char *label, bool text_label);

/*
 * The writer (queue_writer.c): requests inserted straight into the table's
 * heap and indexes, without an executor per statement.  Open, put any number
 * of requests, close, in one transaction, as a role that may write the queue.
 */
typedef struct UnlearnQueueWriter UnlearnQueueWriter;
UnlearnQueueWriter *unlearn_queue_writer_open(const char *requested_by);
void		unlearn_queue_writer_put(UnlearnQueueWriter *w, const char *model, const char *kind, int64 id,
									 const char *label, const char *new_label, Datum features);
void		unlearn_queue_writer_close(UnlearnQueueWriter *w);

/* Queues one request (kind 'forget' or 'relabel'), requested by requested_by. */
void		unlearn_queue_insert_row(const char *model, const char *kind, int64 id, const char *label,
									 const char *new_label, Datum features, const char *requested_by);

/* ---------- the SQL functions ---------- */

/* Requests pending or running: of one model (unlearn_wait), or of every model (model NULL). */
int64		unlearn_queue_count_open(const char *model);

/* unlearn_retry: failed requests of a model back to pending, attempts reset; how many. */
uint64		unlearn_queue_retry_failed(const char *model);

/* unlearn_purge: erases the feature copies of finished requests older than older_than; how many. */
uint64		unlearn_queue_erase_features(const char *model, Interval *older_than);

/* ---------- the worker ---------- */

/* One claimed request, as the worker reads it. */
typedef struct UnlearnQueuedRequest
{
	int64		request_id;
	bool		relabel;		/* kind = 'relabel' */
	int64		id;				/* the row's id */
	char	   *label;			/* what the model learned, as text */
	char	   *new_label;		/* relabel: the row's new label; else NULL */
	ArrayType  *features;		/* the queued copy; NULL once erased */
	char	   *requested_by;
} UnlearnQueuedRequest;

/* Running requests (a crash's) back to pending: the worker's first step. */
void		unlearn_queue_reset_running(void);

/*
 * The next model with requests due, or NULL; *wait_ms > 0 when the oldest
 * pending request of the first model arrived less than a batching window ago.
 * The name is allocated with SPI_palloc (it outlives SPI_finish).
 */
char	   *unlearn_queue_next_due(long *wait_ms);

/* The worker ended a turn of the model (a run, failed or not): its next turn comes after others' due before now. */
void		unlearn_queue_note_served(const char *model);

/*
 * Marks up to unlearn.max_batch due requests of a model running, one more
 * attempt each; returns their ids (SPI_palloc; NULL if none).  The caller
 * commits before running them.
 */
int64	   *unlearn_queue_claim(const char *model, int *n_out);

/* Reads claimed requests in request_id order (palloc: valid until SPI_finish). */
UnlearnQueuedRequest *unlearn_queue_read(const int64 *request_ids, int n, int *n_out);

/*
 * Gives running requests a final state ('done', 'skipped' or 'failed'), the
 * version that did it (or <= 0: none) and a note (NULL: none); erases their
 * feature copies.  A request no longer running is never rewritten.  n > 0.
 */
void		unlearn_queue_finish(const int64 *request_ids, int n, const char *state, int version,
								 const char *note);

/*
 * Records a failed run of running requests: back to pending with exponential
 * backoff from unlearn.retry_delay, or failed after unlearn.max_attempts.
 */
void		unlearn_queue_record_failure(const int64 *request_ids, int n, const char *message);

/* Deletes done and skipped requests finished more than history_s seconds ago. */
void		unlearn_queue_prune(int history_s);

/* The earliest usable queued copies of rows the table no longer has (caller elevated, SPI). */
void		unlearn_queue_gone_rows(const UnlearnModel *model, const int64 *ids, int64 n, UnlearnData *rows);

#endif							/* UNLEARN_QUEUE_H */
