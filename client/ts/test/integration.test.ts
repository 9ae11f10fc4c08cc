// Integration test of the TypeScript client against the real server: it
// starts `pxperf serve` on a free loopback port and publishes, subscribes,
// lists and updates the config through createPxperfClient, over gRPC.
//
// The server binary is $PXPERF_BIN when set, else built with `go build`
// from the repository root into a temporary directory. Every wait has a
// deadline, so a hung server fails the test instead of hanging CI.
import assert from "node:assert/strict";
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { after, before, describe, it } from "node:test";

import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";

import { createPxperfClient, EntrySchema, Order, type Entry, type PxperfClient } from "../src/index.js";

/** Deadline of one unary call. */
const callTimeoutMs = 10_000;
/** Deadline for the server to say where it listens. */
const startTimeoutMs = 30_000;
/** Deadline for the server to exit after SIGTERM before it is killed. */
const stopTimeoutMs = 15_000;
/** Deadline of `go build` (a cold build cache compiles every dependency). */
const buildTimeoutMs = 10 * 60_000;

describe("pxperf TypeScript client against pxperf serve", () => {
  let scratch: string | undefined;
  let server: Server | undefined;
  let client: PxperfClient;
  let ids: bigint[] = [];

  before(async () => {
    scratch = await mkdtemp(join(tmpdir(), "pxperf-ts-"));
    server = await startServer(await serverBinary(), [
      "serve",
      "--listen", "127.0.0.1:0",
      "--http-listen", "127.0.0.1:0",
      "--log-dir", join(scratch, "logs"),
      "--max-updates-per-second", "1000",
    ]);
    client = createPxperfClient(`http://${server.addr}`);
  });

  after(async () => {
    // Also when before failed half-way: stop what was started.
    await stopServer(server);
    if (scratch) {
      await rm(scratch, { recursive: true, force: true });
    }
  });

  it("publishes three entries and gets an id for each", async () => {
    const start = new Date();
    const entries = [1, 2, 3].map((i) =>
      create(EntrySchema, {
        startTime: timestampFromDate(new Date(start.getTime() + i)),
        method: "GET",
        url: `http://example.com/${i}`,
        statusCode: 200,
      }),
    );
    const res = await client.publish({ entries }, { timeoutMs: callTimeoutMs });
    assert.equal(res.results.length, 3);
    for (const r of res.results) {
      assert.equal(r.rejection, undefined, `rejected: ${r.rejection?.message}`);
    }
    ids = res.results.map((r) => r.id);
    // A new server (empty log directory) numbers from 1.
    assert.deepEqual(ids, [1n, 2n, 3n]);
  });

  it("subscribes from id 1 and gets the three entries", async () => {
    const deadline = AbortSignal.timeout(callTimeoutMs);
    const got: Entry[] = [];
    const stream = client.subscribe(
      { start: { case: "startId", value: 1n }, maxUpdatesPerSecond: 1000 },
      { signal: deadline },
    );
    // Leaving the loop (break) cancels the call; the deadline cancels it
    // too, and the iterator then throws a ConnectError.
    try {
      for await (const msg of stream) {
        if (msg.event.case === "batch") {
          got.push(...msg.event.value.entries);
          if (got.length >= 3) {
            break;
          }
        }
      }
    } catch (err) {
      throw new Error(`Subscribe ended after ${got.length} of 3 entries: ${ConnectError.from(err).message}`);
    }
    assert.deepEqual(
      got.map((e) => [e.id, e.url, e.statusCode]),
      [
        [1n, "http://example.com/1", 200],
        [2n, "http://example.com/2", 200],
        [3n, "http://example.com/3", 200],
      ],
    );
  });

  it("lists the entries, oldest first, with the total", async () => {
    const res = await client.listEntries({ order: Order.OLDEST_FIRST }, { timeoutMs: callTimeoutMs });
    assert.equal(res.totalSize, 3n);
    assert.deepEqual(
      res.entries.map((e) => e.id),
      ids,
    );
    assert.equal(res.oldestId, 1n);
    assert.equal(res.newestId, 3n);
  });

  it("reads and updates the config with an update mask", async () => {
    const before = await client.getConfig({}, { timeoutMs: callTimeoutMs });
    const memory = before.config?.memory;
    assert.ok(memory, "GetConfig returned no memory config");
    assert.notEqual(memory.maxEntries, 5000, "max_entries is already 5000: the update would prove nothing");

    const res = await client.updateConfig(
      { config: { memory: { maxEntries: 5000 } }, updateMask: { paths: ["memory.max_entries"] } },
      { timeoutMs: callTimeoutMs },
    );
    assert.equal(res.config?.memory?.maxEntries, 5000);
    // Only the masked field changed.
    assert.equal(res.config?.memory?.maxMemoryMb, memory.maxMemoryMb);
    assert.equal(res.config?.throttle?.maxUpdatesPerSecond, before.config?.throttle?.maxUpdatesPerSecond);

    const after = await client.getConfig({}, { timeoutMs: callTimeoutMs });
    assert.equal(after.config?.memory?.maxEntries, 5000);
  });

  it("refuses max_entries 0 with InvalidArgument", async () => {
    await assert.rejects(
      client.updateConfig(
        { config: { memory: { maxEntries: 0 } }, updateMask: { paths: ["memory.max_entries"] } },
        { timeoutMs: callTimeoutMs },
      ),
      (err: unknown) => {
        const ce = ConnectError.from(err);
        assert.equal(ce.code, Code.InvalidArgument, `got ${Code[ce.code]}: ${ce.message}`);
        assert.match(ce.rawMessage, /max_entries/);
        return true;
      },
    );
    // Nothing was half-applied.
    const res = await client.getConfig({}, { timeoutMs: callTimeoutMs });
    assert.equal(res.config?.memory?.maxEntries, 5000);
  });

  it("runs the README's example (examples/tail.ts) as written", async () => {
    // The README shows the example's code, its header comment aside.
    const pkg = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
    const source = await readFile(join(pkg, "examples", "tail.ts"), "utf8");
    const code = source.slice(source.indexOf("import "));
    assert.ok((await readFile(join(pkg, "README.md"), "utf8")).includes(code), "README.md does not show examples/tail.ts as it is");
    const example = join(dirname(fileURLToPath(import.meta.url)), "..", "examples", "tail.js");
    const { stdout } = await promisify(execFile)(process.execPath, [example], {
      env: { ...process.env, PXPERF_URL: `http://${server?.addr}` },
      timeout: 30_000,
    });
    // It publishes one entry and prints the last 100, oldest first, then
    // stops at the end of the snapshot.
    const lines = stdout.trim().split("\n");
    assert.ok(lines.length >= 4, `example printed:\n${stdout}`);
    assert.match(lines.at(-1) ?? "", /^\d+ http:\/\/example\.com\/$/);
  });
});

