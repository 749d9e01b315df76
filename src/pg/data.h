/*
 * data.h: reading and checking table rows (data.c).
 */
#ifndef UNLEARN_DATA_H
#define UNLEARN_DATA_H

#include "postgres.h"
#include "utils/array.h"
#include "catalog.h"
#include "encode.h"

/* ---------- data (data.c) ---------- */

/* Rows of a training or evaluation table, ready for the core. */
typedef struct UnlearnData
{
	int64		n;				/* rows */
	int			n_features;
	float	   *X;				/* n x n_features */
	int		   *y;				/* class index per row; -1 = label unknown to the model */
	int64	   *ids;			/* id per row (NULL if not read) */
	char	  **labels;			/* distinct labels found, sorted (training only) */
	int			n_labels;
	char	  **requested_by;	/* per row, who asked to forget it (NULL: the current user) */
	bool		truncated;		/* the read stopped at spec->max_held_bytes (training reads in chunks) */
	float	   *target_loss;	/* forgotten rows: per row the loss it was raised to (target
								 * "unseen"; NaN: it was misclassified), or NULL: all misclassified */
	Oid		   *tableoids;		/* per row, the leaf partition it was read from (spec read_tableoid), or NULL */
} UnlearnData;

/* Which columns to read and how to map labels. */
typedef struct UnlearnDataSpec
{
	Oid			relid;
	const char *id_column;		/* NULL: don't read ids */
	const char *features_column;	/* array models; NULL for column models */
	const char *label_column;
	int			n_features;		/* 0: learn from the first row */
	UnlearnEncoder *encoder;	/* column models: the input columns and their encoding */
	bool		fit_encoder;	/* training: learn the encoding from the rows read */
	bool		any_types;		/* the columns may have other types of the same family (evaluation) */
	const UnlearnModel *model;	/* map labels to this model's classes; NULL: collect */
	int64		max_held_bytes;	/* > 0: stop (out->truncated) before the rows held pass it */
	int64		expect_rows;	/* > 0: the rows expected, allocated at once (a chunk's) */
	bool		read_tableoid;	/* also read each row's tableoid (sharding by partition) */
	const char *where_clause;	/* optional SQL condition, e.g. "id = ANY($1)" */
	int			nargs;
	Oid		   *argtypes;
	Datum	   *args;
} UnlearnDataSpec;

/* Bytes one training row held in memory takes: its features, label, id and place in the order. */
#define UNLEARN_ROW_BYTES(n_features) ((int64) (n_features) * (int64) sizeof(float) + 16)

/*
 * Reads the rows with SPI (the caller must be connected), checking types,
 * NULLs, ragged arrays and non-finite values, with clear SQLSTATEs.
 */
void		unlearn_read_data(const UnlearnDataSpec *spec, UnlearnData *out);

/*
 * The same under unlearn.max_training_memory: true (rows dropped, only
 * out->n_features set) when they would hold more, and the caller must read
 * the table in chunks (stream.c).
 */
bool		unlearn_read_data_bounded(UnlearnDataSpec *spec, UnlearnData *out);

/* A spec of a model's columns (ids included) in its training table, labels mapped to its classes. */
void		unlearn_model_data_spec(const UnlearnModel *model, UnlearnDataSpec *spec);

/* Checks that relid has the named column and returns its type (errors otherwise). */
Oid			unlearn_column_type(Oid relid, const char *column, const char *role);

/* Integer value of an int2/int4/int8 datum. */
int64		unlearn_int_datum(Datum d, Oid typid);

/* True for the types an id may have (smallint, integer, bigint), which unlearn_int_datum reads. */
bool		unlearn_is_int_type(Oid typid);

/* qsort/bsearch order of int64s. */
int			unlearn_cmp_int64(const void *a, const void *b);

/* Output unit of a label given in text form, or -1 if it is not a class of the model. */
int			unlearn_class_index(const UnlearnModel *model, const char *label);

/* Drops the rows whose label is not a class of the model (y < 0), keeping the order. */
void		unlearn_drop_unknown_labels(UnlearnData *rows);

/* True if arr is a usable queued feature copy (1-D real[], n_features finite values). */
bool		unlearn_feature_array_ok(ArrayType *arr, int n_features);

/*
 * A double precision feature value as training reads it: the nearest real
 * (a value too small for real becomes 0 or a subnormal, never an error);
 * outside real's range, which training refuses, an infinity of its sign.
 */
float		unlearn_real_feature(double v);

/* Copies a real[] or double precision[] argument into a float buffer of n_features. */
float	   *unlearn_features_from_array(ArrayType *arr, int n_features);

#endif							/* UNLEARN_DATA_H */
