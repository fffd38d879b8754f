// SPDX-License-Identifier: Apache-2.0
// The official `e2b` SDK (npm, unmodified) against silod --e2b-listen.
// Run by tests/e2b/test_e2b.sh, which starts silod and sets E2B_API_URL,
// E2B_SANDBOX_URL, E2B_API_KEY, E2B_SDK (the installed package's entry),
// TAP_START (first TAP number), TAP_COUNT_FILE (where the count goes),
// SCOPED_KEY (a token that may only list), NATIVE_ID (a sandbox made through
// silod's own API). Prints TAP lines; never exits early: each case is caught.
import fs from 'node:fs';

const { Sandbox, CommandExitError, NotFoundError, AuthenticationError, SandboxError, FileType } =
  await import(process.env.E2B_SDK);

let n = Number(process.env.TAP_START || 0);
let failed = 0;
const ok = (name) => console.log(`ok ${++n} - ${name}`);
const notok = (name, why) => {
  failed++;
  console.log(`not ok ${++n} - ${name}`);
  for (const l of String(why).split('\n').slice(0, 8)) console.log(`# ${l}`);
};
const assert = (c, msg) => { if (!c) throw new Error(msg || 'assertion failed'); };
async function t(name, fn) {
  try { await fn(); ok(name); } catch (e) { notok(name, e && e.stack ? e.stack : e); }
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(fn, ms = 5000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) return v;
    await sleep(50);
  }
}

const url = process.env.E2B_API_URL;
const key = process.env.E2B_API_KEY;
let sbx;

await t('Sandbox.create with template, timeout, metadata, envs', async () => {
  sbx = await Sandbox.create('base', { timeoutMs: 120000, metadata: { suite: 'e2b', run: String(process.pid) },
    envs: { GREETING: 'hi from envs' } });
  assert(/^sb-/.test(sbx.sandboxId), sbx.sandboxId);
});
if (!sbx) {
  fs.writeFileSync(process.env.TAP_COUNT_FILE, `${n} ${failed + 1}`);
  process.exit(0);
}

// ---- commands
await t('commands.run: stdout, stderr, exit code 0', async () => {
  const r = await sbx.commands.run('echo out; echo err >&2');
  assert(r.exitCode === 0 && r.stdout === 'out\n' && r.stderr === 'err\n', JSON.stringify(r));
});
await t('commands.run: non-zero exit raises CommandExitError with the result', async () => {
  try {
    await sbx.commands.run('echo partial; exit 7');
    throw new Error('no error');
  } catch (e) {
    assert(e instanceof CommandExitError, e);
    assert(e.exitCode === 7 && e.stdout === 'partial\n', JSON.stringify(e.result));
  }
});
await t('commands.run: create-time envs, per-command envs and cwd', async () => {
  const r = await sbx.commands.run('echo "$GREETING|$X|$(pwd)"', { envs: { X: 'y z' }, cwd: '/tmp' });
  assert(r.stdout === 'hi from envs|y z|/tmp\n', JSON.stringify(r.stdout));
});
await t('commands.run: onStdout/onStderr fire while the command streams', async () => {
  const seen = [];
  const t0 = Date.now();
  const r = await sbx.commands.run('echo a; sleep 0.6; echo b >&2; sleep 0.6; echo c', {
    onStdout: (d) => seen.push(['o', d, Date.now() - t0]), onStderr: (d) => seen.push(['e', d, Date.now() - t0]) });
  assert(seen.map((x) => x[0] + x[1]).join('') === 'oa\neb\noc\n', JSON.stringify(seen));
  assert(seen[0][2] < seen[2][2] - 800, 'first chunk arrived before the end: ' + JSON.stringify(seen));
  assert(r.stdout === 'a\nc\n', r.stdout);
});
await t('commands.run: binary-safe output of 1 MiB', async () => {
  const r = await sbx.commands.run('head -c 1048576 /dev/zero | tr "\\0" x');
  assert(r.stdout.length === 1048576 && /^x+$/.test(r.stdout), r.stdout.length);
});
let bg;
await t('commands.run background + commands.list shows it', async () => {
  bg = await sbx.commands.run('sleep 30', { background: true });
  assert(bg.pid > 0, bg.pid);
  const l = await sbx.commands.list();
  assert(l.some((p) => p.pid === bg.pid && p.args.includes('sleep 30')), JSON.stringify(l));
});
await t('commands.kill ends it; a second kill answers false', async () => {
  assert(await sbx.commands.kill(bg.pid) === true);
  const r = await bg.wait().catch((e) => e);
  assert(r && (r.exitCode === -1 || r.exitCode === 137 || r.error), JSON.stringify(r));
  const l = await until(async () => !(await sbx.commands.list()).some((p) => p.pid === bg.pid));
  assert(l, 'still listed');
  assert(await sbx.commands.kill(bg.pid) === false);
});
await t('sendStdin and closeStdin reach the process', async () => {
  const h = await sbx.commands.run('read a; read b; echo "got $a $b"; cat', { background: true, stdin: true });
  await h.sendStdin('one\n');
  await h.sendStdin('two\nrest');
  await h.closeStdin();
  const r = await h.wait();
  assert(r.stdout === 'got one two\nrest', JSON.stringify(r.stdout));
});
await t('commands.connect reattaches to a running command', async () => {
  const h = await sbx.commands.run('for i in 1 2 3; do echo $i; sleep 0.3; done', { background: true });
  await h.disconnect();
  const c = await sbx.commands.connect(h.pid);
  const r = await c.wait();
  assert(r.exitCode === 0 && r.stdout.includes('3\n'), JSON.stringify(r));
});
await t('commands.kill of an unknown pid answers false', async () => {
  assert(await sbx.commands.kill(999999) === false);
});

