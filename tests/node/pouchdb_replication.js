// PouchDB for Node replicating with a CouchDB-compatible server, driven by
// tests/integration/test_pouchdb_client.py:
//
//   node pouchdb_replication.js push|pull|sync <database URL>
//
// Runs one scenario between an in-memory local database and the (new, empty) remote one,
// then prints one JSON object: {"local": state, "remote": state}, where a state maps each
// document id (deleted ones too) to its winning rev and every leaf revision read with
// open_revs=all (rev, deleted, body, attachments). Exits 1 with the error on stderr if
// anything fails.
'use strict';

const crypto = require('crypto');
const PouchDB = require('pouchdb-node');
PouchDB.plugin(require('pouchdb-adapter-memory'));

const DOCS = 300;
const DEADLINE_MS = 60000;
// Not a multiple of anything: the last of the server's 256 KiB chunks is a partial one.
const BINARY_BYTES = (1 << 20) + 7;

function text(content, contentType = 'text/plain') {
  // An inline attachment, as PouchDB takes it.
  return {content_type: contentType, data: Buffer.from(content).toString('base64')};
}

function binary(seed) {
  // ~1 MB of random-looking bytes, the same every run, so both servers get the same digests.
  const blocks = [];
  for (let i = 0; blocks.length * 32 < BINARY_BYTES; i++) {
    blocks.push(crypto.createHash('sha256').update(`${seed}-${i}`).digest());
  }
  const data = Buffer.concat(blocks).subarray(0, BINARY_BYTES).toString('base64');
  return {content_type: 'application/octet-stream', data};
}

