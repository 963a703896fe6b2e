// nano (the Apache CouchDB client for Node.js) against a server, for
// tests/integration/test_nano_client.py:
//
//   node nano_client.js <server URL without credentials> <new database name>
//                       [--auth USER:PASSWORD] [--no-multipart]
//
// With --auth it logs in with nano.auth() first, and every later call is authenticated by
// the AuthSession cookie nano's own cookie jar keeps (the URL carries no credentials, no
// header is configured). Then it creates the database, inserts documents, reads them with
// db.fetch() (POST _all_docs) and db.list() (GET _all_docs with parameters), writes, reads
// and deletes attachments (db.attachment.*, db.get with attachments=true, and
// db.multipart.insert unless --no-multipart: pouchdb-server 4.2.0 crashes on it), reads
// db.changes(), and with --auth logs out at the end. Prints what each call returned as
// one JSON object (attachment bodies as sha256 hex and length, not the bodies). Exits 1
// with the error on stderr if a call that should succeed fails.
'use strict';

const crypto = require('crypto');
const Nano = require('nano');

const BINARY = crypto.randomBytes(300 * 1024);
const MULTIPART = crypto.randomBytes(40 * 1024);
const XML = Buffer.from('<?xml version="1.0" encoding="UTF-8"?>\n<note lang="fr">déjà vu, 漢字 &amp; ü</note>\n');

function digest(content) {
  const bytes = Buffer.isBuffer(content) ? content : Buffer.from(content, 'utf8');
  return {sha256: crypto.createHash('sha256').update(bytes).digest('hex'), length: bytes.length};
}

// The status of a call expected to fail, so the caller can assert it (a success is a bug).
async function statusOf(promise) {
  try {
    await promise;
    return 200;
  } catch (err) {
    if (!err.statusCode) throw err;
    return err.statusCode;
  }
}

// The rev a write answered. pouchdb-server answers a request without `Accept` (nano sends
// none with a body of another type: attachments, multipart) as text/plain, so nano returns
// the JSON unparsed; it is reported as returned and parsed here so later steps still run.
function revOf(answer) {
  return (typeof answer === 'string' ? JSON.parse(answer) : answer).rev;
}

// An attachment a document carries inline (base64): its content type and digest.
function inlined(doc, name) {
  const att = doc._attachments[name];
  return {content_type: att.content_type, stub: att.stub, ...digest(Buffer.from(att.data || '', 'base64'))};
}

function rowsOf(answer) {
  return answer.rows.map((row) => ({key: row.key, id: row.id, error: row.error,
                                    value: row.value, doc: row.doc}));
}

const out = {};  // what each call returned, in order (on failure: how far it got)

async function main() {
  const [url, name, ...flags] = process.argv.slice(2);
  const auth = flags.find((flag) => flag.startsWith('--auth='));
  const nano = Nano(url);
  if (auth) {
    const [user, ...password] = auth.slice('--auth='.length).split(':');
    out.anonymous_status = await statusOf(nano.db.get(name));
    out.login = await nano.auth(user, password.join(':'));
  }
  out.session = await nano.session();

  out.create = await nano.db.create(name);
  const db = nano.use(name);
  const docs = ['a', 'b', 'c', 'd', 'e'].map((id, n) => ({_id: id, n}));
  out.bulk = await db.bulk({docs});

  out.fetch = rowsOf(await db.fetch({keys: ['c', 'missing', 'a']}));
  out.list = rowsOf(await db.list({include_docs: true, startkey: 'b', limit: 2, skip: 1}));
  out.list_descending = rowsOf(await db.list({descending: true, endkey: 'c'}));

  out.sent = {binary: digest(BINARY), xml: digest(XML), multipart: digest(MULTIPART)};
  const revs = Object.fromEntries(out.bulk.map((row) => [row.id, row.rev]));
  out.binary_put = await db.attachment.insert('a', 'blob.bin', BINARY, 'application/octet-stream', {rev: revs.a});
  out.xml_put = await db.attachment.insert('a', 'note.xml', XML, 'text/xml', {rev: revOf(out.binary_put)});
  out.binary_get = digest(await db.attachment.get('a', 'blob.bin'));
  out.xml_get = digest(await db.attachment.get('a', 'note.xml'));
  out.stubs = (await db.get('a'))._attachments;
  out.inline_xml = inlined(await db.get('a', {attachments: true}), 'note.xml');

  const doomed = await db.attachment.insert('b', 'doomed.txt', Buffer.from('bye'), 'text/plain', {rev: revs.b});
  out.destroy = await db.attachment.destroy('b', 'doomed.txt', {rev: revOf(doomed)});
  out.destroyed_get_status = await statusOf(db.attachment.get('b', 'doomed.txt'));
  out.after_destroy = Object.keys(await db.get('b')).sort();

  if (!flags.includes('--no-multipart')) {
    out.multipart_put = await db.multipart.insert(
      {n: 99}, [{name: 'part.bin', data: MULTIPART, content_type: 'application/octet-stream'}], 'm');
    out.inline_multipart = inlined(await db.get('m', {attachments: true}), 'part.bin');
  }

  const changes = await db.changes({since: 0});
  out.changes = {ids: changes.results.map((row) => row.id).sort(), has_last_seq: 'last_seq' in changes};
  out.session_after = await nano.session();
  if (auth) {
    // nano has no logout call; its users send DELETE /_session through nano.request().
    out.logout = await nano.request({method: 'DELETE', db: '_session'});
    out.after_logout_status = await statusOf(db.info());
  }
  await new Promise((resolve) => process.stdout.write(JSON.stringify(out), resolve));
}

main().then(() => process.exit(0), (err) => {
  process.stderr.write((err && err.stack) || String(err));
  process.stderr.write('\n' + JSON.stringify({statusCode: err && err.statusCode, reason: err && err.reason,
                                              after: Object.keys(out).pop()}));
  process.exit(1);
});
