#!/bin/sh
# Installs nitrometer into /opt/nitrometer (a venv), the systemd unit, a default config,
# then enables and starts the service. Run as root from a checkout: ./deploy/install.sh
set -eu

PREFIX=${PREFIX:-/opt/nitrometer}
UNIT_DIR=${UNIT_DIR:-/etc/systemd/system}
CONFIG_DIR=${CONFIG_DIR:-/etc/nitrometer}
PYTHON=${PYTHON:-python3}
SRC=$(cd "$(dirname "$0")/.." && pwd)

if [ "$(id -u)" -ne 0 ]; then
    echo "install.sh: run as root (it writes $PREFIX, $UNIT_DIR and $CONFIG_DIR)" >&2
    exit 2
fi

"$PYTHON" -m venv "$PREFIX"
"$PREFIX/bin/pip" install -q --upgrade pip
# A wheel needs no compiler: WHEEL=path, else this machine's from dist/ (make wheels).
WHEEL=${WHEEL:-}
if [ -z "$WHEEL" ]; then
    for found in "$SRC"/dist/nitrometer-*-manylinux2014_"$(uname -m)".whl; do
        [ -e "$found" ] && WHEEL=$found
    done
fi
if [ -n "$WHEEL" ]; then
    "$PREFIX/bin/pip" install -q "$WHEEL"
else
    echo "install.sh: no wheel for $(uname -m) (WHEEL=... or dist/): building the C core from" \
        "source, which needs a C compiler (gcc)" >&2
    compiler=${CC:-cc}
    if ! command -v "${compiler%% *}" >/dev/null; then
        echo "install.sh: no C compiler: install gcc, or run make wheels where one is and" \
            "give WHEEL=dist/nitrometer-...-manylinux2014_$(uname -m).whl" >&2
        exit 2
    fi
    "$PREFIX/bin/pip" install -q "$SRC"
fi
"$PREFIX/bin/nitrometer" --version

install -d -m 0755 "$CONFIG_DIR"
if [ ! -e "$CONFIG_DIR/nitrometer.yml" ]; then
    cat > "$CONFIG_DIR/nitrometer.yml" <<'YAML'
# nitrometer run settings: keys are the flag names (nitrometer run --help).
# SIGHUP (systemctl reload nitrometer) re-reads this file.
web.listen-address: ":9720"
poll.interval: 1s
# web.config.file: /etc/nitrometer/web-config.yml   # TLS and basic auth
# events.file: /var/log/nitrometer/events.jsonl     # performance-exceeded episodes
YAML
fi
install -m 0644 "$SRC/deploy/web-config.example.yml" "$CONFIG_DIR/web-config.example.yml"
install -m 0644 "$SRC/deploy/nitrometer.service" "$UNIT_DIR/nitrometer.service"
systemctl daemon-reload
systemctl enable --now nitrometer.service
echo "nitrometer is running: curl http://localhost:9720/metrics"
