/*
 * main.c: runs every unit-test table of the numeric core and prints a
 * "N passed, N failed" closing line; exit status 1 if any test failed.
 */
#include <string.h>
#include "unit.h"

int			unit_failures = 0;

/* Tables exported by the test files; add new files here. */
extern const unit_case nn_tests[];
extern const unit_case unlearn_core_tests[];
extern const unit_case mia_tests[];
extern const unit_case early_stop_tests[];
extern const unit_case select_tests[];
extern const unit_case cnn_tests[];
extern const unit_case anchors_tests[];
extern const unit_case ensemble_tests[];
extern const unit_case stream_tests[];

static const unit_case *const all_tables[] = {nn_tests, unlearn_core_tests, mia_tests, early_stop_tests, select_tests, cnn_tests, anchors_tests,
ensemble_tests, stream_tests, NULL};

/* Runs all tests, or only those whose name contains argv[1]. */
int
main(int argc, char **argv)
{
	int			passed = 0,
				failed = 0;

	for (int t = 0; all_tables[t]; t++)
		for (const unit_case *c = all_tables[t]; c->name; c++)
		{
			if (argc > 1 && strstr(c->name, argv[1]) == NULL)
				continue;
			unit_failures = 0;
			c->fn();
			printf("%s %s\n", unit_failures ? "FAIL" : "ok  ", c->name);
			fflush(stdout);
			if (unit_failures)
				failed++;
			else
				passed++;
		}
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
