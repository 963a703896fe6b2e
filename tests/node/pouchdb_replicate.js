// PouchDB's own replicator between two databases on servers (http -> http), for the
// replication tests and bench/replication.py:
//
//   node pouchdb_replicate.js <source URL> <target URL> [batch_size]
//
// Runs one one-shot replication with PouchDB's defaults (batch_size 100 unless given) and
// prints its result as one JSON object (docs_read, docs_written, last_seq, seconds). Exits
// 1 with the error on stderr if it fails.
'use strict';

const PouchDB = require('pouchdb-node');

async function main() {
  const [source, target, batch] = process.argv.slice(2);
  const opts = batch ? {batch_size: Number(batch)} : {};
  const started = process.hrtime.bigint();
  const result = await PouchDB.replicate(new PouchDB(source), new PouchDB(target), opts);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (!result.ok || result.doc_write_failures) throw new Error('replication failed: ' + JSON.stringify(result));
  const out = JSON.stringify({docs_read: result.docs_read, docs_written: result.docs_written,
                              last_seq: result.last_seq, seconds});
  await new Promise((resolve) => process.stdout.write(out, resolve));
}

main().then(() => process.exit(0), (err) => {
  process.stderr.write((err && err.stack) || String(err));
  process.exit(1);
});
