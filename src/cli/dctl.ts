#!/usr/bin/env node
/** The dctl binary. */
import { runDctl } from "./run.js";
import { quietIpServernameWarning } from "../store/flags.js";

quietIpServernameWarning();

// A command that runs until stopped (--follow) ends on SIGINT or SIGTERM and exits normally;
// a command still running 2 s after it, or at a second signal, exits as interrupted (130).
const stop = new AbortController();
const interrupted = (): void => {
  if (stop.signal.aborted) process.exit(130);
  stop.abort();
  setTimeout(() => process.exit(130), 2000).unref();
};
process.on("SIGINT", interrupted);
process.on("SIGTERM", interrupted);

process.exitCode = await runDctl(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  signal: stop.signal,
});
// Done: nothing the command started may keep the process (a store's retries, say) from ending.
process.exit();
