//! What the aggregator's background threads (coaching, live status) share:
//! a blocking way out to the broker and the hub, payload serialisation and
//! the millisecond clock. (Their read-only connection to the site file is
//! the store's: [`super::store::open_read_only`].)

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rumqttc::{AsyncClient, QoS};

use super::live::Hub;

/// A publication that does not leave the client's queue in this time is
/// given up: the caller makes it again at its next change or computation.
pub const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);

/// A plain thread's way out: the live hub (the web dashboard) and the MQTT
/// client, whose async `publish` it drives on the aggregator's runtime.
pub struct Outlet {
    client: AsyncClient,
    runtime: tokio::runtime::Handle,
    hub: Arc<Hub>,
}

impl Outlet {
    /// The way out through `client`, driven on `runtime`, shown on `hub`.
    pub fn new(client: AsyncClient, runtime: tokio::runtime::Handle, hub: Arc<Hub>) -> Outlet {
        Outlet {
            client,
            runtime,
            hub,
        }
    }

    /// Shows the payload on the hub, then queues it for the broker.
    pub fn publish(&self, topic: String, retain: bool, payload: Vec<u8>, what: &str) {
        self.show(&topic, retain, &payload);
        self.queue(topic, retain, payload, what);
    }

    /// Shows the payload on the hub only (the broker is not reachable and a
    /// retained payload goes again at the next connection).
    pub fn show(&self, topic: &str, retain: bool, payload: &[u8]) {
        self.hub.publish(topic, payload, retain);
    }

    /// Queues the payload on the MQTT client, waiting at most
    /// [`PUBLISH_TIMEOUT`] for room; a failure is logged with `what`.
    pub fn queue(&self, topic: String, retain: bool, payload: Vec<u8>, what: &str) {
        if !crate::mqtt::fits(&topic, &payload) {
            too_large(&topic, payload.len(), what);
            return;
        }
        // The timer must be made inside the runtime: hence the async block.
        let sent = self.runtime.block_on(async {
            tokio::time::timeout(
                PUBLISH_TIMEOUT,
                self.client
                    .publish(topic, QoS::AtLeastOnce, retain, payload),
            )
            .await
        });
        match sent {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot queue the {what} publication"),
            Err(_) => tracing::warn!(
                "the MQTT client's queue is full; the {what} publication was given up until the next change"
            ),
        }
    }
}

/// Logs a publication that was not sent because the MQTT client could not
/// send it ([`crate::mqtt::fits`]).
pub fn too_large(topic: &str, bytes: usize, what: &str) {
    tracing::error!(
        topic,
        bytes,
        limit = crate::mqtt::MAX_PACKET,
        "the {what} publication is larger than an MQTT packet may be; not sent (the dashboard still shows it)"
    );
}

/// A payload as JSON bytes.
pub fn json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    // Design: every payload type is plain strings, numbers, times, options
    // and maps, and its floats are means or rates over a checked non-empty
    // divisor, never NaN or infinite: serialisation cannot fail.
    serde_json::to_vec(value).expect("payloads serialise")
}

/// Now, to the millisecond (the precision of every stored time).
pub fn now_ms() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now)
}

/// Hands the memory that a large read freed (the status's start, a
/// coaching computation over every observation) back to the system.
///
/// Design: glibc keeps freed memory in each thread's arena for reuse; after
/// a computation that decoded a year of observations that was a hundred
/// megabytes of resident memory that nothing used until the next one
/// (`cargo bench --bench history`). Trimming costs a walk of the free
/// lists, once per computation. Other C libraries: nothing to do.
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks and returns the allocator's own free
    // memory; it takes the arenas' locks like any allocation.
    unsafe {
        libc::malloc_trim(0);
    }
}
