// PouchDB for Node replicating with a CouchDB-compatible server, driven by
// tests/integration/test_pouchdb_client.py:
//
//   node pouchdb_replication.js push|pull|sync <database URL>
//
// Runs one scenario between an in-memory local database and the (new, empty) remote one,
// then prints one JSON object: {"local": state, "remote": state}, where a state maps each
// document id (deleted ones too) to its winning rev and every leaf revision read with
// open_revs=all (rev, deleted, body). Exits 1 with the error on stderr if anything fails.
'use strict';

const PouchDB = require('pouchdb-node');
PouchDB.plugin(require('pouchdb-adapter-memory'));

const DOCS = 300;
const DEADLINE_MS = 60000;

// Two branches of document "conflicted", written with new_edits=false: 2-b... wins.
const CONFLICT = [
  {_id: 'conflicted', _rev: '2-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb', side: 'b',
   _revisions: {start: 2, ids: ['bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb', 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa']}},
  {_id: 'conflicted', _rev: '2-cccccccccccccccccccccccccccccccc', side: 'c',
   _revisions: {start: 2, ids: ['cccccccccccccccccccccccccccccccc', 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa']}},
];

// Attachments: the attachments work adds documents with attachments to `writeHistory`
// and their digests to `state`; until then no document here has any.

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
}

async function state(db) {
  // Every document ever written, deleted ones included, by the changes feed.
  const changes = await db.changes({since: 0, style: 'main_only'});
  const out = {};
  for (const row of changes.results) {
    const leaves = await db.get(row.id, {open_revs: 'all', revs: true});
    const found = leaves.map((entry) => {
      if (!entry.ok) throw new Error(`open_revs=all of ${row.id} answered ${JSON.stringify(entry)}`);
      const {_rev, _deleted, _revisions, ...body} = entry.ok;
      return {rev: _rev, deleted: !!_deleted, body, history: _revisions.ids.length};
    }).sort((a, b) => (a.rev < b.rev ? -1 : a.rev > b.rev ? 1 : 0));
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
        const written = await db.bulkDocs(docs);
        // Update and delete some of what this side just wrote.
        await db.bulkDocs([{...docs[0], _rev: written[0].rev, edited: true},
                           {_id: docs[1]._id, _rev: written[1].rev, _deleted: true}]);
      }
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
    await Promise.all([local.put({_id: 'shared', _rev: shared.rev, v: 'local'}),
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
