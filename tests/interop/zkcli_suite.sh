#!/usr/bin/env bash
# Interop suite: Debian's Java zkCli (org.apache.zookeeper.ZooKeeperMain, ZooKeeper 3.8)
# against a ZooKeeper-compatible server.
#
# Usage: tests/interop/zkcli_suite.sh HOST:PORT [--ttl on|off|skip]
#   --ttl on    the server has TTL nodes enabled (extendedTypesEnabled=true): `create -t` works
#   --ttl off   TTL nodes are disabled: `create -t` fails with "Unimplemented"
#   --ttl skip  (default) no TTL check. Env ZKCLI_TTL sets the default.
# Env: JAVA (default java), ZK_CLASSPATH (default: Debian's /usr/share/java/zookeeper.jar
#      + slf4j-nop.jar), ZKCLI_KEEP=1 keeps the work dir with the raw transcripts.
#
# Prints "ok <name>" or "FAIL <name>: <reason>" per check; exits 1 if any failed.
# Commands are fed to zkCli on stdin so that one JVM runs a whole batch. Each batch
# is split into sections by "marker" commands (@@name): zkCli answers an unknown
# command with its usage text plus "Command not found: Command not found @@name",
# which is a reliable delimiter. stdout and stderr are merged (zkCli prints errors
# such as "Node does not exist: /x" on stderr, and results on stdout).
# Everything lives under a unique root /zkcli-<pid>-<epoch>, removed at the end.
set -uo pipefail

usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
[ $# -ge 1 ] || usage
SERVER="$1"; shift
TTL="${ZKCLI_TTL:-skip}"
while [ $# -gt 0 ]; do
  case "$1" in
    --ttl) TTL="${2:?--ttl needs on|off|skip}"; shift 2 ;;
    --ttl=*) TTL="${1#--ttl=}"; shift ;;
    -h|--help) usage ;;
    *) echo "unknown argument: $1" >&2; usage ;;
  esac
done
case "$TTL" in on|off|skip) ;; *) echo "--ttl must be on, off or skip" >&2; exit 2 ;; esac

JAVA="${JAVA:-java}"
if [ -z "${ZK_CLASSPATH:-}" ]; then
  ZK_CLASSPATH=/usr/share/java/zookeeper.jar
  # zookeeper.jar's manifest Class-Path brings slf4j-api but no binding; the NOP
  # binding silences the client's log output (we only parse what zkCli prints).
  [ -r /usr/share/java/slf4j-nop.jar ] && ZK_CLASSPATH+=:/usr/share/java/slf4j-nop.jar
fi
if ! [ -r "${ZK_CLASSPATH%%:*}" ]; then
  echo "zookeeper.jar not found (${ZK_CLASSPATH%%:*}); run .ci/setup.sh" >&2
  exit 2
fi
command -v "$JAVA" >/dev/null || { echo "java not found" >&2; exit 2; }

W="$(mktemp -d /tmp/zkcli-suite.XXXXXX)"
mkdir -p "$W/sec"
if [ "${ZKCLI_KEEP:-0}" = 1 ]; then
  echo "# work dir (kept): $W"
else
  trap 'rm -rf "$W"' EXIT
fi
R="/zkcli-$$-$(date +%s)"
# digest of u1:p1 = base64(sha1("u1:p1"))
U1_DIGEST="u1:fpT/y03U+EjItKZOSLGvjnJlyng="
PASS=0; FAILED=0; FAILED_NAMES=()
T0=$SECONDS

ok()   { echo "ok $1"; PASS=$((PASS + 1)); }
fail() { echo "FAIL $1: $2"; FAILED=$((FAILED + 1)); FAILED_NAMES+=("$1"); }

# zk ARGS... : run zkCli once (single-command mode or stdin mode), bounded in time
zk() {
  timeout -k 5 60 "$JAVA" -Xmx128m -XX:TieredStopAtLevel=1 -Xshare:auto \
    -cp "$ZK_CLASSPATH" org.apache.zookeeper.ZooKeeperMain -server "$SERVER" "$@"
}

