"""Runs a built Worker directory under Pyodide in Node, as workerd would (test_worker_pyodide.py).

    node --experimental-wasm-stack-switching run.mjs --no-wheels \
        --mount WORKER:/worker --mount WORK:/work worker_driver.py /worker /work

Everything comes from the built directory: src/ (entry, core, release data) and
python_modules/ (msgpack, workers-runtime-sdk). What workerd itself provides is stood in for:
the SDK's two runtime modules (`_pyodide_entrypoint_helper`, `_cloudflare_compat_flags`),
the CompiledWasm import of rules.mjs (compiled here, then run-time compilation is refused as
workerd refuses it), a Durable Object namespace, its SQLite-backed storage's sync KV API, a
queue producer and queue batches. WebCrypto, fetch (the Worker's own, to the control plane),
AbortSignal, Request and Response are Node's own; the clock (Date.now) is frozen and moves only
when a step says so.

/work/steps.json holds {"env": {...}, "now_ms": ..., "steps": [...]}; each step's outcome goes
to /work/results.json in order. Steps: {"fetch": {method, path, headers, body}},
{"queue": "fail" | "ok"}, {"alarm": true}, {"consume": [indexes of queued messages],
"control_plane": url, "attempts": n}, {"advance_ms": n} (the clock), {"set_env": {...}}.
"""

from __future__ import annotations

import base64
import json
import sys
import time
import types
from typing import Any

import js
from pyodide.code import run_js
from pyodide.ffi import to_js

WORKER, WORK = sys.argv[1], sys.argv[2]
with open(f"{WORK}/steps.json", encoding="utf-8") as file:
    config = json.load(file)

FAKES = run_js(r"""
(() => {
  class Kv {
    constructor() { this.map = new Map(); }
    get(key) { return this.map.get(key); }
    put(key, value) {
      if (typeof key !== "string" || typeof value !== "string") throw new TypeError("strings");
      this.map.set(key, value);
    }
    delete(key) { return this.map.delete(key); }
    list(options = {}) {
      const keys = [...this.map.keys()].filter((k) => k.startsWith(options.prefix ?? "")).sort();
      return keys.slice(0, options.limit ?? keys.length).map((k) => [k, this.map.get(k)]);
    }
  }
  class Storage {
    constructor() { this.kv = new Kv(); this.alarm = null; this.transactions = 0; }
    transactionSync(fn) {
      const saved = new Map(this.kv.map);
      try { this.transactions++; return fn(); } catch (e) { this.kv.map = saved; throw e; }
    }
    async setAlarm(at) { this.alarm = at; }
  }
  class Queue {
    constructor() { this.sent = []; this.failing = false; }
    async send(body) {
      if (this.failing) throw new Error("queue unavailable");
      this.sent.push(structuredClone(body));
    }
  }
  function batch(bodies, attempts) {
    const log = [];
    const messages = bodies.map((body, i) => ({
      id: String(i), body: structuredClone(body), attempts, timestamp: new Date(),
      ack() { log.push(["ack", i]); }, retry(options) { log.push(["retry", i, options]); },
    }));
    return { log, batch: { queue: "poprules-receipts", messages,
      ackAll() { log.push(["ackAll"]); }, retryAll(options) { log.push(["retryAll", options]); } } };
  }
  function rules(bytes) {
    const module = new WebAssembly.Module(bytes);
    const Real = WebAssembly.Module;
    function Refuse() {
      throw new WebAssembly.CompileError("Wasm code generation disallowed by embedder");
    }
    Object.assign(Refuse, {imports: Real.imports, exports: Real.exports,
                           customSections: Real.customSections, prototype: Real.prototype});
    WebAssembly.Module = Refuse;
    return (name) => name === "rules.mjs"
      ? Promise.resolve({ rulesModule: () => module })
      : Promise.reject(new Error(`no module ${name} in this Worker`));
  }
  return { Storage, Queue, batch, rules,
           freeze(ms) { Date.now = () => ms; },
           response: async (r) => [r.status, Object.fromEntries(r.headers),
                                   new Uint8Array(await r.arrayBuffer())] };
})()
""")

# --- what workerd provides --------------------------------------------------------------------
helper = types.ModuleType("_pyodide_entrypoint_helper")
with open(f"{WORKER}/src/rules.wasm", "rb") as file:
    helper.doAnImport = FAKES.rules(to_js(file.read()))  # type: ignore[attr-defined]
