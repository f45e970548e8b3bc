#!/usr/bin/env python3
"""Interop suite: the kazoo ZooKeeper client (PyPI, pinned in requirements.txt)
against a ZooKeeper-compatible server.

    python kazoo_suite.py --hosts 127.0.0.1:2181 [--ttl on|off|skip] [-k PATTERN] [-v]

Every check prints "ok <name>" or "FAIL <name>: <reason>" (or "skip <name>: why");
the exit status is 1 if any check failed. All checks were validated against the
real Apache ZooKeeper 3.8 (Debian package, tickTime=2000, default config plus
4lw.commands.whitelist=*), so a failure means the server differs from ZooKeeper.

Everything lives under a unique root /kazoo-<pid>-<time> (one sub-node per check),
removed at the end. Every check runs in its own thread with a deadline
(--check-timeout, default 30 s): a server that never answers makes the check fail,
it does not hang the suite.

kazoo 2.11 has no API for container/TTL nodes, persistent watches (addWatch),
removeWatches, getEphemerals, getAllChildrenNumber or whoAmI. For those the suite
sends the real ZooKeeper requests through kazoo's own connection (client._call with
small request classes, see the "protocol extensions" section), and observes raw
watch events/replies on the wire through a hook on kazoo's ConnectionHandler.
"""
import argparse
import collections
import datetime
import fnmatch
import hashlib
import base64
import logging
import os
import sys
import threading
import zlib
import time
import traceback
from collections import namedtuple

from kazoo.client import KazooClient
from kazoo.exceptions import (
    AuthFailedError,
    BadArgumentsError,
    BadVersionError,
    InvalidACLError,
    NoAuthError,
    NoChildrenForEphemeralsError,
    NoNodeError,
    NodeExistsError,
    NotEmptyError,
    NoWatcherError,
    RolledBackError,
    RuntimeInconsistency,
    UnimplementedError,
)
from kazoo.protocol.connection import ConnectionHandler
from kazoo.protocol.serialization import (
    Connect,
    Watch,
    int_struct,
    long_struct,
    read_string,
    stat_struct,
    write_buffer,
    write_string,
)
from kazoo.protocol.states import EventType, KazooState, KeeperState, ZnodeStat
from kazoo.recipe.cache import TreeCache, TreeEvent
from kazoo.security import (
    ACL,
    CREATOR_ALL_ACL,
    OPEN_ACL_UNSAFE,
    READ_ACL_UNSAFE,
    Id,
    Permissions,
    make_acl,
    make_digest_acl,
)

###############################################################################
# protocol extensions (requests kazoo 2.11 does not have)
###############################################################################
OP_CREATE, OP_CREATE2, OP_CREATE_CONTAINER, OP_CREATE_TTL = 1, 15, 19, 21
OP_REMOVE_WATCHES, OP_GET_EPHEMERALS, OP_GET_ALL_CHILDREN_NUMBER = 18, 103, 104
OP_ADD_WATCH, OP_WHO_AM_I = 106, 107
FLAG_PERSISTENT, FLAG_EPHEMERAL, FLAG_SEQUENTIAL, FLAG_CONTAINER = 0, 1, 2, 4
FLAG_PERSISTENT_WITH_TTL, FLAG_PERSISTENT_SEQUENTIAL_WITH_TTL = 5, 6
ADD_WATCH_PERSISTENT, ADD_WATCH_PERSISTENT_RECURSIVE = 0, 1
WATCHER_CHILDREN, WATCHER_DATA, WATCHER_ANY = 1, 2, 3
# raw event types on the wire
EV_CREATED, EV_DELETED, EV_CHANGED, EV_CHILD = 1, 2, 3, 4


def _acl_bytes(acl):
    b = bytearray(int_struct.pack(len(acl)))
    for a in acl:
        b.extend(int_struct.pack(a.perms) + write_string(a.id.scheme) + write_string(a.id.id))
    return b


class RawCreate(namedtuple("RawCreate", "type path data acl flags ttl")):
    """create (1), create2 (15), createContainer (19) or createTTL (21).
    data may be None (sent as a null buffer, length -1)."""

    def serialize(self):
        b = bytearray(write_string(self.path))
        b.extend(write_buffer(self.data))
        b.extend(_acl_bytes(self.acl))
        b.extend(int_struct.pack(self.flags))
        if self.type == OP_CREATE_TTL:
            b.extend(long_struct.pack(self.ttl))
        return b

    def deserialize(self, buf, off):
        path, off = read_string(buf, off)
        if self.type == OP_CREATE:
            return path
        return path, ZnodeStat._make(stat_struct.unpack_from(buf, off))


class AddWatch(namedtuple("AddWatch", "path mode")):
    type = OP_ADD_WATCH

    def serialize(self):
        return bytearray(write_string(self.path)) + int_struct.pack(self.mode)

    @classmethod
    def deserialize(cls, buf, off):
        return True


class RemoveWatches(namedtuple("RemoveWatches", "path wtype")):
    type = OP_REMOVE_WATCHES

    def serialize(self):
        return bytearray(write_string(self.path)) + int_struct.pack(self.wtype)

    @classmethod
    def deserialize(cls, buf, off):
        return True


def _read_string_vector(buf, off):
    n = int_struct.unpack_from(buf, off)[0]
    off += int_struct.size
    out = []
    for _ in range(max(n, 0)):
        s, off = read_string(buf, off)
        out.append(s)
    return out


class GetEphemerals(namedtuple("GetEphemerals", "prefix")):
    type = OP_GET_EPHEMERALS

    def serialize(self):
        return bytearray(write_string(self.prefix))

    @classmethod
    def deserialize(cls, buf, off):
        return _read_string_vector(buf, off)


class GetAllChildrenNumber(namedtuple("GetAllChildrenNumber", "path")):
    type = OP_GET_ALL_CHILDREN_NUMBER

    def serialize(self):
        return bytearray(write_string(self.path))

    @classmethod
    def deserialize(cls, buf, off):
        return int_struct.unpack_from(buf, off)[0]


class WhoAmI(object):
    # deliberately not an (empty, hence falsy) namedtuple: kazoo tests `if request`
    type = OP_WHO_AM_I

    def serialize(self):
        return bytearray()

    @classmethod
    def deserialize(cls, buf, off):
        n = int_struct.unpack_from(buf, off)[0]
        off += int_struct.size
        out = []
        for _ in range(max(n, 0)):
            scheme, off = read_string(buf, off)
            user, off = read_string(buf, off)
            out.append((scheme, user))
        return out


def raw_call(client, request, timeout=10):
    """Send a request through kazoo's connection; returns the deserialized reply
    or raises the kazoo exception for the server's error code."""
    result = client.handler.async_result()
    client._call(request, result)
    return result.get(timeout=timeout)


###############################################################################
# wire hooks: raw watch events and replies in arrival order, negotiated timeouts
###############################################################################
WIRE = {}  # id(client) -> list of ("event", type, path) / ("reply", request_class, path, zxid)
WIRE_LOCK = threading.Lock()
CONNECT_RESULTS = {}  # id(client) -> list of (requested timeout, negotiated timeout, session id)

_orig_read_watch_event = ConnectionHandler._read_watch_event
_orig_read_response = ConnectionHandler._read_response
_orig_invoke = ConnectionHandler._invoke


def _hook_read_watch_event(self, buffer, offset):
    log = WIRE.get(id(self.client))
    if log is not None:
        w, _ = Watch.deserialize(buffer, offset)
        with WIRE_LOCK:
            log.append(("event", w.type, w.path))
    return _orig_read_watch_event(self, buffer, offset)


def _hook_read_response(self, header, buffer, offset):
    log = WIRE.get(id(self.client))
    if log is not None and self.client._pending:
        req = self.client._pending[0][0]
        with WIRE_LOCK:
            log.append(("reply", type(req).__name__, getattr(req, "path", None), header.zxid))
    return _orig_read_response(self, header, buffer, offset)


def _hook_invoke(self, timeout, request, xid=None):
    res = _orig_invoke(self, timeout, request, xid)
    if isinstance(request, Connect):
        CONNECT_RESULTS.setdefault(id(self.client), []).append(
            (request.time_out, res[0].time_out, res[0].session_id))
    return res


ConnectionHandler._read_watch_event = _hook_read_watch_event
ConnectionHandler._read_response = _hook_read_response
ConnectionHandler._invoke = _hook_invoke


def wire_log(client):
    with WIRE_LOCK:
        return WIRE.setdefault(id(client), [])


def wire_events(client, path=None):
    with WIRE_LOCK:
        return [(e[1], e[2]) for e in WIRE.get(id(client), []) if e[0] == "event" and (path is None or e[2] == path)]


###############################################################################
# framework
###############################################################################
class CheckFailed(AssertionError):
    pass


class Skip(Exception):
    pass


def expect(cond, msg):
    if not cond:
        raise CheckFailed(msg)


def expect_eq(got, want, what):
    if got != want:
        raise CheckFailed("%s: expected %r, got %r" % (what, want, got))


def expect_raises(exc, fn, *args, **kwargs):
    try:
        r = fn(*args, **kwargs)
    except exc as e:
        return e
    except Exception as e:  # wrong exception
        raise CheckFailed("%s: expected %s, got %s" % (getattr(fn, "__name__", fn), exc.__name__, type(e).__name__))
    raise CheckFailed("%s: expected %s, got result %r" % (getattr(fn, "__name__", fn), exc.__name__, r))


def wait_until(pred, timeout=5.0, interval=0.02):
    deadline = time.time() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.time() >= deadline:
            return v
        time.sleep(interval)


class Recorder(object):
    """Thread-safe list of received things with a wait helper."""

    def __init__(self):
        self.items = []
        self.cond = threading.Condition()

    def __call__(self, *args):
        with self.cond:
            self.items.append(args[0] if len(args) == 1 else args)
            self.cond.notify_all()

    def wait_for(self, n, timeout=5.0):
        deadline = time.time() + timeout
        with self.cond:
            while len(self.items) < n:
                left = deadline - time.time()
                if left <= 0:
                    break
                self.cond.wait(left)
            return list(self.items)

    def snapshot(self):
        with self.cond:
            return list(self.items)