# run_batch NAME < commands : runs the commands in one zkCli session ("quit" is
# appended) and splits the transcript into $W/sec/<marker>.txt. The order of the
# sections is kept in $W/order.
run_batch() {
  local name="$1" rc
  cat > "$W/$name.in"
  echo quit >> "$W/$name.in"
  zk < "$W/$name.in" > "$W/$name.out" 2>&1
  rc=$?
  # (in stdin mode zkCli's exit code is that of the last failed command, e.g. 127
  # for our unknown-command markers, so only a timeout or a signal is reported)
  if [ $rc -eq 124 ] || [ $rc -gt 128 ]; then
    echo "# batch $name: zkCli timed out or was killed (exit $rc)"
  fi
  awk -v dir="$W/sec" -v first="$name.head" -v order="$W/order" '
    BEGIN { cur = first; print cur >> order; printf "" > (dir "/" cur ".txt") }
    /^Command not found: Command not found @@/ {
      cur = $0; sub(/^Command not found: Command not found @@/, "", cur)
      print cur >> order; printf "" > (dir "/" cur ".txt"); next
    }
    /^ZooKeeper -server host:port/ || /^\t/ { next }     # usage text after a marker
    /^SLF4J: / { next }
    { print >> (dir "/" cur ".txt") }
  ' "$W/$name.out"
  return 0
}

sec()  { cat "$W/sec/$1.txt" 2>/dev/null; }
# section without the asynchronous watcher output (WATCHER::, blank, WatchedEvent lines)
csec() { sec "$1" | grep -v -e '^WATCHER::$' -e '^$' -e '^WatchedEvent state:'; }
have_sec() { [ -e "$W/sec/$1.txt" ]; }
show() { printf '%s' "$1" | head -c 400 | tr '\n' '|'; }

# expect_eq CHECK SECTION EXPECTED : cleaned section output equals EXPECTED exactly
expect_eq() {
  local got
  if ! have_sec "$2"; then fail "$1" "section $2 missing (zkCli died?)"; return; fi
  got="$(csec "$2")"
  if [ "$got" = "$3" ]; then ok "$1"; else fail "$1" "expected [$(show "$3")] got [$(show "$got")]"; fi
}
# expect_re CHECK SECTION REGEX... : every ERE matches some line of the cleaned section
expect_re() {
  local name="$1" s="$2" got re; shift 2
  if ! have_sec "$s"; then fail "$name" "section $s missing (zkCli died?)"; return; fi
  got="$(csec "$s")"
  for re in "$@"; do
    if ! grep -qE -- "$re" <<<"$got"; then fail "$name" "no line matches /$re/ in [$(show "$got")]"; return; fi
  done
  ok "$name"
}
# count_event BATCH TYPE PATH : number of "type:TYPE path:PATH" events in a batch's
# whole transcript. zkCli's event thread prints events asynchronously, so an event
# may show up after a later marker; every watch check therefore uses its own path
# and counts over the whole batch.
count_event() {
  grep -cxF "WatchedEvent state:SyncConnected type:$2 path:$3" "$W/$1.out"
}
# expect_events CHECK BATCH TYPE PATH N : exactly N such events in the batch
expect_events() {
  local n
  n="$(count_event "$2" "$3" "$4")"
  if [ "$n" = "$5" ]; then ok "$1"; else fail "$1" "expected $5 event(s) type:$3 path:$4, saw $n"; fi
}
# statval SECTION FIELD : value of "FIELD = value" (first occurrence) in the section
statval() { csec "$1" | sed -n "s/^$2 = //p" | head -1; }
hex2dec() { printf '%d' "$1" 2>/dev/null || echo -1; }
STAT_FIELDS="cZxid ctime mZxid mtime pZxid cversion dataVersion aclVersion ephemeralOwner dataLength numChildren"
# stat_layout SECTION : the stat field names, in order, as one line
stat_layout() { csec "$1" | sed -n 's/^\([A-Za-z]*\) = .*/\1/p' | tr '\n' ' ' | sed 's/ $//'; }
# check_stat CHECK SECTION field=value... : all given stat fields have these values
check_stat() {
  local name="$1" s="$2" kv f v got; shift 2
  if ! have_sec "$s"; then fail "$name" "section $s missing (zkCli died?)"; return; fi
  for kv in "$@"; do
    f="${kv%%=*}"; v="${kv#*=}"; got="$(statval "$s" "$f")"
    if [ "$got" != "$v" ]; then fail "$name" "$f = '$got', expected '$v' in [$(show "$(csec "$s")")]"; return; fi
  done
  ok "$name"
}