// ---- files
await t('files.write/read text; write returns the entry', async () => {
  const w = await sbx.files.write('/tmp/e2b/a.txt', 'hello files');
  assert(w.path === '/tmp/e2b/a.txt' && w.name === 'a.txt', JSON.stringify(w));
  assert(await sbx.files.read('/tmp/e2b/a.txt') === 'hello files');
});
await t('files.write/read bytes (all 256 values), multipart and octet-stream', async () => {
  const b = new Uint8Array(256 * 64);
  for (let i = 0; i < b.length; i++) b[i] = i % 256;
  await sbx.files.write('/tmp/e2b/b.bin', b.buffer);
  const r = await sbx.files.read('/tmp/e2b/b.bin', { format: 'bytes' });
  assert(r.length === b.length && r.every((v, i) => v === b[i]), 'multipart round trip');
  await sbx.files.write('/tmp/e2b/c.bin', b.buffer, { useOctetStream: true });
  const r2 = await sbx.files.read('/tmp/e2b/c.bin', { format: 'bytes' });
  assert(r2.length === b.length && r2.every((v, i) => v === b[i]), 'octet-stream round trip');
});
await t('a gzip-encoded upload is refused (415), not stored as gzip bytes', async () => {
  const e = await sbx.files.write('/tmp/e2b/gz', 'zipped', { gzip: true }).catch((x) => x);
  assert(e instanceof Error && /Content-Encoding/.test(e.message), e);
  assert(await sbx.files.exists('/tmp/e2b/gz') === false);
});
await t('files.writeFiles writes several files in one multipart request', async () => {
  await sbx.files.writeFiles([{ path: '/tmp/e2b/m1', data: 'one' }, { path: '/tmp/e2b/sub/m2', data: 'two' }]);
  assert(await sbx.files.read('/tmp/e2b/m1') === 'one' && await sbx.files.read('/tmp/e2b/sub/m2') === 'two');
});
await t('files.list, exists, getInfo', async () => {
  const l = await sbx.files.list('/tmp/e2b');
  const names = l.map((e) => e.name).sort();
  assert(JSON.stringify(names) === JSON.stringify(['a.txt', 'b.bin', 'c.bin', 'm1', 'sub']), JSON.stringify(names));
  assert(l.find((e) => e.name === 'sub').type === FileType.DIR, JSON.stringify(l));
  assert(await sbx.files.exists('/tmp/e2b/a.txt') === true && await sbx.files.exists('/tmp/e2b/none') === false);
  const i = await sbx.files.getInfo('/tmp/e2b/a.txt');
  assert(i.size === 11 && i.type === FileType.FILE && i.path === '/tmp/e2b/a.txt', JSON.stringify(i));
});
await t('files.list with depth 2 includes the subdirectory\'s files', async () => {
  const l = await sbx.files.list('/tmp/e2b', { depth: 2 });
  assert(l.some((e) => e.path === '/tmp/e2b/sub/m2'), JSON.stringify(l.map((e) => e.path)));
});
await t('files.makeDir creates parents; again answers false', async () => {
  assert(await sbx.files.makeDir('/tmp/e2b/d1/d2') === true);
  assert(await sbx.files.makeDir('/tmp/e2b/d1/d2') === false);
});
await t('files.rename moves; files.remove deletes', async () => {
  const e = await sbx.files.rename('/tmp/e2b/a.txt', '/tmp/e2b/d1/renamed.txt');
  assert(e.path === '/tmp/e2b/d1/renamed.txt', JSON.stringify(e));
  assert(await sbx.files.read('/tmp/e2b/d1/renamed.txt') === 'hello files');
  await sbx.files.remove('/tmp/e2b/d1');
  assert(await sbx.files.exists('/tmp/e2b/d1') === false);
});
await t('files.read of a missing file raises NotFoundError', async () => {
  const e = await sbx.files.read('/tmp/e2b/missing').catch((x) => x);
  assert(e instanceof NotFoundError, e);
});
await t('files.watchDir reports create, write and remove', async () => {
  await sbx.files.makeDir('/tmp/w');
  const evs = [];
  const h = await sbx.files.watchDir('/tmp/w', (ev) => evs.push(`${ev.type}:${ev.name}`));
  await sbx.files.write('/tmp/w/f1', 'x');
  await sbx.commands.run('rm /tmp/w/f1');
  const got = await until(() => evs.some((x) => x.startsWith('remove:f1')), 5000);
  await h.stop();
  assert(got && evs.some((x) => x === 'create:f1') && evs.some((x) => x === 'write:f1'), JSON.stringify(evs));
});

