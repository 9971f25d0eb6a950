#!/usr/bin/env node
// Stable, executable entry for `npx kiln` (npm links bins at install time, before the build
// creates dist/); the real entry point is the compiled src/main.ts.
import '../dist/src/main.js';
