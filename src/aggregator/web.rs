//! The supervisors' web dashboard (issue 6): a page, its JSON and its live
//! stream, served by the aggregator from its [`Hub`].
//!
//! Why a hand-written server: the dashboard needs five GET routes, one of
//! them a server-sent-event stream, on a plant network. Tokio (already
//! here for MQTT) gives the sockets; what is left is reading one request
//! head and writing one response, which is smaller to review than a
//! framework's configuration and adds no crate to a build that CI runs on
//! two cores. The server is bounded everywhere a client could hold it:
//! the request head (8 KiB, 10 s), every write (10 s), the number of open
//! connections ([`MAX_CONNECTIONS`], then `503`), and one request per
//! connection (`Connection: close`; a page load is four requests).
//!
//! Routes: `/` (the page), `/app.js`, `/style.css` (public: they are the
//! repository's files and hold no data; `/favicon.ico` is empty),
//! `/healthz` (public, `ok`),
//! `/api/state` (the [`Snapshot`] as JSON) and `/api/events` (server-sent
//! events: the snapshot, then every [`Change`], a fresh snapshot after a
//! lag, a comment every 15 s). The data routes want the read-only token:
//! `Authorization: Bearer TOKEN`, the `huddle_token` cookie, or
//! `?token=TOKEN`; on `/` the query sets that cookie (HttpOnly,
//! SameSite=Strict) and redirects to `/`, so that the page's `fetch` and
//! `EventSource` (which cannot send headers) carry it and the token leaves
//! the address bar. Tokens are compared in constant time (SHA-256 of
//! both, then every byte). Nothing here logs a request line or a header:
//! the token never reaches the journal.
//!
//! The JSON is the hub's retained payloads as they were published on
//! MQTT, embedded unparsed (only checked to be JSON), grouped by topic
//! ([`classify`]): what a browser reads equals what the broker retains.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio::time::timeout;

use crate::aggregator::live::{Change, Hub, Snapshot};
use crate::config::WebConfig;

/// Largest request head read.
pub const MAX_HEAD: usize = 8 * 1024;
/// Time a client has to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Time one write may take before the client is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once (each open page holds one for its stream).
pub const MAX_CONNECTIONS: usize = 512;
/// A comment line on idle event streams, so that proxies and browsers
/// keep them and a vanished client is noticed.
const HEARTBEAT: Duration = Duration::from_secs(15);
/// The cookie that carries the token for the page's requests.
pub const COOKIE: &str = "huddle_token";
/// A port in use is tried again this often.
const BIND_RETRY: Duration = Duration::from_secs(5);

const INDEX_HTML: &str = include_str!("web/index.html");
const APP_JS: &str = include_str!("web/app.js");
const STYLE_CSS: &str = include_str!("web/style.css");

/// Sent with every response: no caching of data, no framing, no
/// referrer, scripts and styles only from this server.
const COMMON_HEADERS: &str = "Connection: close\r\n\
Cache-Control: no-store\r\n\
X-Content-Type-Options: nosniff\r\n\
X-Frame-Options: DENY\r\n\
Referrer-Policy: no-referrer\r\n\
Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'\r\n";

/// Starts the dashboard on the runtime when `[web]` is there and enabled;
/// `None` otherwise. A port in use is logged and tried again: the
/// dashboard never stops ingest.
pub fn start(web: Option<&WebConfig>, site: &str, hub: Arc<Hub>) -> Option<JoinHandle<()>> {
    let web = web.filter(|w| w.enabled)?;
    let (Some(token), Ok(addr)) = (web.resolved_token.clone(), web.listen_addr()) else {
        // Load resolves and validates both; a hand-made config may not.
        tracing::error!("web: the dashboard is off: its token or listen address was not loaded");
        return None;
    };
    let ctx = Arc::new(Ctx {
        site: site.to_owned(),
        token: token.0,
        hub,
    });
    Some(tokio::spawn(async move {
        let listener = bind(addr).await;
        tracing::info!(listen = %addr, "web dashboard listening");
        serve(listener, ctx).await;
    }))
}