describe("pxperf TypeScript client with a bearer token (serve --tokens)", () => {
  const token = randomBytes(24).toString("hex");
  let scratch: string | undefined;
  let server: Server | undefined;

  before(async () => {
    scratch = await mkdtemp(join(tmpdir(), "pxperf-ts-"));
    const tokens = join(scratch, "tokens");
    // The server refuses a token file others can read.
    await writeFile(tokens, `view ts-viewer ${token}\n`, { mode: 0o600 });
    server = await startServer(await serverBinary(), [
      "serve",
      "--listen", "127.0.0.1:0",
      "--http-listen", "127.0.0.1:0",
      "--log-dir", join(scratch, "logs"),
      "--tokens", tokens,
    ]);
  });

  after(async () => {
    await stopServer(server);
    if (scratch) {
      await rm(scratch, { recursive: true, force: true });
    }
  });

  it("sends the token, and without it the call is Unauthenticated", async () => {
    const url = `http://${server!.addr}`;
    const res = await createPxperfClient(url, { token }).getConfig({}, { timeoutMs: callTimeoutMs });
    assert.ok(res.config?.memory, "GetConfig returned no memory config");

    await assert.rejects(createPxperfClient(url).getConfig({}, { timeoutMs: callTimeoutMs }), (err: unknown) => {
      const ce = ConnectError.from(err);
      assert.equal(ce.code, Code.Unauthenticated, `got ${Code[ce.code]}: ${ce.message}`);
      return true;
    });
    // A view token may read but not change the config.
    await assert.rejects(
      createPxperfClient(url, { token }).updateConfig(
        { config: { memory: { maxEntries: 5000 } }, updateMask: { paths: ["memory.max_entries"] } },
        { timeoutMs: callTimeoutMs },
      ),
      (err: unknown) => {
        const ce = ConnectError.from(err);
        assert.equal(ce.code, Code.PermissionDenied, `got ${Code[ce.code]}: ${ce.message}`);
        return true;
      },
    );
  });
});

