/**
 * bench/fleet: `bosun sync` of a 10,000-relay fleet directory with 1% of the relays changed,
 * through the DB syncer (read + hash every file; parse + validate the files whose digest changed
 * since the last applied State; diff against the store; one transaction), beside the time to only
 * read and sha256 the same files, measured in the same run on the same disk. Also prints the plan
 * with every file parsed and validated (what the API route does with what the API syncer sends).
 * Target: plan ≤ 3× the read+hash baseline.
 *
 *   npm run bench:fleet [-- --n 10000 --changed 100 --rounds 5]
 */
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from '../src/command.js';
import { systemClock } from '../src/domain/clock.js';
import { generateSecretKey, publicKeyOf } from '../src/domain/keys.js';
import type { Principal } from '../src/domain/principal.js';
import { DbSyncer } from '../src/fleet/db-syncer.js';
import { readFleetDir } from '../src/fleet/files.js';
import { Notifier } from '../src/notifier.js';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.js';

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) || fallback : fallback;
};
const N = arg('n', 10_000);
const CHANGED = arg('changed', Math.max(1, Math.round(N / 100)));
const ROUNDS = arg('rounds', 5);
const admin: Principal = { role: 'admin', actor: 'bench' };

/** Owners repeat across a real fleet: 100 distinct owner keys. */
const owners = Array.from({ length: 100 }, () => publicKeyOf(generateSecretKey()));

function relayToml(i: number, name: string): string {
  const lines = [
    `host = "relay-${i}.example.com"`,
    '',
    '[info]',
    `name = "${name}"`,
    `description = "Relay number ${i} of the benchmark fleet"`,
    `pubkey = "${owners[i % owners.length]}"`,
    '',
    '[policy]',
    `public_join = ${i % 3 === 0}`,
    '',
    '[groups]',
    `enabled = ${i % 2 === 0}`,
  ];
  if (i % 5 === 0)
    lines.push('', '[roles.admin]', `pubkeys = ["${owners[(i + 1) % owners.length]}"]`, 'can_manage = true');
  return `${lines.join('\n')}\n`;
}

function writeFleetDir(dir: string): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'fleet.toml'), 'name = "bench"\n\n[defaults.blossom]\nenabled = true\n');
  for (let i = 0; i < N; i++) writeFileSync(join(dir, `relay-${i}.toml`), relayToml(i, `Relay ${i}`));
}

/** The baseline: read every file of the directory and hash it, nothing else. */
function readAndHash(dir: string): number {
  let bytes = 0;
  for (const name of readdirSync(dir)) {
    const buf = readFileSync(join(dir, name));
    createHash('sha256').update(buf).digest('hex');
    bytes += buf.length;
  }
  return bytes;
}

const time = async (fn: () => unknown) => {
  const start = performance.now();
  await fn();
  return performance.now() - start;
};
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const root = mkdtempSync(join(tmpdir(), 'bosun-bench-fleet-'));
try {
  const dir = join(root, 'fleet');
  writeFleetDir(dir);
  const store = new SqliteStore(join(root, 'bosun.db'));
  const command = new Command(store, new Notifier(), systemClock);
  const syncer = () => DbSyncer.fromDir({ command, store, principal: admin, dir });

  const initial = await time(async () => (await syncer()).sync());
  for (let i = 0; i < CHANGED; i++) {
    const k = Math.floor((i * N) / CHANGED);
    writeFileSync(join(dir, `relay-${k}.toml`), relayToml(k, `Relay ${k} (renamed)`));
  }

  const baseline: number[] = [];
  const plan: number[] = [];
  const eager: number[] = [];
  let planned = { update: 0, unchanged: 0 };
  let bytes = 0;
  for (let r = 0; r < ROUNDS; r++) {
    baseline.push(await time(() => (bytes = readAndHash(dir))));
    plan.push(
      await time(async () => {
        planned = (await (await syncer()).plan()).summary;
      }),
    );
  }
  if (planned.update !== CHANGED) throw new Error(`expected ${CHANGED} updates, planned ${planned.update}`);
  // For comparison: the plan when every file is parsed and validated (no previous State to skip
  // unchanged files against), which is what the API's server does with what the API syncer sends.
  for (let r = 0; r < ROUNDS; r++) {
    eager.push(
      await time(async () => {
        const fleet = readFleetDir(dir);
        await command.planFleet(admin, fleet.name, fleet.resolved, { prune: false });
      }),
    );
  }

  const applied = await time(async () => (await syncer()).sync());
  const activitiesBefore = await store.lastActivityId();
  const reapply = await time(async () => (await syncer()).sync());
  if ((await store.lastActivityId()) !== activitiesBefore) throw new Error('the re-apply wrote activities');
  await store.close();

  const base = median(baseline);
  const p = median(plan);
  const ms = (n: number) => `${n.toFixed(0).padStart(6)} ms`;
  console.log(
    `bench/fleet (${N.toLocaleString('en-US')} relays, ${CHANGED} changed, ${(bytes / 1024 / 1024).toFixed(1)} MiB of files, median of ${ROUNDS}, node ${process.version})`,
  );
  const line = (label: string, value: string) => console.log(`  ${label.padEnd(64)}: ${value}`);
  line('baseline: read + sha256 every file', ms(base));
  line(
    'plan (DB syncer): read + hash all, parse changed, diff vs store',
    `${ms(p)}  ratio ${(p / base).toFixed(2)}x  (target <= 3x: ${p / base <= 3 ? 'met' : 'NOT met'})`,
  );
  line(
    'plan parsing + validating every file (the API route does this)',
    `${ms(median(eager))}  ratio ${(median(eager) / base).toFixed(2)}x`,
  );
  line(`apply (DB syncer): plan + one transaction, ${CHANGED} updates`, ms(applied));
  line('re-apply of the same files (no writes, no activity)', ms(reapply));
  line(`initial apply: ${N.toLocaleString('en-US')} creates in one transaction`, ms(initial));
} finally {
  rmSync(root, { recursive: true, force: true });
}
