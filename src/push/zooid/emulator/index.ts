/**
 * A stand-in for zooid's management API over real HTTP (zooid-contract.md), for tests, benchmarks
 * and local development (`bosun zooid-emulator`). It follows the contract's routing, auth order,
 * Go-json decoding, validation order and error texts, uniqueness rules, PATCH deep merge and TOML
 * storage, and adds what a test needs: fault injection, a request log, the bodies zooid accepted
 * per relay, and a per-relay concurrency high-water mark.
 *
 * Variants: `v1` (coracle-social/zooid 59a9d11), `v1p` (its later api.go: schema regex, required
 * info.pubkey), `v2` (the mplorentz fork: mux routing, members route, blossom adapter/s3, 60 s
 * NIP-98 window). The default is `v2`.
 *
 * Each `startZooidEmulator` is one zooid instance with its own port, whitelist, CONFIG dir and
 * state (no module-level state), so a test can run several at once, as a relay host runs several zooid instances.
 *
 * Files: `server.ts` (the listener and what it returns), `api.ts` (the management request
 * pipeline), `routing.ts`, `auth.ts`, `routes.ts` (one handler per route), `state.ts` (the stored
 * configs and their files), `go-json.ts` and `validate.ts` (zooid's decoding and checks),
 * `faults.ts`, `record.ts` (what tests inspect), `nip11.ts` (relay hosts), `cli.ts`.
 */
export { runZooidEmulatorCli, type ZooidEmulatorCliOptions } from './cli.js';
export { startZooidEmulator } from './server.js';
export type * from './types.js';
