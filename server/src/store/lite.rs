//! SQLite through rusqlite, run in the calling task.
//!
//! sqlx's SQLite driver sends every statement to a worker thread and waits for the
//! answer: two thread wake-ups per statement, 50-80 µs each on a 2-core VM, where the
//! statement itself takes a few. A create is seven statements, so most of its time (and
//! of the CPU: the profile was mostly context switches) went to hand-offs. Here a
//! statement runs on the task's own thread: SQLite on a local file answers in
//! microseconds and never waits on the network. The waits that can be long are kept
//! off the runtime's threads: another process holding the write lock is waited for with
//! an async sleep, and WAL checkpoints run on a thread of their own.
//!
//! One writer connection, behind an async mutex (writers queue in order; the file has
//! one write lock anyway), and a small pool of reader connections (WAL lets them read
//! beside the writer).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, ErrorCode, ToSql};
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard, Semaphore};

use super::StoreError;
use super::sql::{Done, Row as AnyBackendRow, Value, Want};

/// How long a write waits for another process (an admin command, a second server on
/// the same file) to release the write lock before it fails.
const WRITE_LOCK_TIMEOUT: Duration = Duration::from_secs(10);
/// Readers only wait in rare cases (WAL recovery after a crash of another process).
const READER_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Prepared statements kept per connection; jitgate has fewer distinct ones.
const STATEMENT_CACHE: usize = 128;

/// The SQLite database of one process.
pub(crate) struct Sqlite {
    path: PathBuf,
    writer: Arc<AsyncMutex<Connection>>,
    idle_readers: Mutex<Vec<Connection>>,
    reader_slots: Semaphore,
    closed: Arc<AtomicBool>,
}

