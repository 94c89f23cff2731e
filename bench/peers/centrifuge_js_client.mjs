// The end-to-end workload of examples/bench.rs, through the official
// centrifuge-js SDK (npm `centrifuge`) on Node with `ws` as its WebSocket.
//
// Usage: node centrifuge_js_client.mjs '<emulator JSON line>' SMALL LARGE REPS PER_FRAME
// Needs PEERS_NODE_DIR: a folder whose node_modules has `centrifuge` and `ws`
// (bench/run.sh installs them into target/bench-peers/node).
//
// Tokens come from the emulator's REST endpoints, as a real app gets them:
// GET /v1/websocket/token for the connection, GET
// /v1/websocket/subscription_token for the channel. CPU is this process's
// own, process.cpuUsage() (user + system, every thread), around each blast:
// from before the POST /_emulator/blast to the last publication handed to the
// handler. Marginal CPU per event = (CPU(LARGE) - CPU(SMALL)) / (LARGE - SMALL),
// REPS times after one warm-up run; the median is reported. Prints one JSON line.

import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const require = createRequire(join(process.env.PEERS_NODE_DIR ?? '.', 'package.json'));
const { Centrifuge } = require('centrifuge');
const WebSocket = require('ws');

function packageVersion(name) {
  const path = join(process.env.PEERS_NODE_DIR ?? '.', 'node_modules', name, 'package.json');
  return JSON.parse(readFileSync(path, 'utf8')).version;
}

const [infoText, small = '20000', large = '200000', reps = '3', perFrame = '100'] = process.argv.slice(2);
const info = JSON.parse(infoText);
const SMALL = Number(small);
const LARGE = Number(large);
const REPS = Number(reps);
const PER_FRAME = Number(perFrame);
const channel = info.channels.chat;
const auth = { Authorization: `Bearer ${info.token}` };

async function api(path) {
  const response = await fetch(info.api_url + path, { headers: auth });
  if (!response.ok) throw new Error(`${path}: ${response.status}`);
  return response.json();
}

async function control(path, body) {
  const response = await fetch(`${info.control_url}/${path}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  const answer = await response.json();
  if (!response.ok) throw new Error(`${path}: ${response.status} ${JSON.stringify(answer)}`);
  return answer;
}

const centrifuge = new Centrifuge(info.ws_url, {
  websocket: WebSocket,
  getToken: async () => (await api('/v1/websocket/token')).data.token,
});
const sub = centrifuge.newSubscription(channel, {
  getToken: async (ctx) => {
    const answer = await api(`/v1/websocket/subscription_token?channels=${encodeURIComponent(ctx.channel)}`);
    const entry = answer.data.channel_tokens.find((t) => t.channel === ctx.channel);
    return entry ? entry.token : '';
  },
});

// The handler touches what a chat bot reads: the type and the message id.
let received = 0;
let target = Infinity;
let checksum = 0;
let done = () => {};
sub.on('publication', (ctx) => {
  const data = ctx.data;
  if (data.type === 'channel_chat_message_send') checksum += data.data.chat_message.id;
  received += 1;
  if (received >= target) done();
});

const subscribed = new Promise((resolve) => sub.once('subscribed', resolve));
sub.subscribe();
centrifuge.connect();
await subscribed;

function cpuSeconds() {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1e6;
}

async function run(count) {
  received = 0;
  target = count;
  const finished = new Promise((resolve) => { done = resolve; });
  const before = cpuSeconds();
  const started = process.hrtime.bigint();
  await control('blast', { channel, count, per_frame: PER_FRAME });
  await finished;
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return { cpu: cpuSeconds() - before, seconds };
}

await run(SMALL); // warm-up
const marginals = [];
const runs = [];
for (let rep = 0; rep < REPS; rep += 1) {
  const a = await run(SMALL);
  const b = await run(LARGE);
  const marginal = ((b.cpu - a.cpu) / (LARGE - SMALL)) * 1e6;
  console.error(`centrifuge-js: rep ${rep}: cpu(${SMALL}) ${a.cpu.toFixed(3)} s, cpu(${LARGE}) ${b.cpu.toFixed(3)} s -> ${marginal.toFixed(3)} µs/event`);
  marginals.push(marginal);
  runs.push({ cpu_small_s: a.cpu, cpu_large_s: b.cpu, wall_large_s: b.seconds });
}
const sorted = [...marginals].sort((x, y) => x - y);
centrifuge.disconnect();
console.log(JSON.stringify({
  client: 'centrifuge-js',
  sdk_version: packageVersion('centrifuge'),
  ws_version: packageVersion('ws'),
  runtime: `node ${process.version}`,
  small: SMALL,
  large: LARGE,
  per_frame: PER_FRAME,
  reps: REPS,
  marginal_cpu_us: sorted[Math.floor(sorted.length / 2)],
  marginal_cpu_us_runs: marginals,
  runs,
  checksum,
}));
process.exit(0);
