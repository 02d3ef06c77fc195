import { describe, expect, it } from "vitest";
import { formatIpv4, formatMask, overlaps, parseCidr, parseIpv4 } from "../../src/model/ipv4.js";

describe("ipv4", () => {
  it("parses dotted quads strictly", () => {
    expect(parseIpv4("172.30.8.2")).toBe(0xac1e0802);
    expect(parseIpv4("255.255.255.255")).toBe(0xffffffff);
    for (const bad of ["172.30.8", "172.30.8.256", "01.2.3.4", "1.2.3.4.5", "a.b.c.d", "", "1..2.3"]) {
      expect(parseIpv4(bad), bad).toBeUndefined();
    }
  });

  it("formats addresses and masks", () => {
    expect(formatIpv4(0xac1e0802)).toBe("172.30.8.2");
    expect(formatMask(16)).toBe("255.255.0.0");
    expect(formatMask(24)).toBe("255.255.255.0");
    expect(formatMask(0)).toBe("0.0.0.0");
  });

  it("parses CIDRs and tells overlaps", () => {
    expect(parseCidr("10.0.0.0/8")).toEqual({ address: 0x0a000000, prefixLength: 8 });
    expect(parseCidr("10.0.0.0")).toBeUndefined();
    expect(parseCidr("10.0.0.0/33")).toBeUndefined();
    expect(parseCidr("10.0.0.0/08")).toBeUndefined();
    const a = parseCidr("172.30.0.0/16")!;
    expect(overlaps(a, parseCidr("172.30.255.0/24")!)).toBe(true);
    expect(overlaps(a, parseCidr("172.0.0.0/8")!)).toBe(true);
    expect(overlaps(a, parseCidr("172.31.0.0/16")!)).toBe(false);
    expect(overlaps(a, parseCidr("172.29.255.255/32")!)).toBe(false);
  });
});
