//! The aggregator's live picture, for its web dashboard: the latest
//! payload of every site-level topic it publishes retained (board and
//! site status, coaching, counters), the most recent alerts, and a
//! broadcast of every change.
//!
//! Every part of the aggregator that publishes to MQTT also hands the same
//! bytes to the [`Hub`] ([`Hub::publish`]), which keeps only the topics a
//! dashboard may show ([`shown`]: never acks or rosters, which carry badge
//! hashes). So the dashboard's JSON is, by construction, what an MQTT
//! dashboard reads from the retained topics, and a web client that takes a
//! [`Snapshot`] and then follows the [`Change`]s misses nothing: both are
//! taken under one lock ([`Hub::snapshot_and_subscribe`]), and every change
//! carries a version that only grows.
//!
//! Alerts outlive a restart: a hub made [`Hub::with_log`] starts with the
//! latest alerts of the site file's alert log and hands every new one to
//! the log. An alert equal (topic and bytes) to one the hub holds is not
//! listed twice: the status thread lists the conditions still open at
//! start again, and those it had alerted before the restart are already
//! in the list from the log.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use super::store::{AlertLog, StoreError};

/// How many changes a slow subscriber may fall behind before it is told
/// it lagged (it then takes a new snapshot).
const CHANNEL: usize = 4096;

/// One publication as the dashboard sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Grows by one with every change the hub keeps.
    pub version: u64,
    /// The MQTT topic.
    pub topic: String,
    /// The JSON payload, as published.
    pub payload: Arc<str>,
    /// Retained (a state) or not (an alert).
    pub retained: bool,
}

/// Everything the hub holds at one version.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The version of the last change included.
    pub version: u64,
    /// Retained topic → latest payload.
    pub retained: BTreeMap<String, Arc<str>>,
    /// The latest alerts, oldest first.
    pub alerts: Vec<Change>,
}

#[derive(Debug, Default)]
struct State {
    version: u64,
    retained: BTreeMap<String, Arc<str>>,
    alerts: VecDeque<Change>,
}

/// Where the hub hands every new alert (topic, payload): the site file's
/// alert log.
pub type AlertSink = Box<dyn Fn(&str, &str) + Send + Sync>;

/// The live picture; shared as `Arc<Hub>` by the publishers and the web
/// server.
pub struct Hub {
    state: Mutex<State>,
    changes: broadcast::Sender<Change>,
    alert_capacity: usize,
    log: Option<AlertSink>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("state", &self.state)
            .field("alert_capacity", &self.alert_capacity)
            .field("log", &self.log.is_some())
            .finish()
    }
}

/// True for the topics a dashboard may show: statuses, coaching, counters
/// and alerts; never acks or rosters.
pub fn shown(topic: &str) -> bool {
    let last = topic.rsplit('/').next().unwrap_or("");
    matches!(last, "status" | "coaching" | "stats" | "schedule") || topic.contains("/alert/")
}

impl Hub {
    /// An empty hub that keeps the latest `alert_capacity` alerts.
    pub fn new(alert_capacity: usize) -> Arc<Hub> {
        Hub::with_log(alert_capacity, Vec::new(), None)
    }

    /// A hub logged in the site file at `path` (migrated): it starts with
    /// the latest `alert_capacity` alerts of the log and logs every new
    /// one. A failure to log is a warning: the alert is still listed and
    /// published.
    pub fn logged(path: &Path, alert_capacity: usize) -> Result<Arc<Hub>, StoreError> {
        let log = AlertLog::open(path)?;
        let earlier = log.recent(alert_capacity)?;
        let sink: AlertSink = Box::new(move |topic, payload| {
            if let Err(e) = log.record(topic, payload) {
                tracing::warn!(error = %e, topic, "cannot log an alert; it is listed until the next restart only");
            }
        });
        Ok(Hub::with_log(alert_capacity, earlier, Some(sink)))
    }

    /// A hub that starts with the `earlier` alerts (topic, payload; oldest
    /// first, from the alert log) and hands every new alert to `log`.
    pub fn with_log(
        alert_capacity: usize,
        earlier: Vec<(String, String)>,
        log: Option<AlertSink>,
    ) -> Arc<Hub> {
        let (changes, _) = broadcast::channel(CHANNEL);
        let hub = Hub {
            state: Mutex::new(State::default()),
            changes,
            alert_capacity,
            log: None,
        };
        for (topic, payload) in earlier {
            hub.publish(&topic, payload.as_bytes(), false);
        }
        Arc::new(Hub { log, ..hub })
    }