async fn bind(addr: SocketAddr) -> TcpListener {
    let mut failures = 0u32;
    loop {
        match TcpListener::bind(addr).await {
            Ok(l) => return l,
            Err(e) => {
                // First failure, then once a minute.
                if failures.is_multiple_of(12) {
                    tracing::error!(listen = %addr, error = %e, retry_in = ?BIND_RETRY, "web: cannot listen (key web.listen)");
                }
                failures += 1;
                tokio::time::sleep(BIND_RETRY).await;
            }
        }
    }
}

/// What every connection shares.
pub struct Ctx {
    /// The site id (topic level).
    pub site: String,
    /// The access token.
    pub token: String,
    /// The live picture.
    pub hub: Arc<Hub>,
}

/// Serves connections from `listener` until the task is aborted.
pub async fn serve(listener: TcpListener, ctx: Arc<Ctx>) {
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                // Out of file descriptors and the like: pause, go on.
                tracing::warn!(error = %e, "web: accept");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        match limit.clone().try_acquire_owned() {
            Ok(permit) => {
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    connection(stream, &ctx).await;
                    drop(permit);
                });
            }
            Err(_) => {
                tokio::spawn(async move {
                    let mut stream = stream;
                    let body = "too many connections, try again\n";
                    let r = simple(
                        "503 Service Unavailable",
                        "text/plain; charset=utf-8",
                        "Retry-After: 5\r\n",
                        body.as_bytes(),
                    );
                    let _ = timeout(Duration::from_secs(1), stream.write_all(&r)).await;
                });
            }
        }
    }
}

/// One connection: one request, one response.
async fn connection(mut stream: TcpStream, ctx: &Ctx) {
    let head = match timeout(HEAD_TIMEOUT, read_head(&mut stream)).await {
        Ok(Ok(h)) => h,
        Ok(Err(HeadError::TooLarge)) => {
            let r = simple(
                "431 Request Header Fields Too Large",
                "text/plain; charset=utf-8",
                "",
                b"request head too large\n",
            );
            let _ = write(&mut stream, &r).await;
            return;
        }
        // Closed, reset or too slow: nobody to answer.
        _ => return,
    };
    let reply = match parse_head(&head) {
        Ok(req) => route(&req, ctx),
        Err(_) => Reply::Bytes(simple(
            "400 Bad Request",
            "text/plain; charset=utf-8",
            "",
            b"bad request\n",
        )),
    };
    match reply {
        Reply::Bytes(r) => {
            let _ = write(&mut stream, &r).await;
            // Let the client read it all before the socket goes.
            let _ = stream.shutdown().await;
        }
        Reply::Events => events(stream, &ctx.hub, &ctx.site).await,
    }
}

async fn write(stream: &mut TcpStream, bytes: &[u8]) -> Result<(), ()> {
    match timeout(WRITE_TIMEOUT, stream.write_all(bytes)).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

/// Why a request head could not be had.
#[derive(Debug, PartialEq, Eq)]
pub enum HeadError {
    /// Over [`MAX_HEAD`].
    TooLarge,
    /// Closed before the head ended.
    Closed,
    /// Not an HTTP/1 request head.
    Malformed,
}

async fn read_head(stream: &mut TcpStream) -> Result<Vec<u8>, HeadError> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|_| HeadError::Closed)?;
        if n == 0 {
            return Err(HeadError::Closed);
        }
        let from = buf.len().saturating_sub(3);
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = find_end(&buf[from..]) {
            buf.truncate(from + end);
            return Ok(buf);
        }
        if buf.len() > MAX_HEAD {
            return Err(HeadError::TooLarge);
        }
    }
}

/// The end of the head (after the blank line) within `bytes`.
fn find_end(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
}

/// The parts of a request the dashboard looks at.
#[derive(Debug, PartialEq, Eq, Default)]
pub struct Request {
    /// `GET`, ...
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query, without `?` (may be empty).
    pub query: String,
    /// The token of `Authorization: Bearer TOKEN`.
    pub bearer: Option<String>,
    /// The token of the [`COOKIE`] cookie.
    pub cookie: Option<String>,
}

impl Request {
    /// The value of `name` in the query (not decoded: tokens are URL-safe).
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }
}