def digest(user, password):
    return "%s:%s" % (user, base64.b64encode(hashlib.sha1(("%s:%s" % (user, password)).encode()).digest()).decode())


CHECKS = []
# every digest identity the checks use (the cleanup authenticates as all of them)
DIGEST_USERS = ("alice:secret", "bob:pw", "carol:pw", "dave:pw", "erin:pw", "frank:pw", "gina:pw")


def check(name, **opts):
    def deco(fn):
        CHECKS.append((name, fn, opts))
        return fn
    return deco


class Ctx(object):
    def __init__(self, args, base):
        self.args = args
        self.hosts = args.hosts
        self.base = base
        self.clients = []
        self.threads = []
        self._c = None

    def client(self, start=True, **kw):
        kw.setdefault("timeout", 10.0)
        kw.setdefault("connection_retry", {"max_tries": -1, "delay": 0.1, "max_delay": 1.0})
        c = KazooClient(hosts=self.hosts, **kw)
        self.clients.append(c)
        wire_log(c)
        if start:
            c.start(timeout=10)
        return c

    @property
    def c(self):
        if self._c is None:
            self._c = self.client()
        return self._c

    def p(self, *parts):
        return "/".join((self.base,) + parts)

    def thread(self, fn, *args):
        t = threading.Thread(target=fn, args=args, daemon=True)
        self.threads.append(t)
        t.start()
        return t

    def close(self):
        for c in self.clients:
            try:
                c.stop()
                c.close()
            except Exception:
                pass
        for c in self.clients:
            WIRE.pop(id(c), None)


def run_check(args, root, name, fn, opts, setup_client):
    base = "%s/%s" % (root, name)
    try:
        setup_client.create_async(base).get(timeout=10)
    except Exception as e:
        print("FAIL %s: cannot create the check's base node %s: %r" % (name, base, e))
        return "timeout"
    ctx = Ctx(args, base)
    if "," in args.hosts:
        # Against an ensemble, each check's clients share one server, a
        # different one from check to check, so every server (leader and
        # followers) answers some checks. Across servers ZooKeeper does not
        # promise that one client sees another's write before a sync, and
        # many checks read right after another client's write; the
        # cross-server cases are tested with sync in tests/ensemble.rs.
        hosts = args.hosts.split(",")
        ctx.hosts = hosts[zlib.crc32(name.encode()) % len(hosts)]
    result = {}

    def target():
        try:
            fn(ctx)
            result["ok"] = True
        except Skip as e:
            result["skip"] = str(e)
        except CheckFailed as e:
            result["fail"] = str(e)
        except Exception as e:
            result["fail"] = "%s: %s" % (type(e).__name__, e)
            if args.verbose:
                result["tb"] = traceback.format_exc()

    t = threading.Thread(target=target, name="check-" + name, daemon=True)
    t0 = time.time()
    t.start()
    t.join(args.check_timeout)
    dt = time.time() - t0
    timed_out = t.is_alive()
    if timed_out:
        result = {"fail": "timed out after %.0f s" % args.check_timeout}
    closer = threading.Thread(target=ctx.close, daemon=True)
    closer.start()
    closer.join(15)
    if "ok" in result:
        print("ok %s" % name + (" (%.1fs)" % dt if args.verbose else ""))
    elif "skip" in result:
        print("skip %s: %s" % (name, result["skip"]))
    else:
        print("FAIL %s: %s" % (name, result["fail"]))
        if result.get("tb"):
            print(result["tb"])
    sys.stdout.flush()
    if timed_out:
        return "timeout"
    return "ok" if "ok" in result else ("skip" if "skip" in result else "fail")


###############################################################################
# checks: session and server
###############################################################################
@check("server_version")
def _(ctx):
    # kazoo's server_version() uses the "envi" four-letter word
    v = ctx.c.server_version()
    expect(isinstance(v, tuple) and len(v) >= 3 and all(isinstance(x, int) for x in v), "bad version %r" % (v,))
    expect(v >= (3, 5, 0), "server version %r < 3.5" % (v,))


@check("four_letter_ruok")
def _(ctx):
    expect_eq(ctx.c.command(b"ruok"), "imok", "ruok")


@check("session_established")
def _(ctx):
    c = ctx.c
    expect(c.connected and c.state == KazooState.CONNECTED, "not connected: %s" % c.state)
    sid, pw = c.client_id
    expect(sid != 0, "session id is 0")
    expect(len(pw) == 16, "session password length %d" % len(pw))
    c2 = ctx.client()
    expect(c2.client_id[0] != sid, "two clients got the same session id")


@check("session_timeout_negotiation")
def _(ctx):
    # ZooKeeper bounds the requested timeout to [2*tickTime, 20*tickTime] = [4 s, 40 s]
    # with the default tickTime=2000.
    for req, want in ((10.0, 10000), (1.0, 4000), (100.0, 40000)):
        c = ctx.client(timeout=req)
        got = CONNECT_RESULTS.get(id(c), [])
        expect(got, "no connect result recorded")
        expect_eq(got[-1][1], want, "negotiated timeout for requested %d ms" % (req * 1000))


@check("session_bad_password_expired")
def _(ctx):
    # reattaching to a live session with a wrong password: the server answers the
    # ConnectRequest with timeOut 0 (kazoo: "Session has expired" -> LOST)
    sid = ctx.c.client_id[0]
    c = ctx.client(start=False, client_id=(sid, b"\x01" * 16), timeout=4.0,
                   connection_retry={"max_tries": 1, "delay": 0.1})
    states = Recorder()
    c.add_listener(states)
    try:
        c.start(timeout=2)
    except Exception:
        pass
    expect(KazooState.CONNECTED not in states.snapshot(), "client states %r" % states.snapshot())
    res = CONNECT_RESULTS.get(id(c), [])
    expect(res and res[0][1] <= 0, "negotiated timeout in the ConnectResponse %r" % (res,))
    expect(ctx.c.exists("/") is not None, "the real owner of the session was disturbed")
    expect_eq(ctx.c.client_id[0], sid, "owner's session")


@check("session_reattach_drops_old_connection")
def _(ctx):
    c1 = ctx.client(timeout=4.0)
    states = Recorder()
    c1.add_listener(states)
    sid = c1.client_id[0]
    c2 = ctx.client(start=False, client_id=c1.client_id, timeout=4.0)
    c2.start(timeout=10)
    expect_eq(c2.client_id[0], sid, "session id after reattach")
    # the server closes the first connection of the session when another one attaches
    expect(wait_until(lambda: KazooState.SUSPENDED in states.snapshot(), 3), "first connection was not dropped")


@check("ephemeral_removed_on_close")
def _(ctx):
    c1 = ctx.client()
    c2 = ctx.client()
    p = ctx.p("eph")
    c1.create(p, b"e", ephemeral=True)
    st = c2.exists(p)
    expect(st is not None, "ephemeral not visible to the other session")
    expect_eq(st.ephemeralOwner, c1.client_id[0], "ephemeralOwner")
    ev = Recorder()
    expect(c2.exists(p, watch=ev) is not None, "exists")
    ch = Recorder()
    c2.get_children(ctx.base, watch=ch)
    c1.stop()
    got = ev.wait_for(1, 5)
    expect(got, "no watch event after the owner closed its session")
    expect_eq((got[0].type, got[0].path), (EventType.DELETED, p), "event")
    got = ch.wait_for(1, 5)
    expect(got and got[0].type == EventType.CHILD and got[0].path == ctx.base, "parent child watch: %r" % got)
    expect(c2.exists(p) is None, "ephemeral still there after close")
    expect_eq(c2.exists(ctx.base).numChildren, 0, "parent numChildren")


@check("ephemeral_deleted_by_other_session")
def _(ctx):
    c1, c2 = ctx.client(), ctx.client()
    p = ctx.p("eph")
    c1.create(p, ephemeral=True)
    c2.delete(p)
    expect(c1.exists(p) is None, "not deleted")
    expect_eq(raw_call(c1, GetEphemerals(ctx.base)), [], "owner's ephemerals after the delete")
    c1.create(p, ephemeral=True)  # the name is free again
    expect_eq(c2.exists(p).ephemeralOwner, c1.client_id[0], "owner")


@check("session_expiry")
def _(ctx):
    c1 = ctx.client(timeout=4.0)
    states = Recorder()
    c1.add_listener(states)
    p = ctx.p("eph")
    c1.create(p, ephemeral=True)
    old_sid = c1.client_id[0]
    # close the session from a second connection attached to it: the server drops c1's
    # connection, and c1's reconnect is refused as expired
    c2 = ctx.client(start=False, client_id=c1.client_id, timeout=4.0)
    c2.start(timeout=10)
    c2.stop()
    expect(wait_until(lambda: KazooState.LOST in states.snapshot(), 15), "client never saw LOST: %r" % states.snapshot())
    c3 = ctx.client()
    expect(c3.exists(p) is None, "ephemeral of the expired session still exists")
    # kazoo then opens a new session by itself
    expect(wait_until(lambda: c1.connected and c1.client_id and c1.client_id[0] != old_sid, 10),
           "no new session after expiry")


@check("session_timeout_expiry")
def _(ctx):
    # a client that goes silent (connection dropped, reconnect held back) is expired
    # by the server after its negotiated timeout (4 s): its ephemerals go, watchers
    # of other sessions get the events, and the late reconnect is refused (LOST)
    c1 = ctx.client(timeout=4.0)
    c2 = ctx.client()
    p = ctx.p("eph")
    c1.create(p, ephemeral=True)
    ev = Recorder()
    c2.exists(p, watch=ev)
    states = Recorder()
    c1.add_listener(states)
    gate = threading.Event()
    real_create_connection = c1.handler.create_connection

    def gated(*a, **kw):
        gate.wait(20)
        return real_create_connection(*a, **kw)

    c1.handler.create_connection = gated
    t0 = time.time()
    c1._connection._socket.shutdown(2)
    got = ev.wait_for(1, 15)
    dt = time.time() - t0
    expect(got and got[0].type == EventType.DELETED, "ephemeral not removed by session expiry: %r" % got)
    # ZooKeeper expires sessions in tickTime buckets: between timeout and timeout + tickTime
    expect(3.0 <= dt <= 10.0, "expired after %.1f s (negotiated timeout 4 s)" % dt)
    expect(c2.exists(p) is None, "ephemeral still exists")
    gate.set()
    expect(wait_until(lambda: KazooState.LOST in states.snapshot(), 10), "late reconnect not refused: %r" % states.snapshot())