/**
 * serverBinary returns the path of the pxperf binary: $PXPERF_BIN, or one
 * built once for all suites of this file.
 */
function serverBinary(): Promise<string> {
  const env = process.env["PXPERF_BIN"];
  if (env) {
    return Promise.resolve(env);
  }
  built ??= buildServer();
  return built;
}

let built: Promise<string> | undefined;
let buildDir: string | undefined;

// The built binary lives until every suite has run.
after(async () => {
  if (buildDir) {
    await rm(buildDir, { recursive: true, force: true });
  }
});

/**
 * stopServer stops server, if it started, and checks that it exited 0, as
 * pxperf does on SIGTERM (anything else, a panic at shutdown say, is a bug).
 */
async function stopServer(server: Server | undefined): Promise<void> {
  if (!server) {
    return;
  }
  const status = await server.stop();
  assert.equal(status, 0, `server exit status ${status}; its log:\n${server.log()}`);
}

/** repoRoot is the root of the pxperf repository this test lives in. */
function repoRoot(): string {
  // Walk up rather than count levels: the test runs from test/ as
  // TypeScript and from dist/test/ once compiled.
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, "go.mod")) && existsSync(join(dir, "cmd", "pxperf"))) {
      return dir;
    }
    const parent = dirname(dir);
    if (parent === dir) {
      throw new Error("repository root (go.mod and cmd/pxperf) not found above the test; set PXPERF_BIN");
    }
    dir = parent;
  }
}

/** buildServer builds cmd/pxperf into a new directory and returns the binary's path. */
async function buildServer(): Promise<string> {
  buildDir = await mkdtemp(join(tmpdir(), "pxperf-ts-bin-"));
  const bin = join(buildDir, "pxperf");
  try {
    await promisify(execFile)("go", ["build", "-o", bin, "./cmd/pxperf"], {
      cwd: repoRoot(),
      timeout: buildTimeoutMs,
      killSignal: "SIGKILL",
    });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`go build ./cmd/pxperf failed: ${e.message}\n${e.stderr ?? ""}`);
  }
  return bin;
}

/** Server is a running pxperf serve process. */
interface Server {
  /** host:port it listens on. */
  addr: string;
  /** Its log (stderr) so far. */
  log(): string;
  /**
   * stop sends SIGTERM, waits for the exit (SIGKILL after stopTimeoutMs)
   * and returns the exit status, or the signal's name if killed by one.
   */
  stop(): Promise<number | string>;
}

/**
 * startServer runs bin with args and waits until it logs where it listens
 * (`msg=serving addr=HOST:PORT`).
 */
async function startServer(bin: string, args: string[]): Promise<Server> {
  const proc: ChildProcess = spawn(bin, args, { stdio: ["ignore", "ignore", "pipe"] });
  const lines: string[] = [];
  const log = () => lines.join("\n");
  // Settles once the process is gone, or never started ("error" without
  // "exit" when it cannot be spawned).
  const exited = new Promise<number | string>((resolve) => {
    proc.once("exit", (code, signal) => resolve(code ?? signal ?? "unknown"));
    proc.once("error", (err) => resolve(`not run: ${err.message}`));
  });
  let status: number | string | undefined;
  void exited.then((s) => (status = s));

  const stop = async (): Promise<number | string> => {
    if (status === undefined) {
      proc.kill("SIGTERM");
      const timer = setTimeout(() => proc.kill("SIGKILL"), stopTimeoutMs);
      try {
        return await exited;
      } finally {
        clearTimeout(timer);
      }
    }
    return status;
  };

  let timer: NodeJS.Timeout | undefined;
  const ready = new Promise<string>((resolve, reject) => {
    timer = setTimeout(
      () => reject(new Error(`server did not report its address within ${startTimeoutMs} ms`)),
      startTimeoutMs,
    );
    void exited.then((s) => reject(new Error(`server exited (${s}) before serving`)));
    createInterface({ input: proc.stderr! }).on("line", (line) => {
      lines.push(line);
      const m = /msg=serving addr=(\S+)/.exec(line);
      if (m?.[1]) {
        resolve(m[1]);
      }
    });
  });
  try {
    return { addr: await ready, log, stop };
  } catch (err) {
    await stop();
    throw new Error(`${(err as Error).message}; server log:\n${log()}`);
  } finally {
    clearTimeout(timer);
  }
}
