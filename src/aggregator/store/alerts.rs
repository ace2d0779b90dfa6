//! The alert log: every alert the dashboard listed, kept in the site file
//! so that the recent ones are listed again after a restart.
//!
//! Design: this is the site file's one writer besides the ingest writer
//! ([`super::Store`]). An alert is rare (a missed slot, a stale escalation,
//! a board gone silent, an integrity conflict), so a connection of its own
//! costs the writer at most one short wait for SQLite's write lock now and
//! then, while routing alerts through the writer's queue would couple the
//! status and coaching threads to ingest. The log is a convenience for
//! people, not part of the delivery guarantee: it runs with
//! `synchronous=NORMAL` (a power cut may forget the last alerts, never
//! an event) and keeps the newest [`LOG_KEPT`] rows.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::Utc;
use rusqlite::{params, Connection};

use super::{open_conn, StoreError};

/// How many alerts the log keeps; older ones are deleted as new ones come.
pub const LOG_KEPT: i64 = 10_000;

/// The alert log on a connection of its own.
pub struct AlertLog {
    conn: Mutex<Connection>,
    path: PathBuf,
}

impl AlertLog {
    /// Opens the log in the site file, which must exist and be migrated
    /// ([`super::Store::open`] first).
    pub fn open(path: &Path) -> Result<AlertLog, StoreError> {
        if !path.is_file() {
            return Err(StoreError::Missing(path.to_owned()));
        }
        let conn = open_conn(path)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(|source| StoreError::Sqlite {
                path: path.to_owned(),
                source,
            })?;
        Ok(AlertLog {
            conn: Mutex::new(conn),
            path: path.to_owned(),
        })
    }

    /// Appends one alert as published, and forgets those beyond
    /// [`LOG_KEPT`].
    pub fn record(&self, topic: &str, payload: &str) -> Result<(), StoreError> {
        let conn = self.lock();
        let logged_at = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        conn.execute(
            "INSERT INTO alert_log (logged_at, topic, payload) VALUES (?1, ?2, ?3)",
            params![logged_at, topic, payload],
        )
        .and_then(|_| {
            conn.execute(
                "DELETE FROM alert_log WHERE id <= last_insert_rowid() - ?1",
                [LOG_KEPT],
            )
        })
        .map(|_| ())
        .map_err(|source| self.error(source))
    }

    /// The latest `n` alerts as `(topic, payload)`, oldest first.
    pub fn recent(&self, n: usize) -> Result<Vec<(String, String)>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare(
                "SELECT topic, payload FROM
                     (SELECT id, topic, payload FROM alert_log ORDER BY id DESC LIMIT ?1)
                 ORDER BY id",
            )
            .map_err(|source| self.error(source))?;
        let rows = stmt
            .query_map([n as i64], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(|source| self.error(source))?;
        rows.collect::<Result<_, _>>()
            .map_err(|source| self.error(source))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        // No code panics while holding the lock (one statement at a time).
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn error(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregator::store::Store;

    #[test]
    fn the_log_gives_the_latest_alerts_back_in_order_across_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("site.sqlite");
        drop(Store::open(&path).unwrap());
        let log = AlertLog::open(&path).unwrap();
        for i in 0..5 {
            log.record(
                &format!("huddle/v1/s/alert/k{i}"),
                &format!("{{\"i\":{i}}}"),
            )
            .unwrap();
        }
        drop(log);
        let log = AlertLog::open(&path).unwrap();
        let recent = log.recent(3).unwrap();
        let topics: Vec<&str> = recent.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(
            topics,
            [
                "huddle/v1/s/alert/k2",
                "huddle/v1/s/alert/k3",
                "huddle/v1/s/alert/k4"
            ]
        );
        assert_eq!(recent[2].1, "{\"i\":4}");
    }

    #[test]
    fn the_log_keeps_only_its_newest_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("site.sqlite");
        drop(Store::open(&path).unwrap());
        let log = AlertLog::open(&path).unwrap();
        for i in 0..LOG_KEPT + 3 {
            log.record("huddle/v1/s/alert/k", &i.to_string()).unwrap();
        }
        let count: i64 = log
            .lock()
            .query_row("SELECT count(*) FROM alert_log", [], |r| r.get(0))
            .unwrap();
        assert_eq!(count, LOG_KEPT);
        let last = log.recent(1).unwrap();
        assert_eq!(last[0].1, (LOG_KEPT + 2).to_string());
    }

    #[test]
    fn a_missing_file_is_an_error_not_a_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("site.sqlite");
        assert!(matches!(AlertLog::open(&path), Err(StoreError::Missing(_))));
        assert!(!path.exists());
    }
}