// ---- the Connect calls the JS SDK does not make (other SDKs do): raw requests
const envd = (path, body, ct = 'application/json') => fetch(`${url}${path}`, { method: 'POST', body,
  headers: { 'Content-Type': ct, 'E2b-Sandbox-Id': sbx.sandboxId, 'X-Access-Token': sbx.envdAccessToken } });
const envelope = (flags, obj) => {
  const j = Buffer.from(JSON.stringify(obj));
  const h = Buffer.alloc(5);
  h[0] = flags;
  h.writeUInt32BE(j.length, 1);
  return Buffer.concat([h, j]);
};
await t('CreateWatcher, GetWatcherEvents, RemoveWatcher', async () => {
  await sbx.files.makeDir('/tmp/pw');
  let r = await envd('/filesystem.Filesystem/CreateWatcher', JSON.stringify({ path: '/tmp/pw' }));
  const { watcherId } = await r.json();
  assert(r.status === 200 && watcherId, `${r.status} ${watcherId}`);
  await sbx.files.write('/tmp/pw/x', '1');
  const names = [];
  await until(async () => {
    r = await envd('/filesystem.Filesystem/GetWatcherEvents', JSON.stringify({ watcherId }));
    const j = await r.json();
    names.push(...(j.events || []).map((e) => `${e.type}:${e.name}`));
    return names.includes('EVENT_TYPE_CREATE:x');
  });
  assert(names.includes('EVENT_TYPE_CREATE:x'), JSON.stringify(names));
  r = await envd('/filesystem.Filesystem/RemoveWatcher', JSON.stringify({ watcherId }));
  assert(r.status === 200, r.status);
  r = await envd('/filesystem.Filesystem/GetWatcherEvents', JSON.stringify({ watcherId }));
  assert(r.status === 404, 'removed watcher: ' + r.status);
});
await t('StreamInput: a client stream of start and data envelopes feeds stdin', async () => {
  const h = await sbx.commands.run('head -c 10', { background: true, stdin: true });
  const body = Buffer.concat([envelope(0, { start: { process: { pid: h.pid } } }),
    envelope(0, { data: { input: { stdin: Buffer.from('hello').toString('base64') } } }),
    envelope(0, { keepalive: {} }),
    envelope(0, { data: { input: { stdin: Buffer.from('world').toString('base64') } } }), envelope(2, {})]);
  const r = await envd('/process.Process/StreamInput', body, 'application/connect+json');
  const b = Buffer.from(await r.arrayBuffer());
  assert(r.status === 200 && b[0] === 0 && b[5 + b.readUInt32BE(1)] === 2, `${r.status} ${b}`);
  const res = await h.wait();
  assert(res.stdout === 'helloworld', JSON.stringify(res.stdout));
});

