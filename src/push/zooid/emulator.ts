/** The zooid emulator lives in `./emulator/`; this path stays for the importers that name it. */
export * from './emulator/index.js';
