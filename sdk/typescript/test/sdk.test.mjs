// SPDX-License-Identifier: Apache-2.0
// @silo/sdk against a real silod with the namespace provider (tests/sdk/run.sh
// starts it: SILO_SOCKET, SILO_TEST_TCP, SILO_TEST_TOKEN, SILO_TEST_RO_TOKEN).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import * as silo from "../dist/esm/index.js";

const NS = { provider: "namespace", vcpus: 1, memory_mb: 128 };
let c, sb;
before(async () => {
  c = new silo.Client();
  sb = await c.create({ ...NS, name: "ts-main" });
});
after(async () => {
  await sb.delete(0);
  c.close();
});

test("the minimal shape, and CommonJS with the same classes", async () => {
  const r = await sb.exec(["sh", "-c", "echo hi"]);
  assert.equal(r.stdout, "hi\n");
  assert.equal(r.exitCode, 0);
  await sb.files.write("/tmp/x", Buffer.from("1"));
  assert.deepEqual(await sb.files.read("/tmp/x"), Buffer.from("1"));
  const cjs = createRequire(import.meta.url)("../dist/cjs/index.js");
  assert.equal(typeof cjs.Client, "function");
  assert.equal(new cjs.PolicyDenied("x").code, "POLICY_DENIED");
});

test("create from hac.toml, list filters, delete", async () => {
  const s = await c.create('[vm]\nname = "ts-toml"\nprovider = "namespace"\n[resources]\nvcpus = 1\nmemory_mb = 160\n[sandbox.env]\nG = "toml"\n');
  assert.equal(s.name, "ts-toml");
  assert.equal((await s.exec("echo $G")).stdout, "toml\n");
  assert.deepEqual((await c.list({ name: "ts-toml" })).map((x) => x.id), [s.id]);
  await s.delete(0);
  assert.equal(s.state, "terminated");
  assert.deepEqual(await c.list({ name: "ts-toml" }), []);
});

test("typed errors carry the code, number, sandbox and errno", async () => {
  await assert.rejects(c.get("sb-nosuch"), (e) => e instanceof silo.VmNotFound && e.code === "VM_NOT_FOUND" && e.number === 5 && e.status === 404);
  await assert.rejects(sb.files.read("/no/such"), (e) => e instanceof silo.FileNotFound && e.sandboxId === sb.id && e.errno === 2);
  await assert.rejects(c.create({ provider: "namespace", vcpus: 0 }), (e) => e instanceof silo.InvalidConfig && e.message.includes("vcpus"));
  await assert.rejects(sb.files.mkdir("/tmp"), silo.Conflict);
  assert.equal(silo.errorFromBody(418, '{"error":{"code":"NEW_ONE","message":"m"}}').code, "NEW_ONE");
  assert.ok(silo.errorFromBody(502, "<html>") instanceof silo.ProtocolError);
  silo.CODES.forEach((code, i) => assert.equal(new silo.BY_CODE[code]("m").number, i + 1));
});

