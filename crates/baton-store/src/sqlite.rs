//! [`SqliteStore`]: the [`Store`] in an embedded SQLite file.
//!
//! Durability: WAL journal and `synchronous = FULL`, so a commit is on disk before
//! [`Store::apply`] returns and a `kill -9` or a power cut loses nothing acknowledged.
//!
//! Writes: one dedicated writer thread owns the only write connection. Every write (a
//! [`Change`], an account, a session, a key, a widget token) is a job on its channel. The
//! writer waits for a job, takes every job already queued behind it (at most 512), and commits
//! them together: `BEGIN IMMEDIATE`, every job, one `COMMIT` (one fsync for the batch), and only
//! then answers each job. Under load this turns many small transactions into a few large ones.
//! When a job of the batch fails (its guard does not hold, a duplicate turn), the batch is
//! rolled back and run again with each job in its own `SAVEPOINT`: the failed job is rolled
//! back to its savepoint and answers its error, the others go on. Savepoints cost a copy of
//! every page a job changes, so the common batch, where every job succeeds, goes without.
//!
//! Checkpoints: a second thread copies committed pages from the WAL into the database file
//! (`PRAGMA wal_checkpoint(PASSIVE)`, at most every 50 ms while writes come in), so no commit
//! waits for a checkpoint. SQLite's own automatic checkpoint, which runs inside the commit
//! that crosses 1,000 WAL pages and holds up the whole batch behind it, is off. A WAL only
//! starts over from its beginning when a write begins after a checkpoint has copied all of
//! it, which a busy writer never allows; so once the WAL has grown past 16 MiB the
//! checkpointer asks the writer, which runs a `RESTART` checkpoint between two batches
//! (copying the few pages the passive one left), and the WAL file stays bounded.
//!
//! Faults: when a statement or the `COMMIT` fails because the disk is full, on an I/O error,
//! a read-only or vanished file, or a lock held by another process, the whole batch is rolled
//! back and every job of it answers [`StoreError::Unavailable`]: nothing is acknowledged that
//! is not committed. The writer goes on with the next batch (reopening its connection after an
//! I/O error), so service resumes by itself once the cause is gone. The cause is logged once
//! per episode (`error` when writes start failing, `info` when they succeed again).
//!
//! Reads: up to four read connections, opened when first needed, used on tokio's blocking
//! threads; each read sees every change committed before it began.
//!
//! Schema: `migrations/*.sql`, embedded, applied in order and tracked by `PRAGMA
//! user_version`. Files written by earlier versions of Baton (which tracked migrations in a
//! `_sqlx_migrations` table) are recognised and carried on from the version they reached.

use crate::{
    AccountRole, AgentChange, ApiKey, Applied, AuditEntry, AuditRecord, Change, ConversationChange,
    ConversationRecord, ConversationUpdate, EventKind, EventRecord, Guard, NewEvent, NewTurn,
    Pending, Result, SlaChange, SlaKind, SlaTimer, Store, StoreError, TurnRecord, User,
};
use async_trait::async_trait;
use baton_domain::{
    Agent, AgentId, AgentStatus, ConversationId, HandoffState, IdError, QueueName, Turn,
};
use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension, Row};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::{oneshot, Semaphore};

/// The schema, in order: migration `i` (0-based) brings the file to `user_version` `i + 1`.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_init.sql"),
    include_str!("../migrations/0002_routing.sql"),
    include_str!("../migrations/0003_accounts.sql"),
    include_str!("../migrations/0004_audit.sql"),
];

/// Most jobs committed in one transaction.
const MAX_BATCH: usize = 512;
/// Read connections kept open (and reads running at once).
const READERS: usize = 4;
/// How long a connection waits for a lock held by another process before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Prepared statements cached per connection.
const STATEMENT_CACHE: usize = 64;
/// Page cache of the write connection, KiB (SQLite's default is 2 MiB): the pages a batch
/// touches (the indexes' leaves across every busy conversation) stay in memory, so the writer
/// rarely reads the file.
const WRITER_CACHE_KIB: i64 = 64 * 1024;
/// Page cache of each read connection, KiB.
const READER_CACHE_KIB: i64 = 16 * 1024;
/// The least time between two checkpoints while writes come in.
const CHECKPOINT_PAUSE: Duration = Duration::from_millis(50);
/// WAL pages past which a checkpoint also restarts the WAL (4,096 pages of 4 KiB: 16 MiB).
const WAL_RESTART_PAGES: i64 = 4096;

const REASON_FULL: &str = "disk full";
const REASON_IO: &str = "I/O error";
const REASON_READONLY: &str = "the database file is read-only";
const REASON_CANTOPEN: &str = "the database file cannot be opened";
const REASON_BUSY: &str = "the database is locked by another process";
const REASON_NOTADB: &str = "the file is not a SQLite database";

/// The store in a SQLite file. Cheap to share behind an `Arc`; see the [module
/// docs](self) for how it writes.
pub struct SqliteStore {
    shared: Arc<Shared>,
}

struct Shared {
    path: PathBuf,
    /// The writer's channel; `None` once closed.
    sender: RwLock<Option<mpsc::Sender<Job>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    readers: Mutex<Vec<Connection>>,
    read_permits: Semaphore,
    closed: AtomicBool,
    stats: Arc<Stats>,
}

#[derive(Default)]
struct Stats {
    commits: AtomicU64,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.shared.path)
            .field("closed", &self.shared.closed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// A write for the writer thread.
enum Job {
    Apply(Box<(Change, Encoded)>, oneshot::Sender<Result<Applied>>),
    Write(WriteOp, oneshot::Sender<Result<()>>),
    /// A connection setting, run between batches.
    Control(Control, oneshot::Sender<Result<u64>>),
}

/// Writes that are not handoff commands.
enum WriteOp {
    UpsertUser {
        id: String,
        password_hash: String,
        role: AccountRole,
        at: i64,
    },
    CreateSession {
        token_hash: String,
        user: String,
        at: i64,
        expires_at: i64,
    },
    DeleteSession {
        token_hash: String,
    },
    DeleteUser {
        id: String,
    },
    RevokeApiKey {
        id: String,
        at: i64,
    },
    Audit(AuditEntry),
    CreateApiKey {
        id: String,
        key_hash: String,
        name: String,
        scopes: String,
        at: i64,
    },
    CreateWidgetToken {
        token_hash: String,
        conversation: String,
    },
}

enum Control {
    MaxPageCount(u64),
}

/// What a job of a committed batch answers.
enum Done {
    Applied(Applied),
    Written,
}

impl SqliteStore {
    /// Opens the database at `url` and migrates it: `sqlite://PATH` or `sqlite:PATH` (a
    /// relative `PATH` is from the working directory; `sqlite:///abs/path` is absolute; a
    /// `?query` is ignored). The file is created if missing; its directory must exist.
    ///
    /// # Errors
    /// [`StoreError::UnsupportedUrl`] for another scheme; [`StoreError::Open`] when the file
    /// cannot be opened or migrated (the message names the path, and a missing directory);
    /// the message is complete, print it as it is.
    pub async fn open(url: &str) -> Result<SqliteStore> {
        Self::open_with(url, Durability::Full).await
    }

    /// Opens a store whose contents are thrown away after the run (`baton replay`'s): as
    /// [`SqliteStore::open`], but a commit does not wait for the disk (`synchronous = OFF`),
    /// so a crash may lose or corrupt it.
    ///
    /// # Errors
    /// As [`SqliteStore::open`].
    pub async fn open_scratch(url: &str) -> Result<SqliteStore> {
        Self::open_with(url, Durability::Scratch).await
    }

    async fn open_with(url: &str, durability: Durability) -> Result<SqliteStore> {
        let path = parse_url(url)?;
        tokio::task::spawn_blocking(move || SqliteStore::open_blocking(path, durability))
            .await
            .map_err(|e| StoreError::Open(format!("cannot open the database: {e}")))?
    }

    fn open_blocking(path: PathBuf, durability: Durability) -> Result<SqliteStore> {
        check_directory(&path)?;
        let mut conn = open_writer(&path, durability)?;
        migrate(&mut conn).map_err(|e| open_error(&path, &e))?;
        let stats = Arc::new(Stats::default());
        let (sender, receiver) = mpsc::channel();
        let writer = Writer {
            path: path.clone(),
            durability,
            conn: Some(conn),
            stats: Arc::clone(&stats),
            failing: None,
            restart: Arc::new(AtomicBool::new(false)),
        };
        let handle = std::thread::Builder::new()
            .name("baton-store-writer".into())
            .spawn(move || writer.run(&receiver))
            .map_err(|e| {
                StoreError::Open(format!(
                    "cannot open database `{}`: cannot start the writer thread: {e}",
                    path.display()
                ))
            })?;
        Ok(SqliteStore {
            shared: Arc::new(Shared {
                path,
                sender: RwLock::new(Some(sender)),
                writer: Mutex::new(Some(handle)),
                readers: Mutex::new(Vec::new()),
                read_permits: Semaphore::new(READERS),
                closed: AtomicBool::new(false),
                stats,
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// How many write transactions the writer has committed since the store was opened. One
    /// commit holds a whole batch of concurrent writes, so under load this grows more slowly
    /// than the number of writes.
    pub fn commits(&self) -> u64 {
        self.shared.stats.commits.load(Ordering::Relaxed)
    }

    /// Limits the file to `pages` database pages on the writer connection (SQLite's `PRAGMA
    /// max_page_count`), so that writes needing more space fail as if the disk were full:
    /// for tests of the disk-full path. Returns the limit in force, which SQLite never sets
    /// below the file's current size (so `1` means "no growth from here"). The limit lasts
    /// until it is raised again or the writer reopens its connection.
    ///
    /// # Errors
    /// [`StoreError::Closed`] after [`Store::close`]; [`StoreError::Database`] if SQLite
    /// refuses.
    pub async fn set_max_page_count(&self, pages: u64) -> Result<u64> {
        self.submit_job(|reply| Job::Control(Control::MaxPageCount(pages), reply))
            .await
    }

    /// Queues a job for the writer; the receiver gets its answer.
    fn enqueue<T>(
        &self,
        job: impl FnOnce(oneshot::Sender<Result<T>>) -> Job,
    ) -> Result<oneshot::Receiver<Result<T>>> {
        let (reply, answer) = oneshot::channel();
        let sender = self
            .shared
            .sender
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(sender) = sender.as_ref() else {
            return Err(StoreError::Closed);
        };
        sender.send(job(reply)).map_err(|_| StoreError::Closed)?;
        Ok(answer)
    }

    /// Queues a job and waits for its answer.
    async fn submit_job<T>(
        &self,
        job: impl FnOnce(oneshot::Sender<Result<T>>) -> Job,
    ) -> Result<T> {
        let answer = self.enqueue(job)?;
        answer.await.map_err(|_| writer_stopped())?
    }

    async fn write(&self, op: WriteOp) -> Result<()> {
        self.submit_job(|reply| Job::Write(op, reply)).await
    }

    /// Runs `f` on a read connection on a blocking thread.
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        let _permit = self
            .shared
            .read_permits
            .acquire()
            .await
            .map_err(|_| StoreError::Closed)?;
        let shared = Arc::clone(&self.shared);
        tokio::task::spawn_blocking(move || {
            let conn = shared.take_reader()?;
            let result = f(&conn);
            let broken = matches!(&result, Err(e) if needs_reopen(e));
            if !broken {
                shared.put_reader(conn);
            }
            result
        })
        .await
        .map_err(|e| StoreError::Database(format!("a read failed: {e}")))?
    }
}

impl Shared {
    fn take_reader(&self) -> Result<Connection> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        let pooled = self
            .readers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        match pooled {
            Some(conn) => Ok(conn),
            None => open_reader(&self.path),
        }
    }

    fn put_reader(&self, conn: Connection) {
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        let mut readers = self.readers.lock().unwrap_or_else(PoisonError::into_inner);
        if readers.len() < READERS {
            readers.push(conn);
        }
    }
}

fn writer_stopped() -> StoreError {
    StoreError::Database("the storage writer thread stopped unexpectedly".into())
}

/// The file path of a `sqlite:` URL.
fn parse_url(url: &str) -> Result<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .ok_or_else(|| StoreError::UnsupportedUrl(url.to_owned()))?;
    let path = rest.split_once('?').map_or(rest, |(path, _)| path);
    if path.is_empty() || path.starts_with(":memory:") {
        return Err(StoreError::Open(format!(
            "cannot open database `{url}`: give a file path (e.g. sqlite://baton.db); \
             in-memory databases are not supported"
        )));
    }
    Ok(PathBuf::from(path))
}

fn check_directory(path: &Path) -> Result<()> {
    let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return Ok(());
    };
    if dir.is_dir() {
        return Ok(());
    }
    let what = if dir.exists() {
        "is not a directory"
    } else {
        "does not exist"
    };
    Err(StoreError::Open(format!(
        "cannot open database `{}`: directory `{}` {what}; create it (mkdir -p {}) or choose \
         another path",
        path.display(),
        dir.display(),
        dir.display()
    )))
}

fn open_error(path: &Path, e: &StoreError) -> StoreError {
    let why = match e {
        StoreError::Open(m) | StoreError::Database(m) | StoreError::Unavailable(m) => m.clone(),
        other => other.to_string(),
    };
    StoreError::Open(format!("cannot open database `{}`: {why}", path.display()))
}

/// Opens and configures the write connection.
/// Whether a commit waits for the disk.
#[derive(Debug, Clone, Copy)]
enum Durability {
    /// `synchronous = FULL`: an acknowledged commit survives a crash or power loss.
    Full,
    /// `synchronous = OFF`: for data thrown away after the run.
    Scratch,
}

fn open_writer(path: &Path, durability: Durability) -> Result<Connection> {
    let configure = || -> rusqlite::Result<Connection> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
                Some(format!(
                    "the file system does not support WAL (journal mode {mode})"
                )),
            ));
        }
        let synchronous = match durability {
            Durability::Full => "FULL",
            Durability::Scratch => "OFF",
        };
        conn.pragma_update(None, "synchronous", synchronous)?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // The checkpointer thread checkpoints; a commit never does.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(conn)
    };
    configure().map_err(|e| open_error(path, &describe(&e)))
}

