// Validates docs/asyncapi.json, the machine-readable wire protocol:
//
//   npm ci --prefix tools/asyncapi && node tools/asyncapi/validate.mjs
//
// 1. @asyncapi/parser parses the document and validates it against the
//    AsyncAPI 3 specification's JSON Schema and its rules (references,
//    channel parameters, operation/channel consistency). Any diagnostic of
//    severity error or warning fails; information and hints are printed.
// 2. Every message example's payload and headers are validated against the
//    message's (resolved) payload and headers schemas with Ajv, which the
//    parser does not do for AsyncAPI 3.
//
// That the schemas agree with the Rust wire types is checked by
// `cargo test -p jetflow-protocol --test protocol_doc`.
//
// Exits 0 when the document is valid, 1 with every problem printed when not.

import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

import { Parser, DiagnosticSeverity } from '@asyncapi/parser';
import Ajv from 'ajv';
import addFormats from 'ajv-formats';

const here = path.dirname(fileURLToPath(import.meta.url));
const file = process.argv[2] ?? path.join(here, '..', '..', 'docs', 'asyncapi.json');

const SEVERITY = {
  [DiagnosticSeverity.Error]: 'error',
  [DiagnosticSeverity.Warning]: 'warning',
  [DiagnosticSeverity.Information]: 'info',
  [DiagnosticSeverity.Hint]: 'hint',
};

function where(diagnostic) {
  const at = diagnostic.path?.length ? diagnostic.path.join('.') : '(document)';
  const line = diagnostic.range?.start ? `:${diagnostic.range.start.line + 1}` : '';
  return `${at}${line}`;
}

const text = await readFile(file, 'utf8');
const parser = new Parser();
const { document, diagnostics } = await parser.parse(text, { source: file });

let failures = 0;
for (const d of diagnostics) {
  const severity = SEVERITY[d.severity] ?? String(d.severity);
  const fatal = d.severity === DiagnosticSeverity.Error || d.severity === DiagnosticSeverity.Warning;
  if (fatal) failures += 1;
  console.log(`${severity} ${d.code} at ${where(d)}: ${d.message}`);
}

if (!document) {
  console.error(`${file}: not a valid AsyncAPI document (${failures} problems)`);
  process.exit(1);
}

// Example payloads and headers against their schemas.
const ajv = new Ajv({ strict: false, allErrors: true });
addFormats(ajv);
// Integer widths the document names (Rust's u16/u32/u64); ranges are in minimum/maximum.
for (const name of ['uint16', 'uint32', 'uint64']) ajv.addFormat(name, true);

let examples = 0;
for (const message of document.allMessages()) {
  const id = message.id();
  const checks = [
    ['payload', message.payload()?.json(), (e) => e.payload()],
    ['headers', message.headers()?.json(), (e) => e.headers()],
  ];
  const all = message.examples().all();
  if (all.length === 0) {
    console.log(`error: message ${id} has no examples`);
    failures += 1;
  }
  for (const [part, schema, pick] of checks) {
    if (!schema) continue;
    const validate = ajv.compile(schema);
    for (const example of all) {
      const value = pick(example);
      if (value === undefined) continue;
      examples += 1;
      if (!validate(value)) {
        failures += 1;
        for (const err of validate.errors) {
          console.log(`error: message ${id} example ${example.name() ?? '?'} ${part}${err.instancePath}: ${err.message} ${JSON.stringify(err.params)}`);
        }
      }
    }
  }
}

if (failures > 0) {
  console.error(`${file}: ${failures} problems`);
  process.exit(1);
}
console.log(
  `${file}: valid AsyncAPI ${document.version()}: ${document.channels().length} channels, ` +
    `${document.operations().length} operations, ${document.allMessages().length} messages, ` +
    `${document.components().schemas().length} component schemas; ${examples} example parts match their schemas`,
);