@check("ephemeral_no_children")
def _(ctx):
    p = ctx.p("e")
    ctx.c.create(p, ephemeral=True)
    expect_raises(NoChildrenForEphemeralsError, ctx.c.create, p + "/kid")


###############################################################################
# checks: plain operations
###############################################################################
@check("create_and_stat")
def _(ctx):
    c = ctx.c
    p = ctx.p("n")
    t0 = int(time.time() * 1000)
    expect_eq(c.create(p, b"hello"), p, "create return")
    data, st = c.get(p)
    expect_eq(data, b"hello", "data")
    expect_eq((st.version, st.cversion, st.aversion, st.ephemeralOwner, st.dataLength, st.numChildren),
              (0, 0, 0, 0, 5, 0), "(version, cversion, aversion, ephemeralOwner, dataLength, numChildren)")
    expect(st.czxid > 0 and st.czxid == st.mzxid == st.pzxid, "czxid/mzxid/pzxid %d/%d/%d" % (st.czxid, st.mzxid, st.pzxid))
    expect(st.ctime == st.mtime, "ctime != mtime")
    expect(abs(st.ctime - t0) < 300000, "ctime %d far from local clock %d" % (st.ctime, t0))
    expect_eq(c.last_zxid, st.czxid, "reply zxid of the get == last write zxid")


@check("create_include_data")
def _(ctx):
    path, st = ctx.c.create(ctx.p("n"), b"abc", include_data=True)
    expect_eq(path, ctx.p("n"), "path")
    expect_eq(st, ctx.c.exists(path), "stat from create2 vs exists")
    expect_eq(st.dataLength, 3, "dataLength")
    expect_eq(ctx.c.last_zxid, st.czxid, "reply header zxid")


@check("create_makepath")
def _(ctx):
    p = ctx.p("a", "b", "c")
    ctx.c.create(p, b"leaf", makepath=True)
    expect_eq(ctx.c.get(p)[0], b"leaf", "leaf data")
    expect_eq(ctx.c.get(ctx.p("a"))[0], b"", "intermediate node data")
    expect_eq(ctx.c.get_children(ctx.p("a")), ["b"], "children")


@check("data_null_vs_empty")
def _(ctx):
    # a null data buffer (length -1) must come back null; an empty one empty
    p1, p2 = ctx.p("null"), ctx.p("empty")
    raw_call(ctx.c, RawCreate(OP_CREATE, p1, None, OPEN_ACL_UNSAFE, 0, None))
    ctx.c.create(p2, b"")
    d1, s1 = ctx.c.get(p1)
    d2, s2 = ctx.c.get(p2)
    expect(d1 is None, "null data came back as %r" % (d1,))
    expect_eq(d2, b"", "empty data")
    expect_eq((s1.dataLength, s2.dataLength), (0, 0), "dataLength")
    ctx.c.set(p2, b"x")
    ctx.c.set(p2, b"")
    expect_eq(ctx.c.get(p2)[0], b"", "data after set to empty")


@check("create_large_data")
def _(ctx):
    blob = os.urandom(512 * 1024)
    ctx.c.create(ctx.p("big"), blob)
    d, st = ctx.c.get(ctx.p("big"))
    expect(d == blob, "512 KiB value corrupted")
    expect_eq(st.dataLength, len(blob), "dataLength")


@check("sequence_naming")
def _(ctx):
    c = ctx.c
    p = ctx.p("q")
    c.create(p)
    expect_eq(c.create(p + "/n-", sequence=True), p + "/n-0000000000", "first")
    expect_eq(c.create(p + "/n-", sequence=True), p + "/n-0000000001", "second")
    c.create(p + "/plain")
    c.delete(p + "/plain")
    # the suffix is the parent's count of child CREATES (deletes do not count)...
    expect_eq(c.create(p + "/n-", sequence=True), p + "/n-0000000003", "after create+delete of another child")
    st = c.exists(p)
    # ...while the cversion clients see is 2*creates - numChildren (it counts deletes too)
    expect_eq((st.cversion, st.numChildren), (5, 3), "(cversion, numChildren)")
    c.delete(p + "/n-0000000000")
    c.delete(p + "/n-0000000001")
    expect_eq(c.exists(p).cversion, 7, "cversion after two deletes")
    expect_eq(c.create(p + "/n-", sequence=True), p + "/n-0000000004", "after deletes")
    # a sequential node with an empty name prefix
    expect_eq(c.create(p + "/", sequence=True), p + "/0000000005", "empty prefix")
    eph = c.create(p + "/e-", ephemeral=True, sequence=True)
    expect_eq(eph, p + "/e-0000000006", "ephemeral sequential")
    expect_eq(c.exists(eph).ephemeralOwner, c.client_id[0], "ephemeralOwner")


@check("sequence_failed_creates_do_not_count")
def _(ctx):
    c = ctx.c
    p = ctx.p("q")
    c.create(p)
    c.create(p + "/x")
    expect_raises(NodeExistsError, c.create, p + "/x")
    expect_raises(NoNodeError, c.create, p + "/missing/kid")
    expect_eq(c.create(p + "/s", sequence=True), p + "/s0000000001", "suffix")


@check("pipelined_async_requests")
def _(ctx):
    # many requests in flight on one session are executed and answered in order
    c = ctx.c
    p = ctx.p("n")
    c.create(p, b"-1")
    q = ctx.p("q")
    c.create(q)
    results = []
    for i in range(100):
        results.append(("set", i, c.set_async(p, str(i).encode())))
        results.append(("get", i, c.get_async(p)))
        results.append(("seq", i, c.create_async(q + "/s-", sequence=True)))
    for kind, i, r in results:
        v = r.get(timeout=10)
        if kind == "set":
            expect_eq(v.version, i + 1, "version returned by set #%d" % i)
        elif kind == "get":
            expect_eq(v[0], str(i).encode(), "get #%d sees the set just before it" % i)
        else:
            expect_eq(v, q + "/s-%010d" % i, "sequential create #%d" % i)
    zx = [r.get().mzxid for kind, i, r in results if kind == "set"]
    expect(all(a < b for a, b in zip(zx, zx[1:])), "zxids of pipelined sets not increasing")


@check("set_and_versions")
def _(ctx):
    c = ctx.c
    p = ctx.p("n")
    _, st0 = c.create(p, b"v0", include_data=True)
    st1 = c.set(p, b"value-1")
    expect_eq(st1.version, 1, "version after set")
    expect_eq(st1.dataLength, 7, "dataLength")
    expect(st1.mzxid > st1.czxid, "mzxid %d not > czxid %d" % (st1.mzxid, st1.czxid))
    expect_eq((st1.czxid, st1.ctime, st1.pzxid, st1.cversion), (st0.czxid, st0.ctime, st0.pzxid, 0), "unchanged fields")
    expect(st1.mtime >= st1.ctime, "mtime < ctime")
    expect_eq(c.last_zxid, st1.mzxid, "reply header zxid == mzxid")
    expect_raises(BadVersionError, c.set, p, b"nope", version=0)
    expect_eq(c.get(p)[0], b"value-1", "data after failed set")
    st2 = c.set(p, b"v2", version=1)
    expect_eq(st2.version, 2, "version")
    st3 = c.set(p, b"v3", version=-1)
    expect_eq(st3.version, 3, "version after set with -1")
    expect_eq(c.get(p)[1], st3, "get stat == set stat")


@check("failed_writes_consume_zxid")
def _(ctx):
    # ZooKeeper turns a failed write into an error transaction: it gets a zxid, and
    # the reply header carries it; reads return the last zxid without advancing it.
    c = ctx.c
    p = ctx.p("n")
    _, st = c.create(p, include_data=True)
    z = st.czxid
    expect_raises(NodeExistsError, c.create, p)
    expect_eq(c.last_zxid, z + 1, "zxid after NodeExists")
    expect_raises(BadVersionError, c.set, p, b"x", version=7)
    expect_eq(c.last_zxid, z + 2, "zxid after BadVersion")
    c.get(p)
    expect_eq(c.last_zxid, z + 2, "zxid after a read")
    _, st2 = c.create(p + "/k", include_data=True)
    expect_eq(st2.czxid, z + 3, "next create zxid")


@check("parent_stat_relations")
def _(ctx):
    c = ctx.c
    p = ctx.p("parent")
    _, pst0 = c.create(p, b"pd", include_data=True)
    _, kst = c.create(p + "/kid", include_data=True)
    pst1 = c.exists(p)
    expect_eq(pst1.pzxid, kst.czxid, "parent pzxid == child czxid")
    expect_eq((pst1.cversion, pst1.numChildren), (1, 1), "(cversion, numChildren)")
    expect_eq((pst1.mzxid, pst1.version, pst1.mtime), (pst0.mzxid, 0, pst0.mtime), "child create must not touch parent data")
    c.set(p + "/kid", b"x")
    expect_eq(c.exists(p).pzxid, kst.czxid, "child set must not touch pzxid")
    c.delete(p + "/kid")
    del_zxid = c.last_zxid
    pst2 = c.exists(p)
    expect_eq(pst2.pzxid, del_zxid, "parent pzxid == delete zxid")
    expect_eq((pst2.cversion, pst2.numChildren), (2, 0), "(cversion, numChildren) after delete")


@check("delete_with_version")
def _(ctx):
    c = ctx.c
    p = ctx.p("n")
    c.create(p)
    c.set(p, b"1")
    expect_raises(BadVersionError, c.delete, p, version=0)
    expect(c.exists(p) is not None, "deleted despite bad version")
    c.delete(p, version=1)
    expect(c.exists(p) is None, "not deleted")


