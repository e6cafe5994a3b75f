#!/usr/bin/env bash
# Install the system side of graphc's browser test (tests/test_viewer_browser.py):
#   - chromium (Debian's package): headless Chromium loads the HTML graph viewer and runs its
#     #selftest hook (--dump-dom), and takes the docs screenshot (--screenshot);
#   - fonts-dejavu-core: a font for the viewer's text in screenshots;
#   - graphviz (optional): `graphc viz -o graph.svg|png` runs Graphviz's `dot`.
# Idempotent and non-interactive; apt steps are skipped when not root (without passwordless
# sudo) or when apt-get is absent.  Never fails: the browser tests skip without chromium.
set -u
export DEBIAN_FRONTEND=noninteractive

PKGS="chromium fonts-dejavu-core graphviz"

have_all() {
    for p in $PKGS; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || return 1
    done
    return 0
}

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_browser_deps: apt-get not found; skipping system packages ($PKGS)" >&2
elif have_all; then
    echo "install_browser_deps: $PKGS already installed"
else
    SUDO=""
    if [ "$(id -u)" != "0" ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            SUDO="sudo -n"
        else
            echo "install_browser_deps: not root and no passwordless sudo; skipping apt-get install $PKGS" >&2
            PKGS=""
        fi
    fi
    if [ -n "$PKGS" ]; then
        $SUDO apt-get update -qq || echo "install_browser_deps: apt-get update failed (continuing)" >&2
        $SUDO apt-get install -y -qq --no-install-recommends $PKGS \
            || echo "install_browser_deps: apt-get install failed; browser tests will be skipped" >&2
    fi
fi

if command -v chromium >/dev/null 2>&1; then
    chromium --version 2>/dev/null || true
fi
exit 0
