import { describe, expect, it } from "vitest";
import {
  DEFAULT_STORE_URL,
  StoreUrlError,
  openStore,
  parseStoreUrl,
  storeUrlFromEnv,
} from "../../src/store/index.js";

describe("store URLs", () => {
  it("parses sqlite and etcd URLs", () => {
    expect(parseStoreUrl("sqlite:/var/lib/x.db")).toEqual({ kind: "sqlite", path: "/var/lib/x.db" });
    expect(parseStoreUrl("sqlite:///var/lib/x.db")).toEqual({ kind: "sqlite", path: "/var/lib/x.db" });
    expect(parseStoreUrl("sqlite:rel/x.db")).toEqual({ kind: "sqlite", path: "rel/x.db" });
    expect(parseStoreUrl("sqlite::memory:")).toEqual({ kind: "sqlite", path: ":memory:" });
    expect(parseStoreUrl("etcd://10.0.0.1:2379")).toEqual({ kind: "etcd", endpoints: ["10.0.0.1:2379"] });
    expect(parseStoreUrl("etcd://a:1,b.example:2379,[::1]:2379")).toEqual({
      kind: "etcd",
      endpoints: ["a:1", "b.example:2379", "[::1]:2379"],
    });
    expect(parseStoreUrl("etcds://a:1,[::1]:2379/")).toEqual({
      kind: "etcd",
      endpoints: ["a:1", "[::1]:2379"],
      tls: true,
    });
    expect(parseStoreUrl("etcd://a:1")).not.toHaveProperty("tls");
  });

  it.each([
    ["", /unknown scheme/],
    ["/var/lib/x.db", /unknown scheme/],
    ["sqlite:", /SQLite path is empty/],
    ["etcd://", /no etcd endpoint/],
    ["etcd://host", /"host" is not HOST:PORT/],
    ["etcd://a:1,,b:2", /is not HOST:PORT/],
    ["etcd://a:70000", /port 70000 is out of range/],
    ["http://a:2379", /unknown scheme/],
    ["etcds://", /no etcd endpoint/],
    ["etcds://host", /"host" is not HOST:PORT/],
  ])("rejects %j, saying what is expected", (url, problem) => {
    expect(() => parseStoreUrl(url)).toThrow(StoreUrlError);
    expect(() => parseStoreUrl(url)).toThrow(problem);
    expect(() => parseStoreUrl(url)).toThrow(
      /expected sqlite:PATH, sqlite::memory:, etcd:\/\/HOST:PORT\[,HOST:PORT...\] or etcds:\/\/HOST:PORT/,
    );
  });

  it("defaults to $OVERLAY_STORE, then the standard SQLite file", () => {
    expect(DEFAULT_STORE_URL).toBe("sqlite:/var/lib/overlay/store.db");
    expect(storeUrlFromEnv({})).toBe(DEFAULT_STORE_URL);
    expect(storeUrlFromEnv({ OVERLAY_STORE: "  " })).toBe(DEFAULT_STORE_URL);
    expect(storeUrlFromEnv({ OVERLAY_STORE: "etcd://h:1" })).toBe("etcd://h:1");
  });

  it("openStore opens sqlite::memory: and honours OVERLAY_STORE", async () => {
    const s = await openStore("sqlite::memory:");
    await s.txn([], [{ type: "put", key: "k", value: "v" }]);
    expect((await s.get("k"))?.value).toBe("v");
    await s.close();
    const saved = process.env.OVERLAY_STORE;
    process.env.OVERLAY_STORE = "sqlite::memory:";
    try {
      const t = await openStore();
      expect(await t.get("k")).toBeUndefined();
      await t.close();
    } finally {
      if (saved === undefined) delete process.env.OVERLAY_STORE;
      else process.env.OVERLAY_STORE = saved;
    }
    await expect(openStore("nope")).rejects.toThrow(StoreUrlError);
  });
});