/// Parses a request head (request line and headers, up to the blank line).
pub fn parse_head(head: &[u8]) -> Result<Request, HeadError> {
    let text = std::str::from_utf8(head).map_err(|_| HeadError::Malformed)?;
    let mut lines = text.split("\r\n");
    let line = lines.next().ok_or(HeadError::Malformed)?;
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HeadError::Malformed);
    };
    if !version.starts_with("HTTP/1.") || !target.starts_with('/') || method.is_empty() {
        return Err(HeadError::Malformed);
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut req = Request {
        method: method.to_owned(),
        path: path.to_owned(),
        query: query.to_owned(),
        ..Request::default()
    };
    for line in lines.take_while(|l| !l.is_empty()) {
        let Some((name, value)) = line.split_once(':') else {
            return Err(HeadError::Malformed);
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("authorization") {
            if let Some((scheme, token)) = value.split_once(' ') {
                if scheme.eq_ignore_ascii_case("bearer") {
                    req.bearer = Some(token.trim().to_owned());
                }
            }
        } else if name.eq_ignore_ascii_case("cookie") {
            for pair in value.split(';') {
                if let Some((k, v)) = pair.trim().split_once('=') {
                    if k == COOKIE {
                        req.cookie = Some(v.to_owned());
                    }
                }
            }
        }
    }
    Ok(req)
}

/// How a request proved it holds the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// It did not.
    Denied,
    /// `?token=`.
    Query,
    /// `Authorization: Bearer`.
    Header,
    /// The cookie.
    Cookie,
}

/// Checks the request's token (any of the three places may hold it).
pub fn authorize(req: &Request, token: &str) -> Auth {
    if req.query_param("token").is_some_and(|t| same(t, token)) {
        Auth::Query
    } else if req.bearer.as_deref().is_some_and(|t| same(t, token)) {
        Auth::Header
    } else if req.cookie.as_deref().is_some_and(|t| same(t, token)) {
        Auth::Cookie
    } else {
        Auth::Denied
    }
}

/// Equal strings, in time that depends on neither (both are hashed to
/// fixed-size digests first, then every byte is compared).
pub fn same(a: &str, b: &str) -> bool {
    let (x, y) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    x.iter().zip(y.iter()).fold(0u8, |d, (p, q)| d | (p ^ q)) == 0
}

enum Reply {
    Bytes(Vec<u8>),
    Events,
}

fn route(req: &Request, ctx: &Ctx) -> Reply {
    let text = "text/plain; charset=utf-8";
    if req.method != "GET" {
        return Reply::Bytes(simple(
            "405 Method Not Allowed",
            text,
            "Allow: GET\r\n",
            b"only GET\n",
        ));
    }
    match req.path.as_str() {
        "/healthz" => return Reply::Bytes(simple("200 OK", text, "", b"ok\n")),
        // No icon: an empty answer rather than a 404 in every console.
        "/favicon.ico" => return Reply::Bytes(simple("204 No Content", text, "", b"")),
        "/app.js" => {
            return Reply::Bytes(simple(
                "200 OK",
                "text/javascript; charset=utf-8",
                "",
                APP_JS.as_bytes(),
            ))
        }
        "/style.css" => {
            return Reply::Bytes(simple(
                "200 OK",
                "text/css; charset=utf-8",
                "",
                STYLE_CSS.as_bytes(),
            ))
        }
        "/" | "/api/state" | "/api/events" => {}
        _ => return Reply::Bytes(simple("404 Not Found", text, "", b"not found\n")),
    }
    let auth = authorize(req, &ctx.token);
    match (auth, req.path.as_str()) {
        (Auth::Denied, _) => Reply::Bytes(denied()),
        // The token moves from the URL into a cookie the page's requests carry.
        (Auth::Query, "/") => Reply::Bytes(simple(
            "303 See Other",
            text,
            &format!(
                "Location: /\r\nSet-Cookie: {COOKIE}={}; Path=/; HttpOnly; SameSite=Strict\r\n",
                ctx.token
            ),
            b"see /\n",
        )),
        (_, "/") => Reply::Bytes(simple(
            "200 OK",
            "text/html; charset=utf-8",
            "",
            INDEX_HTML.as_bytes(),
        )),
        (_, "/api/state") => Reply::Bytes(simple(
            "200 OK",
            "application/json",
            "",
            state_json(&ctx.site, &ctx.hub.snapshot()).as_bytes(),
        )),
        _ => Reply::Events,
    }
}

