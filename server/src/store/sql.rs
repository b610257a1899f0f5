//! One way to run a statement on either backend: [`query`] with `$N` parameters and
//! bound [`Value`]s, run on the read side, the write side or inside a [`WriteTx`], giving
//! [`Row`]s read by column name. Postgres is reached through sqlx; SQLite through
//! rusqlite in the calling task (see [`super::lite`] for why).

use crate::domain::{PermissionSetArn, PrincipalId, UserId};
use sqlx::Any;
use sqlx::any::AnyRow;

use super::lite;
use super::{Db, Pools, StoreError, TxInner, WriteTx};

/// A bound parameter. Nulls keep their type: Postgres wants to know what a NULL is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Int(Option<i64>),
    Text(Option<String>),
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(Some(v))
    }
}

impl From<Option<i64>> for Value {
    fn from(v: Option<i64>) -> Self {
        Value::Int(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(Some(v.to_owned()))
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(Some(v))
    }
}

impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Value::Text(Some(v.clone()))
    }
}

impl From<Option<&str>> for Value {
    fn from(v: Option<&str>) -> Self {
        Value::Text(v.map(str::to_owned))
    }
}

impl From<Option<String>> for Value {
    fn from(v: Option<String>) -> Self {
        Value::Text(v)
    }
}

impl From<&UserId> for Value {
    fn from(v: &UserId) -> Self {
        Value::Text(Some(v.as_str().to_owned()))
    }
}

impl From<&PrincipalId> for Value {
    fn from(v: &PrincipalId) -> Self {
        Value::Text(Some(v.as_str().to_owned()))
    }
}

impl From<&PermissionSetArn> for Value {
    fn from(v: &PermissionSetArn) -> Self {
        Value::Text(Some(v.as_str().to_owned()))
    }
}

impl Value {
    /// What kind of value this is, for error messages (never the value itself).
    fn kind(&self) -> &'static str {
        match self {
            Value::Int(Some(_)) => "an integer",
            Value::Text(Some(_)) => "text",
            Value::Int(None) | Value::Text(None) => "NULL",
        }
    }
}

/// Where a statement runs.
pub(crate) enum Target<'a> {
    /// A read outside any transaction that looks at a bounded number of rows (SQLite: a
    /// reader connection, in the calling task).
    Read(&'a Db),
    /// A read that may look at many rows (SQLite: a reader connection, on a blocking
    /// thread).
    Scan(&'a Db),
    /// A write outside any transaction (SQLite: the one writer connection).
    Write(&'a Db),
    /// Inside a write transaction.
    Tx(&'a mut WriteTx),
}

impl<'a> From<&'a mut WriteTx> for Target<'a> {
    fn from(tx: &'a mut WriteTx) -> Self {
        Target::Tx(tx)
    }
}

/// What a statement returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Want {
    /// Nothing but the number of rows changed.
    Nothing,
    /// The first row, if any.
    First,
    /// Every row.
    All,
}

/// What running a statement gave.
#[derive(Default)]
pub(crate) struct Done {
    pub(crate) rows_affected: u64,
    pub(crate) rows: Vec<Row>,
}

impl Done {
    pub(crate) fn rows_affected(&self) -> u64 {
        self.rows_affected
    }
}

/// A statement and its parameters.
#[must_use = "a query does nothing until it is run"]
pub(crate) struct Query<'q> {
    sql: &'q str,
    args: Vec<Value>,
}

/// A statement with `$1`, `$2`, ... placeholders; bind them in order with [`Query::bind`].
pub(crate) fn query(sql: &str) -> Query<'_> {
    Query {
        sql,
        args: Vec::new(),
    }
}

impl<'q> Query<'q> {
    /// Binds the next parameter (`$1` first).
    pub(crate) fn bind(mut self, value: impl Into<Value>) -> Self {
        self.args.push(value.into());
        self
    }

