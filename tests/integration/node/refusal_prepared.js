// node-postgres through pgmoat: a refused named prepared statement, then the connection
// still works; the same inside a transaction block (25P02 until ROLLBACK).
// Prints a JSON summary on stdout for test_refusal.py.
'use strict';
const { Client } = require('pg');

function fields(e) {
  if (!e) return null;
  return { code: e.code, message: e.message, detail: e.detail, hint: e.hint };
}

async function main() {
  const out = {};
  const client = new Client({ connectionTimeoutMillis: 10000 });
  await client.connect();
  try {
    let err = null;
    try {
      await client.query({ name: 'drop_it', text: 'DROP TABLE refusal_node_t' });
    } catch (e) { err = e; }
    out.refused = fields(err) || { code: 'no error' };
    let r = await client.query({ name: 'count_it', text: 'SELECT count(*)::int AS n FROM refusal_node_t' });
    out.after = r.rows[0].n;
    err = null;
    try {
      await client.query({ name: 'drop_it', text: 'DROP TABLE refusal_node_t' });
    } catch (e) { err = e; }
    out.again = fields(err) || { code: 'no error' };

    const tx = {};
    await client.query('BEGIN');
    await client.query({ name: 'ins', text: 'INSERT INTO refusal_node_t VALUES ($1, $2)', values: [100, 'rolled back'] });
    err = null;
    try {
      await client.query({ name: 'trunc', text: 'TRUNCATE refusal_node_t' });
    } catch (e) { err = e; }
    tx.refused = err ? err.code : 'no error';
    err = null;
    try { await client.query({ name: 'count_it', text: 'SELECT count(*)::int AS n FROM refusal_node_t' }); } catch (e) { err = e; }
    tx.next = err ? err.code : 'no error';
    await client.query('ROLLBACK');
    await client.query({ name: 'ins', text: 'INSERT INTO refusal_node_t VALUES ($1, $2)', values: [4, 'committed'] });
    r = await client.query({ name: 'count_it', text: 'SELECT count(*)::int AS n FROM refusal_node_t' });
    tx.after_rollback = r.rows[0].n;
    out.tx = tx;
  } finally {
    await client.end();
  }
  console.log(JSON.stringify(out));
}

main().catch((e) => { console.error(e); process.exit(1); });