    /// Records one publication (ignored unless [`shown`], or not UTF-8).
    /// A retained payload equal to the one held is not a change.
    pub fn publish(&self, topic: &str, payload: &[u8], retained: bool) {
        if !shown(topic) {
            return;
        }
        let Ok(text) = std::str::from_utf8(payload) else {
            return;
        };
        let mut state = self.lock();
        if retained && text.is_empty() && !state.retained.contains_key(topic) {
            return;
        }
        if retained && state.retained.get(topic).is_some_and(|p| **p == *text) {
            return;
        }
        let listed = |a: &Change| a.topic == topic && *a.payload == *text;
        if !retained && state.alerts.iter().any(listed) {
            // Listed already (before a restart, from the log).
            return;
        }
        state.version += 1;
        let change = Change {
            version: state.version,
            topic: topic.to_string(),
            payload: Arc::from(text),
            retained,
        };
        if retained && text.is_empty() {
            // A cleared retained topic (a board that moved to another
            // area): gone from the picture, as from the broker.
            state.retained.remove(topic);
        } else if retained {
            state
                .retained
                .insert(change.topic.clone(), change.payload.clone());
        } else {
            if let Some(log) = &self.log {
                log(topic, text);
            }
            if state.alerts.len() == self.alert_capacity {
                state.alerts.pop_front();
            }
            if self.alert_capacity > 0 {
                state.alerts.push_back(change.clone());
            }
        }
        // No subscriber is not an error: the change is in the state.
        let _ = self.changes.send(change);
    }

    /// The picture now.
    pub fn snapshot(&self) -> Snapshot {
        let state = self.lock();
        Snapshot {
            version: state.version,
            retained: state.retained.clone(),
            alerts: state.alerts.iter().cloned().collect(),
        }
    }

    /// The picture now and every change after it, with nothing missed.
    pub fn snapshot_and_subscribe(&self) -> (Snapshot, broadcast::Receiver<Change>) {
        let state = self.lock();
        let rx = self.changes.subscribe();
        let snapshot = Snapshot {
            version: state.version,
            retained: state.retained.clone(),
            alerts: state.alerts.iter().cloned().collect(),
        };
        (snapshot, rx)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Design: no code panics while holding the lock (plain map and
        // queue operations), and a poisoned picture is still the latest.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_retained_payload_clears_the_topic() {
        let hub = Hub::new(4);
        hub.publish("huddle/v1/s/a/b1/status", b"{}", true);
        hub.publish("huddle/v1/s/a/b1/status", b"", true);
        let snap = hub.snapshot();
        assert!(snap.retained.is_empty(), "an empty payload clears");
        assert_eq!(snap.version, 2, "the clearing is a change");
        hub.publish("huddle/v1/s/a/b2/status", b"", true);
        assert_eq!(hub.snapshot().version, 2, "nothing to clear: no change");
    }

    #[test]
    fn keeps_shown_topics_and_versions_every_change() {
        let hub = Hub::new(2);
        let (before, mut rx) = hub.snapshot_and_subscribe();
        assert_eq!(before.version, 0);
        hub.publish("huddle/v1/s/a/b1/ack", b"{}", true);
        hub.publish("huddle/v1/s/a/b1/roster", b"{}", true);
        hub.publish("huddle/v1/s/a/b1/status", br#"{"x":1}"#, true);
        hub.publish("huddle/v1/s/a/b1/status", br#"{"x":1}"#, true);
        hub.publish("huddle/v1/s/alert/missed_huddle", b"1", false);
        hub.publish("huddle/v1/s/alert/missed_huddle", b"2", false);
        hub.publish("huddle/v1/s/alert/board_offline", b"3", false);
        let snap = hub.snapshot();
        assert_eq!(snap.version, 4);
        assert_eq!(snap.retained.len(), 1);
        assert_eq!(&*snap.retained["huddle/v1/s/a/b1/status"], r#"{"x":1}"#);
        let alerts: Vec<&str> = snap.alerts.iter().map(|a| &*a.payload).collect();
        assert_eq!(alerts, ["2", "3"]);
        let versions: Vec<u64> = (0..4).map(|_| rx.try_recv().unwrap().version).collect();
        assert_eq!(versions, [1, 2, 3, 4]);
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn starts_with_the_logged_alerts_lists_each_once_and_logs_only_new_ones() {
        let logged = Arc::new(Mutex::new(Vec::<String>::new()));
        let sink = logged.clone();
        let earlier = vec![
            (
                "huddle/v1/s/alert/missed_huddle".to_string(),
                "1".to_string(),
            ),
            (
                "huddle/v1/s/alert/board_offline".to_string(),
                "2".to_string(),
            ),
        ];
        let hub = Hub::with_log(
            3,
            earlier,
            Some(Box::new(move |_, p| sink.lock().unwrap().push(p.into()))),
        );
        // The open condition listed again at start: already there.
        hub.publish("huddle/v1/s/alert/missed_huddle", b"1", false);
        hub.publish("huddle/v1/s/alert/escalation_stale", b"3", false);
        let snap = hub.snapshot();
        let alerts: Vec<&str> = snap.alerts.iter().map(|a| &*a.payload).collect();
        assert_eq!(alerts, ["1", "2", "3"]);
        assert_eq!(snap.version, 3);
        assert_eq!(
            *logged.lock().unwrap(),
            ["3"],
            "only the new alert is logged"
        );
    }
}
