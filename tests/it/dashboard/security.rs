//! The dashboard's own defences (issue 13, "Dashboard"), against the real
//! `huddle-aggregator` binary on free loopback ports. No broker is needed:
//! the dashboard serves whether or not MQTT is up (the aggregator is
//! pointed at a port nobody listens on).
//!
//! - The shipped demo token: the dashboard listens on loopback only, even
//!   with `listen = "0.0.0.0:PORT"`, and says so at start; with a token of
//!   the site's own the same configuration serves every address.
//! - HTTPS with `cert_file` and `key_file`: a certificate issued by a CA
//!   made here with `openssl`; real HTTPS requests by a rustls client that
//!   trusts only that CA and by `openssl s_client`; the cookie is `Secure`;
//!   plain HTTP gets no answer there.
//! - The keys are checked at load, naming the key and the file.
//! - Connection slots: idle connections from one address are capped at
//!   `max_per_address` (the rest refused at once with `503`) while another
//!   client is served; the held ones are closed at the 10 s head deadline.
//!   (The budget of connections without a head, filled from many
//!   addresses, is tested in `src/aggregator/web.rs` with a short deadline.)

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::{free_port, require, wait_port, Aggregator};
use huddle_board::aggregator::config::AggregatorConfig;

const TOKEN: &str = "security-test-token-0123456789";
const DEMO_TOKEN: &str = "demo-dashboard-token-change-me";

/// An aggregator whose `[web]` section is `web` (plus `token`), in `dir`.
fn aggregator(dir: &Path, web: &str) -> Aggregator {
    std::fs::write(
        dir.join("aggregator.toml"),
        format!(
            "[site]\nid = \"plant1\"\ntimezone = \"Europe/Berlin\"\n\
             site_key = \"3f9a0c7d1e2b4a5968c7d0e1f2a3b4c5\"\n\
             [coaching]\nrecompute_s = 3600\n[web]\n{web}\n"
        ),
    )
    .unwrap();
    // Nobody listens there: the aggregator keeps trying, the dashboard serves.
    let broker = format!("mqtt://127.0.0.1:{}", free_port());
    Aggregator::start(dir, &broker)
}

/// Waits until the dashboard listens on 127.0.0.1:`port`.
fn wait_listening(a: &mut Aggregator, port: u16) {
    if !wait_port(port, Duration::from_secs(30)) {
        a.assert_running();
        panic!("the dashboard did not listen on {port}:\n{}", a.log());
    }
}

/// One plain HTTP request to `ip:port`: the status code and the response.
fn http(ip: Ipv4Addr, port: u16, request: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&(ip, port).into(), Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(request.as_bytes())?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    let text = String::from_utf8_lossy(&out).into_owned();
    Ok((status(&text), text))
}

