"""The rule module's C runtime and the script that builds it into `runtime.wasm`."""
