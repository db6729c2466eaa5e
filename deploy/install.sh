#!/bin/sh
# Installs nitrometer from a wheel into $PREFIX (a venv), with every dependency pinned
# (deploy/constraints.txt) and binary only, then the systemd unit and a default config, and
# starts it. Nothing is compiled as root: without a wheel it stops and says so.
#
#   sudo ./deploy/install.sh [WHEEL]          WHEEL: default dist/nitrometer-*.whl (make wheels)
#
# Environment: PREFIX (/opt/nitrometer), CONFIG_DIR (/etc/nitrometer), UNIT_DIR
# (/etc/systemd/system), PYTHON (python3), LISTEN (127.0.0.1:9720: localhost only),
# WEB_CONFIG (a web config file that requires basic auth or client certificates; needed to
# listen beyond localhost), SERVICE_GROUP (nitrometer: the group that may read the web
# config, created when missing), OFFLINE=1 (install only from the wheel's directory and its
# deps/, never from the package index).
set -eu

PREFIX=${PREFIX:-/opt/nitrometer}
UNIT_DIR=${UNIT_DIR:-/etc/systemd/system}
CONFIG_DIR=${CONFIG_DIR:-/etc/nitrometer}
PYTHON=${PYTHON:-python3}
LISTEN=${LISTEN-127.0.0.1:9720}
WEB_CONFIG=${WEB_CONFIG:-}
SERVICE_GROUP=${SERVICE_GROUP:-nitrometer}
SRC=$(cd "$(dirname "$0")/.." && pwd)

fail() {
    echo "install.sh: $*" >&2
    exit 2
}

if [ "$(id -u)" -ne 0 ]; then
    fail "run as root (it writes $PREFIX, $UNIT_DIR and $CONFIG_DIR)"
fi

# Whether a web config lets in only known clients: a basic-auth user with a bcrypt hash,
# or verified client certificates (the agent checks the rest of it when it starts).
protects() {
    grep -Eq '^[[:space:]]*client_auth_type:[[:space:]]*["'"'"']?RequireAndVerifyClientCert' "$1" ||
        grep -Eq '^[[:space:]]+[^#[:space:]][^:]*:[[:space:]]*["'"'"']?[$]2[aby]?[$]' "$1"
}

[ -z "$WEB_CONFIG" ] || [ -f "$WEB_CONFIG" ] || fail "WEB_CONFIG=$WEB_CONFIG: no such file"
# An empty address would be every interface: say which one is meant.
[ -n "$LISTEN" ] || fail "LISTEN is empty: give HOST:PORT (127.0.0.1:9720 by default)," \
    "or :PORT for every interface with WEB_CONFIG=FILE"
case "$LISTEN" in
    127.*:* | localhost:* | "[::1]":*) ;;
    *)
        [ -n "$WEB_CONFIG" ] || fail "LISTEN=$LISTEN serves beyond this host: give" \
            "WEB_CONFIG=FILE (TLS and basic auth, see deploy/web-config.example.yml)"
        protects "$WEB_CONFIG" || fail "WEB_CONFIG=$WEB_CONFIG lets anyone in, and" \
            "LISTEN=$LISTEN serves beyond this host: it needs basic_auth_users or" \
            "client_auth_type: RequireAndVerifyClientCert"
        ;;
esac

# A wheel needs no compiler: the argument or WHEEL=path, else this machine's from dist/.
WHEEL=${1:-${WHEEL:-}}
if [ -z "$WHEEL" ]; then
    for found in "$SRC"/dist/nitrometer-*-manylinux2014_"$(uname -m)".whl; do
        [ -f "$found" ] && WHEEL=$found
    done
fi
[ -n "$WHEEL" ] || fail "no wheel for $(uname -m): run make wheels (no compiler needed on" \
    "this host), or give its path: install.sh WHEEL"
[ -f "$WHEEL" ] || fail "$WHEEL: no such file"
CONSTRAINTS="$SRC/deploy/constraints.txt"
[ -f "$CONSTRAINTS" ] || fail "$CONSTRAINTS: no such file"

INDEX=""
[ "${OFFLINE:-0}" = 1 ] && INDEX="--no-index"
WHEELS=$(dirname "$WHEEL")
DEPS=""
[ -d "$WHEELS/deps" ] && DEPS="--find-links $WHEELS/deps"
"$PYTHON" -m venv "$PREFIX"
# shellcheck disable=SC2086 # INDEX and DEPS are flags or nothing
"$PREFIX/bin/pip" install --quiet --no-input --disable-pip-version-check --only-binary=:all: \
    $INDEX --find-links "$WHEELS" $DEPS --constraint "$CONSTRAINTS" "$WHEEL"
"$PREFIX/bin/nitrometer" --version

install -d -m 0755 "$CONFIG_DIR"
if [ -n "$WEB_CONFIG" ]; then
    # It holds password hashes: root writes it, the service's group reads it, no one else.
    getent group "$SERVICE_GROUP" >/dev/null || groupadd --system "$SERVICE_GROUP"
    install -m 0640 -o root -g "$SERVICE_GROUP" "$WEB_CONFIG" "$CONFIG_DIR/web-config.yml"
    install -d -m 0755 "$UNIT_DIR/nitrometer.service.d"
    printf '[Service]\n# Reads %s (root:%s 0640).\nSupplementaryGroups=%s\n' \
        "$CONFIG_DIR/web-config.yml" "$SERVICE_GROUP" "$SERVICE_GROUP" \
        > "$UNIT_DIR/nitrometer.service.d/web-config.conf"
    chmod 0644 "$UNIT_DIR/nitrometer.service.d/web-config.conf"
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