@check("error_codes")
def _(ctx):
    c = ctx.c
    p = ctx.p("n")
    m = ctx.p("missing")
    c.create(p)
    c.create(p + "/kid")
    expect_raises(NodeExistsError, c.create, p)
    expect_raises(NoNodeError, c.create, m + "/kid")
    expect_raises(NoNodeError, c.get, m)
    expect_raises(NoNodeError, c.set, m, b"x")
    expect_raises(NoNodeError, c.delete, m)
    expect_raises(NoNodeError, c.get_children, m)
    expect_raises(NoNodeError, c.get_acls, m)
    expect_raises(NoNodeError, c.set_acls, m, OPEN_ACL_UNSAFE)
    expect_raises(NotEmptyError, c.delete, p)
    expect(c.exists(m) is None, "exists on a missing node")
    # invalid paths (under an existing parent) are rejected with BadArguments
    for bad in (ctx.base + "/", p + "/", p + "/.", p + "/..", p + "/a\x00b", "noslash"):
        expect_raises(BadArgumentsError, raw_call, c, RawCreate(OP_CREATE2, bad, b"", OPEN_ACL_UNSAFE, 0, None))
    # the parent is looked up first: "a//b" has parent "a/" which does not exist
    expect_raises(NoNodeError, raw_call, c, RawCreate(OP_CREATE2, p + "//b", b"", OPEN_ACL_UNSAFE, 0, None))
    # a trailing slash is fine for a sequential create: the suffix makes the name
    expect_eq(raw_call(c, RawCreate(OP_CREATE2, p + "/", b"", OPEN_ACL_UNSAFE, FLAG_SEQUENTIAL, None))[0],
              p + "/0000000001", "sequential create with a trailing slash")


@check("get_children")
def _(ctx):
    c = ctx.c
    p = ctx.p("dir")
    c.create(p)
    names = ["c%02d" % i for i in range(20)]
    for n in names:
        c.create(p + "/" + n, n.encode())
    expect_eq(sorted(c.get_children(p)), names, "children")
    kids, st = c.get_children(p, include_data=True)
    expect_eq(sorted(kids), names, "children (include_data)")
    expect_eq((st.numChildren, st.cversion), (20, 20), "(numChildren, cversion)")
    expect_eq(c.get_children(p + "/c00"), [], "leaf children")
    expect("zookeeper" in c.get_children("/"), "/zookeeper missing from the root listing")


@check("exists")
def _(ctx):
    c = ctx.c
    expect(c.exists(ctx.p("nope")) is None, "missing node")
    st = c.exists(ctx.base)
    expect(st is not None and st.numChildren == 0, "base stat %r" % (st,))
    root = c.exists("/")
    expect(root is not None and root.czxid == 0 and root.ctime == 0, "root stat %r" % (root,))


@check("ensure_path")
def _(ctx):
    p = ctx.p("x", "y", "z")
    ctx.c.ensure_path(p)
    expect(ctx.c.exists(p) is not None, "not created")
    ctx.c.ensure_path(p)  # idempotent
    expect_eq(ctx.c.get_children(ctx.p("x")), ["y"], "children")


@check("delete_recursive")
def _(ctx):
    c = ctx.c
    p = ctx.p("tree")
    for sub in ("a/b/c", "a/d", "e"):
        c.create(p + "/" + sub, makepath=True)
    c.delete(p, recursive=True)
    expect(c.exists(p) is None, "tree still exists")
    expect_eq(c.get_children(ctx.base), [], "base children")


@check("root_and_system_nodes")
def _(ctx):
    c = ctx.c
    expect_eq(c.get("/")[0], b"", "root data")
    expect_eq(c.get_acls("/")[0], OPEN_ACL_UNSAFE, "root ACL")
    expect_eq(sorted(c.get_children("/zookeeper")), ["config", "quota"], "/zookeeper children")
    expect_eq(c.get_acls("/zookeeper/config")[0], READ_ACL_UNSAFE, "/zookeeper/config ACL")
    st = c.exists("/zookeeper")
    # 3.8 creates /zookeeper's children without counting them: on a fresh server
    # cversion shows 2*0 - numChildren = -2
    expect_eq((st.czxid, st.numChildren, st.cversion), (0, 2, -2), "/zookeeper (czxid, numChildren, cversion)")


@check("system_nodes_protected")
def _(ctx):
    c = ctx.c
    for p in ("/", "/zookeeper"):
        expect_raises(BadArgumentsError, c.delete, p)
    expect_raises(NoAuthError, c.set, "/zookeeper/config", b"x")
    expect_raises(NodeExistsError, c.create, "/zookeeper")


@check("sync")
def _(ctx):
    expect_eq(ctx.c.sync(ctx.base), ctx.base, "sync return")
    # sync does not check the path exists
    expect_eq(ctx.c.sync(ctx.p("missing")), ctx.p("missing"), "sync on a missing path")


###############################################################################
# checks: multi / transactions
###############################################################################
@check("transaction_commit")
def _(ctx):
    c = ctx.c
    p = ctx.p
    c.create(p("old"), b"o")
    t = c.transaction()
    t.create(p("new"), b"n")
    t.set_data(p("new"), b"n2")
    t.check(p("new"), 1)
    t.delete(p("old"))
    t.create(p("s-"), sequence=True)
    res = t.commit()
    expect_eq(len(res), 5, "number of results")
    expect_eq(res[0], p("new"), "create result")
    expect(isinstance(res[1], ZnodeStat) and res[1].version == 1, "set_data result %r" % (res[1],))
    expect_eq(res[2:4], [True, True], "check/delete results")
    expect_eq(res[4], p("s-0000000002"), "sequential create result (old + new created before)")
    expect_eq(c.get(p("new"))[0], b"n2", "data")
    expect(c.exists(p("old")) is None, "old not deleted")
    # the whole multi is one transaction: a single zxid for all its ops
    st = c.exists(p("new"))
    expect_eq(st.czxid, st.mzxid, "czxid == mzxid inside one multi")
    expect_eq(res[1].mzxid, st.czxid, "set stat mzxid")
    expect_eq(c.last_zxid, st.czxid, "reply zxid")
    expect_eq(c.exists(ctx.base).pzxid, st.czxid, "parent pzxid")


@check("transaction_rollback")
def _(ctx):
    c = ctx.c
    p = ctx.p
    c.create(p("x"), b"x")
    t = c.transaction()
    t.create(p("a"))
    t.delete(p("missing"))
    t.set_data(p("x"), b"changed")
    res = t.commit()  # kazoo returns per-op results, the server's reply header err is 0
    expect_eq([type(r) for r in res], [RolledBackError, NoNodeError, RuntimeInconsistency], "per-op results")
    expect(c.exists(p("a")) is None, "create of a failed multi was applied")
    expect_eq(c.get(p("x"))[0], b"x", "set_data of a failed multi was applied")
    # check op with a bad version
    t = c.transaction()
    t.set_data(p("x"), b"y")
    t.check(p("x"), 0)
    res = t.commit()
    expect_eq([type(r) for r in res], [RolledBackError, BadVersionError], "check failure results")
    expect_eq(c.get(p("x"))[1].version, 0, "version after failed multi")
    # a multi that fails inside: NodeExists on the second op
    t = c.transaction()
    t.create(p("y"))
    t.create(p("y"))
    res = t.commit()
    expect_eq([type(r) for r in res], [RolledBackError, NodeExistsError], "duplicate create results")
    expect(c.exists(p("y")) is None, "y created")


@check("transaction_empty_and_zxid")
def _(ctx):
    c = ctx.c
    _, st = c.create(ctx.p("n"), include_data=True)
    expect_eq(c.transaction().commit(), [], "empty multi")
    t = c.transaction()
    t.delete(ctx.p("missing"))
    t.commit()
    # an empty multi and a failed multi are transactions too
    _, st2 = c.create(ctx.p("m"), include_data=True)
    expect_eq(st2.czxid, st.czxid + 3, "zxids used by empty + failed multi")


###############################################################################
# checks: ACLs and auth
###############################################################################
@check("acl_digest")
def _(ctx):
    owner = ctx.client(auth_data=[("digest", "alice:secret")])
    anon = ctx.client()
    p = ctx.p("secret")
    acl = make_digest_acl("alice", "secret", all=True)
    expect_eq(acl.id.id, digest("alice", "secret"), "make_digest_acl id")
    owner.create(p, b"s", acl=[acl])
    expect_eq(owner.get(p)[0], b"s", "owner read")
    expect_raises(NoAuthError, anon.get, p)
    expect_raises(NoAuthError, anon.set, p, b"x")
    expect_raises(NoAuthError, anon.get_children, p)
    expect_raises(NoAuthError, anon.create, p + "/kid")
    expect_raises(NoAuthError, anon.get_acls, p)
    expect_raises(NoAuthError, anon.set_acls, p, OPEN_ACL_UNSAFE)
    expect(anon.exists(p) is not None, "exists is not ACL-checked")
    acls, st = owner.get_acls(p)
    expect_eq(acls, [acl], "stored ACL")
    expect_eq(st.aversion, 0, "aversion")
    # add_auth on an existing session
    anon.add_auth("digest", "alice:secret")
    expect_eq(anon.get(p)[0], b"s", "read after add_auth")
    wrong = ctx.client(auth_data=[("digest", "alice:wrong")])
    expect_raises(NoAuthError, wrong.get, p)


@check("acl_set_and_versions")
def _(ctx):
    c = ctx.client(auth_data=[("digest", "bob:pw")])
    p = ctx.p("n")
    c.create(p)
    st = c.set_acls(p, [make_digest_acl("bob", "pw", all=True)])
    expect_eq(st.aversion, 1, "aversion after set_acls")
    expect_eq(st.version, 0, "version untouched by set_acls")
    expect_raises(BadVersionError, c.set_acls, p, OPEN_ACL_UNSAFE, version=0)
    st = c.set_acls(p, [make_acl("world", "anyone", read=True)], version=1)
    expect_eq(st.aversion, 2, "aversion")
    acls, st = c.get_acls(p)
    expect_eq(acls, [ACL(Permissions.READ, Id("world", "anyone"))], "ACL")
    expect_raises(NoAuthError, c.set, p, b"x")
    expect_raises(NoAuthError, c.set_acls, p, OPEN_ACL_UNSAFE)  # needs ADMIN


