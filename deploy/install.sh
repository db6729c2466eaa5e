#!/bin/sh
# Installs nitrometer from a wheel into $PREFIX (a venv), with every dependency pinned
# (deploy/constraints.txt), then the systemd unit and a default config, and starts it.
#
#   sudo ./deploy/install.sh [WHEEL]          WHEEL: default dist/nitrometer-*.whl (make wheels)
#
# Environment: PREFIX (/opt/nitrometer), CONFIG_DIR (/etc/nitrometer), UNIT_DIR
# (/etc/systemd/system), PYTHON (python3), LISTEN (127.0.0.1:9720: localhost only),
# WEB_CONFIG (a web config file: TLS and basic auth; needed to listen beyond localhost),
# OFFLINE=1 (install only from the wheel's directory, never from the package index).
set -eu

PREFIX=${PREFIX:-/opt/nitrometer}
UNIT_DIR=${UNIT_DIR:-/etc/systemd/system}
CONFIG_DIR=${CONFIG_DIR:-/etc/nitrometer}
PYTHON=${PYTHON:-python3}
LISTEN=${LISTEN:-127.0.0.1:9720}
WEB_CONFIG=${WEB_CONFIG:-}
SRC=$(cd "$(dirname "$0")/.." && pwd)

fail() {
    echo "install.sh: $*" >&2
    exit 2
}

if [ "$(id -u)" -ne 0 ]; then
    fail "run as root (it writes $PREFIX, $UNIT_DIR and $CONFIG_DIR)"
fi

case "$LISTEN" in
    127.*:* | localhost:* | "[::1]":*) ;;
    *) [ -n "$WEB_CONFIG" ] || fail "LISTEN=$LISTEN serves beyond this host: give" \
        "WEB_CONFIG=FILE (TLS and basic auth, see deploy/web-config.example.yml)" ;;
esac
if [ -n "$WEB_CONFIG" ] && [ ! -f "$WEB_CONFIG" ]; then
    fail "WEB_CONFIG=$WEB_CONFIG: no such file"
fi

# A wheel needs no compiler: the argument or WHEEL=path, else this machine's from dist/.
WHEEL=${1:-${WHEEL:-}}
if [ -z "$WHEEL" ]; then
    for found in "$SRC"/dist/nitrometer-*-manylinux2014_"$(uname -m)".whl; do
        [ -f "$found" ] && WHEEL=$found
    done
fi
[ -z "$WHEEL" ] || [ -f "$WHEEL" ] || fail "$WHEEL: no such file"
CONSTRAINTS="$SRC/deploy/constraints.txt"
[ -f "$CONSTRAINTS" ] || fail "$CONSTRAINTS: no such file"

INDEX=""
[ "${OFFLINE:-0}" = 1 ] && INDEX="--no-index"
"$PYTHON" -m venv "$PREFIX"
# shellcheck disable=SC2086 # INDEX is one flag or nothing
if [ -n "$WHEEL" ]; then
    "$PREFIX/bin/pip" install --quiet --no-input --disable-pip-version-check --only-binary=:all: \
        $INDEX --find-links "$(dirname "$WHEEL")" --constraint "$CONSTRAINTS" "$WHEEL"
else
    echo "install.sh: no wheel for $(uname -m) (give its path, WHEEL=..., or make wheels):" \
        "building the C core from source, which needs a C compiler (gcc)" >&2
    compiler=${CC:-cc}
    command -v "${compiler%% *}" >/dev/null || fail "no C compiler: install gcc, or run make" \
        "wheels where one is and give dist/nitrometer-...-manylinux2014_$(uname -m).whl"
    "$PREFIX/bin/pip" install --quiet --no-input --disable-pip-version-check --prefer-binary \
        $INDEX --constraint "$CONSTRAINTS" "$SRC"
fi
"$PREFIX/bin/nitrometer" --version

install -d -m 0755 "$CONFIG_DIR"
if [ -n "$WEB_CONFIG" ]; then
    install -m 0644 "$WEB_CONFIG" "$CONFIG_DIR/web-config.yml"
    WEB_LINE="web.config.file: $CONFIG_DIR/web-config.yml"
else
    WEB_LINE="# web.config.file: $CONFIG_DIR/web-config.yml   # TLS and basic auth"
fi
if [ ! -e "$CONFIG_DIR/nitrometer.yml" ]; then
    cat > "$CONFIG_DIR/nitrometer.yml" <<YAML
# nitrometer run settings: keys are the flag names (nitrometer run --help).
# SIGHUP (systemctl reload nitrometer) re-reads this file.
web.listen-address: "$LISTEN"
poll.interval: 1s
$WEB_LINE
# events.file: /var/log/nitrometer/events.jsonl     # performance-exceeded episodes
YAML
fi
install -m 0644 "$SRC/deploy/web-config.example.yml" "$CONFIG_DIR/web-config.example.yml"
sed -e "s|/opt/nitrometer/bin/nitrometer|$PREFIX/bin/nitrometer|" \
    -e "s|/etc/nitrometer/nitrometer.yml|$CONFIG_DIR/nitrometer.yml|" \
    "$SRC/deploy/nitrometer.service" > "$UNIT_DIR/nitrometer.service"
chmod 0644 "$UNIT_DIR/nitrometer.service"
systemctl daemon-reload
systemctl enable --now nitrometer.service
echo "nitrometer is running: curl http://$LISTEN/metrics"
