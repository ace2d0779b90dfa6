//! The supervisors' web dashboard: a page, its JSON and its live stream,
//! served by the aggregator from its [`Hub`] and nothing else. Started by
//! [`crate::aggregator::ingest`] ([`start`]) when `[web]` is configured;
//! the page itself (`index.html`, `app.js`, `style.css`) lives beside this
//! file and is compiled in.
//!
//! Why a hand-written server: the dashboard needs five GET routes, one of
//! them a server-sent-event stream, on a plant network. Tokio (already
//! here for MQTT) gives the sockets; what is left is reading one request
//! head and writing one response, which is smaller to review than a
//! framework's configuration and adds no crate to a build that CI runs on
//! two cores. The server is bounded everywhere a client could hold it:
//! the request head (8 KiB, and 10 s from the connection's start, a TLS
//! handshake included), every write (10 s), and one request per
//! connection (`Connection: close`; a page load is four requests).
//!
//! Connection slots ([`Limits`]), decided in the accept loop itself: at
//! most [`MAX_CONNECTIONS`] at once, at most `web.max_per_address`
//! (default [`DEFAULT_MAX_PER_ADDRESS`]) from one client address (IPv4
//! address, IPv6 /64: [`client_key`]), and at most [`MAX_PENDING_HEADS`]
//! that have not sent their request head yet. A connection over any of
//! them is refused there and then: a `503` when the socket takes it at
//! once (plain HTTP), then closed; no task is spawned for it and nothing
//! waits. So idle connections from one address cannot crowd others out,
//! and idle connections from many addresses hold the budget for at most
//! the head deadline.
//!
//! `[web]` keys (see `config/aggregator.toml`): `enabled`, `listen`,
//! `token` or `token_file`, `cert_file` with `key_file` (HTTPS with
//! rustls and the ring provider, as MQTT's TLS; made at load, so that
//! `--check` sees a bad file; the cookie is then `Secure`), and
//! `max_per_address`. While the token is the shipped demo value (it ends
//! in [`DEMO_SECRET_MARK`]) the dashboard listens on loopback only
//! (`127.0.0.1` or `::1`, `web.listen`'s port) whatever `web.listen`
//! says, and warns at start how to fix it ([`loopback_for`]).
//!
//! Routes: `/` (the page), `/app.js`, `/style.css` (public: they are the
//! repository's files and hold no data; `/favicon.ico` is empty),
//! `/healthz` (public, `ok`),
//! `/api/state` (the [`Snapshot`] as JSON) and `/api/events` (server-sent
//! events: the snapshot, then every [`Change`], a fresh snapshot after a
//! lag, a comment every 15 s). The data routes want the read-only token:
//! `Authorization: Bearer TOKEN` or the `huddle_token` cookie; `?token=TOKEN`
//! is taken on `/` only, where it sets that cookie (HttpOnly,
//! SameSite=Strict) and redirects to `/`, so that the page's `fetch` and
//! `EventSource` (which cannot send headers) carry it and the token leaves
//! the address bar (an API address is never a place for it: it would end
//! up in scripts, histories and proxies' logs). Tokens are compared in
//! constant time (SHA-256 of both, then every byte). Nothing here logs a
//! request line or a header: the token never reaches the journal.
//!
//! The page speaks the reader's language ([`i18n`]): the one its
//! language picker set (a cookie), else the best of the browser's
//! `Accept-Language`, else English; the 401 page stays English.
//!
//! The JSON is the hub's retained payloads as they were published on
//! MQTT, embedded unparsed (only checked to be JSON), grouped by topic
//! ([`classify`]): what a browser reads equals what the broker retains.
//!
//! The page (`app.js`, its design notes at the top) shows every clock time
//! in the site's zone (the JSON's `timezone`, from `site.timezone`) and
//! says in its header when the browser's zone reads differently. It is
//! updated in place: tiles, summary figures and alerts are elements that
//! live as long as their board or alert, so keyboard focus and a screen
//! reader's place survive every update, and the alerts' live region gets
//! only new items (an alert is identified by its kind and payload, not its
//! version, which starts again with each aggregator). The huddle states of
//! the summary add up to the boards; offline is counted apart. Stale data
//! (the stream lost) is said with the time it was lost, dimmed, and its
//! timers stop until a fresh snapshot. On a narrow screen the boards that
//! need attention (missed, offline, over target, escalations) come first.
//! tests/it/dashboard/supervisors.rs holds all of this in a real Chromium.
//!
//! `/metrics` ([`metrics`]) answers with the same token rules as
//! `/api/state` (the `Authorization: Bearer` header, as Prometheus sends
//! it with `authorization: { credentials: ... }`).

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use serde::Serialize;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::{timeout, timeout_at, Instant};
use tokio_rustls::TlsAcceptor;

