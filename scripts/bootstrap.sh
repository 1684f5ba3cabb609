#!/usr/bin/env bash
# Make this checkout ready to run and test shopstream. Safe to run again and again:
#   - .venv with Python 3.11, `pip install -e .[dev]` only when pyproject.toml changed
#   - PostgreSQL server binaries (Debian's initdb/pg_ctl), installed when missing and root
#   - Chromium (Debian's) for the console's browser tests, installed when missing and root
#   - checks for Java (17+ for Kafka, 21+ for Apicurio Registry) and Maven
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf 'bootstrap: %s\n' "$*"; }
warn() { printf 'bootstrap: WARNING: %s\n' "$*" >&2; }
is_root() { [ "$(id -u)" -eq 0 ]; }
have() { command -v "$1" >/dev/null 2>&1; }

apt_updated=0
apt_install() {
    if ! is_root || ! have apt-get; then
        return 1
    fi
    if [ "$apt_updated" -eq 0 ]; then
        apt-get update -qq
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# -- Python ------------------------------------------------------------------------
python="${PYTHON:-python3.11}"
if [ ! -x .venv/bin/python ]; then
    have "$python" || { echo "bootstrap: $python not found; install Python 3.11" >&2; exit 1; }
    say "creating .venv with $python"
    "$python" -m venv .venv
fi
stamp=.venv/.shopstream-install.sha256
wanted="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$wanted" ]; then
    say "installing shopstream and its dev dependencies (pyproject.toml changed)"
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 .venv/bin/python -m pip install -q -e '.[dev]'
    echo "$wanted" >"$stamp"
fi

# -- Chromium (the console's browser tests drive Debian's build; Playwright never downloads one) --
if ! have chromium; then
    if apt_install chromium; then
        say "installed Chromium ($(chromium --version 2>/dev/null | head -n1))"
    else
        warn "Chromium not found; the console's browser tests skip: sudo apt-get install chromium"
    fi
fi

# -- PostgreSQL (for `stack up --postgres` and the tests) ------------------------------
if ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
    if apt_install postgresql; then
        say "installed PostgreSQL ($(ls /usr/lib/postgresql))"
    else
        warn "PostgreSQL server not found; install it: sudo apt-get install postgresql"
    fi
fi

# -- Maven and Java (the local Kafka and registry are fetched and run with them) -----
if ! have mvn; then
    apt_install maven || warn "Maven not found; install it: sudo apt-get install maven"
fi
java_major() { "$1" -version 2>&1 | sed -nE '1s/.*version "(1\.)?([0-9]+).*/\2/p'; }
best=0
for java in ${JAVA_HOME:+"$JAVA_HOME/bin/java"} "$(command -v java || true)" /usr/lib/jvm/*/bin/java; do
    [ -x "$java" ] || continue
    major="$(java_major "$java")"
    [ -n "$major" ] && [ "$major" -gt "$best" ] && best="$major"
done
if [ "$best" -lt 17 ]; then
    apt_install openjdk-17-jre-headless && best=17 \
        || warn "no Java 17+ found; Kafka needs it: sudo apt-get install openjdk-17-jre-headless"
fi
if [ "$best" -lt 21 ]; then
    warn "no Java 21+ found; Apicurio Registry 3.3 needs it: install a JDK 21+ (e.g. Temurin) and set JAVA_HOME"
fi
say "ready (.venv, Java $best$(have mvn && echo ', Maven'))"