/// Opens a read connection.
fn open_reader(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .db()?;
    conn.busy_timeout(BUSY_TIMEOUT).db()?;
    conn.pragma_update(None, "query_only", "ON").db()?;
    conn.pragma_update(None, "cache_size", -READER_CACHE_KIB)
        .db()?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// Brings the schema up to date in one transaction.
fn migrate(conn: &mut Connection) -> Result<()> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .db()?;
    let mut version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0)).db()?;
    if version == 0 {
        let sqlx: bool = tx
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations')",
                [],
                |r| r.get(0),
            )
            .db()?;
        if sqlx {
            version = tx
                .query_row(
                    "SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations WHERE success = 1",
                    [],
                    |r| r.get(0),
                )
                .db()?;
        }
    }
    let known = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
    if version > known {
        return Err(StoreError::Open(format!(
            "the database has schema version {version}, newer than this build of Baton knows \
             ({known}); use a newer Baton"
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate() {
        let target = i64::try_from(i + 1).unwrap_or(i64::MAX);
        if target > version {
            tx.execute_batch(sql)
                .map_err(|e| StoreError::Database(format!("migration {target} failed: {e}")))?;
        }
    }
    tx.pragma_update(None, "user_version", known).db()?;
    tx.commit().db()
}

/// Why a SQLite error means "cannot write now", if it does.
fn fault_reason(e: &rusqlite::Error) -> Option<&'static str> {
    let rusqlite::Error::SqliteFailure(err, _) = e else {
        return None;
    };
    Some(match err.code {
        ErrorCode::DiskFull => REASON_FULL,
        ErrorCode::SystemIoFailure => REASON_IO,
        ErrorCode::ReadOnly => REASON_READONLY,
        ErrorCode::CannotOpen => REASON_CANTOPEN,
        ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => REASON_BUSY,
        ErrorCode::NotADatabase => REASON_NOTADB,
        _ => return None,
    })
}

/// A SQLite error as a [`StoreError`]: faults become [`StoreError::Unavailable`].
fn describe(e: &rusqlite::Error) -> StoreError {
    match fault_reason(e) {
        Some(reason) => StoreError::Unavailable(reason.to_owned()),
        None => StoreError::Database(e.to_string()),
    }
}

/// Whether `e` means the database cannot write now (the batch must be abandoned).
fn is_fault(e: &StoreError) -> bool {
    matches!(e, StoreError::Unavailable(_))
}

/// Whether the connection that produced `e` should be replaced.
fn needs_reopen(e: &StoreError) -> bool {
    matches!(e, StoreError::Unavailable(r)
        if r == REASON_IO || r == REASON_CANTOPEN || r == REASON_NOTADB)
}

/// A fresh copy of a batch-level error, one for each job.
fn copy_error(e: &StoreError) -> StoreError {
    match e {
        StoreError::Unavailable(r) => StoreError::Unavailable(r.clone()),
        StoreError::Database(m) => StoreError::Database(m.clone()),
        StoreError::Closed => StoreError::Closed,
        other => StoreError::Database(other.to_string()),
    }
}

trait Db<T> {
    fn db(self) -> Result<T>;
}

impl<T> Db<T> for rusqlite::Result<T> {
    fn db(self) -> Result<T> {
        self.map_err(|e| describe(&e))
    }
}

/// Corrupt stored data, as [`StoreError::Corrupt`].
fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(serde_json::Error::io(std::io::Error::other(
        what.to_string(),
    )))
}

/// The writer thread's state.
struct Writer {
    path: PathBuf,
    durability: Durability,
    /// `None` after a fault that needs a fresh connection, until one opens.
    conn: Option<Connection>,
    stats: Arc<Stats>,
    /// The current fault episode's reason, while writes fail.
    failing: Option<String>,
    /// Set by the checkpointer when the WAL should start over.
    restart: Arc<AtomicBool>,
}

impl Writer {
    /// Commits batches until every sender is gone, with a checkpointer thread beside it that
    /// ends with it.
    fn run(mut self, receiver: &mpsc::Receiver<Job>) {
        let (wake, wakes) = mpsc::sync_channel(1);
        let path = self.path.clone();
        let restart = Arc::clone(&self.restart);
        let checkpointer = std::thread::Builder::new()
            .name("baton-store-checkpoint".into())
            .spawn(move || {
                Checkpointer {
                    path,
                    conn: None,
                    restart,
                }
                .run(&wakes);
            });
        if let Err(e) = &checkpointer {
            // Without it the WAL only grows: let SQLite checkpoint inside commits again.
            tracing::warn!("cannot start the checkpoint thread ({e}): commits checkpoint");
            if let Some(conn) = &self.conn {
                let _ = conn.pragma_update(None, "wal_autocheckpoint", 1000);
            }
        }
        self.commit_all(receiver, &wake);
        drop(wake);
        if let Ok(handle) = checkpointer {
            let _ = handle.join();
        }
    }

    fn commit_all(&mut self, receiver: &mpsc::Receiver<Job>, wake: &mpsc::SyncSender<()>) {
        while let Ok(first) = receiver.recv() {
            let mut batch = Vec::new();
            let mut control = None;
            match first {
                Job::Control(c, reply) => {
                    self.control(&c, reply);
                    continue;
                }
                job => batch.push(job),
            }
            while batch.len() < MAX_BATCH {
                match receiver.try_recv() {
                    Ok(Job::Control(c, reply)) => {
                        control = Some((c, reply));
                        break;
                    }
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            if self.batch(batch) {
                // An error means a wake is already pending (or the checkpointer is gone).
                let _ = wake.try_send(());
            }
            if self.restart.swap(false, Ordering::AcqRel) {
                self.restart_wal();
            }
            if let Some((c, reply)) = control {
                self.control(&c, reply);
            }
        }
    }

    fn control(&mut self, control: &Control, reply: oneshot::Sender<Result<u64>>) {
        let result = match (self.connection(), control) {
            (Err(e), _) => Err(e),
            (Ok(conn), Control::MaxPageCount(pages)) => conn
                .pragma_update_and_check(None, "max_page_count", pages, |r| r.get::<_, i64>(0))
                .db()
                .map(|n| u64::try_from(n).unwrap_or(0)),
        };
        let _ = reply.send(result);
    }

    /// The write connection, reopened if a fault closed it.
    fn connection(&mut self) -> Result<&Connection> {
        if self.conn.is_none() {
            self.conn = Some(
                open_writer(&self.path, self.durability).map_err(|e| match e {
                    StoreError::Unavailable(r) => StoreError::Unavailable(r),
                    other => StoreError::Unavailable(format!(
                        "{REASON_CANTOPEN}: {}",
                        match other {
                            StoreError::Open(m) => m,
                            o => o.to_string(),
                        }
                    )),
                })?,
            );
        }
        match &self.conn {
            Some(conn) => Ok(conn),
            None => Err(StoreError::Unavailable(REASON_CANTOPEN.into())),
        }
    }

    /// Copies what is left of the WAL into the database file, so the next write starts the
    /// WAL over (see the [module docs](self)).
    fn restart_wal(&self) {
        if let Some(conn) = &self.conn {
            if let Err(e) = conn
                .query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(()))
                .db()
            {
                tracing::debug!(database = %self.path.display(), "WAL restart failed: {e}");
            }
        }
    }

    /// Commits `jobs` and answers each; whether the batch committed.
    fn batch(&mut self, jobs: Vec<Job>) -> bool {
        let result = match self.connection() {
            Ok(conn) => commit_batch(conn, &jobs),
            Err(e) => Err(e),
        };
        match result {
            Ok(outcomes) => {
                self.stats.commits.fetch_add(1, Ordering::Relaxed);
                if let Some(reason) = self.failing.take() {
                    tracing::info!(
                        database = %self.path.display(),
                        "storage writes succeed again (they had failed: {reason})"
                    );
                }
                for (job, outcome) in jobs.into_iter().zip(outcomes) {
                    answer(job, outcome);
                }
                true
            }
            Err(e) => {
                if needs_reopen(&e) {
                    self.conn = None;
                } else if self.conn.as_ref().is_some_and(|c| !c.is_autocommit()) {
                    // The rollback did not end the transaction: start over on a new connection.
                    self.conn = None;
                }
                if self.failing.is_none() {
                    tracing::error!(
                        database = %self.path.display(),
                        "storage writes fail: {e}; every write is refused until they succeed \
                         again (retried with each new write)"
                    );
                    self.failing = Some(e.to_string());
                }
                for job in jobs {
                    answer(job, Err(copy_error(&e)));
                }
                false
            }
        }
    }
}

/// The checkpoint thread (see the [module docs](self)): woken after commits, it copies the
/// WAL's committed pages into the database file on a connection of its own.
struct Checkpointer {
    path: PathBuf,
    /// The connection, and the database file to flush; `None` until opened, and after a
    /// failure, until they open again.
    conn: Option<(Connection, std::fs::File)>,
    /// Asks the writer to restart the WAL.
    restart: Arc<AtomicBool>,
}

impl Checkpointer {
    fn run(mut self, wakes: &mpsc::Receiver<()>) {
        while wakes.recv().is_ok() {
            if let Err(e) = self.checkpoint() {
                // The writer reports faults to the callers; here they only delay a checkpoint.
                tracing::debug!(database = %self.path.display(), "checkpoint failed: {e}");
                self.conn = None;
            }
            std::thread::sleep(CHECKPOINT_PAUSE);
        }
    }

    fn checkpoint(&mut self) -> Result<()> {
        if self.conn.is_none() {
            let conn = Connection::open_with_flags(
                &self.path,
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .db()?;
            conn.busy_timeout(BUSY_TIMEOUT).db()?;
            // No fsync of the WAL before copying: every commit in it is already on disk, and
            // flushing it would make the writer's next writes to those pages wait for the
            // disk. The database file is flushed below instead.
            conn.pragma_update(None, "synchronous", "OFF").db()?;
            let file = std::fs::File::open(&self.path)
                .map_err(|e| StoreError::Database(format!("cannot open the database file: {e}")))?;
            self.conn = Some((conn, file));
        }
        let Some((conn, file)) = &self.conn else {
            return Ok(());
        };
        // The row is (busy, pages in the WAL, pages copied).
        let (pages, copied): (i64, i64) = conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((r.get(1)?, r.get(2)?))
            })
            .db()?;
        if copied > 0 {
            // Durable before the WAL may start over: the writer's RESTART checkpoint, which
            // allows that, flushes the file again, and finds little left to write.
            file.sync_data().map_err(|e| {
                StoreError::Database(format!("cannot flush the database file: {e}"))
            })?;
        }
        if pages >= WAL_RESTART_PAGES {
            self.restart.store(true, Ordering::Release);
        }
        Ok(())
    }
}

fn answer(job: Job, outcome: Result<Done>) {
    match job {
        Job::Apply(_, reply) => {
            let _ = reply.send(outcome.map(|d| match d {
                Done::Applied(applied) => applied,
                Done::Written => Applied::default(),
            }));
        }
        Job::Write(_, reply) => {
            let _ = reply.send(outcome.map(|_| ()));
        }
        Job::Control(_, reply) => {
            let _ = reply.send(Err(StoreError::Database("misrouted control job".into())));
        }
    }
}

fn exec(conn: &Connection, sql: &str) -> Result<()> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.execute([]))
        .db()?;
    Ok(())
}

