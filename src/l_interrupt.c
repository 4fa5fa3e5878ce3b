/* l_interrupt.c: Ctrl-C, SIGTERM, SIGHUP and SIGPIPE on the Lua side.  As lua.c handles
 * Ctrl-C, the signal handler (main.c's, through interrupt.c) only sets a
 * hook that raises ferry's "interrupted (SIGINT)" error at the next Lua
 * instruction.  Hooks are per thread, though: set on the main thread alone
 * it never fires while a coroutine runs.  So coroutine.resume, .wrap and
 * .close are replaced by versions that keep the thread running Lua code
 * (`running`: the main thread, or the innermost coroutine resumed and not
 * yet back), and the handler sets the hook on that thread as well as on
 * the main one.
 *
 * From the thread it is raised in, the interruption goes up to the main
 * thread, where the engine handles it:
 *   - coroutine.wrap raises it again in the thread that called it;
 *   - coroutine.resume returns false and it, but the thread that resumed
 *     is interrupted in turn as resume returns (its hook is set): the
 *     script never sees those values, and one that would take a failed
 *     resume for the end of its input stops all the same;
 *   - a coroutine that caught it and yields or returns: the same.
 * It is over once it is raised in the main thread -- by the hook, or by
 * C code that saw the signal (a statement cancelled) -- or sys.interrupted()
 * has taken it: a hook still left on some coroutine then does nothing, so
 * that cleanup code -- in coroutines too -- runs uninterrupted.  (Raised in
 * a finalizer, which Lua does not raise on, it is raised again after it.)
 *
 * Per resume this costs two stores in the registry and a test (no
 * allocation). */
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>
#include <signal.h>
#include <string.h>

#include "ferry.h"
#include "interrupt.h"
#include "l_modules.h"

static lua_State *main_thread;
/* the thread running Lua code; read by the signal handler */
static lua_State *volatile running;

/* A thread is made the running one (running_is) by storing it in the
 * registry too (at running_ref), where it stays until the next one
 * replaces it: a memory error that lua_resume or lua_resetthread raises
 * itself, outside the coroutine's protected call (a message it cannot
 * make: "cannot resume dead coroutine", "error in error handling"), is
 * thrown straight to the main thread's innermost pcall, past the store
 * that sets the running thread back -- and the coroutine `running` still
 * names must not be freed while the handler may set its hook on it.  (The
 * reference is made at start and never emptied: these stores allocate
 * nothing.  An integer key: half the cost of a light userdata's.) */
static int running_ref = LUA_NOREF;

static void running_is(lua_State *L, int idx, lua_State *th) {
    lua_pushvalue(L, idx);
    lua_rawseti(L, LUA_REGISTRYINDEX, running_ref);
    running = th;
}

/* L, back from resuming or closing a coroutine, is the running thread again */
static void running_again(lua_State *L) {
    lua_pushthread(L);
    lua_rawseti(L, LUA_REGISTRYINDEX, running_ref);
    running = L;
}

/* a signal came that the main thread has not had yet */
static volatile sig_atomic_t pending;
/* sys.uninterrupted's depth: a signal that comes meanwhile sets no hook
 * (read by the signal handler) */
static volatile sig_atomic_t held;

/* ferry's own error for a signal received: {code = 128 + signo, message =
 * "interrupted (SIGINT)", signal = "SIGINT"}; "interrupted (SIGHUP: hung
 * up)" for a hang-up, "interrupted (SIGPIPE: output closed)" for stdout or
 * stderr closed by its reader (141). */
static void push_interrupted(lua_State *L, int signo) {
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, 128 + signo);
    lua_setfield(L, -2, "code");
    lua_pushfstring(L, "interrupted (%s)", interrupt_signal_reason(signo));
    lua_setfield(L, -2, "message");
    lua_pushstring(L, interrupt_signal_name(signo));
    lua_setfield(L, -2, "signal");
    luaL_setmetatable(L, FERRY_ERROR_MT);
}

static void raise_on_hook(lua_State *L, lua_Debug *ar);