use crate::aggregator::config::WebConfig;
use crate::aggregator::live::{Change, Hub, Snapshot};
use crate::aggregator::metrics;

pub mod i18n;
use crate::config::{SiteConfig, DEMO_SECRET_MARK};

/// Largest request head read.
pub const MAX_HEAD: usize = 8 * 1024;
/// Time a client has, from its connection, to send its request head
/// (and to finish the TLS handshake first, over HTTPS).
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Time one write may take before the client is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once (each open page holds one for its stream).
pub const MAX_CONNECTIONS: usize = 512;
/// Connections at once that have not sent their request head yet.
pub const MAX_PENDING_HEADS: usize = 32;
/// `web.max_per_address`'s default: connections at once from one client.
pub const DEFAULT_MAX_PER_ADDRESS: usize = 16;
/// A comment line on idle event streams, so that proxies and browsers
/// keep them and a vanished client is noticed.
const HEARTBEAT: Duration = Duration::from_secs(15);
/// The cookie that carries the token for the page's requests.
pub const COOKIE: &str = "huddle_token";
/// A port in use is tried again this often.
const BIND_RETRY: Duration = Duration::from_secs(5);

const APP_JS: &str = include_str!("app.js");
const STYLE_CSS: &str = include_str!("style.css");

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
/// dashboard never stops ingest. With the shipped demo token it listens
/// on loopback only and says so.
pub fn start(
    web: Option<&WebConfig>,
    site: &SiteConfig,
    hub: Arc<Hub>,
    database: &Path,
) -> Option<JoinHandle<()>> {
    let web = web.filter(|w| w.enabled)?;
    let (Some(token), Ok(listen)) = (web.resolved_token.clone(), web.listen_addr()) else {
        // Load resolves and validates both; a hand-made config may not.
        tracing::error!("web: the dashboard is off: its token or listen address was not loaded");
        return None;
    };
    let mut addr = listen;
    if token.0.ends_with(DEMO_SECRET_MARK) {
        addr = loopback_for(listen);
        tracing::warn!(
            listen = %listen,
            serving = %addr,
            "web: the dashboard token is the shipped demo value, so the dashboard serves on \
             loopback ({addr}) only, whatever web.listen says: set your own web.token \
             (`openssl rand -hex 32`) or web.token_file to open it to the network"
        );
    }
    let mut ctx = Ctx::new(&site.id, &token.0, hub);
    ctx.timezone = site.timezone.clone();
    ctx.database = database.to_owned();
    ctx.tls = web.tls.as_ref().map(|t| TlsAcceptor::from(t.0.clone()));
    ctx.limits.per_address = web.max_per_address;
    let ctx = Arc::new(ctx);
    Some(tokio::spawn(async move {
        let listener = bind(addr).await;
        let scheme = if ctx.tls.is_some() { "https" } else { "http" };
        tracing::info!(listen = %addr, scheme, "web dashboard listening");
        serve(listener, ctx).await;
    }))
}

