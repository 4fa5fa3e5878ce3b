/* pgconn: libpq helpers that never touch Lua. */
#ifndef FERRY_PGCONN_H
#define FERRY_PGCONN_H
#include <libpq-fe.h>
#include <stddef.h>

/* Connects with application_name 'ferry'.  conninfo may be a URI, a
 * key=value string or NULL (libpq defaults and PG* variables).  Returns the
 * connection (check PQstatus), or NULL when out of memory. */
PGconn *pgconn_open(const char *conninfo);

/* Starts connecting as pgconn_open does, without waiting: the startup
 * packet goes out if the socket takes it at once, so that the server sets
 * the session up meanwhile.  Finish with pgconn_complete.  Returns NULL
 * when out of memory. */
PGconn *pgconn_start(const char *conninfo);

/* Drives a connection from pgconn_start (begun at started_ms, from
 * pgconn_now_ms) until it is ready, giving each address of each host
 * connect_timeout as libpq's blocking connect does, and going on to what
 * comes after one that ran out of it (its host name's other addresses,
 * then the next hosts; a name's addresses called in the error as libpq
 * calls them, '"name" (addr)').  One started so long ago that its time
 * ran out before this call goes on if its host answered meanwhile, its
 * time counted from now, and is out of time if it did not.  Returns the
 * connection to use: pg, or another one
 * (pg is finished then) -- over what comes after the address that ran out
 * of time, or over all of the hosts again when pg, started a second or
 * more ago, failed (a server drops a session left waiting for its
 * password); or, for a connect_timeout libpq refuses (not a whole number),
 * libpq's blocking connect, which says so.  Check PQstatus;
 * NULL when out of memory.  When it is not connected and a host ran out
 * of time on the way, *why is the whole error to report, each host's
 * (malloc'd: the caller frees it; PQerrorMessage tells only of the last
 * connection); otherwise *why is NULL.  A signal taken for an
 * interruption (interrupt_received) ends the wait: the connection comes
 * back not connected. */
PGconn *pgconn_complete(PGconn *pg, const char *conninfo, long started_ms, char **why);

/* A monotonic clock in milliseconds (for pgconn_complete). */
long pgconn_now_ms(void);

/* Ends a COPY the server started where the caller did not expect one
 * (a script's "COPY t FROM stdin", exec("COPY ...")): PQgetResult alone
 * would return COPY results forever. */
void pgconn_end_unexpected_copy(PGconn *pg, ExecStatusType s);

/* 1 for the statuses of a COPY in progress. */
int pgconn_is_copy(ExecStatusType s);

/* 1 when sql is "COPY table [(columns)] FROM STDIN ..." (blanks and
 * comments anywhere between) and nothing after it: conn:copy() sends
 * nothing else -- a DELETE given by mistake, or a COPY FROM a file or
 * PROGRAM, would run.  plain_escapes: the session's
 * standard_conforming_strings is off (a backslash escapes in '...' too). */
int pgconn_is_copy_from_stdin(const char *sql, int plain_escapes);

/* What "COPY table [(columns)] FROM STDIN" names: fn(0, name, len, ud) for
 * each part of the table's name (schema, table), then fn(1, name, len, ud)
 * for each column of its list, each as written ("Quoted" with its quotes,
 * which the server reads: parse_ident, to_regclass).  Returns 1 when sql
 * starts so, 0 otherwise (fn may have been called for the parts read
 * before: drop them); what follows STDIN is not read. */
typedef void pgconn_name_fn(int column, const char *name, size_t len, void *ud);
int pgconn_copy_target(const char *sql, pgconn_name_fn *fn, void *ud);

/* 1 when the options of sql, a COPY ... FROM STDIN statement
 * (pgconn_is_copy_from_stdin), change how its rows are read from the text
 * format with its defaults that conn:copy() writes (tab, \N, backslash
 * escapes): FORMAT other than text, BINARY, CSV, DELIMITER(S), NULL,
 * HEADER, QUOTE, ESCAPE, FORCE_*, DEFAULT, ENCODING other than UTF8 -- a
 * row dropped (HEADER) or a value stored as another (NULL '', ENCODING
 * 'LATIN1') without an error.  The option goes to word (upper case,
 * "FORMAT csv" with its value).  A WHERE condition is not read: its words
 * are no options. */
int pgconn_copy_format_option(const char *sql, int plain_escapes, char *word, size_t wordsz);

