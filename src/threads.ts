import { type ResourceLimits, Worker } from 'node:worker_threads';

/**
 * Starts a worker thread on the module `name` beside the module at `from` (its `import.meta.url`).
 * From dist/ that is plain JS. Under vitest or `node --import tsx` the module is TypeScript source,
 * and a thread inherits neither vitest's transform nor, on Node 20, tsx's hooks (tsx registers them
 * on the main thread only, and `--import tsx` in a worker's execArgv does not reach its entry
 * module): so the thread registers tsx itself before importing the entry. tsx is a devDependency,
 * which is fine for tests and benches.
 */
export function spawnThread(
  from: string,
  name: string,
  options: { workerData: unknown; name: string; resourceLimits?: ResourceLimits },
): Worker {
  if (!from.endsWith('.ts')) return new Worker(new URL(`./${name}.js`, from), options);
  const entry = new URL(`./${name}.ts`, from).href;
  const tsx = import.meta.resolve('tsx/esm/api');
  const bootstrap = `import(${JSON.stringify(tsx)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(entry)}); });`;
  return new Worker(bootstrap, { ...options, eval: true, execArgv: [] });
}

/**
 * Heap limits for bosun's helper threads (signing): their live set is under 1 MB, but
 * under V8's defaults their heaps grow with their garbage (tens of MB of RSS each). A thread that
 * runs out fails like any other, and its owner falls back or replaces it.
 */
export const SMALL_THREAD_HEAP: ResourceLimits = { maxOldGenerationSizeMb: 32, maxYoungGenerationSizeMb: 4 };
