// pgJDBC against the endpoint given on the command line: batch inserts, server-prepared
// statements (prepareThreshold=1), a result set read with a fetch size, and rollback.
// Checks as it goes (exit 1 on the first failure) and prints "key=value" lines that the
// pytest wrapper compares with a direct run.
import java.sql.*;
import java.util.*;

public class PgmoatJdbc {
    static void check(boolean cond, String what) {
        if (!cond) throw new AssertionError(what);
    }

    public static void main(String[] args) throws Exception {
        String url = args[0], user = args[1], password = args[2];
        Properties props = new Properties();
        props.setProperty("user", user);
        props.setProperty("password", password);
        props.setProperty("prepareThreshold", "1");
        props.setProperty("connectTimeout", "10");
        props.setProperty("socketTimeout", "120");
        List<String> out = new ArrayList<>();
        try (Connection c = DriverManager.getConnection(url, props)) {
            try (Statement st = c.createStatement()) {
                st.execute("CREATE TEMP TABLE jt (id int PRIMARY KEY, name text, amount numeric(12,2))");
            }

            // batch inserts
            c.setAutoCommit(false);
            try (PreparedStatement ps = c.prepareStatement("INSERT INTO jt VALUES (?, ?, ?)")) {
                for (int i = 0; i < 5000; i++) {
                    ps.setInt(1, i);
                    ps.setString(2, "name " + i + " ✓");
                    ps.setBigDecimal(3, new java.math.BigDecimal(i).movePointLeft(2));
                    ps.addBatch();
                    if (i % 1000 == 999) {
                        int[] counts = ps.executeBatch();
                        check(counts.length == 1000, "batch size " + counts.length);
                        for (int n : counts) check(n == 1 || n == Statement.SUCCESS_NO_INFO, "batch count " + n);
                    }
                }
            }
            c.commit();
            try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery("SELECT count(*), sum(amount) FROM jt")) {
                rs.next();
                check(rs.getInt(1) == 5000, "count after batch " + rs.getInt(1));
                out.add("batch=" + rs.getInt(1) + "/" + rs.getBigDecimal(2));
            }
            c.commit();

            // server-prepared statements: with prepareThreshold=1 the second execution uses a
            // named server-side statement
            try (PreparedStatement ps = c.prepareStatement("SELECT name FROM jt WHERE id = ?")) {
                StringBuilder sb = new StringBuilder();
                for (int i = 0; i < 10; i++) {
                    ps.setInt(1, i * 100);
                    try (ResultSet rs = ps.executeQuery()) {
                        check(rs.next(), "row " + i);
                        sb.append(rs.getString(1)).append(';');
                    }
                }
                boolean server = ps.unwrap(org.postgresql.PGStatement.class).isUseServerPrepare();
                check(server, "statement not server-prepared");
                try (Statement st = c.createStatement();
                     ResultSet rs = st.executeQuery("SELECT count(*) FROM pg_prepared_statements WHERE statement = 'SELECT name FROM jt WHERE id = $1'")) {
                    rs.next();
                    check(rs.getInt(1) == 1, "pg_prepared_statements has " + rs.getInt(1));
                }
                out.add("prepared=" + sb);
            }
            c.commit();

            // result set with a fetch size: portal executed in chunks (PortalSuspended)
            try (PreparedStatement ps = c.prepareStatement("SELECT g, md5(g::text) FROM generate_series(1, ?) g ORDER BY g")) {
                ps.setFetchSize(250);
                ps.setInt(1, 20000);
                long n = 0, sum = 0;
                String last = null;
                try (ResultSet rs = ps.executeQuery()) {
                    while (rs.next()) {
                        n++;
                        sum += rs.getLong(1);
                        last = rs.getString(2);
                        check(rs.getLong(1) == n, "row order at " + n);
                    }
                }
                check(n == 20000, "fetched " + n);
                out.add("fetch=" + n + "/" + sum + "/" + last);
            }
            c.commit();

            // rollback, including after an error, and a savepoint
            try (Statement st = c.createStatement()) {
                st.executeUpdate("INSERT INTO jt VALUES (90001, 'gone', 1)");
                c.rollback();
                st.executeUpdate("INSERT INTO jt VALUES (90002, 'kept', 1)");
                Savepoint sp = c.setSavepoint("sp1");
                String state = null;
                try {
                    st.executeUpdate("INSERT INTO jt VALUES (0, 'duplicate', 1)");
                } catch (SQLException e) {
                    state = e.getSQLState();
                }
                check("23505".equals(state), "duplicate key state " + state);
                c.rollback(sp);
                st.executeUpdate("INSERT INTO jt VALUES (90003, 'after savepoint', 1)");
                c.commit();
                String aborted = null;
                try {
                    st.executeQuery("SELECT 1/0");
                } catch (SQLException e) {
                    aborted = e.getSQLState();
                }
                check("22012".equals(aborted), "div0 state " + aborted);
                String blocked = null;
                try {
                    st.executeQuery("SELECT 1");
                } catch (SQLException e) {
                    blocked = e.getSQLState();
                }
                check("25P02".equals(blocked), "in-failed-transaction state " + blocked);
                c.rollback();
                try (ResultSet rs = st.executeQuery("SELECT string_agg(id::text, ',' ORDER BY id) FROM jt WHERE id > 90000")) {
                    rs.next();
                    check("90002,90003".equals(rs.getString(1)), "rows after rollback " + rs.getString(1));
                    out.add("rollback=" + rs.getString(1) + "/" + state + "/" + aborted + "/" + blocked);
                }
                c.commit();
            }
        }
        for (String s : out) System.out.println(s);
        System.out.println("OK");
    }
}
