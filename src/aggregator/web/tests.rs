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
fn the_page_speaks_the_pickers_language_else_the_browsers_best() {
    let ctx = Ctx::new("s", "0123456789abcdef", Hub::new(10));
    let page = |headers: &str| -> String {
        let head =
            format!("GET / HTTP/1.1\r\nCookie: huddle_token=0123456789abcdef{headers}\r\n\r\n");
        let reply = route(&req(&head), &ctx);
        let Reply::Bytes(b) = reply else {
            panic!("/ is not a stream")
        };
        String::from_utf8(b).unwrap()
    };
    let lang = |headers: &str| -> (String, String) {
        let p = page(headers);
        let header = p
            .lines()
            .find_map(|l| l.strip_prefix("Content-Language: "))
            .unwrap_or("")
            .to_owned();
        let html = p.split("<html lang=\"").nth(1).unwrap_or("").to_owned();
        (header, html[..html.find('"').unwrap_or(0)].to_owned())
    };
    let both = |l: &str| (l.to_owned(), l.to_owned());
    assert_eq!(lang(""), both("en"));
    assert_eq!(
        lang("\r\nAccept-Language: fr-CA;q=0.3, pl;q=0.8, de;q=0"),
        both("pl")
    );
    assert_eq!(lang("\r\naccept-language: ja, es;q=0.1"), both("es"));
    assert_eq!(lang("\r\nAccept-Language: ja"), both("en"));
    // The picker's cookie wins over the header; an unknown one does not.
    assert_eq!(lang("; huddle_lang=fr\r\nAccept-Language: de"), both("fr"));
    assert_eq!(lang("; huddle_lang=xx\r\nAccept-Language: de"), both("de"));
    assert!(page("\r\nAccept-Language: de").contains("<h2 id=\"boards-h\">Boards</h2>"));
    assert!(page("\r\nAccept-Language: pl").contains("<h2 id=\"boards-h\">Tablice</h2>"));
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
    let v: serde_json::Value =
        serde_json::from_str(&state_json("s", "Europe/Berlin", &hub.snapshot())).unwrap();
    assert_eq!(v["version"], 5);
    assert_eq!(v["timezone"], "Europe/Berlin");
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
    let left =
        (start + head_timeout + Duration::from_secs(3)).saturating_duration_since(Instant::now());
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