fn denied() -> Vec<u8> {
    simple(
        "401 Unauthorized",
        "text/html; charset=utf-8",
        "WWW-Authenticate: Bearer realm=\"huddle\"\r\n",
        b"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Huddle dashboard: token needed</title><link rel=\"icon\" href=\"data:,\"></head>\
<body><h1>Token needed</h1><p>Open this page with the dashboard token from the aggregator's configuration \
(<code>[web] token</code>): <code>/?token=TOKEN</code>.</p></body></html>\n",
    )
}

/// A whole response with the common headers.
fn simple(status: &str, content_type: &str, extra: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{COMMON_HEADERS}{extra}\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

/// The event stream: the snapshot, then every change; a fresh snapshot
/// when this client fell behind the hub's buffer; a comment when idle.
async fn events(mut stream: TcpStream, hub: &Hub, site: &str) {
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n{COMMON_HEADERS}\r\nretry: 2000\n\n"
    );
    let (snapshot, mut rx) = hub.snapshot_and_subscribe();
    let first = [
        head,
        sse("snapshot", snapshot.version, &state_json(site, &snapshot)),
    ]
    .concat();
    if write(&mut stream, first.as_bytes()).await.is_err() {
        return;
    }
    let mut heartbeat =
        tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
    loop {
        let out = tokio::select! {
            r = rx.recv() => match r {
                Ok(change) => {
                    let mut out = sse("change", change.version, &change_json(site, &change));
                    // Whatever else is waiting goes in the same write.
                    let mut lagged = false;
                    while out.len() <= 256 * 1024 {
                        match rx.try_recv() {
                            Ok(more) => out.push_str(&sse("change", more.version, &change_json(site, &more))),
                            // Design: a lag seen here must give a snapshot
                            // too: the receiver has already skipped ahead.
                            Err(TryRecvError::Lagged(_)) => {
                                lagged = true;
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    if lagged {
                        fresh_snapshot(hub, site, &mut rx)
                    } else {
                        out
                    }
                }
                Err(RecvError::Lagged(_)) => fresh_snapshot(hub, site, &mut rx),
                Err(RecvError::Closed) => return,
            },
            _ = heartbeat.tick() => ": heartbeat\n\n".to_owned(),
        };
        if write(&mut stream, out.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// A fresh snapshot event for a client that fell behind, and a fresh
/// subscription from it.
fn fresh_snapshot(
    hub: &Hub,
    site: &str,
    rx: &mut tokio::sync::broadcast::Receiver<Change>,
) -> String {
    let (snapshot, fresh) = hub.snapshot_and_subscribe();
    *rx = fresh;
    sse("snapshot", snapshot.version, &state_json(site, &snapshot))
}

/// One server-sent event (JSON holds no raw newline).
fn sse(event: &str, id: u64, data: &str) -> String {
    format!("event: {event}\nid: {id}\ndata: {data}\n\n")
}

/// Where a topic's payload goes in the dashboard's JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "slot", rename_all = "snake_case")]
pub enum Slot {
    /// `huddle/v1/{site}/{area}/{board}/status`.
    BoardStatus {
        /// The area level.
        area: String,
        /// The board level.
        board: String,
    },
    /// `huddle/v1/{site}/{area}/{board}/schedule`.
    BoardSchedule {
        /// The area level.
        area: String,
        /// The board level.
        board: String,
    },
    /// `huddle/v1/{site}/status`.
    Site,
    /// `huddle/v1/{site}/coaching`.
    Coaching,
    /// `huddle/v1/{site}/aggregator/stats`.
    Stats,
    /// `huddle/v1/{site}/alert/{kind}`.
    Alert {
        /// The last level.
        kind: String,
    },
    /// Anything else (not shown).
    Other,
}

/// The slot of `topic` for `site`.
pub fn classify(site: &str, topic: &str) -> Slot {
    let levels: Vec<&str> = topic.split('/').collect();
    match levels.as_slice() {
        ["huddle", "v1", s, rest @ ..] if *s == site => match rest {
            ["status"] => Slot::Site,
            ["coaching"] => Slot::Coaching,
            ["aggregator", "stats"] => Slot::Stats,
            ["alert", kind] => Slot::Alert {
                kind: (*kind).to_owned(),
            },
            [area, board, "status"] => Slot::BoardStatus {
                area: (*area).to_owned(),
                board: (*board).to_owned(),
            },
            [area, board, "schedule"] => Slot::BoardSchedule {
                area: (*area).to_owned(),
                board: (*board).to_owned(),
            },
            _ => Slot::Other,
        },
        _ => Slot::Other,
    }
}

/// A payload as JSON: itself when it is JSON, else a JSON string of it.
fn raw(payload: &str) -> Box<RawValue> {
    RawValue::from_string(payload.to_owned()).unwrap_or_else(|_| {
        // Design: a string always serialises.
        serde_json::value::to_raw_value(payload).expect("a string is JSON")
    })
}

#[derive(Serialize)]
struct StateJson<'a> {
    site_id: &'a str,
    version: u64,
    boards: BTreeMap<String, BoardJson>,
    site: Option<Box<RawValue>>,
    coaching: Option<Box<RawValue>>,
    stats: Option<Box<RawValue>>,
    alerts: Vec<AlertJson>,
}

#[derive(Serialize)]
struct BoardJson {
    area: String,
    board: String,
    status: Option<Box<RawValue>>,
    schedule: Option<Box<RawValue>>,
}

#[derive(Serialize)]
struct AlertJson {
    version: u64,
    kind: String,
    topic: String,
    payload: Box<RawValue>,
}

#[derive(Serialize)]
struct ChangeJson<'a> {
    version: u64,
    topic: &'a str,
    #[serde(flatten)]
    slot: Slot,
    payload: Box<RawValue>,
}

/// `/api/state` and the stream's `snapshot` event: boards by
/// `area/board`, the site's status, coaching and counters, and the
/// alerts newest first.
pub fn state_json(site: &str, snap: &Snapshot) -> String {
    let mut state = StateJson {
        site_id: site,
        version: snap.version,
        boards: BTreeMap::new(),
        site: None,
        coaching: None,
        stats: None,
        alerts: Vec::new(),
    };
    for (topic, payload) in &snap.retained {
        match classify(site, topic) {
            Slot::BoardStatus { area, board } | Slot::BoardSchedule { area, board } => {
                let is_status = topic.ends_with("/status");
                let entry = state
                    .boards
                    .entry(format!("{area}/{board}"))
                    .or_insert_with(|| BoardJson {
                        area,
                        board,
                        status: None,
                        schedule: None,
                    });
                if is_status {
                    entry.status = Some(raw(payload));
                } else {
                    entry.schedule = Some(raw(payload));
                }
            }
            Slot::Site => state.site = Some(raw(payload)),
            Slot::Coaching => state.coaching = Some(raw(payload)),
            Slot::Stats => state.stats = Some(raw(payload)),
            Slot::Alert { .. } | Slot::Other => {}
        }
    }
    for a in snap.alerts.iter().rev() {
        let kind = match classify(site, &a.topic) {
            Slot::Alert { kind } => kind,
            _ => continue,
        };
        state.alerts.push(AlertJson {
            version: a.version,
            kind,
            topic: a.topic.clone(),
            payload: raw(&a.payload),
        });
    }
    // Design: maps of strings and JSON values always serialise.
    serde_json::to_string(&state).expect("the state serialises")
}

/// The stream's `change` event: the version, the topic, its slot (with
/// `area`/`board` or `kind`) and the payload.
pub fn change_json(site: &str, change: &Change) -> String {
    let json = ChangeJson {
        version: change.version,
        topic: &change.topic,
        slot: classify(site, &change.topic),
        payload: raw(&change.payload),
    };
    // Design: strings and JSON values always serialise.
    serde_json::to_string(&json).expect("a change serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(head: &str) -> Request {
        parse_head(head.as_bytes()).unwrap()
    }

    #[test]
    fn parses_the_parts_that_matter() {
        let r = req("GET /api/state?x=1&token=abc HTTP/1.1\r\nHost: h\r\nauthorization: bearer  t0k\r\nCookie: a=b; huddle_token=c00kie\r\n\r\n");
        assert_eq!(r.method, "GET");
        assert_eq!(r.path, "/api/state");
        assert_eq!(r.query_param("token"), Some("abc"));
        assert_eq!(r.query_param("y"), None);
        assert_eq!(r.bearer.as_deref(), Some("t0k"));
        assert_eq!(r.cookie.as_deref(), Some("c00kie"));
        for bad in [
            "GET\r\n\r\n",
            "GET / HTTP/2\r\n\r\n",
            "GET nopath HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1 x\r\n\r\n",
            "GET / HTTP/1.1\r\nno colon\r\n\r\n",
        ] {
            assert_eq!(
                parse_head(bad.as_bytes()),
                Err(HeadError::Malformed),
                "{bad}"
            );
        }
        assert_eq!(
            parse_head(b"GET /\xff HTTP/1.1\r\n\r\n"),
            Err(HeadError::Malformed)
        );
    }

    #[test]
    fn the_token_may_come_from_three_places_and_must_match() {
        let t = "0123456789abcdef";
        let at = |h: &str| authorize(&req(h), t);
        assert_eq!(at("GET / HTTP/1.1\r\n\r\n"), Auth::Denied);
        assert_eq!(
            at("GET /?token=0123456789abcdef HTTP/1.1\r\n\r\n"),
            Auth::Query
        );
        assert_eq!(
            at("GET /?token=0123456789abcdeF HTTP/1.1\r\n\r\n"),
            Auth::Denied
        );
        assert_eq!(
            at("GET / HTTP/1.1\r\nAuthorization: Bearer 0123456789abcdef\r\n\r\n"),
            Auth::Header
        );
        assert_eq!(
            at("GET / HTTP/1.1\r\nAuthorization: Basic 0123456789abcdef\r\n\r\n"),
            Auth::Denied
        );
        assert_eq!(
            at("GET / HTTP/1.1\r\nCookie: huddle_token=0123456789abcdef\r\n\r\n"),
            Auth::Cookie
        );
        assert_eq!(
            at("GET / HTTP/1.1\r\nCookie: huddle_token=0123456789abcde\r\n\r\n"),
            Auth::Denied
        );
        assert!(same("a", "a") && !same("a", "b") && !same("a", "aa") && !same("", "a"));
    }

    #[test]
    fn topics_find_their_slot() {
        let c = |t| classify("s", t);
        assert_eq!(c("huddle/v1/s/status"), Slot::Site);
        assert_eq!(c("huddle/v1/s/coaching"), Slot::Coaching);
        assert_eq!(c("huddle/v1/s/aggregator/stats"), Slot::Stats);
        assert_eq!(
            c("huddle/v1/s/alert/missed_huddle"),
            Slot::Alert {
                kind: "missed_huddle".into()
            }
        );
        assert_eq!(
            c("huddle/v1/s/a/b/status"),
            Slot::BoardStatus {
                area: "a".into(),
                board: "b".into()
            }
        );
        assert_eq!(
            c("huddle/v1/s/a/b/schedule"),
            Slot::BoardSchedule {
                area: "a".into(),
                board: "b".into()
            }
        );
        assert_eq!(c("huddle/v1/t/a/b/status"), Slot::Other);
        assert_eq!(c("huddle/v1/s/a/b/ack"), Slot::Other);
    }

    #[test]
    fn state_and_changes_carry_the_payloads_as_published() {
        let hub = Hub::new(10);
        hub.publish(
            "huddle/v1/s/a/b1/status",
            br#"{"board":"b1","online":true}"#,
            true,
        );
        hub.publish("huddle/v1/s/a/b1/schedule", br#"{"times":["06:45"]}"#, true);
        hub.publish("huddle/v1/s/status", br#"{"boards":1}"#, true);
        hub.publish("huddle/v1/s/alert/board_offline", br#"{"n":1}"#, false);
        hub.publish("huddle/v1/s/alert/missed_huddle", b"not json", false);
        let v: serde_json::Value = serde_json::from_str(&state_json("s", &hub.snapshot())).unwrap();
        assert_eq!(v["version"], 5);
        assert_eq!(v["boards"]["a/b1"]["status"]["online"], true);
        assert_eq!(v["boards"]["a/b1"]["schedule"]["times"][0], "06:45");
        assert_eq!(v["boards"]["a/b1"]["area"], "a");
        assert_eq!(v["site"]["boards"], 1);
        assert!(v["coaching"].is_null());
        assert_eq!(v["alerts"][0]["kind"], "missed_huddle");
        assert_eq!(v["alerts"][0]["payload"], "not json");
        assert_eq!(v["alerts"][1]["payload"]["n"], 1);
        let change = Change {
            version: 9,
            topic: "huddle/v1/s/a/b1/status".into(),
            payload: Arc::from(r#"{"x":1}"#),
            retained: true,
        };
        let c: serde_json::Value = serde_json::from_str(&change_json("s", &change)).unwrap();
        assert_eq!(
            c,
            serde_json::json!({"version":9,"topic":"huddle/v1/s/a/b1/status","slot":"board_status","area":"a","board":"b1","payload":{"x":1}})
        );
        let site = Change {
            topic: "huddle/v1/s/status".into(),
            ..change
        };
        let c: serde_json::Value = serde_json::from_str(&change_json("s", &site)).unwrap();
        assert_eq!(c["slot"], "site");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stream_that_falls_behind_gets_a_fresh_snapshot() {
        let hub = Hub::new(10);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let token = "0123456789abcdef";
        tokio::spawn(serve(
            listener,
            Arc::new(Ctx {
                site: "s".into(),
                token: token.into(),
                hub: hub.clone(),
            }),
        ));
        let mut c = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        c.write_all(
            format!("GET /api/events HTTP/1.1\r\nAuthorization: Bearer {token}\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut seen = String::new();
        let mut buf = vec![0u8; 1 << 16];
        while !seen.contains("event: snapshot\nid: 0\n") {
            let n = c.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed: {seen}");
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        // The client reads nothing while far more than the channel holds
        // is published (the socket's buffers fill, the server waits).
        // Ten boards, so that a snapshot stays small while the changes
        // (each payload different) pile up: three times the hub's channel
        // (4,096 changes, live.rs), 50 MB in all, more than the kernel's
        // buffers can hold (tcp_wmem up to 4 MB and tcp_rmem up to 32 MB
        // on this machine kind; a small SO_RCVBUF instead stalls loopback
        // on zero-window probes).
        let pad = "x".repeat(4000);
        let n = 3 * 4096;
        for i in 0..n {
            let payload = format!("{{\"i\":{i},\"pad\":\"{pad}\"}}");
            hub.publish(
                &format!("huddle/v1/s/a/b{}/status", i % 10),
                payload.as_bytes(),
                true,
            );
        }
        let (mut changes, mut tail) = (0usize, String::new());
        let mut snapshot: Option<u64> = None;
        let mut last: Option<u64> = None;
        let id = |event: &str| -> u64 {
            let line = event.lines().find(|l| l.starts_with("id: ")).unwrap();
            line[4..].parse().unwrap()
        };
        // Heartbeats keep a stalled stream talking: a deadline for it all.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            assert!(
                changes < n,
                "every change came through and no snapshot: the server never fell behind"
            );
            let r = tokio::time::timeout_at(deadline, c.read(&mut buf)).await;
            let Ok(k) = r else {
                panic!("no fresh snapshot within 60 s ({changes} changes, the last {last:?})");
            };
            let k = k.unwrap();
            assert!(k > 0, "the stream closed");
            tail.push_str(&String::from_utf8_lossy(&buf[..k]));
            // Whole events only; the unfinished one stays in `tail`.
            while let Some(end) = tail.find("\n\n") {
                let event: String = tail.drain(..end + 2).collect();
                match (snapshot, event.starts_with("event: snapshot")) {
                    // Heartbeats and the end of an event cut by the first
                    // loop aside, changes come in order: none skipped
                    // without a snapshot.
                    (None, false) if !event.contains("\nid: ") => {}
                    (None, false) => {
                        let v = id(&event);
                        assert!(
                            last.is_none_or(|l| v == l + 1),
                            "change {v} after {last:?}: changes skipped without a snapshot"
                        );
                        last = Some(v);
                        changes += 1;
                    }
                    // (A snapshot may lag again while it is written.)
                    (_, true) => {
                        assert!(changes < n, "{changes} changes came first: no lag");
                        let v = id(&event);
                        assert!(snapshot.is_none_or(|s| v > s));
                        if v as usize == n {
                            return;
                        }
                        snapshot = Some(v);
                    }
                    // After a snapshot the changes go on from it, none missed.
                    (Some(v), false) => {
                        assert_eq!(id(&event), v + 1);
                        return;
                    }
                }
            }
        }
    }
}
