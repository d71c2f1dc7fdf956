// Parses an AsyncAPI document with the reference parser and prints its diagnostics as
// JSON lines on stdout ({"severity": "error"|"warning"|"info"|"hint", "code", "message",
// "path"}); tests/test_asyncapi_parser.py reads them.
import { readFile } from "node:fs/promises";
import { Parser, DiagnosticSeverity } from "@asyncapi/parser";

const SEVERITY = {
  [DiagnosticSeverity.Error]: "error",
  [DiagnosticSeverity.Warning]: "warning",
  [DiagnosticSeverity.Information]: "info",
  [DiagnosticSeverity.Hint]: "hint",
};

const path = process.argv[2];
const { diagnostics } = await new Parser().parse(await readFile(path, "utf8"), { source: path });
for (const d of diagnostics) {
  console.log(JSON.stringify({
    severity: SEVERITY[d.severity],
    code: d.code,
    message: d.message,
    path: d.path.join("."),
  }));
}
