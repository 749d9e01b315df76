# unlearn: PostgreSQL extension (PGXS) with an OpenBLAS numeric core.
#
#   make deps   install what is missing (apt-get; needs root)
#   make        build;  make install  install into the PostgreSQL 15 found by pg_config
#   make unit   C unit tests of the numeric core (no PostgreSQL)
#   make test   deps, build, install, unit tests, pg_regress, the crash, dump,
#               logical replication, hot standby, upgrade and Debian package tests,
#               then make sanitize
#   make upgrade-test   ALTER EXTENSION UPDATE from 0.1 (after make install)
#   make deb    the Debian package postgresql-15-unlearn, in $(DEB_OUT)
#   make deb-test       build the package, install it, test it, restore make install
#   make demo   deps, build, install, throwaway server, Fashion-MNIST end to end
#   make bench  the benchmarks (see docs/benchmarks.md)
#   make sanitize  unit tests, pg_regress, the crash and dump tests under ASan +
#               UBSan (docs/layout.md, "Sanitizers")

EXTENSION  = unlearn
MODULE_big = unlearn
EXTVERSION = 0.2
DATA       = $(sort $(wildcard src/sql/unlearn--*.sql))

CORE_SRCS  = $(sort $(wildcard src/core/*.c))
PG_SRCS    = $(sort $(wildcard src/pg/*.c))
OBJS       = $(CORE_SRCS:.c=.o) $(PG_SRCS:.c=.o)

PG_CONFIG ?= $(shell command -v pg_config 2>/dev/null || echo /usr/lib/postgresql/15/bin/pg_config)
BLAS_INC   = /usr/include/x86_64-linux-gnu/openblas-pthread
PG_CPPFLAGS = -I$(srcdir)/src/core -I$(BLAS_INC)
PG_CFLAGS  = -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare
SHLIB_LINK = -lm          # OpenBLAS is dlopen()ed lazily: see src/pg/blas.c

REGRESS_SUITES = $(basename $(notdir $(sort $(wildcard sql/*.sql))))

EXTRA_CLEAN = test/unit/run_tests test/unit/run_tests_san test/unit/*.o bench/fmnist_to_copy build

# no LLVM bitcode: JIT inlining of our C functions buys nothing
override with_llvm = no
# rebuild objects when a header they include changes
override autodepend = yes

PGXS := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)
ifneq ($(PGXS),)
include $(PGXS)
endif

# The numeric core is plain C: hold it to the full warning set.
src/core/%.o: override CFLAGS += -Wextra -Werror -O2
# The element-wise loops of the layers (bias + ReLU, masks, pools, im2col),
# the Winograd transforms (loops over channels), the input standardisation,
# the SGD update and the unlearning loop's scaling of the gradient are
# vectorised only from -O3 on GCC 12 (exact operations: results are
# unchanged).
src/core/layers.o src/core/conv.o src/core/winograd.o src/core/model.o src/core/optim.o src/core/unlearn_loop.o: override CFLAGS += -O3

# ---------------------------------------------------------------- deps
APT_PACKAGES = postgresql-15 postgresql-server-dev-15 postgresql-contrib libopenblas-dev \
               dataset-fashion-mnist libipc-run-perl make gcc zlib1g-dev \
               dpkg-dev debhelper postgresql-server-dev-all
.PHONY: deps
deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "deps: installing$$missing"; \
	  apt-get -o DPkg::Lock::Timeout=300 update -qq && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq $$missing; \
	else echo "deps: all present"; fi

# ---------------------------------------------------------------- unit tests
UNIT_SRCS = $(sort $(wildcard test/unit/*.c))
# run_tests_san: the same, built with the sanitizers (make sanitize); both check the core's asserts
test/unit/run_tests test/unit/run_tests_san: $(UNIT_SRCS) $(CORE_SRCS) $(wildcard src/core/*.h) test/unit/unit.h Makefile
	$(CC) -std=gnu11 -O2 -g -Wall -Wextra -Werror -DUNLEARN_CORE_ASSERTS $(UNIT_EXTRA_CFLAGS) -Isrc/core -I$(BLAS_INC) -o $@ $(UNIT_SRCS) $(CORE_SRCS) -lopenblas -lm
test/unit/run_tests_san: UNIT_EXTRA_CFLAGS = $(SAN_FLAGS)

.PHONY: unit
unit: test/unit/run_tests
	OPENBLAS_NUM_THREADS=1 test/unit/run_tests

# ---------------------------------------------------------------- regression + crash tests
.PHONY: test regress upgrade-test deb deb-test demo bench
test: deps
	$(MAKE) all
	$(MAKE) install
	$(MAKE) unit
	$(MAKE) regress
	@if [ -x test/crash/run.sh ]; then test/crash/run.sh; fi
	@if [ -x test/dump/run.sh ]; then test/dump/run.sh; fi
	@if [ -x test/replication/run.sh ]; then test/replication/run.sh; fi
	@if [ -x test/standby/run.sh ]; then test/standby/run.sh; fi
	$(MAKE) upgrade-test
	@# installing a package needs root
	@if [ "$$(id -u)" = 0 ]; then $(MAKE) deb-test; else echo "make test: deb-test skipped (needs root)"; fi
	$(MAKE) sanitize

upgrade-test:
	test/upgrade/run.sh

# ---------------------------------------------------------------- Debian package
# make deb: postgresql-15-unlearn_*.deb in DEB_OUT, built from a copy of the
# tree in DEB_OUT/src (dpkg-buildpackage writes into the parent directory and
# builds in place), so the clone gets no build files.
DEB_OUT ?= /tmp/unlearn-deb-$(shell id -un)
deb:
	rm -rf $(DEB_OUT) && mkdir -p $(DEB_OUT)/src
	@# copy the sources: in a git checkout its files (committed or not, not ignored), else everything
	if git -C $(srcdir) rev-parse --show-toplevel >/dev/null 2>&1; then \
	  cd $(srcdir) && git ls-files -z -co --exclude-standard | xargs -0 cp --parents -t $(DEB_OUT)/src; \
	else cp -a $(srcdir)/. $(DEB_OUT)/src/; fi
	cd $(DEB_OUT)/src && dpkg-buildpackage -us -uc -b
	@ls $(DEB_OUT)/*.deb

# make deb-test: builds the package, installs it, tests it, removes it and
# runs make install again (hold /tmp/unlearn-pg.lock around it).
deb-test: deb
	DEB_OUT=$(DEB_OUT) test/deb/run.sh

regress:
	test/run_regress.sh $(REGRESS_SUITES)

demo: deps
	$(MAKE) all
	$(MAKE) install
	test/demo.sh

bench: deps
	$(MAKE) all
	$(MAKE) install
	bench/run.sh

# ---------------------------------------------------------------- sanitizers
# A second unlearn.so built with ASan + UBSan from objects of its own in
# build/sanitize, so the normal objects and unlearn.so stay as they are;
# test/sanitize.sh installs it for the tests and reinstalls unlearn.so after.
SAN_FLAGS = -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
SAN_DIR   = build/sanitize
SAN_OBJS  = $(addprefix $(SAN_DIR)/,$(OBJS))

$(SAN_DIR)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(SAN_FLAGS) $(CPPFLAGS) -MMD -MP -c -o $@ $<

$(SAN_DIR)/unlearn.so: $(SAN_OBJS)
	$(LINK.shared) $(SAN_FLAGS) -o $@ $^ $(LDFLAGS) $(LDFLAGS_SL) $(SHLIB_LINK)

-include $(SAN_OBJS:.o=.d)

# preloaded after libasan into the servers: see the file's header
$(SAN_DIR)/asan_preload.so: test/asan_preload.c
	@mkdir -p $(@D)
	$(CC) -shared -fPIC -O2 -Wall -Wextra -Werror -Wno-unused-parameter -o $@ $<

SAN_BUILT = $(SAN_DIR)/unlearn.so $(SAN_DIR)/asan_preload.so test/unit/run_tests_san

.PHONY: sanitize
sanitize: deps
	$(MAKE) all
	$(MAKE) install
	$(MAKE) $(SAN_BUILT)
	test/sanitize.sh $(SAN_BUILT)
