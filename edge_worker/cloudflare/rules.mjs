// The rule module of the release this Worker version serves, handed to Python.
//
// Workers refuse to compile WebAssembly at run time, so `poprules build --target cloudflare`
// writes the bundle's module next to this file as rules.wasm, which wrangler uploads as a
// CompiledWasm module: importing it gives the runtime's compiled WebAssembly.Module.
// Python reaches it with workers.import_from_javascript("rules.mjs") inside a handler.
import wasm from "./rules.wasm";

export function rulesModule() {
  return wasm;
}
