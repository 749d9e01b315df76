/*
 * consolidate.h: the worker's consolidation of a model whose deletes
 * paused (consolidate.c; the retrain itself is unlearn_consolidate in
 * execute.c).
 */
#ifndef UNLEARN_CONSOLIDATE_H
#define UNLEARN_CONSOLIDATE_H

#include "unlearn_pg.h"

/* The model to consolidate now after idle_seconds of quiet, or NULL; *pending: one is still waiting. */
char	   *unlearn_consolidation_next(int idle_seconds, int *version, bool *pending);

/* Consolidates the model at that version if it still qualifies; the new version, or 0. */
int			unlearn_consolidate_model(const char *name, int version, UnlearnOutcome *out);

/* Remembers not to try the model again at that version (a failed or refused consolidation). */
void		unlearn_consolidation_skip(const char *name, int version);

#endif
