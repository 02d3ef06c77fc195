#!/usr/bin/env node
/**
 * overlay-cni: the CNI plugin of the overlay network. The runtime runs it with CNI_* variables
 * and the network configuration on stdin; it asks the node agent (overlayd) over its unix
 * socket and prints the result, or the CNI error JSON with a non-zero exit code. Nothing else
 * reaches stdout, and no failure ends in a stack trace.
 */
import { asCniError, CniError } from "./errors.js";
import { CURRENT_VERSION } from "./config.js";
import { runPlugin } from "./plugin.js";
import { CNI_ERR } from "../agent/protocol.js";
import { formatError } from "./result.js";

/** A network configuration is a few kilobytes; this only stops a runaway writer. */
const MAX_STDIN_BYTES = 4 << 20;

async function readStdin(): Promise<string> {
  // From a terminal (someone trying `overlay-cni` by hand) there is no configuration to wait for.
  if (process.stdin.isTTY) return "";
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin) {
    const buf = chunk as Buffer;
    size += buf.length;
    if (size > MAX_STDIN_BYTES) {
      throw new CniError(
        CNI_ERR.decodeError,
        `network configuration: stdin is longer than ${MAX_STDIN_BYTES} bytes`,
      );
    }
    chunks.push(buf);
  }
  return Buffer.concat(chunks).toString("utf8");
}

function fail(err: unknown): void {
  process.stdout.write(`${JSON.stringify(formatError(CURRENT_VERSION, asCniError(err)))}\n`);
  process.exitCode = 1;
}

process.on("uncaughtException", (err) => {
  fail(err);
  process.exit(1);
});

try {
  const outcome = await runPlugin(process.env, await readStdin());
  process.stdout.write(outcome.stdout);
  process.exitCode = outcome.exitCode;
} catch (err) {
  fail(err);
}