echo "# zkCli suite against $SERVER, root $R, ttl=$TTL"

# preflight: one single-command zkCli run, so that a dead server fails fast
# (against an unreachable server every zkCli command waits for a connection loss)
pre="$(timeout -k 5 30 "$JAVA" -Xmx128m -XX:TieredStopAtLevel=1 -cp "$ZK_CLASSPATH" \
       org.apache.zookeeper.ZooKeeperMain -server "$SERVER" ls / 2>&1)"
if ! grep -q '^\[.*zookeeper.*\]$' <<<"$pre"; then
  echo "FAIL setup: 'ls /' through zkCli failed against $SERVER: $(printf '%s' "$pre" | tail -3 | tr '\n' '|')"
  exit 1
fi

###############################################################################
# Batch 1: one session (session A) does almost everything.
###############################################################################
run_batch main <<EOF
@@create
create $R rootdata
create $R/a data-a
@@create_exists
create $R/a again
@@create_noparent
create $R/no/such x
@@create_nodata
create $R/nodata
get $R/nodata
@@create_empty
create $R/empty ""
get $R/empty
@@create_spaces
create $R/sp "two words"
get $R/sp
@@create_seq
create $R/sq
create -s $R/sq/n- one
create -s $R/sq/n- two
create $R/sq/plain
delete $R/sq/plain
create -s $R/sq/n- three
@@ls_s_seq
ls -s $R/sq
@@create_e
create -e $R/eph e1
@@stat_e
stat $R/eph
@@create_eph_child
create $R/eph/kid
@@create_es
create -e -s $R/es- x
@@create_c
create -c $R/cont
create $R/cont/kid k
@@stat_c
stat $R/cont
@@get
get $R/a
@@get_s
get -s $R/a
@@get_nonode
get $R/zzz
@@set
set $R/a v1
get $R/a
@@set_s
set -s $R/a v22
@@set_v_bad
set -v 7 $R/a nope
get $R/a
@@set_v_ok
set -v 2 $R/a v3
@@get_s_after_set
get -s $R/a
@@set_nonode
set $R/zzz x
@@stat
stat $R/a
@@stat_nonode
stat $R/zzz
@@ls
ls $R
@@ls_nonode
ls $R/zzz
@@ls_R
create $R/tree
create $R/tree/b
create $R/tree/a
create $R/tree/a/x
@@ls_R_out
ls -R $R/tree
@@ls_s_root
ls -s $R
@@getAllChildrenNumber
getAllChildrenNumber $R/tree
getAllChildrenNumber $R/tree/a/x
@@getEphemerals
getEphemerals $R
@@getEphemerals_prefix
getEphemerals $R/es
@@delete_notempty
delete $R/sq
@@delete_nonode
delete $R/zzz
@@delete_v_bad
delete -v 9 $R/a
@@delete_v_ok
delete -v 3 $R/a
@@stat_deleted
stat $R/a
@@deleteall
create $R/da
create $R/da/x
create $R/da/x/y
create $R/da/z
deleteall $R/da
@@stat_deleteall
stat $R/da
@@sync
sync $R
@@whoami
whoami
@@acl_create
create $R/acl x digest:$U1_DIGEST:cdrwa
@@acl_noauth
get $R/acl
getAcl $R/acl
set $R/acl y
ls $R/acl
create $R/acl/kid
@@acl_stat_noauth
stat $R/acl
@@acl_addauth
addauth digest u1:p1
whoami
@@acl_auth_get
get $R/acl
@@acl_auth_getacl
getAcl $R/acl
@@getacl_s
getAcl -s $R/acl
@@setacl_v_bad
setAcl -v 5 $R/acl world:anyone:r
@@setacl
setAcl $R/acl world:anyone:r
@@getacl_after_setacl
getAcl -s $R/acl
@@setacl_readonly
set $R/acl y
@@acl_auth_scheme
create $R/acl2 x auth::cdrwa
getAcl $R/acl2
@@acl_multi
create $R/acl4 x world:anyone:r,digest:$U1_DIGEST:cdrwa
getAcl $R/acl4
@@acl_ip
create $R/acl3 x ip:127.0.0.1:cdrwa
get $R/acl3
@@setacl_R
create $R/r x
create $R/r/a y
setAcl -R $R/r world:anyone:cdr
getAcl $R/r/a
set $R/r/a z
@@delete_checks_parent_acl
create $R/dp
create $R/dp/locked x world:anyone:r
delete $R/dp/locked
stat $R/dp/locked
@@getacl_nonode
getAcl $R/zzz
@@watch_get
create $R/w w0
get -w $R/w
set $R/w d1
@@watch_get_once
set $R/w d2
sync $R
@@watch_ls
create $R/wl
ls -w $R/wl
create $R/wl/c
set $R/wl x
@@watch_stat
stat -w $R/wn
create $R/wn
@@watch_delete
create $R/wd
get -w $R/wd
delete $R/wd
@@addwatch_recursive
create $R/pw
addWatch $R/pw
create $R/pw/c
set $R/pw/c x
create $R/pw/c/d
set $R/pw y1
set $R/pw y2
delete $R/pw/c/d
sync $R
@@addwatch_persistent
create $R/pp
addWatch -m PERSISTENT $R/pp
set $R/pp 1
set $R/pp 2
create $R/pp/k
set $R/pp/k x
sync $R
@@removewatches_persistent
removewatches $R/pp
set $R/pp 3
sync $R
@@removewatches_data
create $R/rw
get -w $R/rw
removewatches $R/rw -d
set $R/rw 1
sync $R
@@removewatches_none
removewatches $R/none
@@zookeeper_node
stat /zookeeper
@@zookeeper_acl
getAcl /zookeeper/config
@@root
getAcl /
@@end
EOF