/// Runs `jobs` in one transaction (see the [module docs](self) for a job that fails). `Err`
/// when the batch as a whole failed (nothing of it is committed); otherwise each job's own
/// outcome.
fn commit_batch(conn: &Connection, jobs: &[Job]) -> Result<Vec<Result<Done>>> {
    exec(conn, "BEGIN IMMEDIATE")?;
    // Every job at once; at the first that fails, the batch again with savepoints.
    let mut outcomes = Vec::with_capacity(jobs.len());
    for job in jobs {
        match run_job(conn, job) {
            Ok(done) => outcomes.push(Ok(done)),
            Err(e) if is_fault(&e) => return abort(conn, e),
            Err(_) => {
                exec(conn, "ROLLBACK")?;
                return commit_separately(conn, jobs);
            }
        }
    }
    commit(conn, outcomes)
}

/// [`commit_batch`] with each job in a savepoint, for a batch in which a job fails.
fn commit_separately(conn: &Connection, jobs: &[Job]) -> Result<Vec<Result<Done>>> {
    exec(conn, "BEGIN IMMEDIATE")?;
    let mut outcomes = Vec::with_capacity(jobs.len());
    for job in jobs {
        if let Err(e) = exec(conn, "SAVEPOINT job") {
            return abort(conn, e);
        }
        match run_job(conn, job) {
            Ok(done) => {
                if let Err(e) = exec(conn, "RELEASE job") {
                    return abort(conn, e);
                }
                outcomes.push(Ok(done));
            }
            Err(e) if is_fault(&e) => return abort(conn, e),
            Err(e) => {
                if let Err(e) =
                    exec(conn, "ROLLBACK TO job").and_then(|()| exec(conn, "RELEASE job"))
                {
                    return abort(conn, e);
                }
                outcomes.push(Err(e));
            }
        }
    }
    commit(conn, outcomes)
}

fn run_job(conn: &Connection, job: &Job) -> Result<Done> {
    match job {
        Job::Apply(job, _) => apply_change(conn, &job.0, &job.1).map(Done::Applied),
        Job::Write(op, _) => write_op(conn, op).map(|()| Done::Written),
        Job::Control(..) => Err(StoreError::Database("misrouted control job".into())),
    }
}

/// Commits the open transaction; `outcomes` once it is durable.
fn commit(conn: &Connection, outcomes: Vec<Result<Done>>) -> Result<Vec<Result<Done>>> {
    match exec(conn, "COMMIT") {
        Ok(()) => Ok(outcomes),
        Err(e) => abort(conn, e),
    }
}

/// Rolls the open transaction back; the batch fails with `e`.
fn abort<T>(conn: &Connection, e: StoreError) -> Result<T> {
    let _ = conn.execute_batch("ROLLBACK");
    Err(e)
}

fn write_op(conn: &Connection, op: &WriteOp) -> Result<()> {
    let run = |sql: &str, params: &[&dyn rusqlite::ToSql]| -> Result<()> {
        conn.prepare_cached(sql)
            .and_then(|mut s| s.execute(params))
            .db()?;
        Ok(())
    };
    match op {
        WriteOp::UpsertUser {
            id,
            password_hash,
            role,
            at,
        } => {
            run(
                "INSERT INTO users (id, password_hash, role, created_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (id) DO UPDATE SET password_hash = excluded.password_hash, role = excluded.role",
                params![id, password_hash, role.as_str(), at],
            )?;
            run("DELETE FROM sessions WHERE user_id = ?1", params![id])
        }
        WriteOp::CreateSession {
            token_hash,
            user,
            at,
            expires_at,
        } => run(
            "INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
            params![token_hash, user, at, expires_at],
        ),
        WriteOp::DeleteSession { token_hash } => run(
            "DELETE FROM sessions WHERE token_hash = ?1",
            params![token_hash],
        ),
        WriteOp::DeleteUser { id } => {
            run("DELETE FROM sessions WHERE user_id = ?1", params![id])?;
            run("DELETE FROM users WHERE id = ?1", params![id])
        }
        WriteOp::Audit(e) => run(
            "INSERT INTO audit (at, actor, action, subject, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![e.at, e.actor, e.action, e.subject, e.detail],
        ),
        WriteOp::RevokeApiKey { id, at } => run(
            "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
            params![id, at],
        ),
        WriteOp::CreateApiKey {
            id,
            key_hash,
            name,
            scopes,
            at,
        } => run(
            "INSERT INTO api_keys (id, key_hash, name, scopes, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![id, key_hash, name, scopes, at],
        ),
        WriteOp::CreateWidgetToken {
            token_hash,
            conversation,
        } => run(
            "INSERT INTO widget_tokens (token_hash, conversation_id) VALUES (?1, ?2)",
            params![token_hash, conversation],
        ),
    }
}

