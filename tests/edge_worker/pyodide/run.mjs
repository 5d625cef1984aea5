// Runs a Python driver script under real Pyodide in Node: the runtime the Cloudflare Worker
// runs on (issue 7), from the toolchain scripts/edge_toolchain.sh installs under .edge/.
//
//   .edge/bin/node tests/edge_worker/pyodide/run.mjs [options] DRIVER.py [ARGS...]
//
//   --mount HOST:GUEST   mount a host directory in Pyodide's file system (NODEFS), e.g. a
//                        pytest tmp_path holding bundles and requests, and the driver's output
//   --copy PATH          copy one more repo path (file or directory, relative to the repo root)
//                        to /app/PATH, e.g. edge_worker/cloudflare
//   --no-wheels          do not load the wheels of .edge/wheels/ (default: load them all)
//
// Before the driver runs, the portable core is copied (not mounted) to /app, which heads
// sys.path, so an import of anything the Worker would not ship fails here as it would there:
// poprules/, wasm_build/__init__.py + abi.py, edge_worker/__init__.py, edge_worker/core/,
// edge_worker/engines/__init__.py + js_engine.py. The driver runs as __main__ with
// sys.argv = [DRIVER, *ARGS]; it may use top-level `await` (Pyodide's event loop is Node's).
// Its stdout and stderr are the process's. The exit status is the driver's SystemExit code,
// 0 when it ends, 1 with the traceback on stderr when it raises.
//
// Timings of the start-up (ms) are in the JS global `poprulesHarness.timings` (from Python:
// `js.poprulesHarness.timings.to_py()`): pyodide (loadPyodide), wheels, copy.
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const EDGE = join(ROOT, ".edge");
const PYODIDE = join(EDGE, "node_modules", "pyodide");
const WHEELS = join(EDGE, "wheels");
const APP = "/app";
// What the Worker ships of the repo: the portable core and its engine adapter.
export const PORTABLE = [
  "poprules",
  "wasm_build/__init__.py",
  "wasm_build/abi.py",
  "edge_worker/__init__.py",
  "edge_worker/core",
  "edge_worker/engines/__init__.py",
  "edge_worker/engines/js_engine.py",
];

function fail(message) {
  process.stderr.write(`run.mjs: ${message}\n`);
  process.exit(2);
}

function parse(argv) {
  const options = { mounts: [], copies: [], wheels: true, driver: null, args: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (options.driver !== null) options.args.push(arg);
    else if (arg === "--mount" || arg === "--copy") {
      const value = argv[++i];
      if (value === undefined) fail(`${arg} needs a value`);
      if (arg === "--copy") options.copies.push(value);
      else {
        const at = value.lastIndexOf(":");
        if (at <= 0) fail(`--mount wants HOST:GUEST, not ${value}`);
        options.mounts.push([resolve(value.slice(0, at)), value.slice(at + 1)]);
      }
    } else if (arg === "--no-wheels") options.wheels = false;
    else if (arg.startsWith("--")) fail(`unknown option ${arg}`);
    else options.driver = resolve(arg);
  }
  if (options.driver === null) {
    fail("usage: run.mjs [--mount HOST:GUEST] [--copy PATH] [--no-wheels] DRIVER.py [ARGS...]");
  }
  return options;
}

function copyTree(FS, host, guest) {
  const stat = statSync(host);
  if (stat.isDirectory()) {
    FS.mkdirTree(guest);
    for (const name of readdirSync(host)) {
      if (name === "__pycache__" || name.endsWith(".pyc")) continue;
      copyTree(FS, join(host, name), `${guest}/${name}`);
    }
  } else {
    FS.mkdirTree(dirname(guest));
    FS.writeFile(guest, readFileSync(host));
  }
}

const options = parse(process.argv.slice(2));
if (!existsSync(join(PYODIDE, "pyodide.mjs")) || !existsSync(join(EDGE, ".installed"))) {
  fail(`the Pyodide toolchain is missing under ${EDGE}: run scripts/edge_toolchain.sh`);
}
const timings = {};
globalThis.poprulesHarness = { timings, root: ROOT };

let began = performance.now();
const { loadPyodide } = await import(join(PYODIDE, "pyodide.mjs"));
const pyodide = await loadPyodide({
  indexURL: PYODIDE + "/",
  stdout: (line) => process.stdout.write(line + "\n"),
  stderr: (line) => process.stderr.write(line + "\n"),
});
timings.pyodide = performance.now() - began;

began = performance.now();
if (options.wheels) {
  const wheels = readdirSync(WHEELS).filter((name) => name.endsWith(".whl")).sort();
  if (wheels.length === 0) fail(`no wheels in ${WHEELS}: run scripts/edge_toolchain.sh`);
  // Local files only: pyodide reads a path as is and checks each wheel's tags.
  await pyodide.loadPackage(wheels.map((name) => join(WHEELS, name)), {
    messageCallback: () => {},
    errorCallback: (message) => process.stderr.write(message + "\n"),
  });
}
timings.wheels = performance.now() - began;

began = performance.now();
const { FS } = pyodide;
for (const path of [...PORTABLE, ...options.copies]) {
  const host = join(ROOT, path);
  if (!existsSync(host)) fail(`${path} does not exist in ${ROOT}`);
  copyTree(FS, host, `${APP}/${path}`);
}
for (const [host, guest] of options.mounts) {
  FS.mkdirTree(guest);
  FS.mount(FS.filesystems.NODEFS, { root: host }, guest);
}
copyTree(FS, options.driver, `/driver/${basename(options.driver)}`);
timings.copy = performance.now() - began;

const guestDriver = `/driver/${basename(options.driver)}`;
const runDriver = pyodide.runPython(`
import sys
import traceback

from pyodide.code import eval_code_async


async def run_driver(app, driver, args):
    sys.path.insert(0, app)
    sys.argv = [driver, *args]
    with open(driver, encoding="utf-8") as file:
        source = file.read()
    try:
        await eval_code_async(source, {"__name__": "__main__", "__file__": driver},
                              filename=driver)
    except SystemExit as stop:
        if stop.code is None or isinstance(stop.code, int):
            return stop.code or 0
        print(stop.code, file=sys.stderr)
        return 1
    except BaseException:
        traceback.print_exc()
        return 1
    return 0

run_driver
`);
process.exitCode = await runDriver(APP, guestDriver, pyodide.toPy(options.args));
