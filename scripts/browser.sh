#!/usr/bin/env bash
# The headless browser of the browser tests (tests/browser/): Debian's `chromium` package,
# driven by Playwright for Python (the `test` extra) through `executable_path`, so Playwright
# never downloads a browser of its own.
#
#   bash scripts/browser.sh        # installs chromium when missing (root only), then checks it
#
# Prints the browser's path and version. `make test` runs it once through the stamp
# .edge/.browser; CI runs on a clean machine, where this is the step that installs it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
say() { echo "browser.sh: $*" >&2; }
find_browser() { command -v chromium || command -v chromium-browser || true; }

browser=$(find_browser)
if [[ -z $browser ]]; then
    if [[ $EUID -ne 0 ]]; then
        say "no chromium on this machine; install Debian's chromium package (as root: apt-get install chromium)"
        exit 1
    fi
    say "installing Debian's chromium package"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >&2
    browser=$(find_browser)
fi
[[ -n $browser ]] || { say "chromium is still missing after the install"; exit 1; }
version=$("$browser" --headless=new --no-sandbox --version 2>/dev/null || "$browser" --version)
say "using $browser ($version)"
mkdir -p "$root/.edge"
printf '%s\n' "$browser" > "$root/.edge/.browser"
