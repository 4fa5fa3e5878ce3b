-- ferry.help: the command line's help texts, in one place -- ferry --help's
-- (USAGE) and each command's (COMMANDS[name]: ferry NAME --help, ferry
-- help NAME) -- and the options that are a command's own (COMMANDS_WITH),
-- which the engine enforces and each command's text lists under
-- "options:".  tests/cli/94-command-help.t checks that the two agree, that
-- every command of the engine has a text, and that each text's first line
-- is the usage line that command's usage errors say (usage(name)).
local M = {}

M.USAGE = [[
usage: ferry [--db URL] [--dir PATH] [--verbose|-v] [--quiet|-q] [--json] COMMAND ...

commands:
  status                        every migration with its state, applied time, checksum drift
  history [MIGRATION]           the runs recorded, oldest first: when, how each ended, its time, counters, error
  up [--to VERSION] [--dry-run] apply pending migrations in order
  run MIGRATION [--dry-run]     run one migration (its id or name, or a unique prefix of either), applied or not
  rollback MIGRATION [--force]  run its rollback and record that (--force: also one ferry did not apply here)
  validate MIGRATION            run its checks; print each with pass/fail
  baseline VERSION              record every migration up to VERSION as applied, without running it
  new NAME [--sql|--pipeline]   scaffold migrations/<today>_<name>/: up.lua, or up.sql with --sql,
                                or a streamed, pipelined fill (up.lua and rules/<name>.lua) with --pipeline
  check                         load every script and rule, run the rules' tests (no database)
  exec FILE [ARG...]            run a Lua file with the ferry API (ad-hoc scripts, tests)

options:
  --db URL               libpq URI or key=value string (default: $DATABASE_URL, then PG* variables)
  --dir PATH             folder holding migrations/ and rules/ (default: .)
  --dry-run              read-only session; report what a real run would do, and
                         whether its COPYs would be refused for want of a right
  --batch-size N         rows per committed batch in data migrations (default 5000,
                         lowered for small runs: about four batches per writer)
  --jobs N               writer sessions for data migrations that use them (default 2)
  --max-errors N         stop after more than N per-row errors (default 100)
  --lock-timeout T       PostgreSQL lock_timeout for every session (default 5s)
  --statement-timeout T  PostgreSQL statement_timeout (default 0: off)
  --json                 one JSON object on stdout at the end, nothing else there
  -v, --verbose          per-row lines and tracebacks
  -q, --quiet            only errors, failed checks and notes about the data (status and history still
                         print their table)
  --version              print ferry's version;  -h, --help: this text
  COMMAND --help         that command's own help (also: ferry help COMMAND)

exit codes: 0 success; 1 run failed, per-row errors, failed check, lock held or stdout not written; 2 usage or configuration error;
            130 / 143 / 129 interrupted (Ctrl-C / SIGTERM / SIGHUP); 141 its output closed by the reader
]]

-- The options a command takes besides the common ones (--db, --dir, the
-- numbers, the timeouts, --json, -v, -q), which every command accepts:
-- any other command given one of these is a usage error.
M.COMMANDS_WITH = {
  ["dry-run"] = {up = true, run = true, exec = true},
  to = {up = true},
  sql = {new = true},
  pipeline = {new = true},
  force = {rollback = true},
}

-- The common options as each kind of command's text lists them: those that
-- change what it does.
local DB_COMMON = [[
common options (see 'ferry --help'):
  --db URL, --dir PATH, --lock-timeout T, --statement-timeout T, --json,
  -v, -q
]]
local RUN_COMMON = [[
common options (see 'ferry --help'):
  --db URL, --dir PATH, --batch-size N, --jobs N, --max-errors N,
  --lock-timeout T, --statement-timeout T, --json, -v, -q
]]
local MIGRATION_ARG = [[
arguments:
  MIGRATION     its id (its folder's name), its name (the id after the
                version), or a unique prefix of either
]]

