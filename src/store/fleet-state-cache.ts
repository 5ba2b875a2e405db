import type { FleetStateRecord } from './port.js';

/**
 * The newest fleet state of each fleet, kept parsed. Fleet states never change once written, so a
 * kept one is right for as long as its version is still the fleet's newest: a plan checks that
 * (one indexed read) instead of reading and parsing a 10,000-relay State again.
 */
export class FleetStateCache {
  private readonly newest = new Map<string, FleetStateRecord>();

  /** The kept state of `fleet` if its version is `latestVersion`, else undefined. */
  get(fleet: string, latestVersion: number): FleetStateRecord | undefined {
    const kept = this.newest.get(fleet);
    return kept?.version === latestVersion ? kept : undefined;
  }

  keep(record: FleetStateRecord): FleetStateRecord {
    this.newest.set(record.fleet, record);
    return record;
  }
}