test("TCP with tokens: scoped token is PolicyDenied, a bad one Unauthorized", async () => {
  const ro = new silo.Client({ host: process.env.SILO_TEST_TCP, token: process.env.SILO_TEST_RO_TOKEN });
  assert.ok((await ro.list()).some((s) => s.id === sb.id));
  await assert.rejects(ro.create(NS), silo.PolicyDenied);
  ro.close();
  const bad = new silo.Client({ host: process.env.SILO_TEST_TCP, token: "wrong" });
  await assert.rejects(bad.list(), silo.Unauthorized);
  bad.close();
  const full = new silo.Client({ host: process.env.SILO_TEST_TCP, token: process.env.SILO_TEST_TOKEN });
  assert.equal((await (await full.get(sb.id)).exec("echo tcp")).stdout, "tcp\n");
  full.close();
  assert.throws(() => new silo.Client({ host: "ftp://x" }), silo.InvalidConfig);
  // TLS files (SILO_CA and friends) only with https://, a certificate only with its key
  assert.throws(() => new silo.Client({ host: process.env.SILO_TEST_TCP, ca: "/etc/ssl/ca.pem" }), /https:\/\//);
  assert.throws(() => new silo.Client({ host: "https://127.0.0.1:1", cert: "/c.pem" }), /both or neither/);
  assert.throws(() => new silo.Client({ host: "https://127.0.0.1:1", ca: "/nonexistent/ca.pem" }),
    (e) => e instanceof silo.InvalidConfig && e.message.includes("/nonexistent/ca.pem"));
  await assert.rejects(new silo.Client({ socketPath: "/nonexistent/silod.sock" }).health(), silo.RemoteUnreachable);
  const saved = { ...process.env };
  try {
    process.env.SILO_HOST = process.env.SILO_TEST_TCP;
    process.env.SILO_API_TOKEN = process.env.SILO_TEST_TOKEN;
    const e = new silo.Client();
    assert.equal(e.target, process.env.SILO_TEST_TCP);
    assert.equal((await e.health()).status, "ok");
    e.close();
    delete process.env.SILO_HOST;
    delete process.env.SILO_SOCKET;
    process.env.SILO_RUNTIME_DIR = "/tmp/elsewhere";
    assert.equal(new silo.Client().target, "unix:/tmp/elsewhere/silod.sock");
  } finally {
    process.env = saved;
  }
});

test("exec: env, cwd, stdin, exit code, stderr, timeout, big output", async () => {
  const r = await sb.exec(["sh", "-c", "echo $A; pwd; cat; echo e >&2; exit 3"], { env: { A: "a" }, cwd: "/tmp", stdin: "in" });
  assert.deepEqual([r.stdout, r.stderr, r.exitCode], ["a\n/tmp\nin", "e\n", 3]);
  const t = await sb.exec(["sleep", "30"], { timeoutMs: 300 });
  assert.equal(t.timedOut, true);
  const big = await sb.exec("head -c 3000000 /dev/zero");
  assert.equal(big.stdoutBytes.length, 3000000);
});

test("exec stream: chunks as they come (async iterator)", async () => {
  const t0 = Date.now();
  const s = await sb.execStream("echo first; sleep 1.5; echo second >&2");
  const seen = [];
  for await (const ch of s) seen.push([ch.stream, ch.data.toString(), Date.now() - t0]);
  assert.deepEqual(seen.map((x) => [x[0], x[1]]), [["stdout", "first\n"], ["stderr", "second\n"]]);
  assert.ok(seen[0][2] + 1000 < seen[1][2], "the first chunk came at the end");
  assert.equal((await s.result).exitCode, 0);
});

test("AbortSignal cancels a running exec (silod kills the command)", async () => {
  const ac = new AbortController();
  const s = await sb.execStream("while :; do echo y; sleep 0.05; done", { signal: ac.signal });
  let n = 0;
  await assert.rejects((async () => {
    for await (const _ of s) if (++n === 2) ac.abort();
  })());
  await new Promise((r) => setTimeout(r, 1000));
  const procs = await sb.procs();
  assert.ok(!procs.some((p) => JSON.stringify(p.info).includes("echo y")), "the command still runs");
  await assert.rejects(c.health({ signal: AbortSignal.abort() }));
});

test("background processes: tag, signal, wait, stdin, output, kill", async () => {
  const p = await sb.spawn(["sleep", "60"], { tag: "ts-sleeper" });
  assert.equal((await sb.process("ts-sleeper")).handle, p.handle);
  await p.signal("TERM");
  assert.equal((await p.wait(10000)).signal, 15);
  await p.kill();
  await assert.rejects(sb.process(p.handle), silo.ProcessNotFound);
  const q = await sb.spawn(["sh", "-c", "read a; echo got:$a"], { stdinOpen: true });
  await q.write("hello\n", true);
  const r = await (await q.output()).collect();
  assert.equal(r.stdout, "got:hello\n");
});

test("PTY session: size, resize, keystrokes", async () => {
  const p = await sb.pty(["sh", "-c", "stty size; read x; stty size; echo got:$x"], { rows: 30, cols: 100 });
  const out = await p.output();
  let buf = "";
  for await (const ch of out) {
    buf += ch.data.toString();
    if (buf.includes("30 100") && !buf.includes("sent")) {
      buf += "sent";
      await p.resize(40, 120);
      await p.write("k\n");
    }
  }
  assert.match(buf, /40 120/);
  assert.match(buf, /got:k/);
  assert.equal((await out.result).exitCode, 0);
});

test("files: mkdir, list, stat, move, remove, tar out and in", async () => {
  const f = sb.files;
  await f.mkdir("/tmp/d/e", true);
  assert.equal(await f.write("/tmp/d/e/a", "alpha", 0o600), 5);
  assert.equal((await f.stat("/tmp/d/e/a")).mode, "0600");
  assert.deepEqual((await f.list("/tmp/d", { depth: 2 })).map((e) => e.name).sort(), ["e", "e/a"]);
  await f.move("/tmp/d/e/a", "/tmp/d/b");
  assert.equal(await f.exists("/tmp/d/e/a"), false);
  const parts = [];
  for await (const b of f.tarOut("/tmp/d")) parts.push(b);
  const tar = Buffer.concat(parts);
  assert.ok(tar.length >= 2048 && tar.length % 512 === 0);
  assert.ok((await f.tarIn("/tmp/copy", tar)) > 0);
  assert.equal(await f.readText("/tmp/copy/d/b"), "alpha");
  await f.remove("/tmp/d", true);
  assert.equal(await f.exists("/tmp/d"), false);
});

test("pause, resume, snapshot, fork, restore", async () => {
  await sb.pause();
  assert.equal(sb.state, "paused");
  await assert.rejects(sb.exec("true"), silo.Conflict);
  await sb.resume();
  await sb.files.write("/root/mark", "m");
  const snap = await sb.snapshot({ tags: ["ts-snap"] });
  const [f] = await sb.fork(1);
  assert.equal(await f.files.readText("/root/mark"), "m");
  await f.delete(0);
  const r = await c.restore(String(snap.id));
  assert.equal(await r.files.readText("/root/mark"), "m");
  await r.delete(0);
  await c.deleteSnapshot(String(snap.id));
});

test("events as an async iterator; deployments", async () => {
  const evs = [];
  const it = (async () => {
    for await (const e of c.events({ types: ["ready", "terminated"], limit: 2 })) evs.push(e);
  })();
  await new Promise((r) => setTimeout(r, 300));
  const s = await silo.withSandbox(c, NS, async (x) => x.id);
  await it;
  assert.deepEqual(evs.map((e) => [e.type, e.sandbox_id]), [["ready", s], ["terminated", s]]);
  const spec = '[vm]\nname = "x"\nprovider = "namespace"\n[resources]\nvcpus = 1\nmemory_mb = 128\n';
  const d = await c.deploy({ name: "ts-agent", spec, restart: "never" });
  assert.equal(d.name, "ts-agent");
  assert.ok((await c.deployments()).some((x) => x.name === "ts-agent"));
  await assert.rejects(c.deploy({ name: "ts-agent", spec }), silo.Conflict);
  await c.undeploy("ts-agent", 0);
});

test("concurrent execs on one client", async () => {
  const rs = await Promise.all([0, 1, 2, 3, 4, 5].map((i) => sb.exec(["echo", String(i)])));
  assert.deepEqual(rs.map((r) => r.stdout), ["0\n", "1\n", "2\n", "3\n", "4\n", "5\n"]);
});
