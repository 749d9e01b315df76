/*
 * label.h: the unlearn_label type and the label kinds a model accepts (label.c).
 */
#ifndef UNLEARN_LABEL_H
#define UNLEARN_LABEL_H

#include "postgres.h"

/* ---------- labels (label.c) ---------- */

/* Kinds of label column we accept. */
typedef enum UnlearnLabelKind
{
	LABEL_INT,					/* int2, int4, int8 */
	LABEL_TEXT					/* text, varchar, bpchar */
} UnlearnLabelKind;

bool		unlearn_label_kind_for_type(Oid typid, UnlearnLabelKind *kind);
Datum		unlearn_label_from_cstring(const char *s);

#endif							/* UNLEARN_LABEL_H */