/// Where a dashboard with the demo token listens: `addr` when it is a
/// loopback address, else loopback (`127.0.0.1`, or `::1` for an IPv6
/// address) on its port.
pub fn loopback_for(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_loopback() {
        return addr;
    }
    let ip = match addr {
        SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
        SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
    };
    SocketAddr::new(ip, addr.port())
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

/// How many connections the server holds, and for how long a client may
/// take to send its request head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections at once ([`MAX_CONNECTIONS`]).
    pub total: usize,
    /// Connections at once from one [`client_key`] (`web.max_per_address`).
    pub per_address: usize,
    /// Connections at once that have not sent their request head
    /// ([`MAX_PENDING_HEADS`]).
    pub pending_heads: usize,
    /// Time from a connection's start to its whole request head
    /// ([`HEAD_TIMEOUT`]).
    pub head_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            total: MAX_CONNECTIONS,
            per_address: DEFAULT_MAX_PER_ADDRESS,
            pending_heads: MAX_PENDING_HEADS,
            head_timeout: HEAD_TIMEOUT,
        }
    }
}

/// What every connection shares.
pub struct Ctx {
    /// The site id (topic level).
    pub site: String,
    /// The site's IANA time zone (`site.timezone`): the page shows every
    /// time in it, whatever the browser's zone.
    pub timezone: String,
    /// The access token.
    pub token: String,
    /// The live picture.
    pub hub: Arc<Hub>,
    /// HTTPS when set (from `web.cert_file` and `web.key_file`).
    pub tls: Option<TlsAcceptor>,
    /// The connection slots.
    pub limits: Limits,
    /// The site file (`/metrics` reads the boards' acks from it).
    pub database: PathBuf,
    /// Event streams open now (`/metrics`).
    pub streams: AtomicU64,
}

impl Ctx {
    /// Plain HTTP with the default [`Limits`], times shown in UTC.
    pub fn new(site: &str, token: &str, hub: Arc<Hub>) -> Ctx {
        Ctx {
            site: site.to_owned(),
            timezone: "UTC".to_owned(),
            token: token.to_owned(),
            hub,
            tls: None,
            limits: Limits::default(),
            database: PathBuf::new(),
            streams: AtomicU64::new(0),
        }
    }
}

/// The address a per-client cap counts: an IPv4 address (also when it
/// comes IPv4-mapped on an IPv6 socket) as it is, an IPv6 address by its
/// /64 (one host may take any address of its /64).
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

type Counts = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// The accept loop's bookkeeping of [`Limits`].
struct Slots {
    per_address: usize,
    all: Arc<Semaphore>,
    heads: Arc<Semaphore>,
    by_client: Counts,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refused {
    /// Its client holds `per_address` connections already.
    Client,
    /// `total` connections are open.
    Full,
    /// `pending_heads` connections have not sent their head yet.
    Pending,
}

/// One connection's share of the limits, given back when dropped.
struct Held {
    _all: OwnedSemaphorePermit,
    head: Option<OwnedSemaphorePermit>,
    client: IpAddr,
    by_client: Counts,
}

impl Slots {
    fn new(limits: Limits) -> Slots {
        Slots {
            per_address: limits.per_address,
            all: Arc::new(Semaphore::new(limits.total)),
            heads: Arc::new(Semaphore::new(limits.pending_heads)),
            by_client: Arc::default(),
        }
    }

    /// A slot for a connection from `peer`, or why not. Never waits.
    fn take(&self, peer: IpAddr) -> Result<Held, Refused> {
        let client = client_key(peer);
        let mut counts = self.by_client.lock().unwrap_or_else(|e| e.into_inner());
        let held = counts.get(&client).copied().unwrap_or(0);
        if held >= self.per_address {
            return Err(Refused::Client);
        }
        let all = self
            .all
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refused::Full)?;
        let head = self
            .heads
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refused::Pending)?;
        counts.insert(client, held + 1);
        Ok(Held {
            _all: all,
            head: Some(head),
            client,
            by_client: self.by_client.clone(),
        })
    }
}

