/*
 * unit.h: a minimal unit-test harness for the numeric core (no PostgreSQL).
 *
 * Each test file defines tests with UNIT_TEST(name) { ... } and lists them in
 * a table the runner (test/unit/main.c) walks.  CHECK records a failure and
 * goes on; the runner prints one line per test and a closing
 * "N passed, N failed" line, and exits non-zero on any failure.
 */
#ifndef UNLEARN_UNIT_H
#define UNLEARN_UNIT_H

#include <stdio.h>
#include <math.h>

extern int	unit_failures;		/* failed CHECKs in the current test */

#define CHECK(cond) do { \
	if (!(cond)) { \
		unit_failures++; \
		fprintf(stderr, "  %s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
	} \
} while (0)

#define CHECK_CLOSE(a, b, tol) do { \
	double ua_ = (double) (a), ub_ = (double) (b); \
	if (!(fabs(ua_ - ub_) <= (tol))) { \
		unit_failures++; \
		fprintf(stderr, "  %s:%d: CHECK_CLOSE failed: %s = %.9g, %s = %.9g (tol %g)\n", \
				__FILE__, __LINE__, #a, ua_, #b, ub_, (double) (tol)); \
	} \
} while (0)

typedef void (*unit_fn) (void);
typedef struct unit_case
{
	const char *name;
	unit_fn		fn;
} unit_case;

#define UNIT_TEST(name) static void name(void)
#define UNIT_ENTRY(name) { #name, name }

/* Each test file exports a NULL-terminated table; main.c lists the tables. */
#endif
