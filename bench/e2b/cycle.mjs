// SPDX-License-Identifier: Apache-2.0
// bench/e2b: the E2B SDK's create -> commands.run('echo') -> kill cycle against
// silod --e2b-listen, next to the same cycle through silod's native API
// (POST /v1/sandboxes, POST .../exec, DELETE) from the same process, same
// HTTP client (undici fetch), interleaved run by run so both see the same
// machine state. Prints one JSON document with p50/p95/p99 per side.
// Env: E2B_API_URL, E2B_SANDBOX_URL, E2B_API_KEY, E2B_SDK, SILOD_URL, SILOD_TOKEN,
// RUNS (default 100), WARMUP (default 3).
const { Sandbox } = await import(process.env.E2B_SDK);
const runs = Number(process.env.RUNS || 100), warm = Number(process.env.WARMUP || 3);
const api = process.env.SILOD_URL, auth = { Authorization: `Bearer ${process.env.SILOD_TOKEN}` };

async function e2bCycle() {
  const t0 = performance.now();
  const s = await Sandbox.create('base', { timeoutMs: 60000 });
  const t1 = performance.now();
  const r = await s.commands.run('echo hi');
  const t2 = performance.now();
  await s.kill();
  const t3 = performance.now();
  if (r.stdout !== 'hi\n') throw new Error('e2b echo: ' + JSON.stringify(r));
  return [t3 - t0, t1 - t0, t2 - t1, t3 - t2];
}

async function nativeCycle() {
  const t0 = performance.now();
  let res = await fetch(`${api}/v1/sandboxes`, { method: 'POST', headers: { ...auth, 'Content-Type': 'application/json' },
    body: JSON.stringify({ provider: 'namespace', image: 'base', timeout_s: 60 }) });
  const j = await res.json();
  if (res.status !== 201) throw new Error('native create: ' + JSON.stringify(j));
  const t1 = performance.now();
  res = await fetch(`${api}/v1/sandboxes/${j.id}/exec`, { method: 'POST',
    headers: { ...auth, 'Content-Type': 'application/json' }, body: JSON.stringify({ argv: ['/bin/sh', '-c', 'echo hi'] }) });
  const out = await res.text();
  const t2 = performance.now();
  res = await fetch(`${api}/v1/sandboxes/${j.id}?grace_ms=0`, { method: 'DELETE', headers: auth });
  await res.arrayBuffer();
  const t3 = performance.now();
  if (!out.includes(Buffer.from('hi\n').toString('base64')) && !out.includes('hi')) throw new Error('native echo: ' + out);
  return [t3 - t0, t1 - t0, t2 - t1, t3 - t2];
}

const pct = (v, p) => { const s = [...v].sort((a, b) => a - b); return +s[Math.min(s.length - 1, Math.ceil(p / 100 * s.length) - 1)].toFixed(2); };
const stats = (v) => ({ p50_ms: pct(v, 50), p95_ms: pct(v, 95), p99_ms: pct(v, 99), min_ms: +Math.min(...v).toFixed(2), n: v.length });
const sides = { e2b_sdk: [e2bCycle, []], native_api: [nativeCycle, []] };
for (let i = 0; i < warm; i++) { await e2bCycle(); await nativeCycle(); }
for (let i = 0; i < runs; i++)
  for (const k of (i % 2 ? ['native_api', 'e2b_sdk'] : ['e2b_sdk', 'native_api'])) sides[k][1].push(await sides[k][0]());
const out = { benchmark: 'e2b_cycle', runs, provider: 'namespace', template: 'base', node: process.version };
for (const [k, [, v]] of Object.entries(sides))
  out[k] = { cycle: stats(v.map((x) => x[0])), create: stats(v.map((x) => x[1])), run_echo: stats(v.map((x) => x[2])),
    kill: stats(v.map((x) => x[3])) };
out.overhead_p50_ms = +(out.e2b_sdk.cycle.p50_ms - out.native_api.cycle.p50_ms).toFixed(2);
console.log(JSON.stringify(out, null, 2));