impl Held {
    /// The request head is in: the connection leaves the pending budget.
    fn head_done(&mut self) {
        self.head = None;
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut counts = self.by_client.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = counts.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.client);
            }
        }
    }
}

/// Serves connections from `listener` until the task is aborted.
pub async fn serve(listener: TcpListener, ctx: Arc<Ctx>) {
    let slots = Slots::new(ctx.limits);
    let busy = simple(
        "503 Service Unavailable",
        "text/plain; charset=utf-8",
        "Retry-After: 5\r\n",
        b"too many connections, try again\n",
    );
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // Out of file descriptors and the like: pause, go on.
                tracing::warn!(error = %e, "web: accept");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        match slots.take(peer.ip()) {
            Ok(slot) => {
                let ctx = ctx.clone();
                tokio::spawn(async move { connection(stream, slot, &ctx).await });
            }
            Err(_) => {
                // Here, with no task and no waiting; the socket closes at
                // the end of this arm. Plain HTTP first gets a short
                // answer, written on the socket itself (still non-blocking;
                // a fresh socket's buffer takes it at once): tokio's
                // `try_write` would need a readiness event its driver may
                // not have seen yet. Over TLS there is no plain answer.
                if ctx.tls.is_none() {
                    if let Ok(socket) = stream.into_std() {
                        let _ = std::io::Write::write(&mut &socket, &busy);
                    }
                }
            }
        }
    }
}

/// One connection: the TLS handshake if any, one request, one response.
async fn connection(stream: TcpStream, mut slot: Held, ctx: &Ctx) {
    let _ = stream.set_nodelay(true);
    let deadline = Instant::now() + ctx.limits.head_timeout;
    match &ctx.tls {
        None => exchange(stream, &mut slot, deadline, ctx).await,
        Some(acceptor) => {
            // A failed or slow handshake: nobody to answer.
            if let Ok(Ok(tls)) = timeout_at(deadline, acceptor.accept(stream)).await {
                exchange(tls, &mut slot, deadline, ctx).await;
            }
        }
    }
}

/// Reads the request head by `deadline`, answers it.
async fn exchange<S>(mut stream: S, slot: &mut Held, deadline: Instant, ctx: &Ctx)
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let head = timeout_at(deadline, read_head(&mut stream)).await;
    slot.head_done();
    let head = match head {
        Ok(Ok(h)) => h,
        Ok(Err(HeadError::TooLarge)) => {
            let r = simple(
                "431 Request Header Fields Too Large",
                "text/plain; charset=utf-8",
                "",
                b"request head too large\n",
            );
            let _ = write(&mut stream, &r).await;
            let _ = timeout(WRITE_TIMEOUT, stream.shutdown()).await;
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
            let _ = timeout(WRITE_TIMEOUT, stream.shutdown()).await;
        }
        Reply::Events => events(stream, ctx).await,
    }
}