@check("acl_creator_all")
def _(ctx):
    anon = ctx.client()
    expect_raises(InvalidACLError, anon.create, ctx.p("a"), acl=CREATOR_ALL_ACL)
    c = ctx.client(auth_data=[("digest", "carol:pw")])
    c.create(ctx.p("c"), acl=CREATOR_ALL_ACL)
    acls, _ = c.get_acls(ctx.p("c"))
    # the "auth" scheme is replaced by the session's authenticated identities
    expect_eq(acls, [ACL(Permissions.ALL, Id("digest", digest("carol", "pw")))], "expanded ACL")


@check("acl_delete_checks_parent")
def _(ctx):
    owner = ctx.client(auth_data=[("digest", "dave:pw")])
    anon = ctx.client()
    # delete needs DELETE on the parent, the node's own ACL does not matter
    anon.create(ctx.p("locked"), acl=[make_acl("world", "anyone", read=True)])
    anon.delete(ctx.p("locked"))
    expect(anon.exists(ctx.p("locked")) is None, "not deleted")
    # create needs CREATE on the parent
    owner.create(ctx.p("dir"), acl=[make_acl("world", "anyone", read=True, delete=True),
                                    make_digest_acl("dave", "pw", all=True)])
    expect_raises(NoAuthError, anon.create, ctx.p("dir", "kid"))
    owner.create(ctx.p("dir", "kid"))
    anon.delete(ctx.p("dir", "kid"))


@check("acl_invalid")
def _(ctx):
    c = ctx.c

    def create(name, acl):
        return raw_call(c, RawCreate(OP_CREATE2, ctx.p(name), b"", acl, 0, None))

    # (kazoo replaces an empty ACL list by its default, hence the raw request)
    expect_raises(InvalidACLError, create, "empty", [])
    expect_raises(InvalidACLError, create, "scheme", [make_acl("nosuchscheme", "x", all=True)])
    expect_raises(InvalidACLError, create, "digest", [make_acl("digest", "no-colon", all=True)])
    expect_raises(InvalidACLError, create, "ip", [make_acl("ip", "300.1.1.1", all=True)])
    expect_raises(InvalidACLError, create, "world", [make_acl("world", "someone", all=True)])
    expect_eq(c.get_children(ctx.base), [], "nothing created")
    # an ACL entry with no permissions at all is accepted
    create("noperms", [ACL(0, Id("world", "anyone"))])
    expect_raises(NoAuthError, c.get, ctx.p("noperms"))
    c.delete(ctx.p("noperms"))


@check("acl_ip_and_multiple")
def _(ctx):
    c = ctx.c
    c.create(ctx.p("ip"), b"i", acl=[make_acl("ip", "127.0.0.1", all=True)])
    expect_eq(c.get(ctx.p("ip"))[0], b"i", "ip ACL read from 127.0.0.1")
    acl = [make_acl("world", "anyone", read=True), make_digest_acl("erin", "pw", write=True, admin=True)]
    c.create(ctx.p("m"), acl=acl)
    expect_eq(c.get_acls(ctx.p("m"))[0], [acl[0], ACL(Permissions.WRITE | Permissions.ADMIN,
                                                       Id("digest", "erin:x"))], "ACL seen without ADMIN")
    erin = ctx.client(auth_data=[("digest", "erin:pw")])
    expect_eq(erin.get_acls(ctx.p("m"))[0], acl, "ACL list (order kept) seen with ADMIN")


@check("acl_digest_hidden_without_admin")
def _(ctx):
    # getACL needs READ or ADMIN; without ADMIN the digest hashes come back as "x"
    owner = ctx.client(auth_data=[("digest", "gina:pw")])
    anon = ctx.client()
    p = ctx.p("n")
    owner.create(p, acl=[make_acl("world", "anyone", read=True), make_digest_acl("gina", "pw", all=True)])
    acls, _ = anon.get_acls(p)
    expect_eq([a.id.id for a in acls], ["anyone", "gina:x"], "ids seen by a reader")
    acls, _ = owner.get_acls(p)
    expect_eq([a.id.id for a in acls], ["anyone", digest("gina", "pw")], "ids seen by the admin")


@check("auth_unknown_scheme_fails_session")
def _(ctx):
    # the server answers the auth packet (xid -4) with error AuthFailed (-115), which
    # kazoo turns into AuthFailedError and state LOST; real ZooKeeper also closes the
    # connection (kazoo's state after that depends on its reconnect timing)
    c = ctx.client()
    states = Recorder()
    c.add_listener(states)
    expect_raises(AuthFailedError, c.add_auth, "nosuchscheme", "x")
    expect(wait_until(lambda: KazooState.CONNECTED not in states.snapshot() and states.snapshot(), 5),
           "connection not closed after AuthFailed: %r" % states.snapshot())
    expect(ctx.c.exists("/") is not None, "other sessions disturbed")


@check("auth_whoami")
def _(ctx):
    c = ctx.client()
    expect_eq(raw_call(c, WhoAmI()), [("ip", "127.0.0.1")], "whoami unauthenticated")
    c.add_auth("digest", "frank:pw")
    expect_eq(sorted(raw_call(c, WhoAmI())), [("digest", "frank"), ("ip", "127.0.0.1")], "whoami after add_auth")


###############################################################################
# checks: container, TTL, getEphemerals, getAllChildrenNumber
###############################################################################
@check("container_node")
def _(ctx):
    c = ctx.c
    p = ctx.p("cont")
    path, st = raw_call(c, RawCreate(OP_CREATE_CONTAINER, p, b"c", OPEN_ACL_UNSAFE, FLAG_CONTAINER, None))
    expect_eq(path, p, "path")
    # ZooKeeper hides the container marker: clients see ephemeralOwner 0
    expect_eq(st.ephemeralOwner, 0, "ephemeralOwner in the create2 reply")
    expect_eq(c.exists(p).ephemeralOwner, 0, "ephemeralOwner in exists")
    c.create(p + "/kid", b"k")
    time.sleep(0.5)
    expect(c.exists(p) is not None, "container with a child disappeared")
    expect_eq(c.get_children(p), ["kid"], "children")
    expect_raises(NotEmptyError, c.delete, p)
    # (removal after the last child goes is up to the container manager, every 60 s
    # by default in ZooKeeper, so it is not checked here)
    expect_raises(NodeExistsError, raw_call, c, RawCreate(OP_CREATE_CONTAINER, p, b"", OPEN_ACL_UNSAFE, FLAG_CONTAINER, None))


@check("ttl_nodes")
def _(ctx):
    mode = ctx.args.ttl
    if mode == "skip":
        raise Skip("use --ttl on|off (server started with/without extendedTypesEnabled=true)")
    c = ctx.c
    req = RawCreate(OP_CREATE_TTL, ctx.p("ttl"), b"t", OPEN_ACL_UNSAFE, FLAG_PERSISTENT_WITH_TTL, 60000)
    if mode == "off":
        expect_raises(UnimplementedError, raw_call, c, req)
        expect(c.exists(ctx.p("ttl")) is None, "created anyway")
        return
    path, st = raw_call(c, req)
    expect_eq(path, ctx.p("ttl"), "path")
    expect_eq(st.ephemeralOwner, 0, "TTL nodes show ephemeralOwner 0")
    expect_eq(c.get(path)[0], b"t", "data")
    path2, _ = raw_call(c, RawCreate(OP_CREATE_TTL, ctx.p("s-"), b"", OPEN_ACL_UNSAFE,
                                     FLAG_PERSISTENT_SEQUENTIAL_WITH_TTL, 60000))
    expect_eq(path2, ctx.p("s-0000000001"), "sequential TTL path")
    for flags, ttl in ((FLAG_PERSISTENT_WITH_TTL, 0), (FLAG_PERSISTENT_WITH_TTL, -5),
                       (FLAG_PERSISTENT, 1000), (FLAG_EPHEMERAL, 1000)):
        expect_raises(BadArgumentsError, raw_call, c,
                      RawCreate(OP_CREATE_TTL, ctx.p("bad"), b"", OPEN_ACL_UNSAFE, flags, ttl))


@check("get_ephemerals")
def _(ctx):
    c1 = ctx.client()
    c2 = ctx.client()
    c1.create(ctx.p("e1"), ephemeral=True)
    c1.create(ctx.p("sub", "e2"), ephemeral=True, makepath=True)
    c2.create(ctx.p("e3"), ephemeral=True)
    expect_eq(sorted(raw_call(c1, GetEphemerals(ctx.base))), [ctx.p("e1"), ctx.p("sub", "e2")], "c1 ephemerals")
    expect_eq(raw_call(c2, GetEphemerals(ctx.base)), [ctx.p("e3")], "c2 ephemerals (per session)")
    expect_eq(raw_call(c1, GetEphemerals(ctx.p("sub"))), [ctx.p("sub", "e2")], "prefix filter")
    # the prefix is a plain string prefix, not a path
    expect_eq(raw_call(c1, GetEphemerals(ctx.p("e"))), [ctx.p("e1")], "string prefix")
    expect_eq(raw_call(ctx.client(), GetEphemerals("/")), [], "session without ephemerals")


@check("get_all_children_number")
def _(ctx):
    c = ctx.c
    for sub in ("a/x/y", "a/z", "b"):
        c.create(ctx.p(sub), makepath=True)
    expect_eq(raw_call(c, GetAllChildrenNumber(ctx.base)), 5, "descendants of base")
    expect_eq(raw_call(c, GetAllChildrenNumber(ctx.p("a", "x", "y"))), 0, "leaf")
    expect_raises(NoNodeError, raw_call, c, GetAllChildrenNumber(ctx.p("none")))


###############################################################################
# checks: watches
###############################################################################
@check("watch_get_fires_once")
def _(ctx):
    c = ctx.c
    p = ctx.p("n")
    c.create(p)
    ev = Recorder()
    c.get(p, watch=ev)
    c.set(p, b"1")
    c.set(p, b"2")
    got = ev.wait_for(1)
    expect(got, "no event")
    expect_eq((got[0].type, got[0].path, got[0].state), (EventType.CHANGED, p, KeeperState.CONNECTED), "event")
    c.sync(p)
    time.sleep(0.2)
    expect_eq(len(ev.snapshot()), 1, "events (one-shot watch)")
    expect_eq(wire_events(c, p), [(EV_CHANGED, p)], "events on the wire")