/* (lua_sethook is the one Lua call lua.c's own handler makes) */
static void arm(lua_State *L) {
    lua_sethook(L, raise_on_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

static void disarm(lua_State *L) {
    if (L && lua_gethook(L) == raise_on_hook) lua_sethook(L, NULL, 0, 0);
}

/* The interruption has come to L (it is raised there, or handled): L's
 * hook is taken off, and once L is the main thread it is over. */
static void reached(lua_State *L) {
    disarm(L);
    if (L == main_thread) pending = 0;
}

/* Whether L runs a finalizer (a __gc metamethod, at any level) */
static int in_finalizer(lua_State *L) {
    lua_Debug ar;
    for (int level = 0; lua_getstack(L, level, &ar); level++) {
        if (lua_getinfo(L, "n", &ar) && ar.name && strcmp(ar.namewhat, "metamethod") == 0
            && strcmp(ar.name, "__gc") == 0)
            return 1;
    }
    return 0;
}

/* The interruption is raised in L (or raised on, from a coroutine): it has
 * come to L, so that what runs next there -- a <close> variable's cleanup,
 * the code after a pcall that caught it -- is not interrupted a second
 * time.  Unless L runs a finalizer: Lua only warns of an error there and
 * goes on, so L keeps its hook, which fires once the finalizer has
 * returned (hooks wait till then). */
static void raised_in(lua_State *L) {
    if (in_finalizer(L)) arm(L);
    else reached(L);
}

/* Raises the interruption in L, from the hook or from C code that saw the
 * signal (a statement it cancelled: l_db.c). */
int ferry_raise_interrupted(lua_State *L) {
    raised_in(L);
    push_interrupted(L, interrupt_received());
    return lua_error(L);
}

static void raise_on_hook(lua_State *L, lua_Debug *ar) {
    (void)ar;
    lua_sethook(L, NULL, 0, 0);   /* once: the cleanup that follows runs Lua */
    if (!pending) return;         /* left on a coroutine: the interruption is over */
    ferry_raise_interrupted(L);
}

/* The signal handler's: L is the main thread. */
void ferry_arm_interrupt(lua_State *L) {
    lua_State *now = running;
    pending = 1;
    if (held) return;             /* set when sys.uninterrupted's function returns */
    arm(L);
    if (now && now != L) arm(now);
}

/* main's, once the command has ended (its protected call returned): a
 * signal that came meanwhile is over -- no hook is left to fire while the
 * state is closed, where finalizers may run Lua. */
void ferry_interrupt_over(lua_State *L) {
    disarm(L);
    pending = 0;
}

/* sys.interrupted() -> ferry's interrupted error when a signal came, or
 * nil.  The caller now handles it: the hooks are taken off. */
int ferry_sys_interrupted(lua_State *L) {
    int signo = interrupt_received();
    if (!signo) { lua_pushnil(L); return 1; }
    reached(L);
    reached(main_thread);
    push_interrupted(L, signo);
    return 1;
}

/* sys.uninterrupted(f, ...) -> f's results: runs f with the hook a signal
 * sets held back until f has returned (or raised), so that what f does
 * after a statement that went through -- counting what it committed --
 * is done before the interruption is raised.  A statement f runs is still
 * cancelled at once, and its error, the interruption, raised from C; a
 * signal that came before f began has its hook set already and is raised
 * in f.  Keep f short: nothing else stops it but a second Ctrl-C. */
int ferry_sys_uninterrupted(lua_State *L) {
    luaL_checktype(L, 1, LUA_TFUNCTION);
    held++;
    int status = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0);
    held--;
    if (pending && !held) {       /* a signal came meanwhile, not yet raised */
        lua_State *now = running;
        arm(main_thread);
        if (now && now != main_thread) arm(now);
    }
    if (status != LUA_OK) return lua_error(L);
    return lua_gettop(L);
}

/* Whether the value at idx is an interruption: a ferry error with a signal. */
static int is_interruption(lua_State *L, int idx) {
    idx = lua_absindex(L, idx);
    if (lua_type(L, idx) != LUA_TTABLE || !lua_getmetatable(L, idx)) return 0;
    luaL_getmetatable(L, FERRY_ERROR_MT);
    int ours = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    if (!ours) return 0;
    lua_pushliteral(L, "signal");
    int has_signal = lua_rawget(L, idx) == LUA_TSTRING;
    lua_pop(L, 1);
    return has_signal;
}

/* Resumes co (at index idx of L) from L with the nargs values on top of
 * L's stack; co is the running thread meanwhile, and either is interrupted
 * when it runs with a signal pending (the test after each store covers a
 * signal that came just before it).  Returns how many values co yielded or
 * returned, moved to L, or -1 with co's error (or why it could not run) on
 * L. */
static int resume(lua_State *L, int idx, lua_State *co, int nargs) {
    if (!lua_checkstack(co, nargs)) {
        lua_pushliteral(L, "too many arguments to resume");
        return -1;
    }
    lua_xmove(L, co, nargs);
    running_is(L, idx, co);
    if (pending && !held) arm(co);
    int nres = 0;
    int status = lua_resume(co, L, nargs, &nres);   /* (raises nothing in L: see running_is) */
    running_again(L);
    if (pending && !held) arm(L);
    if (status != LUA_OK && status != LUA_YIELD) {
        lua_xmove(co, L, 1);
        return -1;
    }
    if (!lua_checkstack(L, nres + 1)) {
        lua_pop(co, nres);
        lua_pushliteral(L, "too many results to resume");
        return -1;
    }
    lua_xmove(co, L, nres);
    return nres;
}

/* Runs the to-be-closed variables of co (at index idx of L), a dead or
 * suspended coroutine, co being the running thread meanwhile (cleanup: it
 * is not interrupted unless a signal comes then).  Leaves their error on co
 * when one fails. */
static int close_coroutine(lua_State *L, int idx, lua_State *co) {
    running_is(L, idx, co);
#if LUA_VERSION_RELEASE_NUM >= 50406
    int status = lua_closethread(co, L);
#else
    int status = lua_resetthread(co);
#endif
    running_again(L);
    if (pending && !held) arm(L);
    return status;
}

/* coroutine.resume(co, ...) -> true, values | false, error */
static int co_resume(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTHREAD);
    lua_State *co = lua_tothread(L, 1);
    int n = resume(L, 1, co, lua_gettop(L) - 1);
    if (n < 0) {
        lua_pushboolean(L, 0);
        lua_insert(L, -2);
        return 2;
    }
    lua_pushboolean(L, 1);
    lua_insert(L, -(n + 1));
    return n + 1;
}