/* The first top-level statement of the SQL script sql that begins or ends
 * a transaction -- BEGIN, START TRANSACTION, COMMIT, END, ROLLBACK (not
 * ROLLBACK TO a savepoint), ABORT, COMMIT PREPARED, ROLLBACK PREPARED,
 * PREPARE TRANSACTION -- or NULL when there is none.  Returns where the
 * statement starts, with its 1-based line in *line and its command in word
 * (upper case, e.g. "START TRANSACTION", cut to wordsz - 1 bytes); line and
 * word may be NULL.  The script is read as the server splits it (strings,
 * quoted names, dollar quotes and comments skipped; only the first words of
 * each statement count, so a DO block's BEGIN does not), with
 * standard_conforming_strings on.  Any bytes are safe: nothing past the
 * terminating NUL is read, and nothing is allocated. */
const char *pgconn_find_transaction_control(const char *sql, int *line, char *word, size_t wordsz);

/* The first top-level statement of the SQL script sql that takes, releases
 * or rolls back to a savepoint whose name begins with prefix -- SAVEPOINT
 * name, RELEASE [SAVEPOINT] name, ROLLBACK [WORK | TRANSACTION] TO
 * [SAVEPOINT] name; a plain name in any case (the server folds it), a
 * "quoted" one as written -- or NULL.  Its command goes in word
 * ("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT", cut to
 * wordsz - 1 bytes; word may be NULL).  Read as
 * pgconn_find_transaction_control reads a script, as safely. */
const char *pgconn_find_savepoint(const char *sql, const char *prefix, char *word, size_t wordsz);

/* The first top-level statement of the SQL script sql that would release
 * every advisory lock of its session -- DISCARD ALL, or one that calls
 * pg_advisory_unlock_all() among its first words (SELECT
 * pg_advisory_unlock_all(), qualified or not) -- or NULL.  Its command goes
 * in word ("DISCARD ALL", "pg_advisory_unlock_all()", cut to wordsz - 1
 * bytes; word may be NULL).  Read as pgconn_find_transaction_control reads
 * a script, as safely: the words in a string or a comment do not count. */
const char *pgconn_find_lock_release(const char *sql, char *word, size_t wordsz);

/* The first top-level statement of the SQL script sql that puts every
 * setting of its session back to its default -- RESET ALL, DISCARD ALL --
 * or NULL.  *followed (when followed is not NULL) is set to whether another
 * statement comes after it in sql.  Read as pgconn_find_transaction_control
 * reads a script: the words in a string or a comment do not count. */
const char *pgconn_find_session_reset(const char *sql, int *followed);

/* Calls visit(p, line, ud) at the start of each top-level statement of the
 * SQL script sql (its first word, or whatever else starts it: a
 * parenthesis; line: its 1-based line), read as
 * pgconn_find_transaction_control reads a script, as safely, until visit
 * returns non-zero: returns where that statement starts, or NULL when
 * visit never did.  (An empty statement, a lone ';', is not visited.) */
const char *pgconn_each_statement(const char *sql, int (*visit)(const char *p, int line, void *ud), void *ud);

/* One token of SQL text: n bytes at s. */
typedef struct pgconn_token {
    const char *s;
    size_t n;
} pgconn_token;

/* The first tokens of SQL text from p, up to max of them, in tok: each a
 * word (a keyword or a plain name) or a "quoted name" as written, or one
 * of . , ( ) -- past blanks and comments.  It stops at anything else (a
 * string, a number, an operator, the semicolon), at the end, or at a
 * quoted name not closed.  Returns how many; *stop (when stop is not NULL)
 * is where it stopped short of the text's end (at a token past max, or at
 * what is no token), NULL when the text, or a comment not closed, ended
 * it. */
int pgconn_statement_tokens(const char *p, pgconn_token *tok, int max, const char **stop);

/* For a connection whose backend pid (PQbackendPID) is not its server
 * session's (pg_backend_pid()): a connection pooler is in between.
 * Whether it keeps one server session for pg (session pooling): 1 yes;
 * 0 no (transaction or statement pooling: pg's statements may run on
 * other clients' sessions); -1 it could not be told (libpq's message in
 * err, not redacted).  Opens, and closes, a second connection to conninfo
 * (NULL: libpq's defaults); runs only SELECT pg_backend_pid() on pg. */
int pgconn_session_pinned(PGconn *pg, const char *conninfo, char *err, size_t errsz);

/* Reads and discards every pending result, ending stray COPYs. */
void pgconn_drain(PGconn *pg);

/* Sends everything libpq holds for a non-blocking connection, waiting for
 * the socket as needed, then makes the connection blocking again.  (libpq
 * refuses to switch modes while data is still queued.)  Returns 0, or -1
 * on failure. */
int pgconn_flush_and_block(PGconn *pg);

/* Waits until pg's next result can be read without blocking, after
 * sending what libpq still holds for it (a non-blocking connection's COPY
 * data).  Meanwhile the data that the connections in others (non-blocking,
 * at most PGCONN_MAX_OTHERS of them) still hold goes out as their sockets
 * take it: a client waiting on one session keeps the others fed.  Returns
 * 0, or -1 when pg failed (PQgetResult then says why). */