fn status(response: &str) -> u16 {
    response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn get(ip: Ipv4Addr, port: u16, path: &str) -> std::io::Result<(u16, String)> {
    http(
        ip,
        port,
        &format!("GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"),
    )
}

const LOOPBACK_2: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

#[test]
fn the_demo_token_serves_on_loopback_only() {
    let (demo_dir, own_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (demo_port, own_port) = (free_port(), free_port());
    let mut demo = aggregator(
        demo_dir.path(),
        &format!("listen = \"0.0.0.0:{demo_port}\"\ntoken = \"{DEMO_TOKEN}\""),
    );
    let mut own = aggregator(
        own_dir.path(),
        &format!("listen = \"0.0.0.0:{own_port}\"\ntoken = \"{TOKEN}\""),
    );
    wait_listening(&mut demo, demo_port);
    wait_listening(&mut own, own_port);

    // 127.0.0.2 is this machine too, but not the address 127.0.0.1: a
    // socket bound to 0.0.0.0 answers there, one bound to 127.0.0.1 not.
    let (code, _) = get(Ipv4Addr::LOCALHOST, demo_port, "/healthz").unwrap();
    assert_eq!(code, 200);
    match get(LOOPBACK_2, demo_port, "/healthz") {
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}"),
        Ok(r) => panic!(
            "with the demo token the dashboard answered on 127.0.0.2 (listening on 0.0.0.0): {r:?}\n{}",
            demo.log()
        ),
    }
    let (code, _) = get(LOOPBACK_2, own_port, "/healthz").expect("own token: every address");
    assert_eq!(code, 200);

    let log = demo.log();
    let said = format!(
        "the dashboard token is the shipped demo value, so the dashboard serves on loopback (127.0.0.1:{demo_port}) only"
    );
    assert!(log.contains(&said), "no warning that says why:\n{log}");
    assert!(log.contains("openssl rand -hex 32"), "no advice:\n{log}");
    assert!(log.contains("WARN"), "{log}");
    assert!(!own.log().contains("serves on loopback"), "{}", own.log());
    demo.assert_running();
    own.assert_running();
}

/// A CA, and a certificate it issued for `localhost` and 127.0.0.1 with
/// its key, made with `openssl` in `dir`: (CA, certificate, key).
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let openssl = require("openssl", "openssl");
    let run = |args: &[&str]| {
        let out = Command::new(&openssl)
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
    run(&[
        &["req", "-x509", "-nodes", "-days", "2"],
        &ec[..],
        &[
            "-subj",
            "/CN=test site CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
        ],
    ]
    .concat());
    run(&[
        &["req", "-nodes"],
        &ec[..],
        &[
            "-subj",
            "/CN=localhost",
            "-keyout",
            "dashboard.key",
            "-out",
            "dashboard.csr",
        ],
    ]
    .concat());
    std::fs::write(
        dir.join("ext.cnf"),
        "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "dashboard.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        "-out",
        "dashboard.crt",
    ]);
    (
        dir.join("ca.crt"),
        dir.join("dashboard.crt"),
        dir.join("dashboard.key"),
    )
}

