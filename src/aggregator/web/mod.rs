//! The supervisors' web dashboard (issue 6): a page, its JSON and its live
//! stream, served by the aggregator from its [`Hub`].
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
//! The JSON is the hub's retained payloads as they were published on
//! MQTT, embedded unparsed (only checked to be JSON), grouped by topic
//! ([`classify`]): what a browser reads equals what the broker retains.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
use crate::config::DEMO_SECRET_MARK;

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

const INDEX_HTML: &str = include_str!("index.html");
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
pub fn start(web: Option<&WebConfig>, site: &str, hub: Arc<Hub>) -> Option<JoinHandle<()>> {
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
    let mut ctx = Ctx::new(site, &token.0, hub);
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
    /// The access token.
    pub token: String,
    /// The live picture.
    pub hub: Arc<Hub>,
    /// HTTPS when set (from `web.cert_file` and `web.key_file`).
    pub tls: Option<TlsAcceptor>,
    /// The connection slots.
    pub limits: Limits,
}

impl Ctx {
    /// Plain HTTP with the default [`Limits`].
    pub fn new(site: &str, token: &str, hub: Arc<Hub>) -> Ctx {
        Ctx {
            site: site.to_owned(),
            token: token.to_owned(),
            hub,
            tls: None,
            limits: Limits::default(),
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
        Reply::Events => events(stream, &ctx.hub, &ctx.site).await,
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
        "/" | "/api/state" | "/api/events" => {}
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
async fn events<S: AsyncWrite + Unpin>(mut stream: S, hub: &Hub, site: &str) {
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
        // `?token=` is the page's only: the API routes want the header or
        // the cookie, and the query does not stand in for them.
        for path in ["/api/state", "/api/events", "/api/state/", "/healthz"] {
            assert_eq!(
                at(&format!("GET {path}?token={t} HTTP/1.1\r\n\r\n")),
                Auth::Denied,
                "{path}"
            );
        }
        assert_eq!(
            at(&format!(
                "GET /api/state?token={t} HTTP/1.1\r\nCookie: huddle_token={t}\r\n\r\n"
            )),
            Auth::Cookie
        );
    }

    #[test]
    fn the_demo_token_keeps_to_loopback() {
        let l = |a: &str| loopback_for(a.parse().unwrap()).to_string();
        assert_eq!(l("0.0.0.0:8080"), "127.0.0.1:8080");
        assert_eq!(l("192.168.10.5:9000"), "127.0.0.1:9000");
        assert_eq!(l("[::]:8080"), "[::1]:8080");
        assert_eq!(l("[2001:db8::5]:8443"), "[::1]:8443");
        assert_eq!(l("127.0.0.5:8080"), "127.0.0.5:8080");
        assert_eq!(l("[::1]:8081"), "[::1]:8081");
    }

    #[test]
    fn clients_are_counted_by_address_and_ipv6_by_64() {
        let k = |a: &str| client_key(a.parse().unwrap()).to_string();
        assert_eq!(k("10.1.2.3"), "10.1.2.3");
        assert_eq!(k("::ffff:10.1.2.3"), "10.1.2.3");
        assert_eq!(k("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), "2001:db8:1:2::");
        assert_eq!(k("2001:db8:1:2::1"), k("2001:db8:1:2:ffff::9"));
        assert_ne!(k("2001:db8:1:2::1"), k("2001:db8:1:3::1"));
    }

    #[test]
    fn slots_cap_each_address_the_pending_heads_and_the_total() {
        let slots = Slots::new(Limits {
            total: 6,
            per_address: 2,
            pending_heads: 3,
            head_timeout: HEAD_TIMEOUT,
        });
        let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
        let a1 = slots.take(ip("10.0.0.1")).unwrap();
        let mut a2 = slots.take(ip("10.0.0.1")).unwrap();
        assert_eq!(slots.take(ip("10.0.0.1")).err(), Some(Refused::Client));
        assert_eq!(
            slots.take(ip("::ffff:10.0.0.1")).err(),
            Some(Refused::Client)
        );
        let mut b1 = slots.take(ip("10.0.0.2")).unwrap();
        assert_eq!(slots.take(ip("10.0.0.3")).err(), Some(Refused::Pending));
        // A refusal takes nothing: the address is not counted for it.
        assert_eq!(slots.by_client.lock().unwrap().get(&ip("10.0.0.3")), None);
        // A head that came in frees its place in the budget, not its slot.
        a2.head_done();
        b1.head_done();
        let mut c1 = slots.take(ip("10.0.0.3")).unwrap();
        assert_eq!(slots.take(ip("10.0.0.1")).err(), Some(Refused::Client));
        c1.head_done();
        let mut d1 = slots.take(ip("10.0.0.4")).unwrap();
        d1.head_done();
        let mut e1 = slots.take(ip("10.0.0.5")).unwrap();
        e1.head_done();
        assert_eq!(slots.take(ip("10.0.0.6")).err(), Some(Refused::Full));
        drop(a1);
        let f1 = slots.take(ip("10.0.0.1")).unwrap();
        drop((a2, b1, c1, d1, e1, f1));
        assert!(
            slots.by_client.lock().unwrap().is_empty(),
            "every slot given back"
        );
        assert_eq!(slots.all.available_permits(), 6);
        assert_eq!(slots.heads.available_permits(), 3);
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
        tokio::spawn(serve(listener, Arc::new(Ctx::new("s", token, hub.clone()))));
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

    /// A connection to `to` from the loopback address `from` (Linux
    /// answers on all of 127.0.0.0/8), so that one test has many clients.
    async fn connect_from(from: [u8; 4], to: SocketAddr) -> TcpStream {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::from((from, 0))).unwrap();
        timeout(Duration::from_secs(5), socket.connect(to))
            .await
            .expect("connect in time")
            .unwrap()
    }

    /// Idle connections (they send nothing), as blocking std sockets.
    async fn idle_from(from: &[[u8; 4]], to: SocketAddr) -> Vec<std::net::TcpStream> {
        let mut out = Vec::new();
        for f in from {
            let s = connect_from(*f, to).await.into_std().unwrap();
            s.set_nonblocking(false).unwrap();
            out.push(s);
        }
        out
    }

    /// Watches all of `conns` at once for up to `wait`: what each got
    /// before the server closed it, `None` for those still open. (The
    /// test's own thread blocks here; the server runs on the workers.)
    fn ends(conns: &[std::net::TcpStream], wait: Duration) -> Vec<Option<String>> {
        use std::io::Read as _;
        let mut got = vec![Vec::new(); conns.len()];
        let mut ended = vec![false; conns.len()];
        let deadline = std::time::Instant::now() + wait;
        let mut buf = [0u8; 512];
        while std::time::Instant::now() < deadline && ended.contains(&false) {
            for (i, mut c) in conns.iter().enumerate() {
                c.set_nonblocking(true).unwrap();
                while !ended[i] {
                    match c.read(&mut buf) {
                        Ok(0) => ended[i] = true,
                        Ok(n) => got[i].extend_from_slice(&buf[..n]),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(_) => ended[i] = true,
                    }
                }
                c.set_nonblocking(false).unwrap();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        got.into_iter()
            .zip(ended)
            .map(|(bytes, end)| {
                assert!(
                    end || bytes.is_empty(),
                    "an answer without an end: {bytes:?}"
                );
                end.then(|| String::from_utf8_lossy(&bytes).into_owned())
            })
            .collect()
    }

    /// `GET path` from `from` with the token; the status line's code (0
    /// when the connection was closed without an answer).
    async fn get_from(from: [u8; 4], to: SocketAddr, path: &str, token: &str) -> u16 {
        let mut c = connect_from(from, to).await;
        let req = format!("GET {path} HTTP/1.1\r\nAuthorization: Bearer {token}\r\n\r\n");
        // A refused connection may be closed before the request is written.
        let _ = c.write_all(req.as_bytes()).await;
        let mut out = Vec::new();
        let r = timeout(Duration::from_secs(5), c.read_to_end(&mut out)).await;
        assert!(r.is_ok(), "no answer to {path} within 5 s");
        let text = String::from_utf8_lossy(&out);
        text.split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    async fn serve_with(limits: Limits) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut ctx = Ctx::new("s", "0123456789abcdef", Hub::new(10));
        ctx.limits = limits;
        tokio::spawn(serve(listener, Arc::new(ctx)));
        addr
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn idle_connections_from_one_address_leave_others_served() {
        let token = "0123456789abcdef";
        let per_address = 4;
        let addr = serve_with(Limits {
            per_address,
            pending_heads: 8,
            head_timeout: Duration::from_secs(30),
            ..Limits::default()
        })
        .await;
        // Twenty idle connections (no request) from one address.
        let idle = idle_from(&[[127, 0, 0, 1]; 20], addr).await;
        let (mut held, mut refused) = (0, 0);
        for end in ends(&idle, Duration::from_secs(2)) {
            match end {
                None => held += 1,
                Some(text) => {
                    assert!(text.starts_with("HTTP/1.1 503 "), "{text}");
                    assert!(text.contains("Retry-After: 5"), "{text}");
                    refused += 1;
                }
            }
        }
        assert_eq!(
            (held, refused),
            (per_address, 20 - per_address),
            "the address holds its cap, the rest are refused at once"
        );
        // Meanwhile another client is served, and the capped one is not.
        assert_eq!(
            get_from([127, 0, 0, 2], addr, "/api/state", token).await,
            200
        );
        assert_eq!(get_from([127, 0, 0, 2], addr, "/healthz", token).await, 200);
        assert_eq!(get_from([127, 0, 0, 1], addr, "/healthz", token).await, 503);
        // The capped address gets its slots back as its connections go.
        drop(idle);
        let served = async {
            while get_from([127, 0, 0, 1], addr, "/healthz", token).await != 200 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        timeout(Duration::from_secs(5), served)
            .await
            .expect("the address is served again after its idle connections closed");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn idle_connections_over_the_budget_hold_no_task_and_expire() {
        let token = "0123456789abcdef";
        let (budget, head_timeout) = (8, Duration::from_secs(6));
        let tasks = || {
            tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks()
        };
        let before = tasks();
        let addr = serve_with(Limits {
            per_address: 4,
            pending_heads: budget,
            head_timeout,
            ..Limits::default()
        })
        .await;
        // 4 addresses × 4 idle connections: twice the budget of
        // connections without a request head.
        let start = Instant::now();
        let from: Vec<[u8; 4]> = (0..16u8).map(|i| [127, 0, 1, 1 + i % 4]).collect();
        let idle = idle_from(&from, addr).await;
        let mut held = Vec::new();
        for (i, end) in ends(&idle, Duration::from_millis(1500))
            .into_iter()
            .enumerate()
        {
            match end {
                None => held.push(i),
                Some(text) => assert!(text.starts_with("HTTP/1.1 503 "), "{text}"),
            }
        }
        assert_eq!(held.len(), budget, "held: {held:?}");
        // The server, the held connections and nothing for the refused.
        let alive = tasks();
        assert!(
            alive <= before + 1 + budget,
            "{alive} tasks for {budget} held connections (before: {before})"
        );
        // While the budget is full a new client is refused at once (not
        // left waiting); the idle ones are closed at their deadline, and
        // then it is served.
        assert!(start.elapsed() < head_timeout, "the test ran too slowly");
        assert_eq!(get_from([127, 0, 0, 2], addr, "/healthz", token).await, 503);
        let held: Vec<_> = held.iter().map(|&i| idle[i].try_clone().unwrap()).collect();
        let left = (start + head_timeout + Duration::from_secs(3))
            .saturating_duration_since(Instant::now());
        for end in ends(&held, left) {
            assert_eq!(
                end.as_deref(),
                Some(""),
                "an idle connection was not closed at its head deadline"
            );
        }
        assert!(start.elapsed() >= head_timeout - Duration::from_millis(500));
        assert_eq!(
            get_from([127, 0, 0, 2], addr, "/api/state", token).await,
            200
        );
    }
}