    /// Runs it for its effect.
    pub(crate) async fn execute<'t>(self, on: impl Into<Target<'t>>) -> Result<Done, StoreError> {
        self.run(on.into(), Want::Nothing).await
    }

    /// Every row it returns.
    pub(crate) async fn fetch_all<'t>(
        self,
        on: impl Into<Target<'t>>,
    ) -> Result<Vec<Row>, StoreError> {
        Ok(self.run(on.into(), Want::All).await?.rows)
    }

    /// Its first row, if any.
    pub(crate) async fn fetch_optional<'t>(
        self,
        on: impl Into<Target<'t>>,
    ) -> Result<Option<Row>, StoreError> {
        Ok(self
            .run(on.into(), Want::First)
            .await?
            .rows
            .into_iter()
            .next())
    }

    /// Its first row, which must exist.
    pub(crate) async fn fetch_one<'t>(self, on: impl Into<Target<'t>>) -> Result<Row, StoreError> {
        let sql = self.sql;
        self.fetch_optional(on)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("no row from `{sql}`")))
    }

    async fn run(self, on: Target<'_>, want: Want) -> Result<Done, StoreError> {
        match on {
            Target::Read(db) => match &db.pools {
                Pools::Postgres(pool) => pg_run(pool, self.sql, self.args, want).await,
                Pools::Sqlite(sqlite) => sqlite.read(self.sql, &self.args, want).await,
            },
            Target::Scan(db) => match &db.pools {
                Pools::Postgres(pool) => pg_run(pool, self.sql, self.args, want).await,
                Pools::Sqlite(sqlite) => sqlite.scan(self.sql, &self.args, want).await,
            },
            Target::Write(db) => match &db.pools {
                Pools::Postgres(pool) => pg_run(pool, self.sql, self.args, want).await,
                Pools::Sqlite(sqlite) => sqlite.write(self.sql, &self.args, want).await,
            },
            Target::Tx(tx) => match &mut tx.inner {
                TxInner::Postgres(t) => pg_run(&mut **t, self.sql, self.args, want).await,
                TxInner::Sqlite(t) => Ok(t.run(self.sql, &self.args, want)?),
            },
        }
    }
}

async fn pg_run<'c, E>(on: E, sql: &str, args: Vec<Value>, want: Want) -> Result<Done, StoreError>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    let mut q = sqlx::query(sql);
    for value in args {
        q = match value {
            Value::Int(v) => q.bind(v),
            Value::Text(v) => q.bind(v),
        };
    }
    Ok(match want {
        Want::Nothing => Done {
            rows_affected: q.execute(on).await?.rows_affected(),
            rows: Vec::new(),
        },
        Want::First => Done {
            rows_affected: 0,
            rows: q
                .fetch_optional(on)
                .await?
                .map(Row::Any)
                .into_iter()
                .collect(),
        },
        Want::All => Done {
            rows_affected: 0,
            rows: q.fetch_all(on).await?.into_iter().map(Row::Any).collect(),
        },
    })
}

/// A result row of either backend.
pub(crate) enum Row {
    Any(AnyRow),
    Lite(lite::Row),
}

impl Row {
    /// The value of column `name` (as the statement named it, e.g. with `AS`).
    pub(crate) fn try_get<T: Column>(&self, name: &str) -> Result<T, StoreError> {
        match self {
            Row::Any(row) => Ok(sqlx::Row::try_get(row, name)?),
            // The kind only: a value (an email, a token's owner) does not belong in a log.
            Row::Lite(row) => T::from_value(row.get(name)?).ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "column `{name}` holds {}, not {}",
                    row.get(name).map_or("nothing", Value::kind),
                    std::any::type_name::<T>()
                ))
            }),
        }
    }
}

/// A Rust type a column is read as.
pub(crate) trait Column: Sized + for<'r> sqlx::Decode<'r, Any> + sqlx::Type<Any> {
    /// `None` when the value is not of this type.
    fn from_value(value: &Value) -> Option<Self>;
}

impl Column for i64 {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Int(v) => *v,
            Value::Text(_) => None,
        }
    }
}

impl Column for Option<i64> {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Int(v) => Some(*v),
            Value::Text(None) => Some(None),
            Value::Text(Some(_)) => None,
        }
    }
}

impl Column for String {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Text(v) => v.clone(),
            Value::Int(_) => None,
        }
    }
}

impl Column for Option<String> {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Text(v) => Some(v.clone()),
            Value::Int(None) => Some(None),
            Value::Int(Some(_)) => None,
        }
    }
}