-- Each command's text: its usage line (the one its usage errors say),
-- what it does, its arguments, its own options (exactly COMMANDS_WITH's
-- for it), the common ones that apply, and where the docs say more
-- ("more:", paths from the repository's root, each with the anchor of a
-- heading).
M.COMMANDS = {
  status = [[
usage: ferry status

Lists every migration of migrations/, in order, with its state on this
database -- pending, applied, failed, rolled back, running or interrupted
-- when it was applied, and whether its scripts changed since (checksum
drift), and a note where a run stopped part way (the next one resumes
from its checkpoint); then those only the history knows (folder gone).
Writes nothing.

]] .. DB_COMMON .. [[

more: docs/cli.md#status]],

  history = [[
usage: ferry history [MIGRATION]

Lists the runs ferry.history records, oldest first -- up, run, rollback and
baseline, failed and interrupted ones too -- one line each (started at,
migration, operation, status, time taken), then its counters and the first
part of its error. -v adds the row errors, the traceback, host and pid.

arguments:
  MIGRATION     only this migration's runs: its id or name, or a unique
                prefix of either (also one whose folder is gone)

]] .. DB_COMMON .. [[

more: docs/cli.md#history]],

  up = [[
usage: ferry up [--to VERSION] [--dry-run]

Applies the pending migrations in version order, recording each in
ferry.history, and stops at the first that fails. A data migration that
stopped part way (failed or interrupted) resumes from its checkpoint: after
an interruption, run up again.

options:
  --to VERSION  stop after the migration of that version (or id)
  --dry-run     read-only session; report what a real run would do, and
                whether its COPYs would be refused for want of a right

]] .. RUN_COMMON .. [[

more: docs/cli.md#migrations-and-their-history]],

  run = [[
usage: ferry run MIGRATION [--dry-run]

Runs one migration, pending or already applied, and records the run in
ferry.history. A data migration that stopped part way (failed or
interrupted) resumes from its checkpoint. Only that migration runs: 'ferry
up' runs every pending one, in order.

]] .. MIGRATION_ARG .. [[

options:
  --dry-run     read-only session; report what a real run would do, and
                whether its COPYs would be refused for want of a right

]] .. RUN_COMMON .. [[

more: docs/cli.md#migrations-and-their-history]],

  rollback = [[
usage: ferry rollback MIGRATION [--force]

Runs the migration's rollback.sql (or down.lua) and records the rollback
in ferry.history (status then says rolled back; up applies it again).
Before anything is written it refuses one ferry did not apply on this
database -- baselined, or with no record here -- unless given --force.

]] .. MIGRATION_ARG .. [[

options:
  --force       also roll back a migration ferry did not apply here

]] .. RUN_COMMON .. [[

more: docs/cli.md#rollback]],

  validate = [[
usage: ferry validate MIGRATION

Runs the migration's validate.lua in one read-only transaction (every
check sees the same snapshot) and prints each check with PASS or FAIL;
exit 1 when one failed. Writes nothing and takes no lock.

]] .. MIGRATION_ARG .. [[

]] .. DB_COMMON .. [[

more: docs/cli.md#validate]],

  baseline = [[
usage: ferry baseline VERSION

Records every migration up to VERSION as applied, without running it: for
a database that already has what they make (set up without ferry, from a
schema dump). status then shows them applied, "baseline" in their
checksum column.

arguments:
  VERSION       the version (or the id) of the last migration to record

]] .. DB_COMMON .. [[

more: docs/cli.md#migrations-and-their-history, README.md#a-typical-session]],

  new = [[
usage: ferry new NAME [--sql|--pipeline]

Scaffolds migrations/<today>_<NAME>/ (today's date in UTC, YYYYMMDD): an
up.lua that already runs, over a table every database has, with a
rollback.sql, a validate.lua and a README.md to make your own. Connects
to no database.

arguments:
  NAME          lowercase letters, digits and underscores, beginning with a
                letter or digit (not digits only: that reads as a version)

options:
  --sql         an up.sql in place of up.lua: a schema step
  --pipeline    a streamed, pipelined fill: up.lua and its rule module,
                rules/<NAME>.lua, with TODOs for what only you know (a
                run stops at the first one left); not with --sql

common options (see 'ferry --help'):
  --dir PATH, --json, -q

more: docs/authoring.md#3-scaffold-with-ferry-new]],

  check = [[
usage: ferry check

Loads every migration's Lua scripts and every rule module of rules/, runs
the rules' tests (M.tests), and prints each with ok or FAIL. Connects to
no database. Exit 1 when a check failed, 2 when a script or rule does not
compile or an up.sql has a BEGIN or COMMIT of its own.

common options (see 'ferry --help'):
  --dir PATH, --json, -v, -q

more: docs/authoring.md#4-rules-and-their-tests, docs/cli.md#exit-codes]],

  exec = [[
usage: ferry exec FILE.lua [ARG...]

Runs a Lua file with the API a migration has (db, json, uuid, stats, log,
progress, ctx; arg holds the ARGs), for ad-hoc scripts and tests. The
database is connected on first use; no history is written, no lock taken.
Exit code: the script's integer return value (0-255; another number:
1), else 0; 1 when it raises.

arguments:
  FILE.lua      the script, relative to the current folder
  ARG...        its arguments; after --, those that begin with '-' too
                (ferry exec FILE.lua -- --help gives the script --help)

options:
  --dry-run     every session read-only (db.read_only, ctx.dry_run)

]] .. RUN_COMMON .. [[

more: docs/lua-api.md#ferry-exec]],

  help = [[
usage: ferry help [COMMAND]

Prints ferry's help (as ferry --help does), or COMMAND's: its usage, what
it does, its arguments and options. 'ferry COMMAND --help' (or -h) prints
the same; after --, --help is an argument (a migration's name, a script's
argument) and asks for nothing.

arguments:
  COMMAND       one of the commands 'ferry --help' lists

common options (see 'ferry --help'):
  --json

more: docs/cli.md#help]],
}

-- usage(name) -> the first line of NAME's text, "usage: ferry NAME ...":
-- what the command's own usage errors say.
function M.usage(name)
  return (M.COMMANDS[name]:match("^[^\n]*"))
end

-- text(name) -> NAME's text as printed (a newline at its end), or nil for
-- no command; text(nil) -> USAGE.
function M.text(name)
  if name == nil then return M.USAGE end
  local t = M.COMMANDS[name]
  return t and t .. "\n"
end

return M