@check("watch_get_delete")
def _(ctx):
    c = ctx.c
    p = ctx.p("n")
    c.create(p)
    ev = Recorder()
    c.get(p, watch=ev)
    other = ctx.client()
    other.delete(p)
    got = ev.wait_for(1)
    expect(got and got[0].type == EventType.DELETED and got[0].path == p, "events %r" % got)


@check("watch_exists_create")
def _(ctx):
    c = ctx.c
    p = ctx.p("n")
    ev = Recorder()
    expect(c.exists(p, watch=ev) is None, "exists")
    ctx.client().create(p)
    got = ev.wait_for(1)
    expect(got and got[0].type == EventType.CREATED and got[0].path == p, "events %r" % got)
    ev2 = Recorder()
    c.exists(p, watch=ev2)
    c.set(p, b"x")
    got = ev2.wait_for(1)
    expect(got and got[0].type == EventType.CHANGED, "exists watch on an existing node: %r" % got)


@check("watch_children")
def _(ctx):
    c = ctx.c
    p = ctx.p("dir")
    c.create(p)
    ev = Recorder()
    expect_eq(c.get_children(p, watch=ev), [], "children")
    c.set(p, b"data change is not a child change")
    c.create(p + "/a")
    got = ev.wait_for(1)
    expect(got and got[0].type == EventType.CHILD and got[0].path == p, "events %r" % got)
    c.sync(p)
    time.sleep(0.2)
    expect_eq(wire_events(c), [(EV_CHILD, p)], "events on the wire")
    # a child's data change does not fire a children watch; a child delete does
    ev2 = Recorder()
    c.get_children(p, watch=ev2)
    c.set(p + "/a", b"x")
    c.delete(p + "/a")
    got = ev2.wait_for(1)
    expect(got and got[0].type == EventType.CHILD, "events %r" % got)
    # deleting the watched node itself fires NodeDeleted on a children watch
    ev3 = Recorder()
    c.get_children(p, watch=ev3)
    c.delete(p)
    got = ev3.wait_for(1)
    expect(got and got[0].type == EventType.DELETED and got[0].path == p, "events %r" % got)


@check("watch_data_not_fired_by_child")
def _(ctx):
    c = ctx.c
    p = ctx.p("n")
    c.create(p)
    c.get(p, watch=lambda e: None)
    c.create(p + "/kid")
    c.set(p, b"x")
    c.sync(p)
    time.sleep(0.2)
    expect_eq(wire_events(c, p), [(EV_CHANGED, p)], "events for the node")


@check("watch_multiple_clients")
def _(ctx):
    p = ctx.p("n")
    ctx.c.create(p)
    recs = []
    for _ in range(3):
        cl = ctx.client()
        r = Recorder()
        cl.get(p, watch=r)
        recs.append(r)
    ctx.c.set(p, b"x")
    for r in recs:
        got = r.wait_for(1)
        expect(got and got[0].type == EventType.CHANGED, "a client missed the event: %r" % got)


@check("watch_same_path_data_and_exists")
def _(ctx):
    # a get-watch and an exists-watch on one path from one session: one event on the
    # wire (the server keeps one watch per session, path and kind)
    c = ctx.c
    p = ctx.p("n")
    c.create(p)
    r1, r2 = Recorder(), Recorder()
    c.get(p, watch=r1)
    c.exists(p, watch=r2)
    c.set(p, b"x")
    expect(r1.wait_for(1) and r2.wait_for(1), "a watcher missed the event")
    c.sync(p)
    time.sleep(0.2)
    expect_eq(wire_events(c, p), [(EV_CHANGED, p)], "events on the wire")


@check("watch_event_before_reply_same_session")
def _(ctx):
    # ordering guarantee: the watch event for a change is delivered before the reply
    # of the request that made the change, on the watcher's own connection
    c = ctx.c
    p = ctx.p("n")
    c.create(p)
    c.get(p, watch=lambda e: None)
    log = wire_log(c)
    with WIRE_LOCK:
        del log[:]
    c.set(p, b"x")
    with WIRE_LOCK:
        seq = [(e[0], e[1]) for e in log]
    expect_eq(seq[:2], [("event", EV_CHANGED), ("reply", "SetData")], "wire order")
    q = ctx.p("m")
    c.exists(q, watch=lambda e: None)
    with WIRE_LOCK:
        del log[:]
    c.create(q)
    with WIRE_LOCK:
        seq = [(e[0], e[1]) for e in log]
    expect_eq(seq[:2], [("event", EV_CREATED), ("reply", "Create")], "wire order for create")


@check("watch_event_before_newer_read")
def _(ctx):
    # a client that reads after another client's change sees the watch event first
    c = ctx.c
    writer = ctx.client()
    p = ctx.p("n")
    c.create(p, b"0")
    for i in range(1, 6):
        seen = Recorder()
        c.get(p, watch=seen)
        writer.set(p, str(i).encode())
        log = wire_log(c)
        data, _ = c.get(p)
        if data != str(i).encode():
            continue  # read served before the change reached this client; fine
        with WIRE_LOCK:
            entries = list(log)
        ev_idx = [k for k, e in enumerate(entries) if e[0] == "event" and e[2] == p]
        rep_idx = [k for k, e in enumerate(entries) if e[0] == "reply" and e[1] == "GetData"]
        expect(ev_idx and ev_idx[-1] < rep_idx[-1], "reply with the new data arrived before the event (round %d)" % i)
        expect(seen.wait_for(1), "watcher not called")


@check("watch_session_events_on_expiry")
def _(ctx):
    # outstanding watches are reported (by kazoo) with type NONE when the connection
    # drops, and the session's watches are gone after expiry
    c1 = ctx.client(timeout=4.0)
    p = ctx.p("n")
    c1.create(p)
    ev = Recorder()
    c1.get(p, watch=ev)
    c2 = ctx.client(start=False, client_id=c1.client_id, timeout=4.0)
    c2.start(timeout=10)
    c2.stop()
    got = ev.wait_for(1, 10)
    expect(got and got[0].type == EventType.NONE and got[0].path is None, "events %r" % got)
    expect(wait_until(lambda: c1.connected, 15), "kazoo did not reconnect")
    before = len(wire_events(c1, p))
    ctx.c.set(p, b"after")
    ctx.c.sync(p)
    time.sleep(0.3)
    expect_eq(len(wire_events(c1, p)), before, "a watch survived session expiry")


@check("data_watch_recipe")
def _(ctx):
    c = ctx.c
    p = ctx.p("n")
    calls = Recorder()

    @c.DataWatch(p)
    def watcher(data, stat):
        calls((data, stat.version if stat else None))

    expect_eq(calls.wait_for(1)[:1], [(None, None)], "initial call for a missing node")
    other = ctx.client()
    other.create(p, b"1")
    expect(wait_until(lambda: (b"1", 0) in calls.snapshot()), "create not seen: %r" % calls.snapshot())
    other.set(p, b"2")
    expect(wait_until(lambda: (b"2", 1) in calls.snapshot()), "set not seen: %r" % calls.snapshot())
    other.delete(p)
    expect(wait_until(lambda: calls.snapshot()[-1] == (None, None)), "delete not seen: %r" % calls.snapshot())


@check("children_watch_recipe")
def _(ctx):
    c = ctx.c
    p = ctx.p("dir")
    c.create(p)
    calls = Recorder()

    @c.ChildrenWatch(p)
    def watcher(children):
        calls(sorted(children))

    expect_eq(calls.wait_for(1)[0], [], "initial")
    other = ctx.client()
    other.create(p + "/a")
    expect(wait_until(lambda: calls.snapshot()[-1] == ["a"]), "create a: %r" % calls.snapshot())
    other.create(p + "/b")
    expect(wait_until(lambda: calls.snapshot()[-1] == ["a", "b"]), "create b: %r" % calls.snapshot())
    other.delete(p + "/a")
    expect(wait_until(lambda: calls.snapshot()[-1] == ["b"]), "delete a: %r" % calls.snapshot())


@check("persistent_watch")
def _(ctx):
    c = ctx.c
    p = ctx.p("pw")
    c.create(p)
    expect_eq(raw_call(c, AddWatch(p, ADD_WATCH_PERSISTENT)), True, "addWatch")
    other = ctx.client()
    other.set(p, b"1")
    other.set(p, b"2")
    other.create(p + "/k")
    other.set(p + "/k", b"x")  # not watched: not recursive
    other.create(p + "/k/deep")
    other.delete(p + "/k/deep")
    other.delete(p + "/k")
    other.delete(p)
    other.create(p)  # a persistent watch survives the node's deletion
    want = [(EV_CHANGED, p), (EV_CHANGED, p), (EV_CHILD, p), (EV_CHILD, p), (EV_DELETED, p), (EV_CREATED, p)]
    expect(wait_until(lambda: len(wire_events(c)) >= len(want)), "events %r" % wire_events(c))
    other.sync(p)
    time.sleep(0.2)
    expect_eq(wire_events(c), want, "events")


@check("persistent_watch_on_missing_node")
def _(ctx):
    c = ctx.c
    p = ctx.p("later")
    raw_call(c, AddWatch(p, ADD_WATCH_PERSISTENT))
    ctx.client().create(p)
    expect(wait_until(lambda: wire_events(c) == [(EV_CREATED, p)]), "events %r" % wire_events(c))


@check("persistent_recursive_watch")
def _(ctx):
    c = ctx.c
    p = ctx.p("rw")
    c.create(p)
    raw_call(c, AddWatch(p, ADD_WATCH_PERSISTENT_RECURSIVE))
    other = ctx.client()
    other.create(p + "/a")
    other.create(p + "/a/b")
    other.set(p + "/a/b", b"x")
    other.set(p, b"y")
    other.delete(p + "/a/b")
    other.create(ctx.p("rwx"))  # sibling with the same prefix: not below p
    want = [(EV_CREATED, p + "/a"), (EV_CREATED, p + "/a/b"), (EV_CHANGED, p + "/a/b"),
            (EV_CHANGED, p), (EV_DELETED, p + "/a/b")]
    # (no NodeChildrenChanged events in recursive mode)
    expect(wait_until(lambda: len(wire_events(c)) >= len(want)), "events %r" % wire_events(c))
    other.sync(p)
    time.sleep(0.2)
    expect_eq(wire_events(c), want, "events")