// Two branches of document "conflicted", written with new_edits=false: 2-c... wins. Each
// branch has an attachment of its own.
const CONFLICT = [
  {_id: 'conflicted', _rev: '2-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb', side: 'b',
   _revisions: {start: 2, ids: ['bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb', 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa']},
   _attachments: {'side.txt': {...text('the losing branch'), revpos: 2}}},
  {_id: 'conflicted', _rev: '2-cccccccccccccccccccccccccccccccc', side: 'c',
   _revisions: {start: 2, ids: ['cccccccccccccccccccccccccccccccc', 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa']},
   _attachments: {'side.txt': {...text('the winning branch'), revpos: 2}}},
];

async function writeAttachments(db, prefix) {
  // Small text attachments, a ~1 MB binary one, and each way of editing them.
  const put = async (doc) => ({...doc, _rev: (await db.put(doc)).rev});
  const texts = await put({_id: `${prefix}att-text`, kind: 'text', _attachments: {
    'a.txt': text('alpha'), 'b.json': text('{"b": 1}', 'application/json')}});
  // The body changes, the attachments go back as the stubs a read gave.
  const edited = await put({...(await db.get(texts._id)), kind: 'text, edited'});
  await db.putAttachment(edited._id, 'added.txt', edited._rev,
                         Buffer.from('uploaded on its own'), 'text/plain');
  const replaced = await put({_id: `${prefix}att-replaced`, _attachments: {'v.txt': text('version 1')}});
  await put({_id: replaced._id, _rev: replaced._rev, _attachments: {'v.txt': text('version 2, longer')}});
  const removed = await put({_id: `${prefix}att-removed`,
                             _attachments: {'keep.txt': text('kept'), 'drop.txt': text('dropped')}});
  const stubs = await db.get(removed._id);
  delete stubs._attachments['drop.txt'];
  await put(stubs);
  const deleted = await put({_id: `${prefix}att-deleted`, _attachments: {'gone.txt': text('gone')}});
  await db.remove(deleted._id, deleted._rev);
  await put({_id: `${prefix}att-binary`, _attachments: {'random.bin': binary(prefix)}});
}

async function writeHistory(db, prefix) {
  // A few hundred documents, a third of them updated, a sixth deleted, and one conflict.
  const docs = [];
  for (let i = 0; i < DOCS; i++) {
    docs.push({_id: `${prefix}${String(i).padStart(4, '0')}`, n: i, tags: ['t' + (i % 7)], nested: {even: i % 2 === 0}});
  }
  const written = await db.bulkDocs(docs);
  const updates = [];
  for (let i = 0; i < DOCS; i += 3) {
    updates.push({...docs[i], _rev: written[i].rev, n: i * 10, updated: true});
  }
  const updated = await db.bulkDocs(updates);
  const deletions = [];
  for (let j = 0; j < updates.length; j += 2) {
    deletions.push({_id: updates[j]._id, _rev: updated[j].rev, _deleted: true});
  }
  await db.bulkDocs(deletions);
  await db.bulkDocs(CONFLICT, {new_edits: false});
  await writeAttachments(db, prefix);
}

async function attachmentsOf(db, id, rev, stubs) {
  // A leaf's attachments as stubs describe them, with the md5 of the content fetched.
  const out = {};
  for (const name of Object.keys(stubs || {}).sort()) {
    const {content_type, digest, length, revpos} = stubs[name];
    const content = await db.getAttachment(id, name, {rev});
    out[name] = {content_type, digest, length, revpos, fetched: {
      length: content.length, md5: 'md5-' + crypto.createHash('md5').update(content).digest('base64')}};
  }
  return out;
}

async function state(db) {
  // Every document ever written, deleted ones included, by the changes feed.
  const changes = await db.changes({since: 0, style: 'main_only'});
  const out = {};
  for (const row of changes.results) {
    const leaves = await db.get(row.id, {open_revs: 'all', revs: true});
    const found = (await Promise.all(leaves.map(async (entry) => {
      if (!entry.ok) throw new Error(`open_revs=all of ${row.id} answered ${JSON.stringify(entry)}`);
      const {_rev, _deleted, _revisions, _attachments, ...body} = entry.ok;
      const attachments = await attachmentsOf(db, row.id, _rev, _attachments);
      return {rev: _rev, deleted: !!_deleted, body, history: _revisions.ids.length, attachments};
    }))).sort((a, b) => (a.rev < b.rev ? -1 : a.rev > b.rev ? 1 : 0));
    out[row.id] = {winner: row.changes[0].rev, deleted: !!row.deleted, leaves: found};
  }
  return out;
}

async function leafRevs(db) {
  // Every document's leaf revs, from one changes request (cheap enough to poll).
  const changes = await db.changes({since: 0, style: 'all_docs'});
  const out = {};
  for (const row of changes.results) out[row.id] = row.changes.map((c) => c.rev).sort().join(' ');
  return out;
}

function same(a, b) {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => a[k] === b[k]);
}

async function liveSync(local, remote) {
  // Both sides write while a live two-way sync runs; it ends when both hold the same.
  const sync = local.sync(remote, {live: true, retry: true, batch_size: 50});
  let failure = null;
  sync.on('error', (err) => { failure = err; });
  sync.on('denied', (err) => { failure = err; });
  try {
    const writers = [local, remote].map(async (db, side) => {
      for (let batch = 0; batch < 10; batch++) {
        const docs = [];
        for (let i = 0; i < 15; i++) docs.push({_id: `live-${side}-${batch}-${i}`, side, batch, i});
        docs[2]._attachments = {'note.txt': text(`side ${side}, batch ${batch}`)};
        const written = await db.bulkDocs(docs);
        // Update and delete some of what this side just wrote, and replace an attachment.
        await db.bulkDocs([{...docs[0], _rev: written[0].rev, edited: true},
                           {_id: docs[1]._id, _rev: written[1].rev, _deleted: true},
                           {...docs[2], _rev: written[2].rev,
                            _attachments: {'note.txt': text(`batch ${batch}, edited`)}}]);
      }
      if (side === 0) await db.put({_id: 'live-binary', _attachments: {'random.bin': binary('live')}});
    });
    await Promise.all(writers);
    const deadline = Date.now() + DEADLINE_MS;
    const until = async (what, done) => {
      while (true) {
        if (failure) throw failure;
        const [l, r] = [await leafRevs(local), await leafRevs(remote)];
        if (done(l, r)) return;
        if (Date.now() > deadline) throw new Error(`${what} never happened:\n` + JSON.stringify({l, r}));
        await new Promise((resolve) => {
          const timer = setTimeout(resolve, 250);  // a paused sync emits nothing more: look again
          sync.once('change', () => { clearTimeout(timer); resolve(); });
        });
      }
    };
    // Both sides edit one shared document at once: a conflict replication carries both ways.
    const shared = await local.put({_id: 'shared', v: 0});
    await until('the shared document reaching the remote', (l, r) => r.shared && l.shared);
    await Promise.all([local.put({_id: 'shared', _rev: shared.rev, v: 'local',
                                  _attachments: {'local.txt': text('a branch')}}),
                       remote.put({_id: 'shared', _rev: shared.rev, v: 'remote'})]);
    await until('local and remote converging', (l, r) => same(l, r) && l.shared.split(' ').length === 2);
  } finally {
    sync.cancel();
  }
}

async function main() {
  const [scenario, url] = process.argv.slice(2);
  const local = new PouchDB(`local-${scenario}`, {adapter: 'memory'});
  const remote = new PouchDB(url);
  if (scenario === 'push') {
    await writeHistory(local, 'push-');
    const result = await local.replicate.to(remote);
    if (!result.ok || result.doc_write_failures) throw new Error('push failed: ' + JSON.stringify(result));
  } else if (scenario === 'pull') {
    await writeHistory(remote, 'pull-');
    const result = await local.replicate.from(remote);
    if (!result.ok || result.doc_write_failures) throw new Error('pull failed: ' + JSON.stringify(result));
  } else if (scenario === 'sync') {
    await liveSync(local, remote);
  } else {
    throw new Error(`unknown scenario ${scenario}`);
  }
  const out = JSON.stringify({local: await state(local), remote: await state(remote)});
  // Exit only once the pipe took it all (a large write to a pipe completes asynchronously).
  await new Promise((resolve) => process.stdout.write(out, resolve));
}

main().then(() => process.exit(0), (err) => {
  process.stderr.write((err && err.stack) || String(err));
  process.stderr.write('\n' + JSON.stringify(err) + '\n');
  process.exit(1);
});
