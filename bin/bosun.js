#!/usr/bin/env node
// Thin launcher: the CLI is compiled to dist/ by `npm run build` (which `npm install` runs).
import '../dist/cli/run.js';