@check("persistent_watch_plus_standard_watch")
def _(ctx):
    # a standard data watch, then a persistent watch on the same node: one event per
    # change on the wire, and the persistent watch stays.
    # (NB: the other order, persistent first and then a standard get-watch, makes
    # ZooKeeper 3.8 forget the persistent watch after the next event, a 3.8 bug fixed
    # in 3.9 by ZOOKEEPER-4466; not checked.)
    c = ctx.c
    p = ctx.p("n")
    c.create(p)
    ev = Recorder()
    c.get(p, watch=ev)
    raw_call(c, AddWatch(p, ADD_WATCH_PERSISTENT))
    c.set(p, b"1")
    expect(ev.wait_for(1), "standard watcher not called")
    c.set(p, b"2")
    c.sync(p)
    time.sleep(0.2)
    expect_eq(wire_events(c, p), [(EV_CHANGED, p), (EV_CHANGED, p)], "events")
    expect_eq(len(ev.snapshot()), 1, "standard watcher calls")


@check("remove_watches")
def _(ctx):
    c = ctx.c
    other = ctx.client()
    p = ctx.p
    for n in ("d", "ch", "pw", "rw", "pd", "pc"):
        c.create(p(n))
    # standard data watch: removed by type Data, not by type Children
    c.get(p("d"), watch=lambda e: None)
    expect_raises(NoWatcherError, raw_call, c, RemoveWatches(p("d"), WATCHER_CHILDREN))
    expect_eq(raw_call(c, RemoveWatches(p("d"), WATCHER_DATA)), True, "remove data watch")
    expect_raises(NoWatcherError, raw_call, c, RemoveWatches(p("d"), WATCHER_DATA))
    # standard child watch: removed by type Children
    c.get_children(p("ch"), watch=lambda e: None)
    expect_raises(NoWatcherError, raw_call, c, RemoveWatches(p("ch"), WATCHER_DATA))
    expect_eq(raw_call(c, RemoveWatches(p("ch"), WATCHER_CHILDREN)), True, "remove child watch")
    # persistent and persistent-recursive watches: removed by type Any
    raw_call(c, AddWatch(p("pw"), ADD_WATCH_PERSISTENT))
    raw_call(c, AddWatch(p("rw"), ADD_WATCH_PERSISTENT_RECURSIVE))
    expect_eq(raw_call(c, RemoveWatches(p("pw"), WATCHER_ANY)), True, "remove persistent")
    expect_eq(raw_call(c, RemoveWatches(p("rw"), WATCHER_ANY)), True, "remove persistent recursive")
    expect_raises(NoWatcherError, raw_call, c, RemoveWatches(p("pw"), WATCHER_ANY))
    # a persistent watch counts as both a data and a child watch: removing one kind
    # leaves the other
    raw_call(c, AddWatch(p("pd"), ADD_WATCH_PERSISTENT))
    raw_call(c, RemoveWatches(p("pd"), WATCHER_DATA))
    raw_call(c, AddWatch(p("pc"), ADD_WATCH_PERSISTENT))
    raw_call(c, RemoveWatches(p("pc"), WATCHER_CHILDREN))
    expect_raises(NoWatcherError, raw_call, c, RemoveWatches(p("nowatch"), WATCHER_ANY))
    for n in ("d", "ch", "pw", "rw", "pd", "pc"):
        other.set(p(n), b"x")
        other.create(p(n, "kid"))
        other.create(p(n, "kid", "deep"))
    other.sync(ctx.base)
    c.sync(ctx.base)
    time.sleep(0.3)
    expect_eq(sorted(wire_events(c)), sorted([(EV_CHILD, p("pd")), (EV_CHANGED, p("pc"))]), "events after removal")


@check("session_reconnect_same_session")
def _(ctx):
    # dropping the TCP connection keeps the session: kazoo reconnects with the same
    # session id and password, and the session's ephemerals stay.
    # (kazoo itself drops its watches on a disconnect and sends no SetWatches, so
    # watch re-registration is not checked here)
    c = ctx.client(timeout=10.0)
    p = ctx.p("eph")
    c.create(p, ephemeral=True)
    sid = c.client_id[0]
    states = Recorder()
    c.add_listener(states)
    c._connection._socket.shutdown(2)
    expect(wait_until(lambda: states.snapshot()[-2:] == [KazooState.SUSPENDED, KazooState.CONNECTED], 10),
           "states %r" % states.snapshot())
    expect_eq(c.client_id[0], sid, "session id after reconnect")
    expect_eq(c.exists(p).ephemeralOwner, sid, "ephemeral after reconnect")
    c.set(p, b"still mine")


###############################################################################
# checks: recipes
###############################################################################
@check("lock")
def _(ctx):
    c1, c2 = ctx.client(), ctx.client()
    p = ctx.p("lock")
    l1 = c1.Lock(p, "one")
    l2 = c2.Lock(p, "two")
    expect(l1.acquire(timeout=5), "l1 acquire")
    expect(not l2.acquire(blocking=False), "l2 acquired a held lock")
    got = threading.Event()

    def contend():
        if l2.acquire(timeout=10):
            got.set()

    ctx.thread(contend)
    expect(wait_until(lambda: len(l1.contenders()) == 2), "contenders %r" % l1.contenders())
    expect_eq(l1.contenders(), ["one", "two"], "contenders order")
    time.sleep(0.2)
    expect(not got.is_set(), "l2 got the lock while l1 holds it")
    l1.release()
    expect(got.wait(5), "hand-off to l2 did not happen")
    expect_eq(l2.contenders(), ["two"], "contenders after hand-off")
    l2.release()
    expect_eq(c1.get_children(p), [], "lock nodes left")


@check("lock_released_on_session_close")
def _(ctx):
    c1, c2 = ctx.client(), ctx.client()
    p = ctx.p("lock")
    l1 = c1.Lock(p)
    expect(l1.acquire(timeout=5), "acquire")
    l2 = c2.Lock(p)
    got = threading.Event()
    ctx.thread(lambda: l2.acquire(timeout=10) and got.set())
    time.sleep(0.3)
    c1.stop()
    expect(got.wait(5), "lock not handed over after the holder's session closed")


@check("read_write_lock")
def _(ctx):
    c1, c2, c3 = ctx.client(), ctx.client(), ctx.client()
    p = ctx.p("rw")
    r1, r2 = c1.ReadLock(p), c2.ReadLock(p)
    expect(r1.acquire(timeout=5) and r2.acquire(timeout=5), "two readers")
    w = c3.WriteLock(p)
    expect(not w.acquire(blocking=False), "writer got in with readers holding")
    r1.release()
    r2.release()
    expect(w.acquire(timeout=5), "writer after readers released")
    r3 = c1.ReadLock(p)
    expect(not r3.acquire(blocking=False), "reader got in with the writer holding")
    w.release()
    expect(r3.acquire(timeout=5), "reader after writer released")
    r3.release()


@check("semaphore")
def _(ctx):
    cs = [ctx.client() for _ in range(3)]
    p = ctx.p("sem")
    sems = [c.Semaphore(p, "id%d" % i, max_leases=2) for i, c in enumerate(cs)]
    expect(sems[0].acquire(timeout=5) and sems[1].acquire(timeout=5), "first two leases")
    expect(not sems[2].acquire(blocking=False), "third lease granted with max_leases=2")
    expect_eq(sorted(sems[0].lease_holders()), ["id0", "id1"], "lease holders")
    got = threading.Event()
    ctx.thread(lambda: sems[2].acquire(timeout=10) and got.set())
    time.sleep(0.3)
    expect(not got.is_set(), "third lease granted early")
    sems[0].release()
    expect(got.wait(5), "third lease not granted after a release")
    expect_eq(sorted(sems[1].lease_holders()), ["id1", "id2"], "lease holders after hand-off")
    sems[1].release()
    sems[2].release()


@check("election")
def _(ctx):
    c1, c2 = ctx.client(), ctx.client()
    p = ctx.p("election")
    e1, e2 = c1.Election(p, "alpha"), c2.Election(p, "beta")
    leader = Recorder()
    release = {"alpha": threading.Event(), "beta": threading.Event()}

    def lead(name):
        leader(name)
        release[name].wait(15)

    ctx.thread(e1.run, lead, "alpha")
    expect(leader.wait_for(1) == ["alpha"], "alpha did not become leader: %r" % leader.snapshot())
    ctx.thread(e2.run, lead, "beta")
    expect(wait_until(lambda: e1.contenders() == ["alpha", "beta"]), "contenders %r" % e1.contenders())
    time.sleep(0.2)
    expect_eq(leader.snapshot(), ["alpha"], "only one leader")
    release["alpha"].set()
    expect_eq(leader.wait_for(2), ["alpha", "beta"], "leadership hand-off")
    release["beta"].set()


@check("barrier")
def _(ctx):
    c1, c2 = ctx.client(), ctx.client()
    p = ctx.p("barrier")
    b1, b2 = c1.Barrier(p), c2.Barrier(p)
    expect(b2.wait(0.1), "wait on a missing barrier must pass")
    b1.create()
    expect(not b2.wait(0.3), "wait on an existing barrier passed")
    passed = threading.Event()
    ctx.thread(lambda: b2.wait(10) and passed.set())
    time.sleep(0.2)
    expect(not passed.is_set(), "passed early")
    b1.remove()
    expect(passed.wait(5), "waiter not released after remove")


@check("double_barrier")
def _(ctx):
    c1, c2 = ctx.client(), ctx.client()
    p = ctx.p("dbarrier")
    d1, d2 = c1.DoubleBarrier(p, 2, "one"), c2.DoubleBarrier(p, 2, "two")
    entered = Recorder()
    left = Recorder()

    def member(d, name):
        d.enter()
        entered(name)
        d.leave()
        left(name)

    ctx.thread(member, d1, "one")
    time.sleep(0.5)
    expect_eq(entered.snapshot(), [], "entered before the second member arrived")
    ctx.thread(member, d2, "two")
    expect_eq(sorted(entered.wait_for(2, 10)), ["one", "two"], "entered")
    expect_eq(sorted(left.wait_for(2, 10)), ["one", "two"], "left")
    expect(c1.exists(p) is None or c1.get_children(p) == [], "leftover nodes %r" % (c1.get_children(p),))


