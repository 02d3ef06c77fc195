/**
 * etcd over TLS (etcds://) against a real etcd started with --client-cert-auth and certificates
 * made with openssl: the store itself, etcd's user/password on top, how the settings resolve
 * (flags over the environment), and the built dctl and overlayd with the --etcd-* flags.
 *
 * One file, past 400 lines, on purpose: every part runs against the same certificates and etcd,
 * made and started once; split, each file would make and start its own.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Etcd3 } from "etcd3";
import { EtcdStore } from "../../src/store/etcd.js";
import { StoreConfigError, etcdTlsSettings, openStore } from "../../src/store/index.js";
import { StoreAccessError, StoreUnavailableError, type Store } from "../../src/store/store.js";
import { makeTestCerts, type CertFiles, type TestCerts } from "../helpers/certs.js";
import { startEtcd, type TestEtcd } from "../helpers/etcd.js";
import { expectWithin } from "../helpers/timing.js";
import { BIN } from "../kit/cluster.js";
import { collect, waitFor } from "./store.suite.js";

const TIMEOUT_MS = 2000;
let certs: TestCerts;
let etcd: TestEtcd;

beforeAll(async () => {
  certs = await makeTestCerts();
  etcd = await startEtcd({ tls: { ca: certs.ca, ...certs.server, client: certs.client } });
}, 60_000);

afterAll(async () => {
  await etcd?.stop();
  certs?.remove();
});

function envFor(client: CertFiles | undefined): NodeJS.ProcessEnv {
  return {
    OVERLAY_ETCD_CA: certs.ca,
    ...(client === undefined ? {} : { OVERLAY_ETCD_CERT: client.cert, OVERLAY_ETCD_KEY: client.key }),
  };
}

async function failure(call: () => Promise<unknown>): Promise<{ err: unknown; ms: number }> {
  const t0 = Date.now();
  const err = await call().then(
    () => undefined,
    (e: unknown) => e,
  );
  return { err, ms: Date.now() - t0 };
}

describe("etcd over TLS with client certificates (etcds://)", () => {
  it("the URL names TLS", () => {
    expect(etcd.url).toMatch(/^etcds:\/\/127\.0\.0\.1:\d+$/);
  });

  it("with the right certificate: put, get, list and watch a key", async () => {
    const store = await openStore(etcd.url, { timeoutMs: TIMEOUT_MS, env: envFor(certs.client) });
    try {
      const start = await store.txn([], [{ type: "put", key: "tls/a", value: "1" }]);
      expect(await store.get("tls/a")).toMatchObject({ value: "1", modRevision: start.revision });
      const c = collect();
      const watch = await store.watch("tls/", start.revision, c.handlers);
      await store.txn([], [{ type: "put", key: "tls/b", value: "2" }]);
      await waitFor("the watch to see tls/b", () => c.events().some((e) => e.key === "tls/b"), 5000);
      await watch.close();
      const { items } = await store.list("tls/");
      expect(items.map((kv) => [kv.key, kv.value])).toEqual([
        ["tls/a", "1"],
        ["tls/b", "2"],
      ]);
    } finally {
      await store.close();
    }
  });

  const refused: [string, () => CertFiles | undefined, RegExp][] = [
    ["no client certificate", () => undefined, /requires a client certificate .*none is configured/],
    ["a certificate of another CA", () => certs.otherCaClient, /refused this client's certificate OVERLAY_ETCD_CERT=.*other-client\.crt/],
    // Past the local date check (EtcdStore directly), etcd's own refusal.
    ["an expired certificate", () => certs.expiredClient, /refused this client's certificate .*validity/],
  ]; // prettier-ignore
  it.each(refused)(
    "%s: a clear error naming the store, within the timeout, and no write",
    async (_, client, reason) => {
      const c = client();
      const store: Store = new EtcdStore([etcd.endpoint], {
      timeoutMs: TIMEOUT_MS,
      tls: {
        ca: readFileSync(certs.ca),
        ...(c === undefined ? {} : { cert: readFileSync(c.cert), key: readFileSync(c.key), certSource: `OVERLAY_ETCD_CERT=${c.cert}` }),
      },
    }); // prettier-ignore
      try {
        for (const call of [
          () => store.txn([], [{ type: "put", key: "tls/intruder", value: "x" }]),
          () => store.get("tls/a"),
          () => store.list("tls/"),
          () => store.watch("tls/", 0, collect().handlers),
        ]) {
          const { err, ms } = await failure(call);
          expect(err).toBeInstanceOf(StoreUnavailableError);
          const message = (err as Error).message;
          expect(message).toContain(`etcd ${etcd.endpoint}`);
          expect(message).toMatch(reason);
          expectWithin("a refused call, until it fails", ms, TIMEOUT_MS);
        }
      } finally {
        await store.close();
      }
      const good = await openStore(etcd.url, { timeoutMs: TIMEOUT_MS, env: envFor(certs.client) });
      try {
        expect(await good.get("tls/intruder")).toBeUndefined();
      } finally {
        await good.close();
      }
    },
  );

  it("an expired certificate is refused at open, naming the store, the variable and the date", async () => {
    const { err, ms } = await failure(() =>
      openStore(etcd.url, { timeoutMs: TIMEOUT_MS, env: envFor(certs.expiredClient) }),
    );
    expect(err).toBeInstanceOf(StoreConfigError);
    expect((err as Error).message).toMatch(
      new RegExp(`^store ${etcd.url.replace(/\./g, "\\.")}: the client certificate OVERLAY_ETCD_CERT=\\S+expired-client\\.crt .*expired on Jan +2 .*2020`),
    ); // prettier-ignore
    expectWithin("a refused open", ms, TIMEOUT_MS);
  });

  it("the server's CA must be given: with the system roots the client refuses etcd's certificate", async () => {
    const env = { OVERLAY_ETCD_CERT: certs.client.cert, OVERLAY_ETCD_KEY: certs.client.key };
    const store = await openStore(etcd.url, { timeoutMs: TIMEOUT_MS, env });
    try {
      const { err } = await failure(() => store.get("tls/a"));
      expect(err).toBeInstanceOf(StoreUnavailableError);
      expect((err as Error).message).toMatch(/does not trust etcd's server certificate .*OVERLAY_ETCD_CA/);
    } finally {
      await store.close();
    }
  });
});

describe("etcd's user/password auth on top of the client certificate", () => {
  let authEtcd: TestEtcd;

  beforeAll(async () => {
    authEtcd = await startEtcd({ tls: { ca: certs.ca, ...certs.server, client: certs.client } });
    const admin = new Etcd3({
      hosts: `https://${authEtcd.endpoint}`,
      credentials: {
        rootCertificate: readFileSync(certs.ca),
        certChain: readFileSync(certs.client.cert),
        privateKey: readFileSync(certs.client.key),
      },
    });
    try {
      await admin.role("root").create();
      await admin.user("root").create("root-pw");
      await admin.user("root").addRole("root");
      await admin.user("overlay").create("overlay-pw");
      await admin.user("overlay").addRole("root");
      await admin.auth.authEnable({});
    } finally {
      admin.close();
    }
  }, 60_000);

  afterAll(async () => {
    await authEtcd?.stop();
  });

  const env = (password: string): NodeJS.ProcessEnv => ({
    ...envFor(certs.client),
    OVERLAY_ETCD_USER: "overlay",
    OVERLAY_ETCD_PASSWORD: password,
  });

  it("the right password: put and get", async () => {
    const store = await openStore(authEtcd.url, { timeoutMs: TIMEOUT_MS, env: env("overlay-pw") });
    try {
      await store.txn([], [{ type: "put", key: "auth/k", value: "v" }]);
      expect(await store.get("auth/k")).toMatchObject({ value: "v" });
    } finally {
      await store.close();
    }
  });

  it("a wrong password: a clear error naming the store and the user, within the timeout, and no write", async () => {
    const store = await openStore(authEtcd.url, { timeoutMs: TIMEOUT_MS, env: env("wrong") });
    try {
      const { err, ms } = await failure(() =>
        store.txn([], [{ type: "put", key: "auth/intruder", value: "x" }]),
      );
      expect(err).toBeInstanceOf(StoreAccessError);
      expect((err as Error).message).toMatch(
        new RegExp(`^etcd ${authEtcd.endpoint.replace(/\./g, "\\.")}: txn refused \\(etcd user "overlay"\\): .*authentication failed`),
      ); // prettier-ignore
      expectWithin("a call with a wrong password", ms, TIMEOUT_MS);
    } finally {
      await store.close();
    }
    const good = await openStore(authEtcd.url, { timeoutMs: TIMEOUT_MS, env: env("overlay-pw") });
    try {
      expect(await good.get("auth/intruder")).toBeUndefined();
    } finally {
      await good.close();
    }
  });
});

describe("etcds:// settings from the environment", () => {
  const url = "etcds://10.0.0.1:2379";

  it("names the variable and the path of a file it cannot read", () => {
    for (const name of [
      "OVERLAY_ETCD_CA",
      "OVERLAY_ETCD_CERT",
      "OVERLAY_ETCD_KEY",
      "OVERLAY_ETCD_PASSWORD_FILE",
    ]) {
      const env = { ...envFor(certs.client), OVERLAY_ETCD_USER: "u", [name]: "/nonexistent/x.pem" };
      expect(() => etcdTlsSettings(url, env)).toThrow(StoreConfigError);
      expect(() => etcdTlsSettings(url, env)).toThrow(
        new RegExp(`^store etcds://10\\.0\\.0\\.1:2379: cannot read ${name}=/nonexistent/x\\.pem: ENOENT`),
      );
    }
  });

  it("wants certificate and key together, a key that is the certificate's, a user with a password", () => {
    expect(() => etcdTlsSettings(url, { OVERLAY_ETCD_CERT: certs.client.cert })).toThrow(
      /OVERLAY_ETCD_CERT is set but neither --etcd-key nor OVERLAY_ETCD_KEY is/,
    );
    expect(() => etcdTlsSettings(url, { OVERLAY_ETCD_CERT: certs.client.cert, OVERLAY_ETCD_KEY: certs.server.key })).toThrow(
      /OVERLAY_ETCD_KEY=\S+server\.key is not the key of OVERLAY_ETCD_CERT=/,
    ); // prettier-ignore
    expect(() => etcdTlsSettings(url, { OVERLAY_ETCD_CERT: certs.ca, OVERLAY_ETCD_KEY: certs.ca })).toThrow(
      /OVERLAY_ETCD_KEY=\S+ca\.crt is not a PEM private key/,
    );
    expect(() => etcdTlsSettings(url, { OVERLAY_ETCD_USER: "u" })).toThrow(
      /OVERLAY_ETCD_USER is set but none of --etcd-password-file, OVERLAY_ETCD_PASSWORD and OVERLAY_ETCD_PASSWORD_FILE is/,
    );
    expect(() => etcdTlsSettings(url, { OVERLAY_ETCD_PASSWORD: "p" })).toThrow(
      /an etcd password is set but neither --etcd-user nor OVERLAY_ETCD_USER is/,
    );
  });

  it("takes each setting from its flag over its variable, and names the flag in errors", () => {
    const other = { OVERLAY_ETCD_CERT: certs.otherCaClient.cert, OVERLAY_ETCD_KEY: certs.otherCaClient.key };
    const got = etcdTlsSettings(url, other, { cert: certs.client.cert, key: certs.client.key });
    expect(got.tls.cert?.equals(readFileSync(certs.client.cert))).toBe(true);
    expect(got.tls.certSource).toBe(`--etcd-cert=${certs.client.cert}`);
    expect(() => etcdTlsSettings(url, envFor(certs.client), { ca: "/nonexistent/ca.pem" })).toThrow(
      /^store etcds:\/\/10\.0\.0\.1:2379: cannot read --etcd-ca=\/nonexistent\/ca\.pem: ENOENT/,
    );
    expect(() => etcdTlsSettings(url, {}, { key: certs.client.key })).toThrow(
      /--etcd-key is set but neither --etcd-cert nor OVERLAY_ETCD_CERT is/,
    );
    const passwordFile = join(certs.dir, "flag-password");
    writeFileSync(passwordFile, "from-flag\n");
    const auth = etcdTlsSettings(
      url,
      { OVERLAY_ETCD_USER: "env-user", OVERLAY_ETCD_PASSWORD: "from-env" },
      {
        user: "flag-user",
        passwordFile,
      },
    ).auth;
    expect(auth).toEqual({ username: "flag-user", password: "from-flag" });
  });

  it("reads the files and the credentials", () => {
    const passwordFile = join(certs.dir, "password");
    writeFileSync(passwordFile, "s3cret\n");
    const got = etcdTlsSettings(url, {
      ...envFor(certs.client),
      OVERLAY_ETCD_USER: "overlay",
      OVERLAY_ETCD_PASSWORD_FILE: passwordFile,
    });
    expect(got.tls.ca?.equals(readFileSync(certs.ca))).toBe(true);
    expect(got.tls.cert?.equals(readFileSync(certs.client.cert))).toBe(true);
    expect(got.tls.key?.equals(readFileSync(certs.client.key))).toBe(true);
    expect(got.auth).toEqual({ username: "overlay", password: "s3cret" });
    expect(etcdTlsSettings(url, {})).toEqual({ tls: {} });
  });
});

describe("--etcd-* flags, through the built dctl and overlayd", () => {
  beforeAll(() => {
    for (const bin of [BIN.dctl, BIN.overlayd])
      if (!existsSync(bin)) throw new Error(`missing ${bin}: build first (npm run build)`);
  });

  /** Runs a binary as a user does, with no OVERLAY_ETCD_* or OVERLAY_STORE but those given. */
  function run(
    bin: string,
    args: string[],
    env: NodeJS.ProcessEnv = {},
  ): { code: number | null; stdout: string; stderr: string } {
    const inherited = Object.entries(process.env).filter(
      ([k]) => !k.startsWith("OVERLAY_ETCD_") && k !== "OVERLAY_STORE",
    );
    const r = spawnSync(process.execPath, [bin, ...args], {
      encoding: "utf8",
      env: { ...Object.fromEntries(inherited), ...env },
      timeout: 30_000,
    });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  }
  const flags = (client: CertFiles | undefined): string[] => [
    ...["--etcd-ca", certs.ca],
    ...(client === undefined ? [] : ["--etcd-cert", client.cert, "--etcd-key", client.key]),
  ];
  const list = (extra: string[], env?: NodeJS.ProcessEnv) =>
    run(BIN.dctl, ["network", "overlay", "list", "--store", etcd.url, ...extra], env);

  it("the right certificate: dctl creates and lists a network", () => {
    const created = run(BIN.dctl, [
      ...["--store", etcd.url, ...flags(certs.client)],
      ...["network", "overlay", "create", "red", "-s", "172.30.0.0/16"],
    ]);
    expect(created.stderr).toBe("");
    expect(created.code).toBe(0);
    expect(created.stdout).toMatch(/^NAME\s+TYPE\s+SUBNET.*\nred\s+private\s+172\.30\.0\.0\/16/);
    // The flags after the command, as --store may be.
    expect(list(flags(certs.client)).stdout).toBe(created.stdout);
  });

  const refused: [string, () => CertFiles | undefined, RegExp][] = [
    ["no client certificate", () => undefined, /requires a client certificate .*none is configured \(--etcd-cert and --etcd-key/],
    ["a certificate of another CA", () => certs.otherCaClient, /refused this client's certificate --etcd-cert=\S+other-client\.crt/],
    ["an expired certificate", () => certs.expiredClient, /the client certificate --etcd-cert=\S+expired-client\.crt .*expired on/],
  ]; // prettier-ignore
  it.each(refused)(
    "%s: dctl fails in one line naming the flag, and writes nothing",
    (_, client, reason) => {
      const r = run(BIN.dctl, [
        ...["--store", etcd.url, ...flags(client())],
        ...["network", "overlay", "create", "blue", "-s", "172.31.0.0/16"],
      ]);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stdout).toBe("");
      expect(r.stderr).toMatch(/^Error: /);
      expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
      expect(r.stderr).toMatch(reason);
      expect(r.stderr).not.toMatch(/OVERLAY_ETCD_CERT=/);
      expect(list(flags(certs.client)).stdout).not.toMatch(/^blue/m);
    },
    20_000,
  );

  it("a flag wins over its variable, both ways", () => {
    const envOf = (c: CertFiles) => ({
      OVERLAY_ETCD_CA: certs.ca,
      OVERLAY_ETCD_CERT: c.cert,
      OVERLAY_ETCD_KEY: c.key,
    });
    const rightFlags = ["--etcd-cert", certs.client.cert, "--etcd-key", certs.client.key];
    const wrongFlags = ["--etcd-cert", certs.otherCaClient.cert, "--etcd-key", certs.otherCaClient.key];
    const ok = list(rightFlags, envOf(certs.otherCaClient));
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/^red\s+private/m);
    expect(list([], envOf(certs.client)).code).toBe(0);
    const bad = list(wrongFlags, envOf(certs.client));
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/refused this client's certificate --etcd-cert=\S+other-client\.crt/);
  }, 20_000);

  it("flags with a store that is not etcds:// are a usage error, before anything runs", () => {
    const pair = ["--etcd-cert", certs.client.cert, "--etcd-key", certs.client.key];
    for (const store of ["etcd://127.0.0.1:1", "sqlite:/nonexistent/store.db"]) {
      const r = run(BIN.dctl, ["--store", store, ...pair, "network", "overlay", "list"]);
      expect(r).toEqual({
        code: 1,
        stdout: "",
        stderr: `Error: --etcd-cert, --etcd-key are for an etcds:// store (etcd over TLS), not ${store}: give the store as etcds://HOST:PORT, or leave them out\n`,
      });
    }
    // The store from the environment too; and overlayd the same way, before it starts anything.
    const fromEnv = run(BIN.dctl, ["--etcd-ca", certs.ca, "network", "overlay", "list"], {
      OVERLAY_STORE: "etcd://127.0.0.1:1",
    });
    expect(fromEnv.stderr).toMatch(
      /^Error: --etcd-ca is for an etcds:\/\/ store .*not etcd:\/\/127\.0\.0\.1:1/,
    );
    const agent = run(BIN.overlayd, [
      "--node",
      "n1",
      "--underlay-ip",
      "192.0.2.1",
      "--store",
      "etcd://127.0.0.1:1",
      "--etcd-ca",
      certs.ca,
    ]);
    expect(agent.code).toBe(1);
    expect(agent.stdout).toBe("");
    expect(agent.stderr).toMatch(
      /^error: --etcd-ca is for an etcds:\/\/ store \(etcd over TLS\), not etcd:\/\/127\.0\.0\.1:1/,
    );
  });

  it("overlayd names the flag when the store cannot be opened; the help says why no password flag", () => {
    const agent = run(BIN.overlayd, [
      ...["--node", "n1", "--underlay-ip", "127.0.0.1", "--store", etcd.url],
      ...flags(certs.expiredClient),
    ]);
    expect(agent.code).toBe(1);
    expect(agent.stdout).toMatch(/cannot open the store/);
    expect(agent.stdout).toMatch(/the client certificate --etcd-cert=\S+expired-client\.crt .*expired on/);
    for (const bin of [BIN.dctl, BIN.overlayd]) {
      const help = run(bin, ["--help"]).stdout.replace(/\s+/g, " ");
      for (const flag of [
        "--etcd-ca <file>",
        "--etcd-cert <file>",
        "--etcd-key <file>",
        "--etcd-user <name>",
      ])
        expect(help).toContain(flag);
      expect(help).toMatch(/--etcd-password-file <file> .*no flag takes the password, which ps would show/);
    }
  });
});
