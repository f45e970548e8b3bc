#!/usr/bin/env bash
# Installs what the interop suites (tests/interop) and tests/tls.rs need, on a Debian 12
# machine that already has Rust, git, gcc, Python 3.11 and Java 17. Idempotent: safe to re-run.
#   - the openssl command line tool (tests/tls.rs makes certificates with it)
#   - Debian's ZooKeeper client jars (package "zookeeper", for the Java zkCli;
#     NOT zookeeperd, which would start a server), only if
#     /usr/share/java/zookeeper.jar is missing
#   - MIT Kerberos for tests/kerberos.rs: libkrb5-dev and pkg-config (PyPI's
#     `kerberos`, pure-sasl's GSSAPI, compiles against them; zoocore itself
#     loads libgssapi_krb5.so.2 at run time and needs nothing to build), and
#     the KDC tools the test runs on loopback (krb5-kdc, krb5-admin-server for
#     kadmin.local, krb5-user for kinit/klist). No KDC service is configured:
#     the test makes its own realm in a temporary directory.
#   - a Python venv at .venv/ (repo root) with tests/interop/requirements.txt
# Env: PYTHON (default python3), SETUP_FORCE_VENV=1 to rebuild the venv.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

say() { echo "setup: $*"; }

if [ "$(id -u)" -eq 0 ]; then SUDO=(); else SUDO=(sudo); fi

# --- Java zkCli (Debian package) ---------------------------------------------
if [ -r /usr/share/java/zookeeper.jar ]; then
  say "/usr/share/java/zookeeper.jar present, not installing the zookeeper package"
else
  say "installing Debian package zookeeper (client jars + zkCli; not zookeeperd)"
  "${SUDO[@]}" apt-get update
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends zookeeper
fi
# the zkCli suite also needs the slf4j NOP binding (package libslf4j-java, a dependency)
for j in /usr/share/java/zookeeper.jar /usr/share/java/slf4j-nop.jar; do
  [ -r "$j" ] || { echo "setup: $j still missing after the install" >&2; exit 1; }
done
command -v java >/dev/null || { echo "setup: java not found (install a JRE 11+)" >&2; exit 1; }
# zkCli over TLS (tests/tls.rs) uses the Netty client socket: Debian's
# libnetty-java, a dependency of the zookeeper package, has its module jars.
for j in /usr/share/java/netty-handler.jar /usr/share/java/netty-codec.jar /usr/share/java/netty-transport.jar; do
  [ -r "$j" ] || { echo "setup: $j missing (Debian package libnetty-java)" >&2; exit 1; }
done

# --- openssl CLI (tests/tls.rs makes its CA and certificates with it) --------
if command -v openssl >/dev/null; then
  say "openssl present: $(openssl version)"
else
  say "installing Debian package openssl (tests/tls.rs makes certificates with it)"
  "${SUDO[@]}" apt-get update
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends openssl
fi
say "java: $(java -version 2>&1 | head -1)"

# --- MIT Kerberos (tests/kerberos.rs) -------------------------------------------
# The KDC tools make a throwaway realm in the test's temporary directory; the
# PyPI package `kerberos` (pure-sasl's GSSAPI) is compiled against
# libkrb5-dev. zoocore loads libgssapi_krb5.so.2 at run time (libkrb5-dev
# depends on it).
krb_missing=()
for pair in libkrb5-dev:/usr/bin/krb5-config krb5-kdc:/usr/sbin/krb5kdc krb5-admin-server:/usr/sbin/kadmin.local \
            krb5-user:/usr/bin/kinit pkg-config:/usr/bin/pkg-config; do
  [ -x "${pair#*:}" ] || krb_missing+=("${pair%%:*}")
done
if [ "${#krb_missing[@]}" -eq 0 ]; then
  say "MIT Kerberos packages present ($(krb5-config --version))"
else
  say "installing Debian packages ${krb_missing[*]} (tests/kerberos.rs)"
  "${SUDO[@]}" apt-get update
  # The krb5-kdc and krb5-admin-server postinst ask for a realm (answered
  # empty: noninteractive) and may try to start services, which find no
  # realm database and stay down: the tests start their own KDC.
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${krb_missing[@]}"
fi

# --- Python venv with kazoo --------------------------------------------------
PY="${PYTHON:-python3}"
req=tests/interop/requirements.txt
stamp=.venv/.requirements.sha256
want="$(sha256sum "$req" | cut -d' ' -f1)"
if [ "${SETUP_FORCE_VENV:-0}" = 1 ]; then
  say "SETUP_FORCE_VENV=1: removing .venv/"
  rm -rf .venv
fi
if [ -x .venv/bin/python ] && [ -r "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
   && .venv/bin/python -c 'import kazoo' 2>/dev/null; then
  say ".venv/ up to date ($(.venv/bin/python -c 'import kazoo.version as v; print("kazoo", v.__version__)'))"
else
  if ! [ -x .venv/bin/python ]; then
    say "creating venv .venv/ with $($PY --version 2>&1)"
    if ! "$PY" -m venv .venv; then
      # Debian's own python3 needs python3-venv (ensurepip) for this
      rm -rf .venv
      say "venv creation failed; installing Debian package python3-venv and retrying"
      "${SUDO[@]}" apt-get update
      "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-venv
      "$PY" -m venv .venv
    fi
  fi
  say "pip install -r $req into .venv/"
  .venv/bin/pip install --disable-pip-version-check -q -r "$req"
  echo "$want" > "$stamp"
  say "installed $(.venv/bin/python -c 'import kazoo.version as v; print("kazoo", v.__version__)')"
fi
say "done. Run: .venv/bin/python tests/interop/kazoo_suite.py --hosts 127.0.0.1:2181"
say "       and: tests/interop/zkcli_suite.sh 127.0.0.1:2181"
