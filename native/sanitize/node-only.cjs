// Loaded into every Node process of a sanitizer run (NODE_OPTIONS=--require): keeps the ASan
// runtime of LD_PRELOAD in Node processes (the test runner's workers load the sanitized addon)
// and starts every other program (ip, tshark, ...) without it, as some of them hang with it.
// Covers asynchronous spawns (spawn, execFile, exec, fork), the way the tests start tools.
"use strict";
const { ChildProcess } = require("node:child_process");
const path = require("node:path");

const spawn = ChildProcess.prototype.spawn;
ChildProcess.prototype.spawn = function spawnWithoutAsan(options) {
  const file = options && options.file;
  const isNode = file === process.execPath || path.basename(String(file)) === "node";
  if (!isNode && options && Array.isArray(options.envPairs)) {
    options.envPairs = options.envPairs.filter((kv) => !kv.startsWith("LD_PRELOAD="));
  }
  return spawn.call(this, options);
};