async fn write<S: AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8]) -> Result<(), ()> {
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

async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Vec<u8>, HeadError> {
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
    /// The `Accept-Language` header and the [`i18n::COOKIE`] cookie.
    pub languages: (Option<String>, Option<String>),
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
        } else if name.eq_ignore_ascii_case("accept-language") {
            req.languages.0 = Some(value.to_owned());
        } else if name.eq_ignore_ascii_case("cookie") {
            for pair in value.split(';') {
                if let Some((k, v)) = pair.trim().split_once('=') {
                    if k == COOKIE {
                        req.cookie = Some(v.to_owned());
                    } else if k == i18n::COOKIE {
                        req.languages.1 = Some(v.to_owned());
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
    /// `?token=`, on `/` only.
    Query,
    /// `Authorization: Bearer`.
    Header,
    /// The cookie.
    Cookie,
}

/// Checks the request's token: the header or the cookie on every route,
/// `?token=` on `/` only (where it becomes the cookie).
pub fn authorize(req: &Request, token: &str) -> Auth {
    if req.path == "/" && req.query_param("token").is_some_and(|t| same(t, token)) {
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
        "/" | "/api/state" | "/api/events" | "/metrics" => {}
        _ => return Reply::Bytes(simple("404 Not Found", text, "", b"not found\n")),
    }
    let auth = authorize(req, &ctx.token);
    match (auth, req.path.as_str()) {
        (Auth::Denied, _) => Reply::Bytes(denied()),
        // The token moves from the URL into a cookie the page's requests
        // carry (over HTTPS only over HTTPS).
        (Auth::Query, "/") => Reply::Bytes(simple(
            "303 See Other",
            text,
            &format!(
                "Location: /\r\nSet-Cookie: {COOKIE}={}; Path=/; HttpOnly; SameSite=Strict{}\r\n",
                ctx.token,
                if ctx.tls.is_some() { "; Secure" } else { "" }
            ),
            b"see /\n",
        )),
        (_, "/") => {
            let lang = i18n::choose(req.languages.0.as_deref(), req.languages.1.as_deref());
            let vary = format!("Content-Language: {lang}\r\nVary: Accept-Language, Cookie\r\n");
            let page = i18n::page(lang);
            Reply::Bytes(simple(
                "200 OK",
                "text/html; charset=utf-8",
                &vary,
                page.as_bytes(),
            ))
        }
        (_, "/metrics") => {
            let web = metrics::WebFigures {
                streams: ctx.streams.load(Ordering::Relaxed),
            };
            let snap = ctx.hub.snapshot();
            let text = metrics::render(&ctx.site, &snap, &ctx.database, web, Utc::now());
            Reply::Bytes(simple("200 OK", metrics::CONTENT_TYPE, "", text.as_bytes()))
        }
        (_, "/api/state") => Reply::Bytes(simple(
            "200 OK",
            "application/json",
            "",
            state_json(&ctx.site, &ctx.timezone, &ctx.hub.snapshot()).as_bytes(),
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
async fn events<S: AsyncWrite + Unpin>(mut stream: S, ctx: &Ctx) {
    ctx.streams.fetch_add(1, Ordering::Relaxed);
    // Counted down however the stream ends (the future may be dropped).
    struct Open<'a>(&'a AtomicU64);
    impl Drop for Open<'_> {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::Relaxed);
        }
    }
    let _open = Open(&ctx.streams);
    let (hub, site) = (&ctx.hub, ctx.site.as_str());
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n{COMMON_HEADERS}\r\nretry: 2000\n\n"
    );
    let (snapshot, mut rx) = hub.snapshot_and_subscribe();
    let first = [
        head,
        sse(
            "snapshot",
            snapshot.version,
            &state_json(site, &ctx.timezone, &snapshot),
        ),
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
                        fresh_snapshot(ctx, &mut rx)
                    } else {
                        out
                    }
                }
                Err(RecvError::Lagged(_)) => fresh_snapshot(ctx, &mut rx),
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
fn fresh_snapshot(ctx: &Ctx, rx: &mut tokio::sync::broadcast::Receiver<Change>) -> String {
    let (snapshot, fresh) = ctx.hub.snapshot_and_subscribe();
    *rx = fresh;
    let json = state_json(&ctx.site, &ctx.timezone, &snapshot);
    sse("snapshot", snapshot.version, &json)
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
    timezone: &'a str,
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

/// `/api/state` and the stream's `snapshot` event: the site id, its
/// time zone (`timezone`, IANA, from `site.timezone`: the page shows
/// times in it), boards by `area/board`, the site's status, coaching and
/// counters, and the alerts newest first (the hub's: after a restart,
/// the latest ones from the site file's alert log, then the conditions
/// still open at the start that were not listed before: see the live
/// status's `Evaluation::earlier`).
pub fn state_json(site: &str, timezone: &str, snap: &Snapshot) -> String {
    let mut state = StateJson {
        site_id: site,
        timezone,
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
mod tests;
