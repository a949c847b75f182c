#!/bin/sh
# Installs libfaketime, which the chaos scenarios use to skew one node's wall clock
# (civic chaos, fault kind "clock_skew"). Does nothing when the library is present.
set -eu

for lib in /usr/lib/*/faketime/libfaketime.so.1 /usr/lib/faketime/libfaketime.so.1 \
    /usr/local/lib/faketime/libfaketime.so.1; do
    if [ -e "$lib" ]; then
        exit 0
    fi
done

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo -n"
else
    echo "libfaketime is missing: install the Debian package faketime as root" >&2
    exit 1
fi

if command -v apt-get >/dev/null 2>&1; then
    $SUDO apt-get install -y -q faketime >/dev/null 2>&1 || {
        $SUDO apt-get update -q >/dev/null
        $SUDO apt-get install -y -q faketime >/dev/null
    }
else
    echo "libfaketime is missing and apt-get is not available: install faketime" >&2
    exit 1
fi
