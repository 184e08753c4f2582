// Parses and binds KQL queries with Microsoft's Kusto engine (@kusto/language-service-next,
// the Kusto.Language library the Azure portal's editors use) against given table schemas.
// stdin:  {"tables": {"customMetrics": "(timestamp:datetime, name:string, ...)"},
//          "queries": [{"id": "...", "text": "..."}]}
// stdout: [{"id", "diagnostics": [{"severity", "code", "message", "start"}],
//           "columns": [{"name", "type"}] | null}]
"use strict";
const path = require("path");
const fs = require("fs");
const root = path.resolve(__dirname, "..", "..", "node_modules", "@kusto", "language-service-next");
require(path.join(root, "bridge.min.js"));
require(path.join(root, "Kusto.Language.Bridge.min.js"));

const K = global.Kusto.Language;
const S = K.Symbols;
const request = JSON.parse(fs.readFileSync(0, "utf8"));
const tables = Object.entries(request.tables).map(
  ([name, schema]) => new S.TableSymbol.$ctor7(name, schema, null));
const database = new S.DatabaseSymbol.$ctor2("monitor", null, tables);
const globals = K.GlobalState.Default.WithDatabase(database);

function list(items) {
  const out = [];
  for (let i = 0; i < items.Count; i++) out.push(items.getItem(i));
  return out;
}

const results = request.queries.map(({ id, text }) => {
  const code = K.KustoCode.ParseAndAnalyze(text, globals);
  const diagnostics = list(code.GetDiagnostics()).map((d) => ({
    severity: String(d.Severity), code: d.Code, message: d.Message, start: d.Start,
  }));
  const type = code.ResultType;
  const columns = type && type.Columns
    ? list(type.Columns).map((c) => ({ name: c.Name, type: c.Type.Name }))
    : null;
  return { id, diagnostics, columns };
});
process.stdout.write(JSON.stringify(results));