// ---- pty
await t('pty.create, sendInput, resize, exit', async () => {
  let out = '';
  const dec = new TextDecoder();
  const p = await sbx.pty.create({ cols: 80, rows: 24, onData: (d) => { out += dec.decode(d); } });
  await sbx.pty.sendInput(p.pid, new TextEncoder().encode('stty size; echo marker-$((6*7))\n'));
  assert(await until(() => out.includes('marker-42'), 5000), JSON.stringify(out));
  assert(out.includes('24 80'), JSON.stringify(out));
  await sbx.pty.resize(p.pid, { cols: 132, rows: 50 });
  await sbx.pty.sendInput(p.pid, new TextEncoder().encode('stty size; exit 3\n'));
  const r = await p.wait().catch((e) => e);
  assert(out.includes('50 132'), JSON.stringify(out));
  assert(r.exitCode === 3, JSON.stringify(r.result || r));
});

// ---- control plane
await t('getInfo: template, metadata, state, times', async () => {
  const i = await sbx.getInfo();
  assert(i.sandboxId === sbx.sandboxId && i.templateId === 'base' && i.state === 'running', JSON.stringify(i));
  assert(i.metadata.suite === 'e2b' && !('e2b.template' in i.metadata), JSON.stringify(i.metadata));
  const life = i.endAt - i.startedAt;
  assert(life > 110000 && life < 130000, `life ${life}`);
});
await t('getMetrics: one current sample with memory and CPU', async () => {
  const m = await sbx.getMetrics();
  assert(m.length === 1 && m[0].memUsed > 0 && m[0].memTotal >= m[0].memUsed && m[0].cpuCount >= 1 &&
    m[0].cpuUsedPct >= 0 && m[0].timestamp instanceof Date, JSON.stringify(m));
});
await t('setTimeout moves endAt', async () => {
  await sbx.setTimeout(600000);
  const i = await sbx.getInfo();
  const left = i.endAt - Date.now();
  assert(left > 590000 && left < 610000, `left ${left}`);
});
await t('Sandbox.list filters by metadata and state and pages', async () => {
  const extra = await Sandbox.create('base', { timeoutMs: 60000, metadata: { suite: 'e2b', run: String(process.pid) } });
  try {
    const p = Sandbox.list({ query: { metadata: { run: String(process.pid) }, state: ['running'] }, limit: 1 });
    const ids = [];
    let pages = 0;
    while (p.hasNext && pages < 5) { ids.push(...(await p.nextItems()).map((s) => s.sandboxId)); pages++; }
    assert(pages === 2 && ids.includes(sbx.sandboxId) && ids.includes(extra.sandboxId), JSON.stringify({ pages, ids }));
    const none = await Sandbox.list({ query: { metadata: { run: 'nobody' } } }).nextItems();
    assert(none.length === 0, JSON.stringify(none));
  } finally {
    await extra.kill();
  }
});
await t('Sandbox.connect returns a working handle', async () => {
  const c = await Sandbox.connect(sbx.sandboxId);
  const r = await c.commands.run('echo via-connect');
  assert(r.stdout === 'via-connect\n', r.stdout);
});
await t('pause then connect resumes (state paused -> running)', async () => {
  const paused = await sbx.pause();
  assert(paused === true, 'pause answered ' + paused);
  assert((await sbx.getInfo()).state === 'paused');
  assert(await Sandbox.pause(sbx.sandboxId) === false, 'a second pause answers false');
  const c = await Sandbox.connect(sbx.sandboxId);
  assert((await c.getInfo()).state === 'running');
  const r = await c.commands.run('echo awake');
  assert(r.stdout === 'awake\n', r.stdout);
});
await t('a sandbox made through silod\'s own API is reachable through E2B', async () => {
  const id = process.env.NATIVE_ID;
  assert(id, 'NATIVE_ID not set');
  const c = await Sandbox.connect(id);
  const r = await c.commands.run('echo native');
  assert(r.stdout === 'native\n', r.stdout);
  const i = await Sandbox.getInfo(id);
  assert(i.sandboxId === id, JSON.stringify(i));
});

