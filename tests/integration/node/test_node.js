// node-postgres (pg) against the endpoint in PGHOST/PGPORT/PGUSER/PGDATABASE.
// Asserts as it goes (exits 1 on the first failure) and prints a JSON summary of what it
// saw on stdout, which the pytest wrapper compares with a direct run.
'use strict';
const assert = require('assert/strict');
const { Client } = require('pg');

async function main() {
  const out = {};
  const client = new Client({ connectionTimeoutMillis: 10000 });
  await client.connect();
  try {
    // parameterized queries
    let r = await client.query('SELECT $1::int + $2::int AS sum, $3::text AS t, $4::jsonb AS j',
                               [40, 2, 'héllo \'q\'', JSON.stringify({ a: [1, 2] })]);
    assert.equal(r.rows[0].sum, 42);
    assert.equal(r.rows[0].t, 'héllo \'q\'');
    assert.deepEqual(r.rows[0].j, { a: [1, 2] });
    out.params = r.rows[0];
    r = await client.query('SELECT $1::text IS NULL AS isnull', [null]);
    assert.equal(r.rows[0].isnull, true);

    // named prepared statements: parsed once, executed many times
    await client.query('CREATE TEMP TABLE items (id int PRIMARY KEY, name text)');
    for (let i = 0; i < 50; i++) {
      const ins = await client.query({ name: 'ins_item', text: 'INSERT INTO items VALUES ($1, $2)', values: [i, `item ${i}`] });
      assert.equal(ins.rowCount, 1);
    }
    const sel = [];
    for (let i = 0; i < 50; i += 7) {
      const q = await client.query({ name: 'get_item', text: 'SELECT id, name FROM items WHERE id = $1', values: [i] });
      sel.push(q.rows[0]);
    }
    assert.equal(sel.length, 8);
    assert.deepEqual(sel[1], { id: 7, name: 'item 7' });
    out.named = sel;
    r = await client.query("SELECT name FROM pg_prepared_statements WHERE name IN ('ins_item', 'get_item') ORDER BY name");
    assert.deepEqual(r.rows.map(x => x.name), ['get_item', 'ins_item']);
    out.prepared = r.rows;

    // transactions: commit and rollback
    await client.query('BEGIN');
    await client.query('INSERT INTO items VALUES (100, $1)', ['committed']);
    await client.query('COMMIT');
    await client.query('BEGIN');
    await client.query('INSERT INTO items VALUES (101, $1)', ['rolled back']);
    await client.query('ROLLBACK');
    r = await client.query('SELECT id FROM items WHERE id >= 100 ORDER BY id');
    assert.deepEqual(r.rows, [{ id: 100 }]);

    // an error inside a transaction, statements refused until rollback, then recovery
    await client.query('BEGIN');
    let err = null;
    try {
      await client.query({ name: 'ins_item', text: 'INSERT INTO items VALUES ($1, $2)', values: [1, 'dup'] });
    } catch (e) { err = e; }
    assert.ok(err, 'duplicate insert did not fail');
    assert.equal(err.code, '23505');
    let err2 = null;
    try { await client.query('SELECT 1'); } catch (e) { err2 = e; }
    assert.ok(err2);
    assert.equal(err2.code, '25P02');
    await client.query('ROLLBACK');
    out.errors = { first: err.code, detail: err.detail, constraint: err.constraint, second: err2.code };

    // an error outside a transaction with a parameterised statement, then reuse of the
    // named statement
    let err3 = null;
    try { await client.query('SELECT 10 / $1::int AS q', [0]); } catch (e) { err3 = e; }
    assert.equal(err3 && err3.code, '22012');
    r = await client.query({ name: 'get_item', text: 'SELECT id, name FROM items WHERE id = $1', values: [49] });
    assert.deepEqual(r.rows, [{ id: 49, name: 'item 49' }]);
    r = await client.query('SELECT count(*)::int AS n FROM items');
    assert.equal(r.rows[0].n, 51);
    out.final = r.rows[0];

    // many rows through the extended protocol
    r = await client.query('SELECT g, md5(g::text) AS m FROM generate_series(1, $1::int) g', [20000]);
    assert.equal(r.rows.length, 20000);
    assert.equal(r.rows[19999].g, 20000);
    out.bigLast = r.rows[19999];
  } finally {
    await client.end();
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch(e => {
  console.error('FAILED:', e && e.stack ? e.stack : e);
  process.exit(1);
});