/* The function coroutine.wrap returns: resumes its coroutine (upvalue 1);
 * its error is raised again here, after its to-be-closed variables have
 * run (a string error with this caller's position, as Lua's own does). */
static int co_wrapped(lua_State *L) {
    lua_State *co = lua_tothread(L, lua_upvalueindex(1));
    int n = resume(L, lua_upvalueindex(1), co, lua_gettop(L));
    if (n >= 0) return n;
    int status = lua_status(co);
    if (status != LUA_OK && status != LUA_YIELD) {   /* it died of that error */
        status = close_coroutine(L, lua_upvalueindex(1), co);
        lua_xmove(co, L, 1);                         /* (the error, or one that closing raised) */
    }
    if (status != LUA_ERRMEM && lua_type(L, -1) == LUA_TSTRING) {
        luaL_where(L, 1);
        lua_insert(L, -2);
        lua_concat(L, 2);
    }
    /* an interruption raised on here has come to this thread: not again */
    if (pending && is_interruption(L, -1)) raised_in(L);
    return lua_error(L);
}

/* coroutine.wrap(f) -> a function that resumes a new coroutine running f */
static int co_wrap(lua_State *L) {
    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_State *co = lua_newthread(L);
    lua_pushvalue(L, 1);
    lua_xmove(L, co, 1);
    lua_pushcclosure(L, co_wrapped, 1);
    return 1;
}

/* co's state as coroutine.status names it, seen from L */
static const char *co_state(lua_State *L, lua_State *co) {
    if (co == L) return "running";
    switch (lua_status(co)) {
    case LUA_YIELD:
        return "suspended";
    case LUA_OK: {
        lua_Debug ar;
        if (lua_getstack(co, 0, &ar)) return "normal";   /* it resumed another one */
        return lua_gettop(co) == 0 ? "dead" : "suspended";
    }
    default:
        return "dead";                                   /* it died of an error */
    }
}

/* coroutine.close(co) -> true | false, error (from its to-be-closed
 * variables, or the one it died of) */
static int co_close(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTHREAD);
    lua_State *co = lua_tothread(L, 1);
    const char *state = co_state(L, co);
    if (state[0] != 'd' && state[0] != 's') return luaL_error(L, "cannot close a %s coroutine", state);
    if (close_coroutine(L, 1, co) == LUA_OK) {
        lua_pushboolean(L, 1);
        return 1;
    }
    lua_pushboolean(L, 0);
    lua_xmove(co, L, 1);
    return 2;
}

/* coroutine.yield(...): Lua's, except from the main thread, outside any
 * coroutine: Lua raises "attempt to yield from outside a coroutine" there
 * with no position (the yield is a C function), and ferry's error line
 * named no file:line; here luaL_error puts the caller's line first. */
static int co_yield(lua_State *L) {
    int is_main = lua_pushthread(L);
    lua_pop(L, 1);
    if (is_main) return luaL_error(L, "attempt to yield from outside a coroutine");
    return lua_yield(L, lua_gettop(L));
}

void ferry_track_coroutines(lua_State *L) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
    main_thread = lua_tothread(L, -1);
    lua_pop(L, 1);
    lua_pushthread(L);
    running_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    running = main_thread;
    static const luaL_Reg funcs[] = {{"resume", co_resume}, {"wrap", co_wrap}, {"close", co_close},
                                        {"yield", co_yield}, {NULL, NULL}};
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    if (lua_getfield(L, -1, LUA_COLIBNAME) == LUA_TTABLE) luaL_setfuncs(L, funcs, 0);
    lua_pop(L, 2);
}