impl Sqlite {
    /// Opens (creating it if missing) the database file at `path`, in WAL mode, with up
    /// to `max_readers` reader connections opened as needed.
    pub(crate) fn open(path: &Path, max_readers: u32) -> Result<Sqlite, StoreError> {
        let writer = Connection::open(path)?;
        // WAL: readers and the one writer do not block each other. NORMAL: a commit
        // writes the log without fsync (durable across a process crash; a power loss
        // may lose the last commits, never corrupt the file).
        writer.pragma_update(None, "journal_mode", "WAL")?;
        configure(&writer, Duration::ZERO)?;
        Ok(Sqlite {
            path: path.to_owned(),
            writer: Arc::new(AsyncMutex::new(writer)),
            idle_readers: Mutex::new(Vec::new()),
            reader_slots: Semaphore::new(max_readers.max(1) as usize),
            closed: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Runs a read on a reader connection, in the calling task: for reads that look at
    /// a bounded number of rows (by key, through an index, with a limit).
    pub(crate) async fn read(
        &self,
        sql: &str,
        args: &[Value],
        want: Want,
    ) -> Result<Done, StoreError> {
        self.on_reader(sql, args, want, false).await
    }

    /// Runs a read that may look at many rows (a range of the audit trail, a whole
    /// table) on tokio's blocking threads, so it cannot hold up a runtime thread and
    /// the requests waiting on it.
    pub(crate) async fn scan(
        &self,
        sql: &str,
        args: &[Value],
        want: Want,
    ) -> Result<Done, StoreError> {
        self.on_reader(sql, args, want, true).await
    }

    async fn on_reader(
        &self,
        sql: &str,
        args: &[Value],
        want: Want,
        off_runtime: bool,
    ) -> Result<Done, StoreError> {
        self.check_open()?;
        let _slot = self
            .reader_slots
            .acquire()
            .await
            .map_err(|_| StoreError::Closed)?;
        let conn = self.take_reader()?;
        let (conn, done) = if off_runtime {
            let (sql, args) = (sql.to_owned(), args.to_vec());
            tokio::task::spawn_blocking(move || {
                let done = run(&conn, &sql, &args, want);
                (conn, done)
            })
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
        } else {
            let done = run(&conn, sql, args, want);
            (conn, done)
        };
        self.put_reader(conn);
        Ok(done?)
    }

    fn take_reader(&self) -> Result<Connection, StoreError> {
        if let Ok(Some(conn)) = self.idle_readers.lock().map(|mut idle| idle.pop()) {
            return Ok(conn);
        }
        let conn = Connection::open(&self.path)?;
        configure(&conn, READER_BUSY_TIMEOUT)?;
        Ok(conn)
    }

    fn put_reader(&self, conn: Connection) {
        if let Ok(mut idle) = self.idle_readers.lock() {
            idle.push(conn);
        }
    }

    /// Runs one write outside a transaction (as a transaction of its own).
    pub(crate) async fn write(
        &self,
        sql: &str,
        args: &[Value],
        want: Want,
    ) -> Result<Done, StoreError> {
        let mut tx = self.begin().await?;
        let done = tx.run(sql, args, want)?;
        tx.commit()?;
        Ok(done)
    }

    /// Takes the writer and starts a write transaction on it (`BEGIN IMMEDIATE`: the
    /// write lock is taken up front, so a transaction that reads first cannot fail to
    /// upgrade later).
    pub(crate) async fn begin(&self) -> Result<Tx, StoreError> {
        self.check_open()?;
        let conn = self.writer.clone().lock_owned().await;
        // Writers queued before `close` must not start after it.
        self.check_open()?;
        if !conn.is_autocommit() {
            // Only if a COMMIT and then its ROLLBACK both failed: start clean.
            conn.execute_batch("ROLLBACK")?;
        }
        let deadline = tokio::time::Instant::now() + WRITE_LOCK_TIMEOUT;
        let mut pause = Duration::from_micros(500);
        loop {
            // Nothing may await between a successful BEGIN and the `Tx` that rolls it
            // back when dropped.
            match conn.execute_batch("BEGIN IMMEDIATE") {
                Ok(()) => return Ok(Tx { conn, open: true }),
                Err(e) if is_busy(&e) && tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Turns off checkpoints on commit and checkpoints every `every` on a thread of its
    /// own (`PASSIVE`: it never waits for, nor blocks, readers and the writer). The
    /// thread ends when the database is closed or dropped.
    pub(crate) async fn checkpoint_in_background(
        self: &Arc<Self>,
        every: Duration,
    ) -> Result<(), StoreError> {
        self.writer
            .lock()
            .await
            .pragma_update(None, "wal_autocheckpoint", 0)?;
        let conn = Connection::open(&self.path)?;
        configure(&conn, READER_BUSY_TIMEOUT)?;
        let db: Weak<Sqlite> = Arc::downgrade(self);
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(every);
                    match db.upgrade() {
                        Some(db) if !db.closed.load(Ordering::Relaxed) => {}
                        _ => return,
                    }
                    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    {
                        tracing::warn!(error = %e, "WAL checkpoint failed; will retry");
                    }
                }
            })
            .map_err(|e| StoreError::Task(e.to_string()))?;
        Ok(())
    }

    /// Waits for the transaction in progress, then refuses further use.
    pub(crate) async fn close(&self) {
        let _writer = self.writer.lock().await;
        self.closed.store(true, Ordering::Relaxed);
        self.reader_slots.close();
        if let Ok(mut idle) = self.idle_readers.lock() {
            idle.clear();
        }
    }

    fn check_open(&self) -> Result<(), StoreError> {
        if self.closed.load(Ordering::Relaxed) {
            Err(StoreError::Closed)
        } else {
            Ok(())
        }
    }
}

/// A write transaction on the writer connection; rolled back when dropped uncommitted
/// (a refused transition, an error, or a caller that went away).
pub(crate) struct Tx {
    conn: OwnedMutexGuard<Connection>,
    open: bool,
}

impl Tx {
    pub(crate) fn run(
        &mut self,
        sql: &str,
        args: &[Value],
        want: Want,
    ) -> Result<Done, StoreError> {
        Ok(run(&self.conn, sql, args, want)?)
    }

    pub(crate) fn commit(mut self) -> Result<(), StoreError> {
        self.conn.execute_batch("COMMIT")?;
        self.open = false;
        Ok(())
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        if self.open
            && let Err(e) = self.conn.execute_batch("ROLLBACK")
        {
            tracing::error!(error = %e, "rolling back a SQLite transaction failed");
        }
    }
}

/// A result row: the statement's column names (shared by its rows) and the values.
pub(crate) struct Row {
    names: Arc<[String]>,
    values: Vec<Value>,
}

impl Row {
    pub(crate) fn get(&self, name: &str) -> Result<&Value, StoreError> {
        self.names
            .iter()
            .position(|n| n == name)
            .and_then(|i| self.values.get(i))
            .ok_or_else(|| StoreError::Corrupt(format!("no column `{name}` in the result")))
    }
}

fn configure(conn: &Connection, busy_timeout: Duration) -> Result<(), rusqlite::Error> {
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.busy_timeout(busy_timeout)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(())
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

impl ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Value::Int(Some(v)) => ToSqlOutput::from(*v),
            Value::Text(Some(v)) => ToSqlOutput::Borrowed(ValueRef::Text(v.as_bytes())),
            Value::Int(None) | Value::Text(None) => ToSqlOutput::Borrowed(ValueRef::Null),
        })
    }
}

