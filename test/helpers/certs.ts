/**
 * Test certificates made with `openssl` in a temp folder: a CA, a server certificate for an IP
 * (subjectAltName), client certificates, a second CA's client certificate and an expired one.
 */
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const execFileP = promisify(execFile);

export interface CertFiles {
  cert: string;
  key: string;
}

export interface TestCerts {
  dir: string;
  /** The CA that signed the server and client certificates. */
  ca: string;
  server: CertFiles;
  client: CertFiles;
  /** A client certificate from another CA, which the server does not trust. */
  otherCaClient: CertFiles;
  /** A client certificate from the right CA whose validity ended in 2020. */
  expiredClient: CertFiles;
  remove(): void;
}

const CA_CONFIG = `[ca]
default_ca = CA
[CA]
database = index.txt
new_certs_dir = .
serial = serial
default_md = sha256
policy = any
unique_subject = no
copy_extensions = none
[any]
commonName = supplied
[client]
basicConstraints = CA:FALSE
keyUsage = digitalSignature
extendedKeyUsage = clientAuth
[server]
basicConstraints = CA:FALSE
keyUsage = digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = @san
[san]
`;

async function openssl(cwd: string, args: string[]): Promise<void> {
  await execFileP("openssl", args, { cwd });
}

/** A CA in its own folder under `dir`, able to sign requests with `openssl ca`. */
async function makeCa(dir: string, name: string, serverIp: string): Promise<{ dir: string; cert: string }> {
  const caDir = join(dir, name);
  mkdirSync(caDir);
  writeFileSync(join(caDir, "index.txt"), "");
  writeFileSync(join(caDir, "serial"), "01\n");
  writeFileSync(join(caDir, "ca.cnf"), `${CA_CONFIG}IP.1 = ${serverIp}\n`);
  await openssl(caDir, [
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
    "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", `/CN=${name}`,
  ]); // prettier-ignore
  return { dir: caDir, cert: join(caDir, "ca.crt") };
}

async function issue(
  ca: { dir: string },
  name: string,
  extensions: "client" | "server",
  dates: { start?: string; end?: string } = {},
): Promise<CertFiles> {
  const key = join(ca.dir, `${name}.key`);
  const cert = join(ca.dir, `${name}.crt`);
  await openssl(ca.dir, [
    "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
    "-keyout", key, "-out", `${name}.csr`, "-subj", `/CN=${name}`,
  ]); // prettier-ignore
  await openssl(ca.dir, [
    "ca", "-batch", "-config", "ca.cnf", "-cert", "ca.crt", "-keyfile", "ca.key", "-notext",
    "-in", `${name}.csr`, "-out", cert, "-extensions", extensions,
    ...(dates.start === undefined ? ["-days", "2"] : ["-startdate", dates.start, "-enddate", dates.end ?? dates.start]),
  ]); // prettier-ignore
  return { cert, key };
}

export async function makeTestCerts(serverIp = "127.0.0.1"): Promise<TestCerts> {
  const dir = mkdtempSync(join(tmpdir(), "overlay-certs-"));
  try {
    const ca = await makeCa(dir, "ca", serverIp);
    const other = await makeCa(dir, "other-ca", serverIp);
    return {
      dir,
      ca: ca.cert,
      server: await issue(ca, "server", "server"),
      client: await issue(ca, "client", "client"),
      otherCaClient: await issue(other, "other-client", "client"),
      expiredClient: await issue(ca, "expired-client", "client", {
        start: "20200101000000Z",
        end: "20200102000000Z",
      }),
      remove: () => rmSync(dir, { recursive: true, force: true }),
    };
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