helper.patchWaitUntil = lambda ctx: None  # type: ignore[attr-defined]
helper.cloudflareWorkersModule = None  # type: ignore[attr-defined]
helper.cloudflareSocketsModule = None  # type: ignore[attr-defined]
flags = types.ModuleType("_cloudflare_compat_flags")
flags.__getattr__ = lambda name: False  # type: ignore[method-assign]
sys.modules["_pyodide_entrypoint_helper"] = helper
sys.modules["_cloudflare_compat_flags"] = flags
sys.path[:0] = [f"{WORKER}/src", f"{WORKER}/python_modules"]
clock_ms = config["now_ms"]
FAKES.freeze(clock_ms)

started = time.perf_counter()
import entry  # the Worker's main module: it verifies its release here

import_ms = (time.perf_counter() - started) * 1000
from edge_worker.cloudflare import entry as inside  # what the main module re-exports

assert inside.__file__.startswith(f"{WORKER}/src/"), inside.__file__


class Stub:
    def __init__(self, instance: Any) -> None:
        self.instance = instance

    async def fetch(self, request: Any) -> Any:
        return await self.instance.fetch(request)


class Namespace:
    """A Durable Object namespace: one instance per name, as long as the test runs."""

    def __init__(self) -> None:
        self.storage = FAKES.Storage.new()
        self.objects: dict[str, Stub] = {}

    def idFromName(self, name: str) -> str:  # the Workers API's name
        return f"id:{name}"

    def get(self, object_id: str) -> Stub:
        if object_id not in self.objects:
            self.objects[object_id] = Stub(entry.ReceiptChain(
                types.SimpleNamespace(storage=self.storage), env))
        return self.objects[object_id]


queue = FAKES.Queue.new()
chain = Namespace()
env = types.SimpleNamespace(**config["env"], CHAIN=chain, RECEIPTS=queue)
ctx = types.SimpleNamespace(waitUntil=lambda promise: None)


async def fetch(step: dict[str, Any]) -> dict[str, Any]:
    init: dict[str, Any] = {"method": step["method"], "headers": step.get("headers", {})}
    if step.get("body") is not None:
        init["body"] = step["body"]
    request = js.Request.new("https://pop.example.com" + step["path"],
                             to_js(init, dict_converter=js.Object.fromEntries))
    started = time.perf_counter()
    response = await entry.Default(ctx, env).fetch(request)
    elapsed = (time.perf_counter() - started) * 1000
    status, headers, body = (await FAKES.response(response)).to_py()
    return {"status": status, "headers": headers, "elapsed_ms": elapsed, "now_ms": clock_ms,
            "body": base64.b64encode(bytes(body)).decode("ascii")}


async def consume(step: dict[str, Any]) -> dict[str, Any]:
    sent = queue.sent.to_py()
    bodies = [sent[i] for i in step["consume"]]
    made = FAKES.batch(to_js(bodies, dict_converter=js.Object.fromEntries), step["attempts"])
    env.CONTROL_PLANE = step["control_plane"]
    await entry.Default(ctx, env).queue(made.batch)
    return {"log": made.log.to_py()}


async def main() -> dict[str, Any]:
    global clock_ms
    results: list[dict[str, Any]] = []
    for step in config["steps"]:
        if "fetch" in step:
            results.append(await fetch(step["fetch"]))
        elif "advance_ms" in step:
            clock_ms += step["advance_ms"]
            FAKES.freeze(clock_ms)
            results.append({})
        elif "set_env" in step:
            for name, value in step["set_env"].items():
                setattr(env, name, value)
            results.append({})
        elif "queue" in step:
            queue.failing = step["queue"] == "fail"
            results.append({})
        elif "alarm" in step:
            name = inside.worker.chain_name(inside.BUILT.pop_id)
            await chain.objects[f"id:{name}"].instance.alarm()
            results.append({})
        else:
            results.append(await consume(step))
    storage = chain.storage
    return {"import_ms": import_ms, "results": results, "queued": queue.sent.to_py(),
            "snapshot_problem": inside.SNAPSHOTS.problem,
            "alarm": storage.alarm, "transactions": storage.transactions,
            "stored": dict(storage.kv.list().to_py())}


outcome = await main()  # noqa: F704, PLE1142 - the harness runs drivers with top-level await
with open(f"{WORK}/results.json", "w", encoding="utf-8") as out:
    json.dump(outcome, out)