expect_eq create create "$(printf 'Created %s\nCreated %s' "$R" "$R/a")"
expect_eq create_exists create_exists "Node already exists: $R/a"
expect_eq create_noparent create_noparent "Node does not exist: $R/no/such"
# zkCli sends null data when none is given; the server must hand back null (printed "null")
expect_eq create_nodata create_nodata "$(printf 'Created %s\nnull' "$R/nodata")"
# "" is an empty (non-null) byte array: printed as an empty line (dropped by csec)
expect_eq create_empty create_empty "Created $R/empty"
if [ "$(sec create_empty | grep -c '^$')" -ge 1 ] && ! sec create_empty | grep -qx null; then ok create_empty_not_null; else fail create_empty_not_null "expected an empty line, not null: [$(show "$(sec create_empty)")]"; fi
expect_eq create_spaces create_spaces "$(printf 'Created %s\ntwo words' "$R/sp")"
expect_eq create_seq create_seq "$(printf 'Created %s\n' "$R/sq" "$R/sq/n-0000000000" "$R/sq/n-0000000001" "$R/sq/plain" "$R/sq/n-0000000003")"
# The sequence suffix is the parent's internal cversion, which counts child
# CREATES only (3 creates before -> 0000000003), while the cversion clients see is
# 2*creates - numChildren (4 creates, 3 children -> 5), i.e. it also counts deletes.
expect_re ls_s_seq ls_s_seq "^\[n-0000000000, n-0000000001, n-0000000003\]$"
check_stat ls_s_seq_stat ls_s_seq cversion=5 numChildren=3 dataVersion=0
expect_eq create_e create_e "Created $R/eph"
eo="$(statval stat_e ephemeralOwner)"
if [ -n "$eo" ] && [ "$eo" != 0x0 ] && [ "$(statval stat_e dataLength)" = 2 ]; then ok stat_e_owner; else fail stat_e_owner "ephemeralOwner='$eo'"; fi
expect_eq create_eph_child create_eph_child "Ephemerals cannot have children: $R/eph/kid"
# parent $R had 7 successful child creates before (a nodata empty sp sq eph ... ) -> cversion 6
expect_eq create_es create_es "Created $R/es-0000000006"
expect_eq create_c create_c "$(printf 'Created %s\nCreated %s' "$R/cont" "$R/cont/kid")"
# containers (and TTL nodes) report ephemeralOwner 0 to clients
check_stat stat_c stat_c ephemeralOwner=0x0 numChildren=1 cversion=1
expect_eq get get "data-a"
expect_re get_s get_s "^data-a$" "^dataVersion = 0$" "^dataLength = 6$" "^numChildren = 0$" "^ephemeralOwner = 0x0$" "^aclVersion = 0$" "^cversion = 0$"
if [ "$(stat_layout get_s)" = "$STAT_FIELDS" ]; then ok get_s_layout; else fail get_s_layout "fields: $(stat_layout get_s)"; fi
cz="$(statval get_s cZxid)"; mz="$(statval get_s mZxid)"; pz="$(statval get_s pZxid)"
if [ -n "$cz" ] && [ "$cz" = "$mz" ] && [ "$cz" = "$pz" ] && [ "$(statval get_s ctime)" = "$(statval get_s mtime)" ]; then ok get_s_zxids; else fail get_s_zxids "cZxid=$cz mZxid=$mz pZxid=$pz"; fi
expect_eq get_nonode get_nonode "Node does not exist: $R/zzz"
expect_eq set set "v1"
check_stat set_s set_s dataVersion=2 dataLength=3 "cZxid=$cz" "pZxid=$pz"
mz2="$(statval set_s mZxid)"
if [ -n "$mz2" ] && [ "$(hex2dec "$mz2")" -gt "$(hex2dec "$cz")" ]; then ok set_s_mzxid; else fail set_s_mzxid "mZxid $mz2 not > cZxid $cz"; fi
expect_eq set_v_bad set_v_bad "$(printf 'version No is not valid : %s\nv22' "$R/a")"
expect_eq set_v_ok set_v_ok ""
expect_re get_s_after_set get_s_after_set "^v3$" "^dataVersion = 3$" "^dataLength = 2$"
expect_eq set_nonode set_nonode "Node does not exist: $R/zzz"
if [ "$(stat_layout stat)" = "$STAT_FIELDS" ]; then ok stat; else fail stat "fields: $(stat_layout stat) [$(show "$(csec stat)")]"; fi
check_stat stat_values stat dataVersion=3 dataLength=2 numChildren=0 "cZxid=$cz"
expect_re stat_time_format stat '^ctime = [A-Z][a-z]{2} [A-Z][a-z]{2} [0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2} [A-Z]+ 20[0-9]{2}$'
expect_eq stat_nonode stat_nonode "Node does not exist: $R/zzz"
expect_eq ls ls "[a, cont, empty, eph, es-0000000006, nodata, sp, sq]"
expect_eq ls_nonode ls_nonode "Node does not exist: $R/zzz"
expect_eq ls_R ls_R_out "$(printf '%s\n' "$R/tree" "$R/tree/a" "$R/tree/b" "$R/tree/a/x")"
expect_re ls_s_root ls_s_root "^\[a, cont, empty, eph, es-0000000006, nodata, sp, sq, tree\]$" "^numChildren = 9$" "^cversion = 9$"
expect_eq getAllChildrenNumber getAllChildrenNumber "$(printf '3\n0')"
ge="$(csec getEphemerals)"
if [[ "$ge" =~ ^\[.*\]$ ]] && grep -qF "$R/eph" <<<"$ge" && grep -qF "$R/es-0000000006" <<<"$ge" && [ "$(tr -cd ',' <<<"$ge" | wc -c)" = 1 ]; then ok getEphemerals; else fail getEphemerals "got [$ge]"; fi
expect_eq getEphemerals_prefix getEphemerals_prefix "[$R/es-0000000006]"
expect_eq delete_notempty delete_notempty "Node not empty: $R/sq"
expect_eq delete_nonode delete_nonode "Node does not exist: $R/zzz"
expect_eq delete_v_bad delete_v_bad "version No is not valid : $R/a"
expect_eq delete_v_ok delete_v_ok ""
expect_eq stat_deleted stat_deleted "Node does not exist: $R/a"
expect_eq deleteall deleteall "$(printf 'Created %s\n' "$R/da" "$R/da/x" "$R/da/x/y" "$R/da/z")"
expect_eq stat_deleteall stat_deleteall "Node does not exist: $R/da"
expect_eq sync sync "Sync is OK"
expect_eq whoami whoami "$(printf 'Auth scheme: User\nip: 127.0.0.1')"
expect_eq acl_create acl_create "Created $R/acl"
expect_eq acl_noauth acl_noauth "$(printf 'Insufficient permission : %s\n' "$R/acl" "$R/acl" "$R/acl" "$R/acl" "$R/acl/kid")"
check_stat acl_stat_noauth acl_stat_noauth dataLength=1 aclVersion=0
expect_eq acl_addauth acl_addauth "$(printf 'Auth scheme: User\ndigest: u1\nip: 127.0.0.1')"
expect_eq acl_auth_get acl_auth_get "x"
expect_eq acl_auth_getacl acl_auth_getacl "$(printf "'digest,'%s\n: cdrwa" "$U1_DIGEST")"
expect_re getacl_s getacl_s "^'digest,'u1:" "^: cdrwa$" "^aclVersion = 0$" "^dataLength = 1$"
expect_eq setacl_v_bad setacl_v_bad "version No is not valid : $R/acl"
expect_eq setacl setacl ""
expect_re getacl_after_setacl getacl_after_setacl "^'world,'anyone$" "^: r$" "^aclVersion = 1$" "^dataVersion = 0$"
expect_eq setacl_readonly setacl_readonly "Insufficient permission : $R/acl"
# the "auth" scheme expands to the digest identity the session authenticated with
expect_eq acl_auth_scheme acl_auth_scheme "$(printf "Created %s\n'digest,'%s\n: cdrwa" "$R/acl2" "$U1_DIGEST")"
expect_eq acl_multi acl_multi "$(printf "Created %s\n'world,'anyone\n: r\n'digest,'%s\n: cdrwa" "$R/acl4" "$U1_DIGEST")"
expect_eq acl_ip acl_ip "$(printf 'Created %s\nx' "$R/acl3")"
expect_eq setacl_R setacl_R "$(printf "Created %s\nCreated %s\n'world,'anyone\n: cdr\nInsufficient permission : %s" "$R/r" "$R/r/a" "$R/r/a")"
# delete is checked against the PARENT's ACL (DELETE perm), not the node's own ACL
expect_eq delete_checks_parent_acl delete_checks_parent_acl "$(printf 'Created %s\nCreated %s\nNode does not exist: %s' "$R/dp" "$R/dp/locked" "$R/dp/locked")"
expect_eq getacl_nonode getacl_nonode "Node does not exist: $R/zzz"
expect_eq watch_get watch_get "$(printf 'Created %s\nw0' "$R/w")"
expect_eq watch_get_once watch_get_once "Sync is OK"
# get -w, then two sets: the one-shot watch fires once
expect_events watch_get_fires_once main NodeDataChanged "$R/w" 1
expect_eq watch_ls watch_ls "$(printf 'Created %s\n[]\nCreated %s' "$R/wl" "$R/wl/c")"
expect_events watch_ls_event main NodeChildrenChanged "$R/wl" 1
expect_events watch_ls_no_data_event main NodeDataChanged "$R/wl" 0
expect_eq watch_stat watch_stat "$(printf 'Node does not exist: %s\nCreated %s' "$R/wn" "$R/wn")"
expect_events watch_stat_event main NodeCreated "$R/wn" 1
expect_events watch_delete_event main NodeDeleted "$R/wd" 1
expect_eq addwatch_recursive addwatch_recursive "$(printf 'Created %s\nCreated %s\nCreated %s\nSync is OK' "$R/pw" "$R/pw/c" "$R/pw/c/d")"
expect_events addwatch_recursive_created main NodeCreated "$R/pw/c" 1
expect_events addwatch_recursive_changed main NodeDataChanged "$R/pw/c" 1
expect_events addwatch_recursive_deep main NodeCreated "$R/pw/c/d" 1
expect_events addwatch_recursive_self main NodeDataChanged "$R/pw" 2
expect_events addwatch_recursive_deleted main NodeDeleted "$R/pw/c/d" 1
# persistent-recursive watches never deliver NodeChildrenChanged
expect_events addwatch_recursive_no_child_events main NodeChildrenChanged "$R/pw" 0
expect_events addwatch_recursive_no_child_events2 main NodeChildrenChanged "$R/pw/c" 0
expect_eq addwatch_persistent addwatch_persistent "$(printf 'Created %s\nCreated %s\nSync is OK' "$R/pp" "$R/pp/k")"
# two sets while the persistent watch is there, one more after removewatches
expect_events addwatch_persistent_data_then_removed main NodeDataChanged "$R/pp" 2
expect_events addwatch_persistent_child main NodeChildrenChanged "$R/pp" 1
expect_events addwatch_persistent_not_recursive main NodeDataChanged "$R/pp/k" 0
expect_eq removewatches_persistent removewatches_persistent "Sync is OK"
expect_events removewatches_persistent_event main PersistentWatchRemoved "$R/pp" 1
expect_eq removewatches_data removewatches_data "$(printf 'Created %s\nnull\nSync is OK' "$R/rw")"
expect_events removewatches_data_event main DataWatchRemoved "$R/rw" 1
expect_events removewatches_data_silent main NodeDataChanged "$R/rw" 0
expect_eq removewatches_none removewatches_none "KeeperErrorCode = No such watcher for $R/none"
# the /zookeeper system node as real ZooKeeper 3.8 shows it
check_stat zookeeper_node zookeeper_node cZxid=0x0 mZxid=0x0 dataLength=0 numChildren=2 ephemeralOwner=0x0
expect_eq zookeeper_config_acl zookeeper_acl "$(printf "'world,'anyone\n: r")"
expect_eq root_acl root "$(printf "'world,'anyone\n: cdrwa")"
if have_sec end; then ok batch_main_complete; else fail batch_main_complete "the session did not reach its last command"; fi