/// Writes one change (inside the caller's savepoint).
/// The JSON texts of a change's conversation parts, in the order of its parts.
#[derive(Debug)]
struct Encoded(Vec<EncodedPart>);

/// One part's JSON texts.
#[derive(Debug, Default)]
struct EncodedPart {
    customer: Option<String>,
    brief: Option<String>,
    /// The turn's body, decision, signals and answer.
    turn: Option<[String; 4]>,
}

impl Encoded {
    fn of(change: &Change) -> Result<Self> {
        let parts = change
            .conversations
            .iter()
            .map(|part| {
                Ok(EncodedPart {
                    customer: match &part.guard {
                        Guard::Create { customer, .. } => Some(serde_json::to_string(customer)?),
                        _ => None,
                    },
                    brief: part
                        .update
                        .as_ref()
                        .and_then(|u| u.brief.as_ref())
                        .map(serde_json::to_string)
                        .transpose()?,
                    turn: part
                        .turn
                        .as_ref()
                        .map(|t| -> Result<[String; 4]> {
                            Ok([
                                serde_json::to_string(&t.turn)?,
                                t.decision.to_string(),
                                t.signals.to_string(),
                                t.response.to_string(),
                            ])
                        })
                        .transpose()?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Encoded(parts))
    }
}

fn apply_change(conn: &Connection, change: &Change, encoded: &Encoded) -> Result<Applied> {
    let at = change.at;
    let mut events = Vec::new();
    for (part, text) in change.conversations.iter().zip(&encoded.0) {
        apply_part(conn, part, text, at, &mut events)?;
    }
    for agent in &change.agents {
        apply_agent(conn, agent, at)?;
    }
    Ok(Applied { events })
}

fn apply_part(
    conn: &Connection,
    part: &ConversationChange,
    text: &EncodedPart,
    at: i64,
    events: &mut Vec<EventRecord>,
) -> Result<()> {
    let id = &part.id;
    match (&part.guard, &part.update) {
        // The state guard is the update's own WHERE: one statement instead of two.
        (Guard::State(expected), Some(update)) => {
            if update_conversation(conn, id, update, text, Some(*expected), at)? == 0 {
                return Err(StoreError::Stale {
                    conversation: id.clone(),
                    expected: *expected,
                });
            }
        }
        (guard, update) => {
            check_guard(conn, id, guard, text, at)?;
            if let Some(update) = update {
                update_conversation(conn, id, update, text, None, at)?;
            }
        }
    }
    if let (Some(turn), Some(texts)) = (&part.turn, &text.turn) {
        insert_turn(conn, id, turn, texts, at)?;
    }
    for event in &part.events {
        events.push(insert_event(conn, id, event, at)?);
    }
    for sla in &part.slas {
        apply_sla(conn, id, sla, at, events)?;
    }
    if let Some(score) = part.csat {
        conn.prepare_cached("UPDATE conversations SET csat = ?1 WHERE id = ?2")
            .and_then(|mut s| s.execute(params![i64::from(score), id.as_str()]))
            .db()?;
    }
    Ok(())
}

fn check_guard(
    conn: &Connection,
    id: &ConversationId,
    guard: &Guard,
    text: &EncodedPart,
    at: i64,
) -> Result<()> {
    match guard {
        Guard::Create { channel, .. } => {
            let customer = text.customer.as_deref().unwrap_or("{}");
            let inserted = conn
                .prepare_cached(
                    "INSERT INTO conversations (id, customer, channel, state, created_at, updated_at)
                     VALUES (?1, ?2, ?3, 'ai_active', ?4, ?4) ON CONFLICT (id) DO NOTHING",
                )
                .and_then(|mut s| s.execute(params![id.as_str(), customer, channel, at]))
                .db()?;
            if inserted == 0 {
                return Err(StoreError::Conflict(id.clone()));
            }
        }
        Guard::State(expected) => match current_state(conn, id)? {
            Some(state) if state == expected.as_str() => {}
            _ => {
                return Err(StoreError::Stale {
                    conversation: id.clone(),
                    expected: *expected,
                })
            }
        },
        Guard::Exists => {
            if current_state(conn, id)?.is_none() {
                return Err(StoreError::NotFound(id.clone()));
            }
        }
    }
    Ok(())
}

fn current_state(conn: &Connection, id: &ConversationId) -> Result<Option<String>> {
    conn.prepare_cached("SELECT state FROM conversations WHERE id = ?1")
        .and_then(|mut s| s.query_row([id.as_str()], |r| r.get(0)).optional())
        .db()
}

/// Writes an update, only where the state is still `expected` when given; the number of rows
/// changed (0 or 1).
fn update_conversation(
    conn: &Connection,
    id: &ConversationId,
    update: &ConversationUpdate,
    text: &EncodedPart,
    expected: Option<HandoffState>,
    at: i64,
) -> Result<usize> {
    conn.prepare_cached(
        "UPDATE conversations SET
            state = ?1, queue = ?2, priority = ?3, agent_id = ?4,
            brief = COALESCE(?5, brief), disposition = COALESCE(?6, disposition),
            language = COALESCE(?7, language), requested_agent = COALESCE(?8, requested_agent),
            queued_at = CASE WHEN ?1 IN ('queued', 'offered', 'assigned') AND state NOT IN ('queued', 'offered', 'assigned') THEN ?9 ELSE queued_at END,
            offered_at = CASE WHEN ?1 = 'offered' THEN ?9 ELSE offered_at END,
            assigned_at = CASE WHEN ?1 = 'assigned' AND state != 'assigned' THEN ?9 ELSE assigned_at END,
            resolved_at = CASE WHEN ?1 = 'resolved' THEN ?9 ELSE resolved_at END,
            updated_at = ?9
         WHERE id = ?10 AND (?11 IS NULL OR state = ?11)",
    )
    .and_then(|mut s| {
        s.execute(params![
            update.state.as_str(),
            update.queue.as_ref().map(QueueName::as_str),
            update.priority,
            update.agent_id.as_ref().map(AgentId::as_str),
            text.brief,
            update.disposition,
            update.language,
            update.requested_agent.as_ref().map(AgentId::as_str),
            at,
            id.as_str(),
            expected.map(HandoffState::as_str)
        ])
    })
    .db()
}

fn insert_turn(
    conn: &Connection,
    id: &ConversationId,
    turn: &NewTurn,
    [body, decision, signals, response]: &[String; 4],
    at: i64,
) -> Result<()> {
    let result = conn
        .prepare_cached(
            "INSERT INTO turns (conversation_id, seq, role, body, client_turn_id, decision, signals, response, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )
        .and_then(|mut s| {
            s.execute(params![
                id.as_str(),
                i64::try_from(turn.seq).unwrap_or(i64::MAX),
                turn.turn.role.as_str(),
                body,
                turn.turn.client_turn_id,
                decision,
                signals,
                response,
                at
            ])
        });
    match result {
        Ok(_) => Ok(()),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == ErrorCode::ConstraintViolation
                && (e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                    || e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE) =>
        {
            Err(StoreError::Duplicate {
                conversation: id.clone(),
                seq: turn.seq,
            })
        }
        Err(e) => Err(describe(&e)),
    }
}

fn insert_event(
    conn: &Connection,
    id: &ConversationId,
    event: &NewEvent,
    at: i64,
) -> Result<EventRecord> {
    let mut stmt = conn
        .prepare_cached(
            "INSERT INTO events (conversation_id, kind, from_state, to_state, actor, reason, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .db()?;
    let rowid = stmt
        .insert(params![
            id.as_str(),
            event.kind.as_str(),
            event.from.map(HandoffState::as_str),
            event.to.map(HandoffState::as_str),
            event.actor,
            event.reason,
            at
        ])
        .db()?;
    Ok(EventRecord {
        id: rowid,
        conversation_id: id.clone(),
        kind: event.kind,
        from_state: event.from,
        to_state: event.to,
        actor: event.actor.clone(),
        reason: event.reason.clone(),
        at,
    })
}

fn apply_sla(
    conn: &Connection,
    id: &ConversationId,
    sla: &SlaChange,
    at: i64,
    events: &mut Vec<EventRecord>,
) -> Result<()> {
    match sla {
        SlaChange::Start(timer) => {
            conn.prepare_cached(
                "INSERT INTO sla_timers (conversation_id, kind, queue, started_at, warn_at, due_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (conversation_id, kind) DO UPDATE SET
                   queue = excluded.queue, started_at = excluded.started_at, warn_at = excluded.warn_at,
                   due_at = excluded.due_at, warned = 0, breached = 0, stopped_at = NULL
                 WHERE sla_timers.stopped_at IS NOT NULL",
            )
            .and_then(|mut s| {
                s.execute(params![
                    id.as_str(),
                    timer.kind.as_str(),
                    timer.queue.as_str(),
                    timer.started_at,
                    timer.warn_at,
                    timer.due_at
                ])
            })
            .db()?;
        }
        SlaChange::Stop(kind) => {
            conn.prepare_cached(
                "UPDATE sla_timers SET stopped_at = ?1
                 WHERE conversation_id = ?2 AND (?3 IS NULL OR kind = ?3) AND stopped_at IS NULL",
            )
            .and_then(|mut s| s.execute(params![at, id.as_str(), kind.map(SlaKind::as_str)]))
            .db()?;
        }
        SlaChange::Fire {
            kind,
            breach,
            event,
        } => {
            let sql = if *breach {
                "UPDATE sla_timers SET breached = 1, warned = 1
                 WHERE conversation_id = ?1 AND kind = ?2 AND breached = 0 AND stopped_at IS NULL"
            } else {
                "UPDATE sla_timers SET warned = 1
                 WHERE conversation_id = ?1 AND kind = ?2 AND warned = 0 AND stopped_at IS NULL"
            };
            let fired = conn
                .prepare_cached(sql)
                .and_then(|mut s| s.execute(params![id.as_str(), kind.as_str()]))
                .db()?;
            if fired > 0 {
                events.push(insert_event(conn, id, event, at)?);
            }
        }
    }
    Ok(())
}

fn status_name(status: AgentStatus) -> Result<String> {
    match serde_json::to_value(status)? {
        serde_json::Value::String(s) => Ok(s),
        other => Err(corrupt(format!("agent status serialised as {other}"))),
    }
}

fn apply_agent(conn: &Connection, change: &AgentChange, at: i64) -> Result<()> {
    match change {
        AgentChange::Upsert(agent) => {
            let skills = serde_json::to_string(&agent.skills)?;
            let languages = serde_json::to_string(&agent.languages)?;
            let status = status_name(agent.status)?;
            conn.prepare_cached(
                "INSERT INTO agents (id, name, skills, languages, capacity, status, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, skills = excluded.skills,
                   languages = excluded.languages, capacity = excluded.capacity,
                   status = excluded.status, updated_at = excluded.updated_at",
            )
            .and_then(|mut s| {
                s.execute(params![
                    agent.id.as_str(),
                    agent.name,
                    skills,
                    languages,
                    i64::from(agent.capacity),
                    status,
                    at
                ])
            })
            .db()?;
        }
        AgentChange::Status { id, status } => {
            let status = status_name(*status)?;
            conn.prepare_cached("UPDATE agents SET status = ?1, updated_at = ?2 WHERE id = ?3")
                .and_then(|mut s| s.execute(params![status, at, id.as_str()]))
                .db()?;
        }
    }
    Ok(())
}

// ---- reads ----

const CONVERSATION_COLUMNS: &str = "id, customer, channel, state, queue, priority, queued_at, \
     agent_id, brief, disposition, created_at, language, requested_agent, offered_at, \
     assigned_at, csat";

const SLA_COLUMNS: &str =
    "conversation_id, kind, queue, started_at, warn_at, due_at, warned, breached, stopped_at";

const EVENT_COLUMNS: &str = "id, conversation_id, kind, from_state, to_state, actor, reason, at";

/// Every row of `sql`, each through `f`.
fn query_all<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    f: impl Fn(&Row<'_>) -> Result<T>,
) -> Result<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql).db()?;
    let mut rows = stmt.query(params).db()?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().db()? {
        out.push(f(row)?);
    }
    Ok(out)
}

/// The first row of `sql`, through `f`.
fn query_opt<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    f: impl Fn(&Row<'_>) -> Result<T>,
) -> Result<Option<T>> {
    let mut stmt = conn.prepare_cached(sql).db()?;
    let mut rows = stmt.query(params).db()?;
    match rows.next().db()? {
        Some(row) => f(row).map(Some),
        None => Ok(None),
    }
}

fn col<T: rusqlite::types::FromSql>(row: &Row<'_>, name: &str) -> Result<T> {
    row.get(name).db()
}

/// An id (conversation, agent or queue) from column `name` of `table`; one that does not parse
/// is [`StoreError::Corrupt`], naming the column.
fn id_col<T: TryFrom<String, Error = IdError>>(
    row: &Row<'_>,
    table: &str,
    name: &str,
) -> Result<T> {
    parse_id(col::<String>(row, name)?, table, name)
}

/// [`id_col`] of a nullable column.
fn opt_id_col<T: TryFrom<String, Error = IdError>>(
    row: &Row<'_>,
    table: &str,
    name: &str,
) -> Result<Option<T>> {
    col::<Option<String>>(row, name)?
        .map(|value| parse_id(value, table, name))
        .transpose()
}

fn parse_id<T: TryFrom<String, Error = IdError>>(
    value: String,
    table: &str,
    name: &str,
) -> Result<T> {
    T::try_from(value).map_err(|e| corrupt(format!("{table}.{name}: {e}")))
}

fn json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T> {
    Ok(serde_json::from_str(text)?)
}

fn state(name: &str) -> Result<HandoffState> {
    HandoffState::parse(name).ok_or_else(|| corrupt(format!("unknown handoff state `{name}`")))
}

fn conversation_from_row(r: &Row<'_>) -> Result<ConversationRecord> {
    Ok(ConversationRecord {
        id: id_col(r, "conversations", "id")?,
        customer: json(&col::<String>(r, "customer")?)?,
        channel: col(r, "channel")?,
        state: state(&col::<String>(r, "state")?)?,
        queue: opt_id_col(r, "conversations", "queue")?,
        priority: col(r, "priority")?,
        queued_at: col(r, "queued_at")?,
        agent_id: opt_id_col(r, "conversations", "agent_id")?,
        brief: col::<Option<String>>(r, "brief")?
            .map(|b| json(&b))
            .transpose()?,
        disposition: col(r, "disposition")?,
        created_at: col(r, "created_at")?,
        language: col(r, "language")?,
        requested_agent: opt_id_col(r, "conversations", "requested_agent")?,
        offered_at: col(r, "offered_at")?,
        assigned_at: col(r, "assigned_at")?,
        csat: col::<Option<i64>>(r, "csat")?.and_then(|v| u8::try_from(v).ok()),
    })
}

fn event_from_row(r: &Row<'_>) -> Result<EventRecord> {
    let kind: String = col(r, "kind")?;
    Ok(EventRecord {
        id: col(r, "id")?,
        conversation_id: id_col(r, "events", "conversation_id")?,
        kind: EventKind::parse(&kind)
            .ok_or_else(|| corrupt(format!("unknown event kind `{kind}`")))?,
        from_state: col::<Option<String>>(r, "from_state")?
            .map(|s| state(&s))
            .transpose()?,
        to_state: col::<Option<String>>(r, "to_state")?
            .map(|s| state(&s))
            .transpose()?,
        actor: col(r, "actor")?,
        reason: col(r, "reason")?,
        at: col(r, "at")?,
    })
}

fn sla_from_row(r: &Row<'_>) -> Result<SlaTimer> {
    let kind: String = col(r, "kind")?;
    Ok(SlaTimer {
        conversation_id: id_col(r, "sla_timers", "conversation_id")?,
        kind: SlaKind::parse(&kind).ok_or_else(|| corrupt(format!("unknown SLA kind `{kind}`")))?,
        queue: id_col(r, "sla_timers", "queue")?,
        started_at: col(r, "started_at")?,
        warn_at: col(r, "warn_at")?,
        due_at: col(r, "due_at")?,
        warned: col::<i64>(r, "warned")? != 0,
        breached: col::<i64>(r, "breached")? != 0,
        stopped_at: col(r, "stopped_at")?,
    })
}

fn agent_from_row(r: &Row<'_>) -> Result<Agent> {
    Ok(Agent {
        id: id_col(r, "agents", "id")?,
        name: col(r, "name")?,
        skills: json(&col::<String>(r, "skills")?)?,
        languages: json(&col::<String>(r, "languages")?)?,
        capacity: u32::try_from(col::<i64>(r, "capacity")?).unwrap_or(1),
        status: serde_json::from_value(serde_json::Value::String(col(r, "status")?))?,
    })
}

fn user_from_row(r: &Row<'_>) -> Result<User> {
    let role: String = col(r, "role")?;
    Ok(User {
        id: col(r, "id")?,
        password_hash: col(r, "password_hash")?,
        role: AccountRole::parse(&role)
            .ok_or_else(|| corrupt(format!("unknown account role `{role}`")))?,
    })
}

#[async_trait]
impl Store for SqliteStore {
    fn submit(&self, change: Change) -> Pending {
        if change.is_empty() {
            let closed = self.shared.closed.load(Ordering::Acquire);
            return Box::pin(async move {
                if closed {
                    Err(StoreError::Closed)
                } else {
                    Ok(Applied::default())
                }
            });
        }
        // The JSON texts are made here, on the caller's thread, so the one writer thread only
        // runs SQL.
        let encoded = match Encoded::of(&change) {
            Ok(e) => e,
            Err(e) => return Box::pin(async move { Err(e) }),
        };
        match self.enqueue(|reply| Job::Apply(Box::new((change, encoded)), reply)) {
            Ok(answer) => Box::pin(async move { answer.await.map_err(|_| writer_stopped())? }),
            Err(e) => Box::pin(async move { Err(e) }),
        }
    }

    async fn conversation(&self, id: &ConversationId) -> Result<Option<ConversationRecord>> {
        let id = id.as_str().to_owned();
        self.read(move |c| {
            query_opt(
                c,
                &format!("SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = ?1"),
                [id],
                conversation_from_row,
            )
        })
        .await
    }

    async fn turns(&self, id: &ConversationId) -> Result<Vec<TurnRecord>> {
        let id = id.as_str().to_owned();
        self.read(move |c| {
            query_all(
                c,
                "SELECT seq, body, decision, signals, created_at FROM turns
                 WHERE conversation_id = ?1 ORDER BY seq",
                [id],
                |r| {
                    let opt = |name: &str| -> Result<Option<serde_json::Value>> {
                        col::<Option<String>>(r, name)?
                            .map(|s| json(&s))
                            .transpose()
                    };
                    Ok(TurnRecord {
                        seq: col(r, "seq")?,
                        turn: json(&col::<String>(r, "body")?)?,
                        decision: opt("decision")?,
                        signals: opt("signals")?,
                        created_at: col(r, "created_at")?,
                    })
                },
            )
        })
        .await
    }

    async fn turn_by_client_id(
        &self,
        id: &ConversationId,
        client_turn_id: &str,
    ) -> Result<Option<(Turn, serde_json::Value)>> {
        let (id, client) = (id.as_str().to_owned(), client_turn_id.to_owned());
        self.read(move |c| {
            query_opt(
                c,
                "SELECT body, response FROM turns WHERE conversation_id = ?1 AND client_turn_id = ?2",
                [id, client],
                |r| {
                    let turn: Turn = json(&col::<String>(r, "body")?)?;
                    let response = match col::<Option<String>>(r, "response")? {
                        Some(text) => json(&text)?,
                        None => serde_json::Value::Null,
                    };
                    Ok((turn, response))
                },
            )
        })
        .await
    }

    async fn events(&self, id: &ConversationId) -> Result<Vec<EventRecord>> {
        let id = id.as_str().to_owned();
        self.read(move |c| {
            query_all(
                c,
                &format!(
                    "SELECT {EVENT_COLUMNS} FROM events WHERE conversation_id = ?1 ORDER BY id"
                ),
                [id],
                event_from_row,
            )
        })
        .await
    }

    async fn events_after(
        &self,
        after: i64,
        conversation: Option<&ConversationId>,
        limit: u32,
    ) -> Result<Vec<EventRecord>> {
        let conversation = conversation.map(|id| id.as_str().to_owned());
        self.read(move |c| match conversation {
            Some(id) => query_all(
                c,
                &format!(
                    "SELECT {EVENT_COLUMNS} FROM events WHERE conversation_id = ?1 AND id > ?2
                     ORDER BY id LIMIT ?3"
                ),
                params![id, after, i64::from(limit)],
                event_from_row,
            ),
            None => query_all(
                c,
                &format!("SELECT {EVENT_COLUMNS} FROM events WHERE id > ?1 ORDER BY id LIMIT ?2"),
                params![after, i64::from(limit)],
                event_from_row,
            ),
        })
        .await
    }

    async fn last_event_id(&self) -> Result<i64> {
        self.read(|c| {
            c.prepare_cached("SELECT COALESCE(MAX(id), 0) FROM events")
                .and_then(|mut s| s.query_row([], |r| r.get(0)))
                .db()
        })
        .await
    }

    async fn agent_conversations(&self, agent: &AgentId) -> Result<Vec<ConversationId>> {
        let agent = agent.as_str().to_owned();
        self.read(move |c| {
            query_all(
                c,
                "SELECT id FROM conversations WHERE agent_id = ?1 AND state IN ('offered', 'assigned')
                 ORDER BY updated_at, id",
                [agent],
                |r| id_col(r, "conversations", "id"),
            )
        })
        .await
    }

    async fn waiting_records(&self, queue: &QueueName) -> Result<Vec<ConversationRecord>> {
        let queue = queue.as_str().to_owned();
        self.read(move |c| {
            query_all(
                c,
                &format!(
                    "SELECT {CONVERSATION_COLUMNS} FROM conversations
                     WHERE queue = ?1 AND state IN ('queued', 'offered')
                     ORDER BY priority DESC, queued_at, id"
                ),
                [queue],
                conversation_from_row,
            )
        })
        .await
    }

    async fn routing_records(&self) -> Result<Vec<ConversationRecord>> {
        self.read(|c| {
            query_all(
                c,
                &format!(
                    "SELECT {CONVERSATION_COLUMNS} FROM conversations
                     WHERE state IN ('queued', 'offered', 'assigned') ORDER BY queued_at, id"
                ),
                [],
                conversation_from_row,
            )
        })
        .await
    }

    async fn recent_escalations(&self, limit: u32) -> Result<Vec<ConversationRecord>> {
        self.read(move |c| {
            query_all(
                c,
                &format!(
                    "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE brief IS NOT NULL
                     ORDER BY updated_at DESC, id DESC LIMIT ?1"
                ),
                [i64::from(limit)],
                conversation_from_row,
            )
        })
        .await
    }

    async fn answered_since(
        &self,
        queue: &QueueName,
        since: i64,
        sla_ms: i64,
    ) -> Result<(u64, u64)> {
        let queue = queue.as_str().to_owned();
        self.read(move |c| {
            let (n, ok): (i64, i64) = c
                .prepare_cached(
                    "SELECT COUNT(*), COALESCE(SUM(assigned_at - queued_at <= ?1), 0) FROM conversations
                     WHERE queue = ?2 AND assigned_at >= ?3 AND queued_at IS NOT NULL",
                )
                .and_then(|mut s| {
                    s.query_row(params![sla_ms, queue, since], |r| Ok((r.get(0)?, r.get(1)?)))
                })
                .db()?;
            Ok((
                u64::try_from(n).unwrap_or(0),
                u64::try_from(ok).unwrap_or(0),
            ))
        })
        .await
    }

    async fn handle_time(&self, queue: &QueueName) -> Result<(Option<f64>, i64)> {
        let queue = queue.as_str().to_owned();
        self.read(move |c| {
            c.prepare_cached(
                "SELECT AVG(resolved_at - assigned_at), COUNT(*) FROM (
                    SELECT resolved_at, assigned_at FROM conversations
                    WHERE queue = ?1 AND state = 'resolved' AND assigned_at IS NOT NULL
                      AND resolved_at IS NOT NULL
                    ORDER BY resolved_at DESC LIMIT 200)",
            )
            .and_then(|mut s| {
                s.query_row([queue], |r| {
                    Ok((r.get::<_, Option<f64>>(0)?.map(|ms| ms / 1000.0), r.get(1)?))
                })
            })
            .db()
        })
        .await
    }

    async fn slas(&self, id: &ConversationId) -> Result<Vec<SlaTimer>> {
        let id = id.as_str().to_owned();
        self.read(move |c| {
            query_all(
                c,
                &format!(
                    "SELECT {SLA_COLUMNS} FROM sla_timers WHERE conversation_id = ?1 ORDER BY kind"
                ),
                [id],
                sla_from_row,
            )
        })
        .await
    }

    async fn running_slas(&self) -> Result<Vec<SlaTimer>> {
        self.read(|c| {
            query_all(
                c,
                &format!(
                    "SELECT {SLA_COLUMNS} FROM sla_timers WHERE stopped_at IS NULL AND breached = 0
                     ORDER BY CASE WHEN warned = 0 THEN MIN(warn_at, due_at) ELSE due_at END,
                       conversation_id, kind"
                ),
                [],
                sla_from_row,
            )
        })
        .await
    }

    async fn open_sla_breaches(&self) -> Result<Vec<SlaTimer>> {
        self.read(|c| {
            query_all(
                c,
                &format!(
                    "SELECT {SLA_COLUMNS} FROM sla_timers WHERE stopped_at IS NULL AND breached = 1
                     ORDER BY due_at, conversation_id, kind LIMIT 200"
                ),
                [],
                sla_from_row,
            )
        })
        .await
    }

    async fn agents(&self) -> Result<Vec<Agent>> {
        self.read(|c| {
            query_all(
                c,
                "SELECT id, name, skills, languages, capacity, status FROM agents ORDER BY id",
                [],
                agent_from_row,
            )
        })
        .await
    }

    async fn agent(&self, id: &AgentId) -> Result<Option<Agent>> {
        let id = id.as_str().to_owned();
        self.read(move |c| {
            query_opt(
                c,
                "SELECT id, name, skills, languages, capacity, status FROM agents WHERE id = ?1",
                [id],
                agent_from_row,
            )
        })
        .await
    }

    async fn agent_loads(&self) -> Result<HashMap<AgentId, u32>> {
        self.read(|c| {
            let rows = query_all(
                c,
                "SELECT agent_id, COUNT(*) AS n FROM conversations
                 WHERE state = 'assigned' AND agent_id IS NOT NULL GROUP BY agent_id",
                [],
                |r| {
                    Ok((
                        id_col::<AgentId>(r, "conversations", "agent_id")?,
                        u32::try_from(col::<i64>(r, "n")?).unwrap_or(u32::MAX),
                    ))
                },
            )?;
            Ok(rows.into_iter().collect())
        })
        .await
    }

    async fn upsert_user(&self, id: &str, password_hash: &str, role: AccountRole) -> Result<()> {
        self.write(WriteOp::UpsertUser {
            id: id.to_owned(),
            password_hash: password_hash.to_owned(),
            role,
            at: crate::now_ms(),
        })
        .await
    }

    async fn user(&self, id: &str) -> Result<Option<User>> {
        let id = id.to_owned();
        self.read(move |c| {
            query_opt(
                c,
                "SELECT id, password_hash, role FROM users WHERE id = ?1",
                [id],
                user_from_row,
            )
        })
        .await
    }

    async fn users(&self) -> Result<Vec<User>> {
        self.read(|c| {
            query_all(
                c,
                "SELECT id, password_hash, role FROM users ORDER BY id",
                [],
                user_from_row,
            )
        })
        .await
    }

    async fn delete_user(&self, id: &str) -> Result<()> {
        self.write(WriteOp::DeleteUser { id: id.to_owned() }).await
    }

    async fn has_credentials(&self) -> Result<bool> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM users)
                     OR EXISTS (SELECT 1 FROM api_keys WHERE revoked_at IS NULL)",
            )
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .db()
        })
        .await
    }

    async fn create_session(&self, token_hash: &str, user: &str, expires_at: i64) -> Result<()> {
        self.write(WriteOp::CreateSession {
            token_hash: token_hash.to_owned(),
            user: user.to_owned(),
            at: crate::now_ms(),
            expires_at,
        })
        .await
    }

    async fn session_user(&self, token_hash: &str, now: i64) -> Result<Option<User>> {
        let token_hash = token_hash.to_owned();
        self.read(move |c| {
            query_opt(
                c,
                "SELECT u.id, u.password_hash, u.role FROM sessions s JOIN users u ON u.id = s.user_id
                 WHERE s.token_hash = ?1 AND s.expires_at > ?2",
                params![token_hash, now],
                user_from_row,
            )
        })
        .await
    }

    async fn delete_session(&self, token_hash: &str) -> Result<()> {
        self.write(WriteOp::DeleteSession {
            token_hash: token_hash.to_owned(),
        })
        .await
    }

    async fn create_api_key(
        &self,
        id: &str,
        key_hash: &str,
        name: &str,
        scopes: &[String],
    ) -> Result<()> {
        self.write(WriteOp::CreateApiKey {
            id: id.to_owned(),
            key_hash: key_hash.to_owned(),
            name: name.to_owned(),
            scopes: serde_json::to_string(scopes)?,
            at: crate::now_ms(),
        })
        .await
    }

    async fn api_keys(&self) -> Result<Vec<ApiKey>> {
        self.read(|c| {
            query_all(
                c,
                "SELECT id, name, scopes, created_at, revoked_at FROM api_keys ORDER BY created_at, id",
                [],
                |r| {
                    Ok(ApiKey {
                        id: col(r, "id")?,
                        name: col(r, "name")?,
                        scopes: json(&col::<String>(r, "scopes")?)?,
                        created_at: col(r, "created_at")?,
                        revoked_at: col(r, "revoked_at")?,
                    })
                },
            )
        })
        .await
    }

    async fn revoke_api_key(&self, id: &str, at: i64) -> Result<()> {
        self.write(WriteOp::RevokeApiKey {
            id: id.to_owned(),
            at,
        })
        .await
    }

    async fn record_audit(&self, entry: AuditEntry) -> Result<()> {
        self.write(WriteOp::Audit(entry)).await
    }

    async fn audit_log(&self, before: Option<i64>, limit: u32) -> Result<Vec<AuditRecord>> {
        self.read(move |c| {
            query_all(
                c,
                "SELECT id, at, actor, action, subject, detail FROM audit
                 WHERE id < ?1 ORDER BY id DESC LIMIT ?2",
                params![before.unwrap_or(i64::MAX), limit],
                |r| {
                    Ok(AuditRecord {
                        id: col(r, "id")?,
                        entry: AuditEntry {
                            at: col(r, "at")?,
                            actor: col(r, "actor")?,
                            action: col(r, "action")?,
                            subject: col(r, "subject")?,
                            detail: col(r, "detail")?,
                        },
                    })
                },
            )
        })
        .await
    }

    async fn api_key_scopes(&self, key_hash: &str) -> Result<Option<Vec<String>>> {
        let key_hash = key_hash.to_owned();
        self.read(move |c| {
            query_opt(
                c,
                "SELECT scopes FROM api_keys WHERE key_hash = ?1 AND revoked_at IS NULL",
                [key_hash],
                |r| json(&col::<String>(r, "scopes")?),
            )
        })
        .await
    }

    async fn create_widget_token(
        &self,
        token_hash: &str,
        conversation: &ConversationId,
    ) -> Result<()> {
        self.write(WriteOp::CreateWidgetToken {
            token_hash: token_hash.to_owned(),
            conversation: conversation.as_str().to_owned(),
        })
        .await
    }

    async fn widget_conversation(&self, token_hash: &str) -> Result<Option<ConversationId>> {
        let token_hash = token_hash.to_owned();
        self.read(move |c| {
            query_opt(
                c,
                "SELECT conversation_id FROM widget_tokens WHERE token_hash = ?1",
                [token_hash],
                |r| id_col(r, "widget_tokens", "conversation_id"),
            )
        })
        .await
    }

    async fn close(&self) {
        self.shared.closed.store(true, Ordering::Release);
        // Dropping the sender lets the writer finish what is queued, then stop.
        drop(
            self.shared
                .sender
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        let handle = self
            .shared
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(handle) = handle {
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
        self.shared
            .readers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::{cid, create_part};

    fn url_of(path: &Path) -> String {
        format!("sqlite://{}", path.display())
    }

    fn url(dir: &tempfile::TempDir) -> String {
        url_of(&dir.path().join("t.db"))
    }

    fn user_version(conn: &Connection) -> i64 {
        conn.query_row("PRAGMA user_version", [], |r| r.get(0))
            .expect("version")
    }

    async fn store() -> (Arc<SqliteStore>, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = SqliteStore::open(&url(&dir)).await.expect("open");
        (Arc::new(s), dir)
    }

    fn create(id: &str, at: i64) -> Change {
        let mut change = Change::at(at);
        change.conversations.push(create_part(id));
        change
    }

    fn note(id: &str, at: i64, reason: &str) -> Change {
        let mut change = Change::at(at);
        change.conversation(&cid(id)).events.push(NewEvent {
            kind: EventKind::Note,
            from: None,
            to: None,
            actor: "test".into(),
            reason: reason.into(),
        });
        change
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn passes_the_conformance_suite() {
        let (s, _dir) = store().await;
        crate::conformance::run(s.clone()).await;
        s.close().await;
    }

    #[tokio::test]
    async fn writes_survive_a_reopen_and_a_closed_store_refuses_calls() {
        let (s, dir) = store().await;
        s.apply(create("c1", 10)).await.expect("create");
        let applied = s.apply(note("c1", 11, "kept")).await.expect("note");
        s.upsert_user("ana", "$argon2id$x", AccountRole::Supervisor)
            .await
            .expect("user");
        s.close().await;
        s.close().await;
        assert!(matches!(
            s.apply(note("c1", 12, "late")).await,
            Err(StoreError::Closed)
        ));
        assert!(matches!(
            s.conversation(&cid("c1")).await,
            Err(StoreError::Closed)
        ));
        assert!(matches!(
            s.upsert_user("bo", "h", AccountRole::Agent).await,
            Err(StoreError::Closed)
        ));

        let s = SqliteStore::open(&url(&dir)).await.expect("reopen");
        assert_eq!(
            s.conversation(&cid("c1"))
                .await
                .expect("read")
                .map(|c| c.created_at),
            Some(10)
        );
        assert_eq!(s.events(&cid("c1")).await.expect("events"), applied.events);
        assert_eq!(
            s.user("ana").await.expect("user").map(|u| u.role),
            Some(AccountRole::Supervisor)
        );
        // New ids continue after the stored ones.
        let next = s.apply(note("c1", 13, "after")).await.expect("note");
        assert!(next.events[0].id > applied.events[0].id);
        s.close().await;
    }

    #[tokio::test]
    async fn close_finishes_queued_writes() {
        let (s, _dir) = store().await;
        s.apply(create("c1", 1)).await.expect("create");
        let pending: Vec<Pending> = (0..100).map(|i| s.submit(note("c1", i, "q"))).collect();
        s.close().await;
        for p in pending {
            p.await.expect("a write queued before close is written");
        }
    }

    #[tokio::test]
    async fn submit_keeps_the_order_of_calls() {
        let (s, _dir) = store().await;
        s.apply(create("c1", 1)).await.expect("create");
        let pending: Vec<Pending> = (0..50)
            .map(|i| s.submit(note("c1", i, &i.to_string())))
            .collect();
        let mut ids = Vec::new();
        for p in pending {
            ids.push(p.await.expect("write").events[0].id);
        }
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    }

    /// Lays out a database as the sqlx-based versions of Baton left it.
    fn old_sqlx_database(path: &Path) {
        let conn = Connection::open(path).expect("open");
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE _sqlx_migrations (
                 version BIGINT PRIMARY KEY, description TEXT NOT NULL,
                 installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
                 success BOOLEAN NOT NULL, checksum BLOB NOT NULL, execution_time BIGINT NOT NULL);",
        )
        .expect("sqlx table");
        for (i, sql) in MIGRATIONS.iter().enumerate() {
            conn.execute_batch(sql).expect("migration");
            conn.execute(
                "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
                 VALUES (?1, 'm', 1, x'00', 1)",
                [i64::try_from(i + 1).expect("version")],
            )
            .expect("sqlx row");
        }
        conn.execute_batch(
            "INSERT INTO conversations (id, customer, state, queue, created_at, updated_at)
               VALUES ('old', '{}', 'queued', 'billing', 5, 5);
             INSERT INTO events (conversation_id, kind, actor, reason, at)
               VALUES ('old', 'transition', 'policy', 'x', 5);
             INSERT INTO users (id, password_hash, role, created_at) VALUES ('ana', 'h', 'admin', 1);",
        )
        .expect("rows");
        assert_eq!(user_version(&conn), 0);
    }

    #[tokio::test]
    async fn a_stored_id_that_does_not_parse_is_corrupt_data_naming_its_column() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = SqliteStore::open(&url(&dir)).await.expect("open");
        s.apply(create("c1", 1)).await.expect("create");
        s.close().await;
        let conn = Connection::open(dir.path().join("t.db")).expect("open");
        conn.execute_batch(
            "UPDATE conversations SET state = 'assigned', agent_id = ' ' WHERE id = 'c1';
             INSERT INTO events (conversation_id, kind, actor, reason, at)
               VALUES ('bad' || char(10) || 'id', 'note', 'test', 'x', 2);",
        )
        .expect("rows");
        drop(conn);
        let s = SqliteStore::open(&url(&dir)).await.expect("reopen");
        let named = |r: Result<_>, column: &str| match r {
            Err(StoreError::Corrupt(e)) => assert!(e.to_string().contains(column), "{e}"),
            Err(e) => panic!("expected corrupt data naming {column}, got {e:?}"),
            Ok(_) => panic!("expected corrupt data naming {column}, got a value"),
        };
        named(
            s.conversation(&cid("c1")).await.map(|_| ()),
            "conversations.agent_id",
        );
        named(
            s.routing_records().await.map(|_| ()),
            "conversations.agent_id",
        );
        named(s.agent_loads().await.map(|_| ()), "conversations.agent_id");
        named(
            s.events_after(0, None, 10).await.map(|_| ()),
            "events.conversation_id",
        );
        s.close().await;
    }

    #[tokio::test]
    async fn opens_a_database_left_by_the_sqlx_versions() {
        let dir = tempfile::tempdir().expect("tempdir");
        old_sqlx_database(&dir.path().join("t.db"));
        for _ in 0..2 {
            let s = SqliteStore::open(&url(&dir)).await.expect("open old file");
            let c = s
                .conversation(&cid("old"))
                .await
                .expect("read")
                .expect("kept");
            assert_eq!(
                (c.state, c.queue.as_ref().map(QueueName::as_str)),
                (HandoffState::Queued, Some("billing"))
            );
            assert_eq!(s.events(&cid("old")).await.expect("events").len(), 1);
            assert_eq!(
                s.user("ana").await.expect("user").map(|u| u.role),
                Some(AccountRole::Admin)
            );
            s.close().await;
        }
        let conn = Connection::open(dir.path().join("t.db")).expect("open");
        assert_eq!(
            usize::try_from(user_version(&conn)).ok(),
            Some(MIGRATIONS.len())
        );
    }

    #[tokio::test]
    async fn a_full_disk_refuses_writes_whole_and_service_resumes_by_itself() {
        let (s, _dir) = store().await;
        s.apply(create("c1", 1)).await.expect("create");
        let limit = s.set_max_page_count(1).await.expect("limit");
        assert!(limit >= 1);
        let big = "x".repeat(1 << 20);
        // Several writes in flight: the batch fails as a whole, each answers Unavailable.
        let pending: Vec<Pending> = (0..3)
            .map(|i| {
                let mut change = note("c1", 2 + i, &big);
                change.conversations.push(create_part(&format!("new-{i}")));
                s.submit(change)
            })
            .collect();
        for p in pending {
            match p.await {
                Err(StoreError::Unavailable(reason)) => assert_eq!(reason, "disk full"),
                other => panic!("expected Unavailable, got {other:?}"),
            }
        }
        assert!(s.events(&cid("c1")).await.expect("events").is_empty());
        assert!(s.conversation(&cid("new-0")).await.expect("read").is_none());
        assert!(matches!(
            s.upsert_user("ana", &big, AccountRole::Agent).await,
            Err(StoreError::Unavailable(_))
        ));
        // Space returns: the next write succeeds on the same store, without reopening.
        s.set_max_page_count(1 << 30).await.expect("raise");
        let applied = s
            .apply(note("c1", 9, &big))
            .await
            .expect("write after space returns");
        assert_eq!(applied.events.len(), 1);
        assert_eq!(s.events(&cid("c1")).await.expect("events"), applied.events);
        s.close().await;
    }

    /// The same on a real full file system: set `BATON_STORE_FULL_DIR` to a directory on a
    /// small one (e.g. `mount -t tmpfs -o size=1m tmpfs /tmp/small`) and run with `--ignored`.
    #[tokio::test]
    #[ignore = "needs a small file system in BATON_STORE_FULL_DIR"]
    async fn a_really_full_file_system_refuses_writes_and_service_resumes() {
        let Ok(dir) = std::env::var("BATON_STORE_FULL_DIR") else {
            return;
        };
        let dir = PathBuf::from(dir);
        let db = dir.join("full.db");
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
        }
        let s = SqliteStore::open(&url_of(&db)).await.expect("open");
        s.apply(create("c1", 1)).await.expect("create");
        // Fill the file system.
        let filler = dir.join("filler");
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&filler).expect("filler");
            let block = vec![0u8; 4096];
            while f.write_all(&block).is_ok() {}
            let _ = f.sync_all();
        }
        let big = "y".repeat(256 * 1024);
        let mut refused = 0;
        for i in 0..5 {
            match s.apply(note("c1", 2 + i, &big)).await {
                Err(StoreError::Unavailable(reason)) => {
                    refused += 1;
                    assert!(reason == "disk full" || reason == "I/O error", "{reason}");
                }
                Ok(_) => {}
                Err(e) => panic!("unexpected {e:?}"),
            }
        }
        assert!(refused > 0, "no write was refused on a full file system");
        let stored = s.events(&cid("c1")).await.expect("events").len();
        assert_eq!(stored, 5 - refused, "a refused write must leave nothing");
        std::fs::remove_file(&filler).expect("free space");
        s.apply(note("c1", 20, "after"))
            .await
            .expect("write after space returns");
        assert_eq!(
            s.events(&cid("c1")).await.expect("events").len(),
            stored + 1
        );
        s.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_changes_share_commits() {
        let (s, _dir) = store().await;
        for i in 0..10 {
            s.apply(create(&format!("c{i}"), 1)).await.expect("create");
        }
        let before = s.commits();
        let mut tasks = tokio::task::JoinSet::new();
        for n in 0..500 {
            let s = Arc::clone(&s);
            tasks.spawn(async move { s.apply(note(&format!("c{}", n % 10), n, "x")).await });
        }
        while let Some(done) = tasks.join_next().await {
            done.expect("task").expect("apply");
        }
        let commits = s.commits() - before;
        assert!(commits < 500, "500 changes took {commits} commits");
        let stored = s.events_after(0, None, 10_000).await.expect("events");
        assert_eq!(stored.len(), 500);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_is_copied_beside_the_writer_and_starts_over() {
        let (s, dir) = store().await;
        s.apply(create("c1", 1)).await.expect("create");
        let size = |name: &str| std::fs::metadata(dir.path().join(name)).map_or(0, |m| m.len());
        let before = size("t.db");
        // 64 rounds of 1 MiB, each committed before the next: 64 MiB through the WAL.
        let text = "x".repeat(64 * 1024);
        for round in 0..64 {
            let pending: Vec<_> = (0..16)
                .map(|n| s.submit(note("c1", round * 16 + n + 2, &text)))
                .collect();
            for p in pending {
                p.await.expect("note");
            }
        }
        // No one but the store checkpointed: its own threads copied the pages into the file
        // and started the WAL over, which a WAL of 64 MiB would not have been.
        assert!(size("t.db") > before + 32 * 1024 * 1024, "pages not copied");
        let wal = size("t.db-wal");
        assert!(wal < 48 * 1024 * 1024, "the WAL grew to {wal} bytes");
        assert_eq!(s.events(&cid("c1")).await.expect("events").len(), 64 * 16);
        s.close().await;
    }

    #[tokio::test]
    async fn one_stale_change_does_not_fail_its_batch() {
        let (s, _dir) = store().await;
        s.apply(create("c1", 1)).await.expect("create");
        let mut stale = note("c1", 2, "stale");
        stale.conversations[0].guard = Guard::State(HandoffState::Queued);
        let pending = vec![
            s.submit(note("c1", 2, "a")),
            s.submit(stale),
            s.submit(create("c1", 2)),
            s.submit(note("c1", 3, "b")),
        ];
        let mut results = Vec::new();
        for p in pending {
            results.push(p.await);
        }
        assert!(results[0].is_ok());
        assert!(matches!(results[1], Err(StoreError::Stale { .. })));
        assert!(matches!(results[2], Err(StoreError::Conflict(_))));
        assert!(results[3].is_ok());
        let reasons: Vec<String> = s
            .events(&cid("c1"))
            .await
            .expect("events")
            .into_iter()
            .map(|e| e.reason)
            .collect();
        assert_eq!(reasons, vec!["a", "b"]);
    }

    #[tokio::test]
    async fn a_missing_directory_is_named_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("no").join("such");
        let path = missing.join("baton.db");
        let e = SqliteStore::open(&url_of(&path))
            .await
            .expect_err("missing directory");
        let StoreError::Open(message) = &e else {
            panic!("expected Open, got {e:?}");
        };
        assert_eq!(
            message,
            &format!(
                "cannot open database `{}`: directory `{}` does not exist; create it (mkdir -p {}) \
                 or choose another path",
                path.display(),
                missing.display(),
                missing.display()
            )
        );
        assert_eq!(e.to_string().matches("cannot open").count(), 1);
        assert!(!missing.exists());
    }

    #[tokio::test]
    async fn urls_of_both_spellings_open_and_others_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.db");
        let s = SqliteStore::open(&format!("sqlite:{}?mode=rwc", path.display()))
            .await
            .expect("sqlite:PATH?mode");
        s.apply(create("c1", 1)).await.expect("create");
        s.close().await;
        let s = crate::connect(&url_of(&path)).await.expect("connect");
        assert!(s.conversation(&cid("c1")).await.expect("read").is_some());
        s.close().await;
        assert!(matches!(
            crate::connect("postgres://localhost/baton").await,
            Err(StoreError::UnsupportedUrl(_))
        ));
        assert!(matches!(
            SqliteStore::open("sqlite::memory:").await,
            Err(StoreError::Open(_))
        ));
    }

    #[tokio::test]
    async fn a_file_that_is_not_a_database_is_refused_on_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.db");
        std::fs::write(&path, vec![b'z'; 8192]).expect("write");
        match SqliteStore::open(&url_of(&path)).await {
            Err(StoreError::Open(m)) => {
                assert!(m.contains("not a SQLite database"), "{m}");
                assert!(m.contains(&path.display().to_string()), "{m}");
            }
            other => panic!("expected Open, got {other:?}"),
        }
    }
}
