// node-postgres (extended protocol) through pgmoat's row guard: a DELETE ... RETURNING under
// the limit, one over it, then the same inside a transaction block. Prints a JSON summary.
'use strict';
const { Client } = require('pg');

async function main() {
  const t = process.env.RG_TABLE;
  const out = {};
  const client = new Client({ connectionTimeoutMillis: 10000 });
  await client.connect();
  try {
    let r = await client.query(`DELETE FROM ${t} WHERE id <= $1 RETURNING id`, [30]);
    out.under = { rowCount: r.rowCount, returned: r.rows.length };
    try {
      await client.query(`DELETE FROM ${t} WHERE id > $1 RETURNING id`, [0]);
      out.over = { code: 'no error' };
    } catch (e) {
      out.over = { code: e.code, detail: e.detail };
    }
    r = await client.query(`SELECT count(*)::int AS n FROM ${t}`);
    out.after_over = r.rows[0].n;

    const tx = {};
    await client.query('BEGIN');
    try {
      await client.query({ name: 'upd_all', text: `UPDATE ${t} SET v = $1 WHERE id > 0`, values: [5] });
      tx.refused = 'no error';
    } catch (e) { tx.refused = e.code; }
    try { await client.query('SELECT 1'); tx.next = 'no error'; } catch (e) { tx.next = e.code; }
    await client.query('ROLLBACK');
    r = await client.query(`SELECT count(*)::int AS n FROM ${t} WHERE v = 0`);
    tx.after_rollback = r.rows[0].n;
    out.tx = tx;
  } finally {
    await client.end();
  }
  console.log(JSON.stringify(out));
}

main().catch((e) => { console.error(e); process.exit(1); });