###############################################################################
# Batch 2: a new session. Session A's ephemerals are gone (its close removed
# them), its auth does not carry over, getEphemerals is per session.
###############################################################################
run_batch second <<EOF
@@s2_ephemerals_gone
stat $R/eph
ls $R
@@s2_getEphemerals
getEphemerals $R
create -e $R/mine x
getEphemerals $R
@@s2_noauth
whoami
get $R/acl2
@@s2_data_kept
get $R/sp
get -s $R/nodata
@@s2_ttl
create -t 60000 $R/ttl t
stat $R/ttl
@@s2_cleanup
addauth digest u1:p1
deleteall $R
stat $R
@@end2
EOF
expect_eq s2_ephemerals_gone s2_ephemerals_gone "$(printf 'Node does not exist: %s\n[acl, acl2, acl3, acl4, cont, dp, empty, nodata, pp, pw, r, rw, sp, sq, tree, w, wl, wn]' "$R/eph")"
expect_eq s2_getEphemerals s2_getEphemerals "$(printf '[]\nCreated %s\n[%s]' "$R/mine" "$R/mine")"
expect_eq s2_noauth s2_noauth "$(printf 'Auth scheme: User\nip: 127.0.0.1\nInsufficient permission : %s' "$R/acl2")"
expect_re s2_data_kept s2_data_kept "^two words$" "^null$" "^dataLength = 0$"
case "$TTL" in
  on)
    expect_re ttl_create s2_ttl "^Created $R/ttl$" "^dataLength = 1$"
    # TTL nodes report ephemeralOwner 0 to clients, like containers
    check_stat ttl_stat s2_ttl ephemeralOwner=0x0
    ;;
  off)
    expect_eq ttl_disabled s2_ttl "$(printf 'KeeperErrorCode = Unimplemented for %s\nNode does not exist: %s' "$R/ttl" "$R/ttl")"
    ;;
  skip) echo "# ttl checks skipped (use --ttl on|off)" ;;
