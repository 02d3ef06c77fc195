#!/usr/bin/env node
/** The dctl binary. */
import { runDctl } from "./run.js";

process.exitCode = await runDctl(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
});