@check("queue")
def _(ctx):
    c1, c2 = ctx.client(), ctx.client()
    p = ctx.p("queue")
    q1, q2 = c1.Queue(p), c2.Queue(p)
    q1.put(b"a")
    q1.put(b"b", priority=10)
    q2.put(b"c")
    q2.put(b"d", priority=10)
    expect_eq(len(q1), 4, "len")
    expect_eq([q2.get(), q1.get(), q2.get(), q1.get()], [b"b", b"d", b"a", b"c"], "priority then FIFO order")
    expect(q1.get() is None, "get on an empty queue")
    expect_eq(len(q2), 0, "len after draining")


@check("locking_queue")
def _(ctx):
    c1, c2 = ctx.client(), ctx.client()
    p = ctx.p("lqueue")
    q1, q2 = c1.LockingQueue(p), c2.LockingQueue(p)
    q1.put_all([b"1", b"2"])
    q1.put(b"0", priority=1)
    expect_eq(len(q2), 3, "len")
    expect_eq(q1.get(5), b"0", "first by priority")
    expect(q1.holds_lock(), "q1 should hold the entry lock")
    expect_eq(q2.get(5), b"1", "q2 skips the locked entry")
    expect(q2.release(), "release")
    expect(q1.consume(), "consume")
    expect_eq(q1.get(5), b"1", "released entry is available again")
    expect(q1.consume(), "consume")
    expect_eq(q2.get(5), b"2", "last")
    expect(q2.consume(), "consume")
    expect(q1.get(0.3) is None, "get on empty queue times out with None")
    expect_eq(len(q1), 0, "len")


@check("counter")
def _(ctx):
    retry = {"max_tries": -1, "delay": 0.01, "max_delay": 0.2, "max_jitter": 0.05}
    c1 = ctx.client(command_retry=retry)
    c2 = ctx.client(command_retry=retry)
    p = ctx.p("counter")
    cnt = c1.Counter(p)
    expect_eq(cnt.value, 0, "initial")
    n = 25
    errors = []

    def worker(c):
        try:
            k = c.Counter(p)
            for _ in range(n):
                k += 1
        except Exception as e:
            errors.append(repr(e))

    ts = [ctx.thread(worker, c) for c in (c1, c2, c1, c2)]
    for t in ts:
        t.join(25)
    expect(not errors, "worker errors %r" % errors)
    expect_eq(c2.Counter(p).value, 4 * n, "sum of concurrent increments")
    cnt -= 10
    expect_eq(cnt.value, 4 * n - 10, "after decrement")
    expect_eq(cnt.pre_value, 4 * n, "pre_value")
    f = c1.Counter(ctx.p("float"), default=0.5)
    f += 0.25
    expect_eq(f.value, 0.75, "float counter")


@check("party")
def _(ctx):
    c1, c2 = ctx.client(), ctx.client()
    p = ctx.p("party")
    for cls in ("Party", "ShallowParty"):
        pp = p + "-" + cls
        a, b = getattr(c1, cls)(pp, "alice"), getattr(c2, cls)(pp, "bob")
        expect_eq(len(a), 0, cls + " empty")
        a.join()
        b.join()
        expect_eq(sorted(a), ["alice", "bob"], cls + " members")
        expect_eq(len(b), 2, cls + " len")
        b.leave()
        expect_eq(list(a), ["alice"], cls + " after leave")
        c1.stop()  # party membership is ephemeral
        expect_eq(list(b), [], cls + " after the member's session closed")
        c1 = ctx.client()


@check("tree_cache")
def _(ctx):
    c = ctx.c
    p = ctx.p("tc")
    c.create(p + "/pre", b"0", makepath=True)
    events = Recorder()
    cache = TreeCache(c, p)
    cache.listen(lambda ev: events((ev.event_type, ev.event_data.path if ev.event_data else None)))
    cache.start()
    try:
        expect(wait_until(lambda: (TreeEvent.INITIALIZED, None) in events.snapshot()), "not initialized: %r" % events.snapshot())
        expect_eq(cache.get_data(p + "/pre").data, b"0", "cached data")
        other = ctx.client()
        other.create(p + "/a", b"1")
        expect(wait_until(lambda: (TreeEvent.NODE_ADDED, p + "/a") in events.snapshot()), "add: %r" % events.snapshot())
        other.create(p + "/a/b", b"deep")
        expect(wait_until(lambda: (TreeEvent.NODE_ADDED, p + "/a/b") in events.snapshot()), "deep add")
        other.set(p + "/a", b"2")
        expect(wait_until(lambda: (TreeEvent.NODE_UPDATED, p + "/a") in events.snapshot()), "update: %r" % events.snapshot())
        expect(wait_until(lambda: cache.get_data(p + "/a").data == b"2"), "cached data after update")
        expect_eq(cache.get_data(p + "/a").stat.version, 1, "cached stat version")
        expect_eq(sorted(cache.get_children(p)), ["a", "pre"], "cached children")
        other.delete(p + "/a", recursive=True)
        expect(wait_until(lambda: (TreeEvent.NODE_REMOVED, p + "/a") in events.snapshot()), "remove: %r" % events.snapshot())
        expect(wait_until(lambda: cache.get_data(p + "/a") is None), "removed node still cached")
    finally:
        cache.close()


@check("lease")
def _(ctx):
    c1, c2 = ctx.client(), ctx.client()
    p = ctx.p("lease")
    d = datetime.timedelta(seconds=30)
    expect(bool(c1.NonBlockingLease(p, d, identifier="one")), "first lease")
    expect(not bool(c2.NonBlockingLease(p, d, identifier="two")), "second lease granted")
    expect(bool(c1.NonBlockingLease(p, d, identifier="one")), "renewal by the holder")
    m = ctx.p("mlease")
    expect(bool(c1.MultiNonBlockingLease(2, m, d, identifier="one")), "multi lease 1")
    expect(bool(c2.MultiNonBlockingLease(2, m, d, identifier="two")), "multi lease 2")
    expect(not bool(ctx.client().MultiNonBlockingLease(2, m, d, identifier="three")), "multi lease 3 granted")


@check("set_partitioner")
def _(ctx):
    c1, c2 = ctx.client(), ctx.client()
    p = ctx.p("part")
    items = ["a", "b", "c", "d"]
    s1 = c1.SetPartitioner(p, set=items, identifier="one", time_boundary=0.5)
    s2 = c2.SetPartitioner(p, set=items, identifier="two", time_boundary=0.5)
    deadline = time.time() + 20
    while time.time() < deadline:
        for s in (s1, s2):
            if s.failed:
                raise CheckFailed("partitioner failed")
            if s.release:
                s.release_set()
            elif s.allocating:
                s.wait_for_acquire(1)
        if s1.acquired and s2.acquired:
            break
        time.sleep(0.05)
    expect(s1.acquired and s2.acquired, "not both acquired")
    a, b = set(s1), set(s2)
    expect_eq(sorted(a | b), items, "union of partitions")
    expect(not (a & b) and a and b, "partitions overlap or one is empty: %r %r" % (a, b))
    s1.finish()
    s2.finish()


###############################################################################
# main
###############################################################################
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", required=True,
                    help="host:port of the server under test, or a connect string of an ensemble's servers")
    ap.add_argument("--ttl", choices=("on", "off", "skip"), default=os.environ.get("KAZOO_SUITE_TTL", "skip"),
                    help="on: server has extendedTypesEnabled=true; off: TTL must be rejected; skip (default)")
    ap.add_argument("-k", dest="pattern", default=None, help="only run checks whose name matches this glob")
    ap.add_argument("--check-timeout", type=float, default=30.0, help="deadline per check, seconds")
    ap.add_argument("-v", "--verbose", action="store_true", help="tracebacks, timings and kazoo warnings")
    ap.add_argument("--list", action="store_true", help="list the checks and exit")
    args = ap.parse_args()
    if args.list:
        for name, _, _ in CHECKS:
            print(name)
        return 0
    logging.basicConfig(level=logging.WARNING if args.verbose else logging.CRITICAL)
    if not args.verbose:
        logging.getLogger("kazoo").setLevel(logging.CRITICAL)

    t0 = time.time()
    root = "/kazoo-%d-%d" % (os.getpid(), int(time.time()))
    setup = KazooClient(hosts=args.hosts, timeout=10.0, connection_retry={"max_tries": -1, "delay": 0.2, "max_delay": 1.0})
    try:
        setup.start(timeout=10)
        setup.create_async(root).get(timeout=10)
    except Exception as e:
        print("FAIL setup: cannot connect to %s or create %s: %r" % (args.hosts, root, e))
        return 1
    print("# kazoo suite against %s, root %s, ttl=%s" % (args.hosts, root, args.ttl))
    counts = collections.Counter()
    failed = []
    timeouts_in_a_row = 0
    for name, fn, opts in CHECKS:
        if args.pattern and not fnmatch.fnmatch(name, args.pattern):
            continue
        if timeouts_in_a_row >= 3:
            print("FAIL %s: not run, the server stopped answering (3 checks in a row timed out)" % name)
            r = "fail"
        else:
            r = run_check(args, root, name, fn, opts, setup)
        timeouts_in_a_row = timeouts_in_a_row + 1 if r == "timeout" else 0
        r = "fail" if r == "timeout" else r
        counts[r] += 1
        if r == "fail":
            failed.append(name)

    # clean up (some nodes are ACL-protected: authenticate as every digest user used)
    def cleanup():
        try:
            cleaner = KazooClient(hosts=args.hosts, timeout=10.0, auth_data=[
                ("digest", u) for u in DIGEST_USERS])
            cleaner.start(timeout=10)
            cleaner.delete(root, recursive=True)
            cleaner.stop()
        except Exception as e:
            print("# cleanup of %s failed: %r" % (root, e))

    t = threading.Thread(target=cleanup, daemon=True)
    t.start()
    t.join(60)
    if t.is_alive():
        print("# cleanup of %s timed out" % root)
    try:
        setup.stop()
    except Exception:
        pass
    print("# %d passed, %d failed, %d skipped, %.1f s" % (counts["ok"], counts["fail"], counts["skip"], time.time() - t0))
    if failed:
        print("# failed: " + " ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
