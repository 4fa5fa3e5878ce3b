# ferry: a Lua-scriptable migration engine for PostgreSQL.
#   make          build bin/ferry
#   make demo     install what is missing (as root), build, start a private
#                 PostgreSQL 15 and run Batches 1-5 on demo data
#   make test     the same set-up, then the whole test suite
#   make asan | valgrind | fuzz | bench | soak | install PREFIX=...
# With DATABASE_URL set, demo/test/bench use that database instead of
# starting their own server.

CC      ?= cc
PREFIX  ?= /usr/local
BUILD   ?= build
PKGS    := lua5.4 libpq lua5.4-cjson uuid
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
OPT     ?= -O2
CFLAGS  += -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE $(OPT) -g \
           -Wall -Wextra -Werror -Iinclude $(PKG_CFLAGS)
LDLIBS  += $(PKG_LIBS) -lm

CORE_SRC := src/jsontext.c src/hash.c src/copytext.c src/pgconn.c src/interrupt.c src/rate.c
LUA_SRC  := src/l_db.c src/l_json.c src/l_uuid.c src/l_stats.c src/l_log.c \
            src/l_interrupt.c
SRC      := src/main.c src/prelude.c $(LUA_SRC) $(CORE_SRC)
PRELUDES := $(wildcard src/lua/*.lua)
OBJ      := $(SRC:src/%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/preludes.o
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/unit/%)

.PHONY: all deps build-deps test check-tests unit demo asan valgrind fuzz bench bench-smoke soak install clean distclean

all: bin/ferry

bin/ferry: $(OBJ)
	@mkdir -p bin
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(OBJ) $(LDLIBS)

$(BUILD)/obj/%.o: src/%.c $(wildcard include/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/embed: tools/embed.c include/l_modules.h
	@mkdir -p $(dir $@)
	$(CC) -O1 -Wall -Wextra -Werror -Iinclude $(PKG_CFLAGS) -o $@ $< $(PKG_LIBS) -lm

# Lua preludes are compiled into the binary, as source and as bytecode
# (tools/embed.c): bin/ferry needs no files and compiles none at start.
$(BUILD)/gen/preludes.c: $(PRELUDES) $(BUILD)/embed
	@mkdir -p $(dir $@)
	$(BUILD)/embed $@ $(foreach f,$(PRELUDES),$(subst -,.,$(notdir $(basename $(f))))=$(f))

$(BUILD)/obj/preludes.o: $(BUILD)/gen/preludes.c
	$(CC) $(CFLAGS) -Wno-overlength-strings -c -o $@ $<

$(BUILD)/unit/test_preludes: tests/unit/test_preludes.c $(BUILD)/gen/preludes.c src/prelude.c $(wildcard include/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Wno-overlength-strings -o $@ $< $(BUILD)/gen/preludes.c src/prelude.c $(LDLIBS) -lcmocka

$(BUILD)/unit/%: tests/unit/%.c $(CORE_SRC) $(wildcard include/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(CORE_SRC) $(LDLIBS) -lcmocka

unit: $(UNIT_BIN)

# Installs the Debian packages the build and the tests need (as root), or
# says which ones are missing.
deps:
	@bash scripts/deps.sh test

build-deps:
	@bash scripts/deps.sh build

test: deps
	$(MAKE) all unit
	bash scripts/with-pg.sh bash tests/run.sh

demo: deps
	$(MAKE) all
	bash scripts/with-pg.sh bash demo/run.sh

# The suite again with AddressSanitizer and UndefinedBehaviorSanitizer.
asan: deps
	$(MAKE) BUILD=build/asan OPT="-O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all" \
	        LDFLAGS="-fsanitize=address,undefined" build/asan/ferry build/asan/unit-all
	FERRY=$(CURDIR)/build/asan/ferry UNIT_DIR=build/asan/unit ASAN_OPTIONS=detect_leaks=1 \
	    bash scripts/with-pg.sh bash tests/run.sh

build/asan/ferry: $(OBJ)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(OBJ) $(LDLIBS)
build/asan/unit-all: $(UNIT_BIN)
	@touch $@

# The suite with every ferry process under valgrind's memcheck.
valgrind: deps
	@bash scripts/deps.sh tools
	$(MAKE) all unit
	FERRY_WRAPPER="valgrind -q --leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect --error-exitcode=99" \
	    bash scripts/with-pg.sh bash tests/run.sh

FUZZ_SECONDS ?= 60
fuzz: deps
	@bash scripts/deps.sh tools
	@mkdir -p $(BUILD)/fuzz/corpus
	clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -o $(BUILD)/fuzz/fuzz_jsontext \
	    fuzz/fuzz_jsontext.c src/jsontext.c
	cp -n fuzz/corpus/* $(BUILD)/fuzz/corpus/ 2>/dev/null || true
	$(BUILD)/fuzz/fuzz_jsontext -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=$(BUILD)/fuzz/ $(BUILD)/fuzz/corpus
	@mkdir -p $(BUILD)/fuzz/corpus-sql
	clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude $(shell pkg-config --cflags libpq) \
	    -o $(BUILD)/fuzz/fuzz_sqlscan fuzz/fuzz_sqlscan.c src/pgconn.c src/interrupt.c $(shell pkg-config --libs libpq)
	cp -n fuzz/corpus-sql/* $(BUILD)/fuzz/corpus-sql/ 2>/dev/null || true
	$(BUILD)/fuzz/fuzz_sqlscan -max_total_time=$(FUZZ_SECONDS) -timeout=5 -artifact_prefix=$(BUILD)/fuzz/ $(BUILD)/fuzz/corpus-sql
	@mkdir -p $(BUILD)/fuzz/corpus-conninfo
	clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude $(shell pkg-config --cflags libpq) \
	    -o $(BUILD)/fuzz/fuzz_conninfo fuzz/fuzz_conninfo.c src/pgconn.c src/interrupt.c $(shell pkg-config --libs libpq)
	cp -n fuzz/corpus-conninfo/* $(BUILD)/fuzz/corpus-conninfo/ 2>/dev/null || true
	$(BUILD)/fuzz/fuzz_conninfo -max_total_time=$(FUZZ_SECONDS) -timeout=5 -artifact_prefix=$(BUILD)/fuzz/ $(BUILD)/fuzz/corpus-conninfo

# Timings only here, never in tests.  The benchmark server flushes commits
# like a production one (FERRY_PG_DURABLE=1), in its own folder.
BENCH_SIZES ?= 10000 100000 1000000
bench: deps
	$(MAKE) all
	BENCH_SIZES="$(BENCH_SIZES)" FERRY_PG_DURABLE=1 FERRY_PG_DIR=$(CURDIR)/build/pg-bench \
	    bash scripts/with-pg.sh bash bench/run.sh

# The kill -9 / resume test at a larger size with more kills (make test runs
# a short form of it).
SOAK_KILLS ?= 12
SOAK_LEADS ?= 20000
soak: deps
	$(MAKE) all
	KILL_TIMES=$(SOAK_KILLS) KILL_LEADS=$(SOAK_LEADS) KILL_BATCH=2000 TESTS=tests/robust/10-kill-resume.t \
	    PROVE_FLAGS=-v bash scripts/with-pg.sh bash tests/run.sh

install: bin/ferry
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/ferry
	install -m 755 bin/ferry $(DESTDIR)$(PREFIX)/bin/ferry
	cp -R rules migrations $(DESTDIR)$(PREFIX)/share/ferry/

clean:
	rm -rf bin $(BUILD)/obj $(BUILD)/gen $(BUILD)/unit $(BUILD)/embed build/asan

distclean: clean
	rm -rf build
