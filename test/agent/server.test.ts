/**
 * The agent's socket server (src/agent/server.ts) spoken to directly, frame by frame: a request
 * that is not the protocol, too large, malformed or too slow gets a reply with CNI error 6, and
 * the server goes on serving. The CNI layer behind it is the real one (test/cni/fake-agent.ts).
 */
import { createConnection } from "node:net";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { MAX_ENV_BYTES, MAX_STDIN_BYTES } from "../../src/agent/protocol.js";
import { encodeReply, parseEnvBlock, parseRequestHeader } from "../../src/agent/server.js";
import { encodeRequest } from "../cni/binary.js";
import { FakeAgent } from "../cni/fake-agent.js";

let agent: FakeAgent;
beforeEach(async () => {
  agent = new FakeAgent({ requestTimeoutMs: 300 });
  await agent.start();
});
afterEach(async () => {
  // Whatever came before, a good request is still served.
  const r = await exchange([encodeRequest({ CNI_COMMAND: "VERSION" }, "")]);
  expect(r.header).toBe("OVCNI/1 0 69");
  await agent.stop();
});

interface Exchanged {
  header: string;
  body: string;
}

/** Writes `parts` (pausing `gapMs` between them), reads the reply until the server closes. */
function exchange(parts: Buffer[], gapMs = 0): Promise<Exchanged> {
  return new Promise((resolve, reject) => {
    const conn = createConnection({ path: agent.socket });
    const chunks: Buffer[] = [];
    conn.on("data", (d: Buffer) => chunks.push(d));
    conn.on("error", reject);
    conn.on("end", () => {
      const all = Buffer.concat(chunks).toString("utf8");
      const nl = all.indexOf("\n");
      conn.destroy();
      resolve({ header: all.slice(0, nl), body: all.slice(nl + 1) });
    });
    void (async () => {
      for (const p of parts) {
        if (conn.destroyed) return;
        conn.write(p);
        if (gapMs > 0) await new Promise((r) => setTimeout(r, gapMs));
      }
    })();
  });
}

function refusal(r: Exchanged): string {
  const e = JSON.parse(r.body) as { code: number; msg: string };
  expect(r.header).toBe(`OVCNI/1 6 ${Buffer.byteLength(r.body)}`);
  expect(e.code).toBe(6);
  return e.msg;
}

describe("the request frame", () => {
  it("is answered with the plugin's stdout and exit code", async () => {
    const conf = JSON.stringify({ cniVersion: "1.1.0", name: "overlay", type: "overlay-cni" });
    const r = await exchange([encodeRequest({ CNI_COMMAND: "STATUS" }, conf)]);
    expect(r).toEqual({ header: "OVCNI/1 0 0", body: "" });
    const e = await exchange([encodeRequest({ CNI_COMMAND: "STATUS" }, "")]);
    expect(e.header).toMatch(/^OVCNI\/1 6 \d+$/);
    expect(JSON.parse(e.body)).toMatchObject({ code: 6, msg: "network configuration: stdin is empty" });
  });

  it("may arrive in pieces", async () => {
    const frame = encodeRequest({ CNI_COMMAND: "VERSION" }, "{}");
    const r = await exchange([frame.subarray(0, 3), frame.subarray(3, 20), frame.subarray(20)], 20);
    expect(JSON.parse(r.body)).toMatchObject({ cniVersion: "1.1.0" });
  });

  it("of the old protocol (a JSON line) is refused, naming the header it lacks", async () => {
    const msg = refusal(await exchange([Buffer.from('{"op":"STATUS"}\n')]));
    expect(msg).toContain('"OVCNI/1 <env bytes> <stdin bytes>"');
  });

  it("without a header line in its first 64 bytes is refused", async () => {
    expect(refusal(await exchange([Buffer.alloc(100, 0x41)]))).toContain("first 64 bytes");
  });

  it("with lengths over the limits is refused before they are read", async () => {
    expect(refusal(await exchange([Buffer.from(`OVCNI/1 0 ${MAX_STDIN_BYTES + 1}\n`)]))).toContain(
      `longer than ${MAX_STDIN_BYTES} bytes`,
    );
    expect(refusal(await exchange([Buffer.from(`OVCNI/1 ${MAX_ENV_BYTES + 1} 0\n`)]))).toContain("CNI_*");
    expect(refusal(await exchange([Buffer.from("OVCNI/1 -1 0\n")]))).toContain("decimal");
  });

  it("with a variable that is not NAME=value is refused", async () => {
    expect(refusal(await exchange([Buffer.from("OVCNI/1 4 0\nABC\0")]))).toContain("NAME=value");
  });

  it("that does not arrive whole in time is answered and closed", async () => {
    expect(refusal(await exchange([Buffer.from("OVCNI/1 10 0\nCNI_")]))).toBe(
      "the request did not arrive whole within 300 ms",
    );
  });
});

describe("frame parts", () => {
  it("parseRequestHeader", () => {
    expect(parseRequestHeader("OVCNI/1 0 0")).toEqual({ envBytes: 0, stdinBytes: 0 });
    expect(parseRequestHeader("OVCNI/1 12 1048576")).toEqual({ envBytes: 12, stdinBytes: MAX_STDIN_BYTES });
    for (const bad of ["OVCNI/2 0 0", "OVCNI/1 0", "OVCNI/1 00 0", "OVCNI/1 0 0 0", "OVCNI/1 1e3 0", ""]) {
      expect(typeof parseRequestHeader(bad), bad).toBe("string");
    }
  });

  it("parseEnvBlock keeps the first of a name, as getenv does", () => {
    const env = parseEnvBlock(Buffer.from("CNI_A=1\0CNI_B=x=y\0CNI_A=2\0CNI_C=\0"));
    expect(env).toEqual(
      new Map([
        ["CNI_A", Buffer.from("1")],
        ["CNI_B", Buffer.from("x=y")],
        ["CNI_C", Buffer.from("")],
      ]),
    );
    expect(typeof parseEnvBlock(Buffer.from("CNI_A=1"))).toBe("string");
    expect(typeof parseEnvBlock(Buffer.from("=1\0"))).toBe("string");
  });

  it("encodeReply counts bytes, not characters", () => {
    expect(encodeReply({ stdout: "é\n", exitCode: 7 }).toString()).toBe("OVCNI/1 7 3\né\n");
  });
});