esac
expect_eq cleanup_deleteall s2_cleanup "Node does not exist: $R"

###############################################################################
# Single-command mode: exit codes and output of one command per JVM.
###############################################################################
out="$(zk create "$R" single 2>&1)"; rc=$?
if [ $rc = 0 ] && grep -qxF "Created $R" <<<"$out"; then ok single_create; else fail single_create "rc=$rc out=[$(show "$out")]"; fi
out="$(zk get "$R" 2>/dev/null)"; rc=$?
if [ $rc = 0 ] && grep -qx single <<<"$out"; then ok single_get; else fail single_get "rc=$rc out=[$(show "$out")]"; fi
out="$(zk get "$R/nope" 2>&1)"; rc=$?
if [ $rc = 1 ] && grep -qxF "Node does not exist: $R/nope" <<<"$out"; then ok single_get_nonode_rc; else fail single_get_nonode_rc "rc=$rc out=[$(show "$out")]"; fi
out="$(zk delete "$R" 2>&1)"; rc=$?
if [ $rc = 0 ]; then ok single_delete; else fail single_delete "rc=$rc out=[$(show "$out")]"; fi

echo "# $PASS passed, $FAILED failed, $((SECONDS - T0)) s"
if [ "$FAILED" -gt 0 ]; then
  echo "# failed: ${FAILED_NAMES[*]}"
  exit 1
fi
exit 0
