/**
 * One TCP transfer with SHA-256 on both ends, for test/dataplane/integrity.test.ts. Run inside a
 * pod's namespace (`ip netns exec <ns> node transfer.mjs ...`); it only ever talks to the address
 * it is given.
 *
 *   node transfer.mjs receive <ip> <port>      listens on ip:port, prints "listening", takes one
 *                                              connection, hashes what arrives until the sender
 *                                              closes, prints {"bytes":N,"sha256":"..."}, exits
 *   node transfer.mjs send <ip> <port> <file>  connects, sends the file, hashing what it reads,
 *                                              prints {"bytes":N,"sha256":"..."} once the
 *                                              receiver has closed too, exits
 *
 * Exits 1 with a message on stderr on any socket or file error, and gives up after 120 s.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { createServer, connect } from "node:net";
import { setTimeout } from "node:timers";

const [mode, ip, portText, file] = process.argv.slice(2);
const port = Number(portText);

function fail(what, err) {
  process.stderr.write(`transfer ${mode}: ${what}: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}

setTimeout(() => fail("timeout", "no result after 120 s"), 120_000).unref();

function report(bytes, hash) {
  process.stdout.write(`${JSON.stringify({ bytes, sha256: hash.digest("hex") })}\n`);
}

if (mode === "receive" && ip && Number.isInteger(port)) {
  const server = createServer((sock) => {
    server.close();
    const hash = createHash("sha256");
    let bytes = 0;
    sock.on("data", (chunk) => {
      bytes += chunk.length;
      hash.update(chunk);
    });
    sock.on("end", () => {
      report(bytes, hash);
      sock.end();
    });
    sock.on("error", (e) => fail("socket", e));
  });
  server.on("error", (e) => fail("listen", e));
  server.listen(port, ip, () => process.stdout.write("listening\n"));
} else if (mode === "send" && ip && Number.isInteger(port) && file) {
  const hash = createHash("sha256");
  let bytes = 0;
  const sock = connect({ host: ip, port });
  sock.on("error", (e) => fail("socket", e));
  sock.on("connect", () => {
    const input = createReadStream(file);
    input.on("error", (e) => fail("read", e));
    input.on("data", (chunk) => {
      bytes += chunk.length;
      hash.update(chunk);
    });
    input.pipe(sock);
  });
  // The receiver closes its side only after it has everything: then the transfer is complete.
  sock.on("end", () => sock.end());
  sock.on("close", (hadError) => {
    if (hadError) fail("socket", "closed with an error");
    report(bytes, hash);
  });
  sock.resume();
} else {
  fail("usage", "receive <ip> <port> | send <ip> <port> <file>");
}
