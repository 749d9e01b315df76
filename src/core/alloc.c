/*
 * alloc.c: the core's allocator hooks (so the extension can route every
 * allocation into a memory context) and the small helpers every file uses.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn_internal.h"

static nn_alloc_fn alloc_hook = malloc;
static nn_free_fn free_hook = free;

/* Route all core memory through alloc_fn/free_fn; NULLs restore malloc/free. */
void
nn_set_allocator(nn_alloc_fn alloc_fn, nn_free_fn free_fn)
{
	alloc_hook = alloc_fn ? alloc_fn : malloc;
	free_hook = free_fn ? free_fn : free;
}

/* Allocate through the hook; size 0 is bumped to 1 so NULL always means failure. */
void *
nn_alloc(size_t size)
{
	return alloc_hook(size ? size : 1);
}

/* nn_alloc followed by zero fill (the hook need not zero). */
void *
nn_alloc_zero(size_t size)
{
	void	   *p = nn_alloc(size);

	if (p)
		memset(p, 0, size);
	return p;
}

/* Free through the hook; NULL is ignored because pfree(NULL) is not allowed. */
void
nn_free_mem(void *ptr)
{
	if (ptr)
		free_hook(ptr);
}

/* Bytes for count elements of elem_size, or 0 when the product overflows size_t. */
static size_t
array_bytes(size_t count, size_t elem_size)
{
	if (elem_size != 0 && count > SIZE_MAX / elem_size)
		return 0;
	return count * elem_size;
}

/* Allocate count floats, or NULL on overflow or allocation failure. */
float *
nn_alloc_floats(size_t count)
{
	size_t		bytes = array_bytes(count, sizeof(float));

	return (bytes || count == 0) ? nn_alloc(bytes) : NULL;
}

/* printf into the caller's error buffer, tolerating a NULL or empty buffer. */
void
nn_set_error(char *err, size_t errlen, const char *fmt,...)
{
	va_list		ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}
