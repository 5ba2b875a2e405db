/**
 * Files that hold secrets — the SQLite database (relay secrets, livekit secrets), the admin token,
 * the zooid emulator's relay configs — are the owner's only: directories bosun creates are 0700 and
 * such files 0600, whatever the umask (an explicit chmod, since umask 000 would leave 0666/0777).
 */
import { closeSync, fchmodSync, openSync, statSync, writeSync } from 'node:fs';
import { makeDirs } from './dirs.js';

export const PRIVATE_DIR_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;

/** Creates the directory (and missing parents) 0700; an existing one keeps its mode. */
export function makePrivateDir(dir: string): void {
  makeDirs(dir, PRIVATE_DIR_MODE);
}

/** Writes (creates or truncates) a file and leaves it 0600, also if it existed with another mode. */
export function writePrivateFileSync(file: string, content: string): void {
  const fd = openSync(file, 'w', PRIVATE_FILE_MODE);
  try {
    fchmodSync(fd, PRIVATE_FILE_MODE);
    writeSync(fd, content);
  } finally {
    closeSync(fd);
  }
}

/** Creates an empty file 0600 unless it exists; true if it created it. */
export function createPrivateFileSync(file: string): boolean {
  let fd: number;
  try {
    fd = openSync(file, 'wx', PRIVATE_FILE_MODE);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
  try {
    fchmodSync(fd, PRIVATE_FILE_MODE);
  } finally {
    closeSync(fd);
  }
  return true;
}

/** The permission bits of a file that group or others may access; undefined if none (or no file). */
export function exposedMode(file: string): number | undefined {
  let mode: number;
  try {
    const st = statSync(file);
    if (!st.isFile()) return undefined; // not a database file: opening it reports that
    mode = st.mode;
  } catch {
    return undefined;
  }
  return (mode & 0o077) !== 0 ? mode & 0o777 : undefined;
}
