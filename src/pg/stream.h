/*
 * stream.h: training on a table larger than unlearn.max_training_memory, a
 * chunk of rows at a time (stream.c).
 */
#ifndef UNLEARN_STREAM_H
#define UNLEARN_STREAM_H

#include "postgres.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "data.h"
#include "nn.h"

/* A table read in chunks: the ids (the manifest), the chunks, and what the reads measured. */
typedef struct UnlearnStream
{
	UnlearnDataSpec spec;		/* the columns, labels mapped to spec.model's classes */
	int64	   *ids;			/* every id, sorted and unique: the manifest */
	int64		n;
	int			n_features;
	int64		bound;			/* unlearn.max_training_memory, bytes */
	bool		filtered;		/* chunks keep only the rows of ids (unlearn_stream_open_ids) */
	int			chunk_rows;		/* rows of every chunk but the last */
	int			n_chunks;
	MemoryContext chunk_cxt;	/* one chunk's rows; reset after each */
	/* measured, for the version's metrics */
	int			passes;			/* reads of every chunk: statistics, epochs, accuracy */
	int64		chunks_read;
	int64		peak_rows;		/* most rows held at once */
} UnlearnStream;

/* The check hook of unlearn.max_training_memory (-1, or at least 64 kB). */
bool		unlearn_check_training_memory(int *newval, void **extra, GucSource source);

/* unlearn.max_training_memory in bytes; 0: no bound. */
int64		unlearn_training_memory_bytes(void);

/*
 * Starts reading spec's table (no where_clause) in chunks under the bound:
 * every id, sorted and checked (NULL 23502, unique 23505), and the chunks.
 * spec->model may be set later (unlearn_stream_classes).
 */
void		unlearn_stream_open(UnlearnStream *st, const UnlearnDataSpec *spec, int n_features);

/* The same for the rows of the sorted ids[0..n) that the table has (an exact retrain's). */
void		unlearn_stream_open_ids(UnlearnStream *st, const UnlearnDataSpec *spec, int n_features,
									const int64 *ids, int64 n);

/* Training a new model: the table's classes, sorted as an in-memory read sorts them, into meta. */
void		unlearn_stream_classes(UnlearnStream *st, const char *model, UnlearnData *meta);

/* Errors (0A000) if a training of shards (shards not 1: a count, or by partition) or with "validation" was to be streamed. */
void		unlearn_stream_check_options(const UnlearnStream *st, const char *model, int shards,
										 const nn_train_options *o);

/* Trains net for o->epochs passes over the chunks (statistics fixed first); cb after each epoch. */
void		unlearn_stream_fit(UnlearnStream *st, nn_model *net, const nn_train_options *o,
							   nn_epoch_callback cb, void *cb_arg);

/* net's accuracy on every row, a chunk at a time. */
double		unlearn_stream_accuracy(UnlearnStream *st, const nn_model *net);

/* The metrics' "stream" entry (", \"stream\": {...}"). */
char	   *unlearn_stream_metrics(const UnlearnStream *st);

#endif							/* UNLEARN_STREAM_H */