#define PGCONN_MAX_OTHERS 64
int pgconn_wait(PGconn *pg, PGconn *const *others, int nothers);

/* Waits until libpq has sent all it holds for the non-blocking pg, the
 * data of the others going out meanwhile as for pgconn_wait.  Returns 0,
 * or -1 when pg failed. */
int pgconn_send_all(PGconn *pg, PGconn *const *others, int nothers);

/* Copies msg, a connection's error (PQerrorMessage) from pgconn_start /
 * pgconn_complete, into out (size outsz) as libpq writes it by default,
 * with each server message's SQLSTATE after it as ferry shows it for any
 * other error: "FATAL:  53300: sorry, too many clients already" (libpq's
 * PQERRORS_VERBOSE, there the only place the SQLSTATE is told) becomes
 * "FATAL:  sorry, too many clients already [SQLSTATE 53300]", and the
 * lines only that verbosity adds (LOCATION: ...) go.  Text with no
 * SQLSTATE in it is copied as it is; cut to outsz. */
void pgconn_connect_error(const char *msg, char *out, size_t outsz);

/* Copies msg into out (size outsz) on one line: each line break, with the
 * blanks around it, becomes "; " and trailing ones go.  For libpq's
 * connection errors, one line per host tried and its advice on lines of
 * its own, of which ferry's error line would show only the first. */
void pgconn_one_line(const char *msg, char *out, size_t outsz);

/* Copies msg into out (size outsz) with every occurrence of the password
 * that conninfo (or PGPASSWORD) holds replaced by "***", trailing newlines
 * removed.  A password must never reach output, logs or history rows. */
void pgconn_redact(const char *conninfo, const char *msg, char *out, size_t outsz);

/* The same for a message the server wrote (an error result of a query).
 * The server never sees the password, so it is there only if the data put
 * it there: a password value of 8 bytes or more is replaced, nothing else --
 * a key, a SQLSTATE or a database name that happens to equal a short
 * password or the connection string stays as the server wrote it. */
void pgconn_redact_server(const char *conninfo, const char *msg, char *out, size_t outsz);

/* The same for ferry's own output (its messages, log lines, the status
 * table, the --json object), which can echo the password only where it was
 * given in place of something else (a migration, a file, a flag's value) or
 * is in the data: the rule of the server's text, a password value of 8
 * bytes or more, conninfo's or PGPASSWORD's, replaced by "***"; nothing
 * else, and newlines kept. */
void pgconn_redact_output(const char *conninfo, const char *msg, char *out, size_t outsz);
/* Calls fn with each value pgconn_redact_output replaces -- conninfo's and
 * PGPASSWORD's password when 8 bytes or more, the longer first, the order
 * they are replaced in -- and returns how many: text
 * that holds none of them comes out of pgconn_redact_output as it went in
 * (ferry's output looks for them, once parsed, before it redacts). */
int pgconn_each_output_password(const char *conninfo, void (*fn)(const char *pw, void *ud), void *ud);

/* Copies msg into out (size outsz) with the password that arg holds, when
 * it is a connection string with one (a postgres:// URL's user:password@
 * or ?password=, wherever the URL begins in arg -- "dbname=postgresql://...",
 * "x postgres://..." --, a password= value), replaced by "***", as written and as
 * libpq reads it, and PGPASSWORD's as pgconn_redact does (redaction
 * shared with libpq's own text); nothing else of arg.  For
 * a command-line argument a message echoes: a connection string put in
 * place of a command, a migration, a file or another option's value. */
void pgconn_redact_arg(const char *arg, const char *msg, char *out, size_t outsz);
/* Whether arg, a command-line argument, is a connection string holding a
 * password: what pgconn_redact_arg redacts for (a postgres:// URL with
 * user:password@ wherever it begins in arg, a password= or ?password=,
 * what libpq parses to one). */
int pgconn_holds_password(const char *arg);

/* Writes 'x' over out's bytes where s holds a password as written -- the
 * spans pgconn_redact_arg redacts as written: a postgres:// URL's
 * user:password@ (of every URL in s), every password= value (quoted: inside the quotes), a
 * URL's query value whose keyword decodes to "password" (?pass%77ord=) --
 * and nothing else: out keeps its length.  out holds the same text as s,
 * in another buffer (s must stay as it is while its passwords are looked
 * for: one written over could change where a later one is found).  For the process's argument list,
 * which ps shows to every user: s a copy, out the original. */
void pgconn_scrub_passwords(const char *s, char *out);

/* Converts a text value of a numeric column to a double when it can be
 * represented exactly enough (at most 15 significant digits), else returns 0. */
int pgconn_numeric_fits_double(const char *s);

/* 1 when the text of an int8/numeric integer fits in +-2^53. */
int pgconn_integer_fits(const char *s, long long *out);

#endif