/// One HTTPS request with rustls, trusting only `ca`, to `localhost`
/// (127.0.0.1:`port`): the whole response.
fn https(ca: &Path, port: u16, request: &str) -> Result<String, String> {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(ca).unwrap();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    let tcp = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(request.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    tls.read_to_end(&mut out).map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[test]
fn https_with_a_certificate_from_the_site_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, _, _) = certificates(dir.path());
    let port = free_port();
    // Relative paths: beside the configuration file.
    let mut a = aggregator(
        dir.path(),
        &format!(
            "listen = \"127.0.0.1:{port}\"\ntoken = \"{TOKEN}\"\n\
             cert_file = \"dashboard.crt\"\nkey_file = \"dashboard.key\""
        ),
    );
    wait_listening(&mut a, port);

    let r = https(
        &ca,
        port,
        "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n",
    )
    .unwrap_or_else(|e| panic!("HTTPS /healthz: {e}\n{}", a.log()));
    assert!(
        r.starts_with("HTTP/1.1 200 OK\r\n") && r.ends_with("\r\n\r\nok\n"),
        "{r}"
    );
    let r = https(
        &ca,
        port,
        &format!(
            "GET /api/state HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
        ),
    )
    .unwrap();
    assert_eq!(status(&r), 200, "{r}");
    let body = r.split_once("\r\n\r\n").unwrap().1;
    let state: serde_json::Value = serde_json::from_str(body).expect("JSON over HTTPS");
    assert_eq!(state["site_id"], "plant1");
    // The cookie is `Secure` over HTTPS; the query is the page's only.
    let r = https(
        &ca,
        port,
        &format!("GET /?token={TOKEN} HTTP/1.1\r\nHost: localhost\r\n\r\n"),
    )
    .unwrap();
    assert_eq!(status(&r), 303, "{r}");
    assert!(
        r.contains(&format!(
            "Set-Cookie: huddle_token={TOKEN}; Path=/; HttpOnly; SameSite=Strict; Secure\r\n"
        )),
        "{r}"
    );
    let r = https(
        &ca,
        port,
        &format!("GET /api/state?token={TOKEN} HTTP/1.1\r\nHost: localhost\r\n\r\n"),
    )
    .unwrap();
    assert_eq!(status(&r), 401, "{r}");

    // Another TLS stack: OpenSSL, verifying the name against the same CA.
    let mut s_client = Command::new(require("openssl", "openssl"))
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(["-servername", "localhost", "-verify_hostname", "localhost"])
        .args(["-verify_return_error", "-quiet", "-CAfile"])
        .arg(&ca)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    s_client
        .stdin
        .take()
        .unwrap()
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while s_client.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = s_client.kill();
            panic!("openssl s_client did not finish in 20 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = s_client.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("HTTP/1.1 200 OK\r\n") && text.ends_with("\r\n\r\nok\n"),
        "openssl s_client: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Plain HTTP on the HTTPS port: no HTTP answer.
    if let Ok((_, text)) = http(Ipv4Addr::LOCALHOST, port, "GET /healthz HTTP/1.1\r\n\r\n") {
        assert!(!text.contains("HTTP/1.1"), "plain HTTP answered: {text}");
    }

    let log = a.log();
    assert!(
        log.contains("web dashboard listening") && log.contains("https"),
        "{log}"
    );
    assert!(!log.contains(TOKEN), "the token is in the log:\n{log}");
    a.assert_running();
}

#[test]
fn certificate_keys_and_slots_are_checked_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let (_, cert, key) = certificates(dir.path());
    // A key of another pair.
    let other = dir.path().join("other.key");
    let status = Command::new(require("openssl", "openssl"))
        .args([
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
        ])
        .arg(&other)
        .status()
        .unwrap();
    assert!(status.success());
    let file = dir.path().join("aggregator.toml");
    let config = |web: &str| {
        format!(
            "[site]\nid = \"plant1\"\ntimezone = \"Europe/Berlin\"\n\
             site_key = \"3f9a0c7d1e2b4a5968c7d0e1f2a3b4c5\"\n\
             [web]\ntoken = \"{TOKEN}\"\n{web}\n"
        )
    };
    let load = |web: &str| AggregatorConfig::from_toml(&config(web), &file);
    let (c, k) = (cert.display(), key.display());

    let ok = load("cert_file = \"dashboard.crt\"\nkey_file = \"dashboard.key\"").unwrap();
    let web = ok.web.unwrap();
    assert!(web.tls.is_some(), "both keys make HTTPS");
    assert_eq!(
        web.cert_file.as_deref(),
        Some(cert.as_path()),
        "beside the file"
    );
    assert_eq!(web.max_per_address, 16);
    assert!(!format!("{web:?}").contains(TOKEN));
    assert!(
        load("").unwrap().web.unwrap().tls.is_none(),
        "neither: plain HTTP"
    );

    let missing = dir.path().join("missing.pem");
    let m = missing.display();
    for (web, key, says) in [
        (
            format!("cert_file = \"{c}\""),
            "web.key_file",
            "key_file".to_owned(),
        ),
        (
            format!("key_file = \"{k}\""),
            "web.cert_file",
            "cert_file".to_owned(),
        ),
        (
            format!("cert_file = \"{m}\"\nkey_file = \"{k}\""),
            "web.cert_file",
            format!("cannot read {m}"),
        ),
        (
            format!("cert_file = \"{c}\"\nkey_file = \"{m}\""),
            "web.key_file",
            format!("cannot read {m}"),
        ),
        (
            format!("cert_file = \"{k}\"\nkey_file = \"{k}\""),
            "web.cert_file",
            format!("{k} holds no PEM certificate"),
        ),
        (
            format!("cert_file = \"{c}\"\nkey_file = \"{c}\""),
            "web.key_file",
            format!("{c} holds no PEM private key"),
        ),
        (
            format!("cert_file = \"{c}\"\nkey_file = \"{}\"", other.display()),
            "web.key_file",
            other.display().to_string(),
        ),
        (
            "max_per_address = 0".to_owned(),
            "web.max_per_address",
            "between 1 and 512".to_owned(),
        ),
        (
            "max_per_address = 513".to_owned(),
            "web.max_per_address",
            "between 1 and 512".to_owned(),
        ),
    ] {
        let e = load(&web).expect_err(&web);
        assert_eq!(e.key, key, "{web}: {e}");
        let text = e.to_string();
        assert!(text.contains(&says), "{web}: {text}");
        assert!(text.contains(&file.display().to_string()), "{web}: {text}");
    }

    // `--check` says the same before anything runs.
    std::fs::write(&file, config(&format!("cert_file = \"{c}\""))).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_huddle-aggregator"))
        .arg("--config")
        .arg(&file)
        .arg("--check")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "--check accepted a certificate without its key"
    );
    assert!(
        err.contains("web.key_file") && err.contains(&file.display().to_string()),
        "{err}"
    );
}