/// Runs one statement. Parameters are `$N`, bound by number: the same SQL text serves
/// Postgres, where `$N` is the only form.
fn run(conn: &Connection, sql: &str, args: &[Value], want: Want) -> Result<Done, rusqlite::Error> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut highest = 0;
    for index in 1..=stmt.parameter_count() {
        let number = stmt
            .parameter_name(index)
            .and_then(|name| name.strip_prefix('$'))
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(index);
        let value = args
            .get(number.wrapping_sub(1))
            .ok_or(rusqlite::Error::InvalidParameterCount(number, args.len()))?;
        stmt.raw_bind_parameter(index, value)?;
        highest = highest.max(number);
    }
    // Postgres refuses values past the highest placeholder ("bind message supplies 2
    // parameters, but prepared statement requires 1"): refuse them here too, so a
    // statement tested on SQLite also runs there.
    if highest != args.len() {
        return Err(rusqlite::Error::InvalidParameterCount(highest, args.len()));
    }
    if stmt.column_count() == 0 {
        let rows_affected = stmt.raw_execute()? as u64;
        return Ok(Done {
            rows_affected,
            rows: Vec::new(),
        });
    }
    let names: Arc<[String]> = stmt.column_names().into_iter().map(String::from).collect();
    let width = names.len();
    let mut rows = Vec::new();
    let mut cursor = stmt.raw_query();
    while let Some(row) = cursor.next()? {
        let mut values = Vec::with_capacity(width);
        for (i, name) in names.iter().enumerate() {
            values.push(match row.get_ref(i)? {
                ValueRef::Null => Value::Text(None),
                ValueRef::Integer(v) => Value::Int(Some(v)),
                ValueRef::Text(t) | ValueRef::Blob(t) => {
                    Value::Text(Some(String::from_utf8_lossy(t).into_owned()))
                }
                // No column of jitgate's schema holds a float.
                ValueRef::Real(_) => {
                    return Err(rusqlite::Error::InvalidColumnType(
                        i,
                        name.clone(),
                        rusqlite::types::Type::Real,
                    ));
                }
            });
        }
        rows.push(AnyBackendRow::Lite(Row {
            names: names.clone(),
            values,
        }));
        if want == Want::First {
            break;
        }
    }
    drop(cursor);
    Ok(Done {
        rows_affected: conn.changes(),
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sql::Row as AnyBackendRow;

    fn open(dir: &tempfile::TempDir) -> Sqlite {
        Sqlite::open(&dir.path().join("t.db"), 2).expect("open")
    }

    fn text(row: &AnyBackendRow, name: &str) -> Option<String> {
        row.try_get(name).expect("column")
    }

    #[tokio::test]
    async fn parameters_bind_by_number_in_any_order_and_repeated() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = open(&dir);
        let args = [Value::from("a"), Value::from(2), Value::from(None::<i64>)];
        let done = db
            .read(
                "SELECT $2 AS two, $1 AS one, $1 || $1 AS twice, $3 AS absent",
                &args,
                Want::All,
            )
            .await
            .expect("read");
        let row = &done.rows[0];
        assert_eq!(row.try_get::<i64>("two").expect("two"), 2);
        assert_eq!(text(row, "one").as_deref(), Some("a"));
        assert_eq!(text(row, "twice").as_deref(), Some("aa"));
        assert_eq!(row.try_get::<Option<i64>>("absent").expect("absent"), None);
        assert!(
            row.try_get::<i64>("one").is_err(),
            "text is not read as a number"
        );
        assert!(row.try_get::<i64>("missing").is_err());
    }

    #[tokio::test]
    async fn a_missing_parameter_is_an_error_not_a_null() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = open(&dir);
        let err = db
            .read("SELECT $2 AS x", &[Value::from(1)], Want::All)
            .await
            .err()
            .expect("refused");
        assert!(err.to_string().contains("parameter"), "{err}");
    }

    #[tokio::test]
    async fn values_past_the_highest_placeholder_are_refused_as_postgres_does() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = open(&dir);
        let extra = db
            .read(
                "SELECT $1 AS x",
                &[Value::from(1), Value::from(2)],
                Want::All,
            )
            .await;
        assert!(extra.is_err(), "two values for one placeholder");
        let gap = db
            .read(
                "SELECT $1 AS x, $3 AS y",
                &[Value::from(1), Value::from(2), Value::from(3)],
                Want::All,
            )
            .await;
        // Postgres accepts an unused `$2` when its type is sent (sqlx sends every type).
        assert!(gap.is_ok(), "$2 unused but $3 bound: {:?}", gap.err());
    }

    #[tokio::test]
    async fn scans_run_off_the_runtime_threads_with_the_same_results() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = open(&dir);
        let done = db
            .scan(
                "SELECT $1 AS v UNION ALL SELECT $1 + 1",
                &[Value::from(41)],
                Want::All,
            )
            .await
            .expect("scan");
        let values: Vec<i64> = done
            .rows
            .iter()
            .map(|r| r.try_get("v").expect("v"))
            .collect();
        assert_eq!(values, vec![41, 42]);
    }

    #[tokio::test]
    async fn a_dropped_transaction_rolls_back_and_frees_the_writer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = open(&dir);
        db.write("CREATE TABLE t (v INTEGER)", &[], Want::Nothing)
            .await
            .expect("create");
        let mut tx = db.begin().await.expect("begin");
        tx.run(
            "INSERT INTO t (v) VALUES ($1)",
            &[Value::from(1)],
            Want::Nothing,
        )
        .expect("insert");
        drop(tx);
        let mut tx = db.begin().await.expect("the writer is free again");
        let done = tx
            .run(
                "INSERT INTO t (v) VALUES ($1) RETURNING v",
                &[Value::from(2)],
                Want::First,
            )
            .expect("insert");
        assert_eq!(done.rows_affected(), 1);
        tx.commit().expect("commit");
        let rows = db
            .read("SELECT v FROM t ORDER BY v", &[], Want::All)
            .await
            .expect("read")
            .rows;
        let values: Vec<i64> = rows.iter().map(|r| r.try_get("v").expect("v")).collect();
        assert_eq!(
            values,
            vec![2],
            "the dropped insert is gone, the committed one is there"
        );
    }

    #[tokio::test]
    async fn a_write_waits_for_another_process_holding_the_write_lock() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = open(&dir);
        db.write("CREATE TABLE t (v INTEGER)", &[], Want::Nothing)
            .await
            .expect("create");
        // Another connection (as another process would) holds the write lock for a while.
        let other = Connection::open(dir.path().join("t.db")).expect("open");
        other
            .execute_batch("BEGIN IMMEDIATE; INSERT INTO t (v) VALUES (1)")
            .expect("lock");
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            other.execute_batch("COMMIT").expect("commit");
        });
        let started = std::time::Instant::now();
        db.write("INSERT INTO t (v) VALUES (2)", &[], Want::Nothing)
            .await
            .expect("waited, then wrote");
        assert!(
            started.elapsed() >= Duration::from_millis(250),
            "it did wait"
        );
        release.join().expect("thread");
        let rows = db
            .read("SELECT COUNT(*) AS n FROM t", &[], Want::First)
            .await
            .expect("read")
            .rows;
        assert_eq!(rows[0].try_get::<i64>("n").expect("n"), 2);
    }

    #[tokio::test]
    async fn a_closed_database_refuses_work() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = open(&dir);
        db.close().await;
        assert!(matches!(db.begin().await, Err(StoreError::Closed)));
        assert!(matches!(
            db.read("SELECT 1", &[], Want::All).await,
            Err(StoreError::Closed)
        ));
    }
}