// ---- errors the SDK must raise as its own
await t('a wrong API key raises AuthenticationError', async () => {
  const e = await Sandbox.create('base', { apiKey: 'not-a-silod-token-0000' }).catch((x) => x);
  assert(e instanceof AuthenticationError, e);
});
await t('a scoped key without create is refused (403)', async () => {
  const e = await Sandbox.create('base', { apiKey: process.env.SCOPED_KEY }).catch((x) => x);
  assert(e instanceof SandboxError && /403|denied|scope/i.test(e.message), e);
  const l = await Sandbox.list({ apiKey: process.env.SCOPED_KEY }).nextItems();
  assert(Array.isArray(l), 'list with the scoped key');
});
await t('an unknown sandbox id: getInfo raises NotFoundError, kill answers false', async () => {
  const e = await Sandbox.getInfo('sb-000000000000').catch((x) => x);
  assert(e instanceof NotFoundError, e);
  assert(await Sandbox.kill('sb-000000000000') === false);
  const c = await Sandbox.connect('sb-000000000000').catch((x) => x);
  assert(c instanceof NotFoundError, c);
});
await t('an unknown template is a clear error naming it', async () => {
  const e = await Sandbox.create('no-such-template').catch((x) => x);
  assert(e instanceof Error && /no-such-template/.test(e.message), e);
});
await t('what Silo does not do is refused naming the field, not ignored', async () => {
  const e = await Sandbox.create('base', { lifecycle: { onTimeout: 'pause' } }).catch((x) => x);
  assert(e instanceof Error && /autoPause/.test(e.message), e);
  const e2 = await Sandbox.create('base', { network: { denyOut: ['0.0.0.0/0'] } }).catch((x) => x);
  assert(e2 instanceof Error && /network/.test(e2.message), e2);
});
await t('a token for one sandbox does not open another', async () => {
  const other = process.env.NATIVE_ID;
  const own = await fetch(`${url}/health`, { headers: { 'E2b-Sandbox-Id': sbx.sandboxId, 'X-Access-Token': sbx.envdAccessToken } });
  assert(own.status === 204, 'own token on its sandbox: ' + own.status);
  const r = await fetch(`${url}/health`, { headers: { 'E2b-Sandbox-Id': other, 'X-Access-Token': sbx.envdAccessToken } });
  assert(r.status === 401, r.status);
});
await t('envd with a forged access token is 401', async () => {
  const r = await fetch(`${url}/health`, { headers: { 'E2b-Sandbox-Id': sbx.sandboxId, 'X-Access-Token': 'f'.repeat(64) } });
  assert(r.status === 401, r.status);
});
await t('a Connect envelope above the bound is refused before its bytes', async () => {
  const hdr = Buffer.from([0, 0x7f, 0xff, 0xff, 0xff]);
  const r = await fetch(`${url}/process.Process/Start`, { method: 'POST', body: hdr,
    headers: { 'Content-Type': 'application/connect+json', 'E2b-Sandbox-Id': sbx.sandboxId,
      'X-Access-Token': sbx.envdAccessToken } });
  const b = Buffer.from(await r.arrayBuffer());
  const msg = JSON.parse(b.subarray(5).toString());
  assert(r.status === 200 && b[0] === 2 && msg.error.code === 'resource_exhausted', `${r.status} ${b}`);
});
await t('malformed JSON in a unary call is invalid_argument', async () => {
  const r = await fetch(`${url}/filesystem.Filesystem/Stat`, { method: 'POST', body: '{"path":',
    headers: { 'Content-Type': 'application/json', 'E2b-Sandbox-Id': sbx.sandboxId,
      'X-Access-Token': sbx.envdAccessToken } });
  const j = await r.json();
  assert(r.status === 400 && j.code === 'invalid_argument', JSON.stringify(j));
});
await t('unknown route is 404 and a wrong method 405, in E2B\'s error shape', async () => {
  const r = await fetch(`${url}/nope`, { headers: { 'X-API-KEY': key } });
  const j = await r.json();
  assert(r.status === 404 && j.code === 404 && j.message, JSON.stringify(j));
  const r2 = await fetch(`${url}/v2/sandboxes`, { method: 'PUT', headers: { 'X-API-KEY': key } });
  assert(r2.status === 405 && /GET/.test(r2.headers.get('allow') || ''), r2.status);
});

await t('kill ends the sandbox; its envd answers as gone', async () => {
  assert(await sbx.kill() === undefined || true);
  assert(await Sandbox.kill(sbx.sandboxId) === false, 'second kill');
  const e = await sbx.commands.run('echo late').catch((x) => x);
  assert(e instanceof Error, 'a command after kill fails');
});

fs.writeFileSync(process.env.TAP_COUNT_FILE, `${n} ${failed}`);