/// A plain connection to 127.0.0.1:`port` from `from` (any 127.x address).
fn connect_from(rt: &tokio::runtime::Runtime, from: Ipv4Addr, port: u16) -> TcpStream {
    let s = rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::from((from, 0))).unwrap();
        tokio::time::timeout(
            Duration::from_secs(5),
            socket.connect(SocketAddr::from((Ipv4Addr::LOCALHOST, port))),
        )
        .await
        .expect("connect in time")
        .unwrap()
    });
    let s = s.into_std().unwrap();
    s.set_nonblocking(false).unwrap();
    s
}

/// Watches all of `conns` at once for up to `wait`: what each got before
/// the server closed it (a reset counts as closed), `None` for those still
/// open.
fn ends(conns: &[TcpStream], wait: Duration) -> Vec<Option<String>> {
    let mut got = vec![Vec::new(); conns.len()];
    let mut ended = vec![false; conns.len()];
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 512];
    while Instant::now() < deadline && ended.contains(&false) {
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

/// What the server sent before it closed `c` (`None`: still open after `wait`).
fn closed_with(c: &TcpStream, wait: Duration) -> Option<String> {
    let c = c.try_clone().unwrap();
    ends(&[c], wait).pop().unwrap()
}

#[test]
fn idle_connections_from_one_address_do_not_lock_others_out() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cap = 5;
    let mut a = aggregator(
        dir.path(),
        &format!("listen = \"127.0.0.1:{port}\"\ntoken = \"{TOKEN}\"\nmax_per_address = {cap}"),
    );
    wait_listening(&mut a, port);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let attacker = Ipv4Addr::new(127, 0, 0, 3);

    // Twice the cap and more, idle (no request), from one address.
    let opened = Instant::now();
    let idle: Vec<TcpStream> = (0..12).map(|_| connect_from(&rt, attacker, port)).collect();
    let mut held = Vec::new();
    for (i, end) in ends(&idle, Duration::from_secs(2)).into_iter().enumerate() {
        match end {
            None => held.push(i),
            Some(text) => assert!(
                text.starts_with("HTTP/1.1 503 ") && text.contains("too many connections"),
                "a refused connection got {text:?}"
            ),
        }
    }
    assert_eq!(held.len(), cap, "held {held:?} of 12 from one address");

    // Meanwhile: another address is served, that one is refused.
    let mut other = connect_from(&rt, LOOPBACK_2, port);
    other
        .write_all(
            format!("GET /api/state HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\n\r\n").as_bytes(),
        )
        .unwrap();
    let text = closed_with(&other, Duration::from_secs(5)).expect("an answer");
    assert_eq!(status(&text), 200, "{text}");
    assert!(text.contains("\"site_id\":\"plant1\""), "{text}");
    let mut refused = connect_from(&rt, attacker, port);
    refused
        .write_all(
            format!("GET /healthz HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\n\r\n").as_bytes(),
        )
        .ok();
    let text = closed_with(&refused, Duration::from_secs(5)).expect("refused at once");
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 503 "),
        "{text}"
    );

    // The held ones are closed at the head deadline (10 s), not before
    // 9 s; then the address is served again.
    let held: Vec<TcpStream> = held.iter().map(|&i| idle[i].try_clone().unwrap()).collect();
    let left = (opened + Duration::from_secs(14)).saturating_duration_since(Instant::now());
    for end in ends(&held, left) {
        assert_eq!(
            end.as_deref(),
            Some(""),
            "an idle connection outlived its deadline"
        );
    }
    let took = opened.elapsed();
    assert!(
        took >= Duration::from_secs(9),
        "idle connections closed after {took:?}"
    );
    let mut c = connect_from(&rt, attacker, port);
    c.write_all(b"GET /healthz HTTP/1.1\r\n\r\n").unwrap();
    let text = closed_with(&c, Duration::from_secs(5)).expect("an answer");
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    a.assert_running();
}
