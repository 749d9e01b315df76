/*
 * asan_preload.c: preloaded after the ASan runtime into the test servers by
 * test/sanitize.sh (make sanitize), so that an uninstrumented postgres,
 * initdb or psql starts at all under LD_PRELOAD=libasan.so.
 *
 * The ASan runtime of GCC 12 initialises at the first malloc.  In these
 * programs that is inside newlocale(), called by the constructor of
 * libp11-kit (linked in through libldap and gnutls), which holds glibc's
 * setlocale lock for writing.  ASan's initialisation looks up
 * swift_demangle with dlsym and then calls dlerror(), which translates the
 * "undefined symbol" message under the same lock: the lock is released one
 * time too many, and the next setlocale() or bindtextdomain() waits forever.
 * With the symbol defined the lookup succeeds and dlerror() has nothing to
 * translate.  ASan calls it only for Swift-mangled names; NULL means "not
 * demangled".
 */
#include <stddef.h>
#include <stdint.h>

char	   *swift_demangle(const char *mangled, size_t len, char *out, size_t *outlen,
						   uint32_t flags);

char *
swift_demangle(const char *mangled, size_t len, char *out, size_t *outlen, uint32_t flags)
{
	return NULL;
}
