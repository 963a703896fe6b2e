// Preloaded into pouchdb-server (node -r exit_with_parent.js ...): exit once the process
// that started this one is gone, so a test run or benchmark killed with -9 leaves no
// server behind. An orphan is re-parented, which shows as a new process.ppid. The
// starter passes its pid in CLOUDSYNC_PARENT_PID, so a starter that died while node was
// still starting is noticed too.
'use strict';

const parent = Number(process.env.CLOUDSYNC_PARENT_PID) || process.ppid;
setInterval(() => {
  if (process.ppid !== parent) process.exit(0);
}, 500).unref();
