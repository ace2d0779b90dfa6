//! The WAL checkpointer: copies the write-ahead log back into the site
//! file on a thread and a connection of its own, so that the writer's
//! commits stay one WAL append and one fsync each.

use std::path::Path;

use super::{open_conn, StoreError};

/// How often the checkpointer copies the WAL back into the file.
pub const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// The checkpointer: a thread with its own connection that runs a passive
/// checkpoint every [`CHECKPOINT_EVERY`], beside the writer and never
/// blocking it (a passive checkpoint copies what no reader still needs and
/// waits for nobody). The WAL thus stays small and the writer's commits
/// stay one WAL append and one fsync each. Ends when dropped.
pub struct Checkpointer {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts it on the (migrated) file at `path`.
    pub fn start(path: &Path) -> Result<Checkpointer, StoreError> {
        let conn = open_conn(path)?;
        let path = path.to_owned();
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("aggregator-checkpoint".into())
            .spawn(move || {
                let mut failing = false;
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(CHECKPOINT_EVERY)
                {
                    let r = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                    match r {
                        Ok(()) => failing = false,
                        Err(e) if !failing => {
                            failing = true;
                            tracing::warn!(db = %path.display(), error = %e, "a WAL checkpoint failed; trying again");
                        }
                        Err(_) => {}
                    }
                }
            })
            .map_err(StoreError::Thread)?;
        Ok(Checkpointer {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
