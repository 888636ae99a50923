//! Access to the admin API: the server's own HTTPS certificate, mutual TLS
//! with allowed client certificates, and rotating the admin token.

use super::*;

on_both!(
    https_with_own_certificate,
    admin_api_over_mutual_tls,
    admin_token_rotation,
    admin_api_only_where_configured,
    tls_certificate_renewed_while_serving,
    configuration_kept_private,
);

/// hallmark.toml (which may name the database) is readable by its owner
/// only, from `init` on and after every rewrite (a looser file is
/// tightened); the PostgreSQL password can come from a file instead of
/// the URL, and a missing file is named.
fn configuration_kept_private(b: Backend) {
    use std::os::unix::fs::PermissionsExt;
    let hm = setup!(b);
    let mode = |f: &str| std::fs::metadata(hm.path(f)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("hallmark.toml"), 0o600);
    assert_eq!(mode("keystore.json"), 0o600);
    std::fs::set_permissions(
        hm.path("hallmark.toml"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    hm.ok(&["admin-token", "rotate"]);
    assert_eq!(mode("hallmark.toml"), 0o600);
    if b == Backend::Postgres {
        let out = hm
            .command()
            .env(
                "HALLMARK_DATABASE_PASSWORD_FILE",
                hm.path("no-such-password"),
            )
            .args(["cert", "list"])
            .output()
            .unwrap();
        let e = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && e.contains("no-such-password"),
            "{e}"
        );
        std::fs::write(hm.path("db-password"), "s3cret:/@?\n").unwrap();
        let out = hm
            .command()
            .env("HALLMARK_DATABASE_PASSWORD_FILE", hm.path("db-password"))
            .args(["cert", "list"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = std::fs::read_to_string(hm.path("hallmark.toml")).unwrap();
    assert!(!text.contains("s3cret"));
}

/// The admin API (bearer token and all) is not served to the network on
/// plain HTTP: by default only to loopback clients on the public
/// listeners, and with `admin_api = "admin-tls"` not at all there, while
/// OCSP, CRLs and CA certificates are served to everyone.
fn admin_api_only_where_configured(b: Backend) {
    let hm = setup!(b);
    let auth = format!("Bearer {}", hm.token);
    let ip = non_loopback_ip();
    let srv = hm.serve_with(&["--listen", "0.0.0.0:0"]);
    let api = |via: &str, method: &str, path: &str| {
        let (st, _, body) = srv.request_via(
            via,
            method,
            path,
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            br#"{"reason":"keyCompromise"}"#,
        );
        (st, String::from_utf8_lossy(&body).to_string())
    };
    let (st, body) = api("127.0.0.1", "GET", "/api/v1/certificates");
    assert_eq!(st, 200, "{body}");
    for (method, path) in [
        ("GET", "/api/v1/certificates"),
        ("GET", "/api/v1/openapi.json"),
        ("POST", "/api/v1/certificates/01/revoke"),
        ("POST", "/api/v1/crls"),
    ] {
        let (st, body) = api(&ip, method, path);
        assert_eq!(st, 404, "{method} {path} from {ip}: {body}");
        assert!(
            body.contains("admin-api-elsewhere") && body.contains("loopback"),
            "{body}"
        );
    }
    // What relying parties need is served to the network.
    let (st, _, pem) = srv.request_via(&ip, "GET", "/ca/root.pem", &[], b"");
    assert_eq!(st, 200);
    assert!(String::from_utf8_lossy(&pem).contains("BEGIN CERTIFICATE"));
    let (st, _, _) = srv.request_via(&ip, "GET", "/crl/issuing.crl", &[], b"");
    assert_eq!(st, 200);
    drop(srv);

    hm.set_config("server", r#"admin_api = "admin-tls""#);
    let srv = hm.serve();
    for (method, path) in [
        ("GET", "/api/v1/certificates"),
        ("GET", "/api/v1"),
        ("GET", "/api/v1/openapi.json"),
        ("POST", "/api/v1/crls"),
    ] {
        let (st, _, body) = srv.request_full(method, path, &[("Authorization", &auth)], b"");
        let body = String::from_utf8_lossy(&body);
        assert_eq!(st, 404, "{method} {path}: {body}");
        assert!(body.contains("admin-tls"), "{body}");
    }
    let (st, _) = srv.get("/ca/issuing.pem");
    assert_eq!(st, 200);
    // An unknown value is refused with what to write.
    hm.set_config("server", r#"admin_api = "public""#);
    let e = hm.fails(&["serve"]);
    assert!(e.contains("admin_api") || e.contains("loopback"), "{e}");
}

/// The server's TLS certificate (here valid one minute) is renewed by the
/// running server and the new one presented on its HTTPS listener without
/// a restart, before the old one expires; OpenSSL verifies each.
fn tls_certificate_renewed_while_serving(b: Backend) {
    let hm = setup!(b);
    hm.set_config("server", "https_cert_minutes = 1");
    let srv = hm.serve_with(&["--https-listen", "127.0.0.1:0"]);
    hm.fetch_ca_files(&srv);
    let port = srv.https_port.unwrap();
    let served = || {
        let out = std::process::Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                &format!("127.0.0.1:{port}"),
                "-servername",
                "hallmark.localhost",
                "-verify_hostname",
                "hallmark.localhost",
                "-CAfile",
                &hm.p("root.pem"),
                "-verify_return_error",
            ])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        let start = text.find("-----BEGIN CERTIFICATE-----").unwrap_or(0);
        let end = text
            .find("-----END CERTIFICATE-----")
            .map_or(0, |e| e + "-----END CERTIFICATE-----".len());
        let pem = format!("{}\n", &text[start..end]);
        (text.contains("Verify return code: 0 (ok)"), pem, text)
    };
    let field = |pem: &str, what: &str| {
        let f = hm.p("served.pem");
        std::fs::write(&f, pem).unwrap();
        openssl_ok(&["x509", "-in", &f, "-noout", what])
            .trim()
            .to_string()
    };
    let (ok, first, text) = served();
    assert!(ok, "{text}");
    let first_serial = field(&first, "-serial");
    let first_end = field(&first, "-enddate");
    hallmark_testkit::wait::eventually_within(
        std::time::Duration::from_secs(75),
        "a renewed TLS certificate",
        || {
            let (ok, pem, _) = served();
            ok && field(&pem, "-serial") != first_serial
        },
    );
    // Past the first certificate's notAfter the handshake still verifies.
    let first_end_unix: u64 = {
        let d = first_end.trim_start_matches("notAfter=");
        let out = std::process::Command::new("date")
            .args(["-u", "-d", d, "+%s"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    while unix_now() <= first_end_unix + 1 {
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    let (ok, pem, text) = served();
    assert!(ok, "an expired TLS certificate after {first_end}: {text}");
    assert_ne!(field(&pem, "-serial"), first_serial);
    // The renewal is a certificate of this CA like any other.
    let listed = hm.ok(&["cert", "list"]);
    assert!(
        listed.matches("hallmark.localhost").count() >= 2,
        "{listed}"
    );
}

fn https_with_own_certificate(b: Backend) {
    let hm = setup!(b);
    let srv = hm.serve_with(&["--https-listen", "127.0.0.1:0"]);
    hm.fetch_ca_files(&srv);
    let port = srv.https_port.unwrap();
    let connect = format!("127.0.0.1:{port}");
    let out = std::process::Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &connect,
            "-servername",
            "hallmark.localhost",
            "-verify_hostname",
            "hallmark.localhost",
            "-CAfile",
            &hm.p("root.pem"),
            "-verify_return_error",
            "-brief",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("Verification: OK"), "{text}");
    assert!(text.contains("Protocol version: TLSv1.3"), "{text}");
    // The TLS key is in the key store, not in a file.
    let keys = hm.ok(&["keys", "list"]);
    assert!(keys.lines().any(|l| l.starts_with("tls-")), "{keys}");
    for entry in std::fs::read_dir(&hm.dir).unwrap() {
        let p = entry.unwrap().path();
        if let Ok(text) = std::fs::read_to_string(&p) {
            assert!(!text.contains("PRIVATE KEY"), "{}", p.display());
        }
    }
}

/// The admin API on its mutual-TLS listener with a client certificate
/// instead of the token: allowed ones work (and are named in the audit log),
/// others and revoked ones get 401, clients without one are not served
/// there; the public HTTPS listener asks for no certificate.
fn admin_api_over_mutual_tls(b: Backend) {
    let hm = setup!(b);
    let person = |name: &str, cn: &str| {
        let (p12, pin, serial) = hm.issue_p12(name, "personal", &format!("CN={cn},C=HK"));
        openssl_ok(&[
            "pkcs12",
            "-in",
            &p12,
            "-passin",
            &format!("pass:{pin}"),
            "-nocerts",
            "-nodes",
            "-out",
            &hm.p(&format!("{name}.key")),
        ]);
        serial
    };
    let admin_serial = person("admin", "Admin One");
    let other_serial = person("other", "Someone Else");
    let fp = hm.ok(&["admin-cert", "add", "--cert", &hm.p("admin.pem")]);
    let listed = hm.ok(&["admin-cert", "list"]);
    assert!(
        listed.contains(fp.trim()) && listed.contains("CN=Admin One") && listed.contains("valid"),
        "{listed}"
    );
    // The API only on the mutual-TLS listener.
    hm.set_config("server", r#"admin_api = "admin-tls""#);
    let srv = hm.serve_with(&[
        "--https-listen",
        "127.0.0.1:0",
        "--admin-https-listen",
        "127.0.0.1:0",
    ]);
    hm.fetch_ca_files(&srv);
    let admin_port = srv.admin_port.unwrap();
    let public_port = srv.https_port.unwrap();
    let on = |port: u16, who: Option<&str>, method: &str, path: &str, headers: &str, body: &str| {
        let mut args = vec![
            "s_client".to_string(),
            "-connect".into(),
            format!("127.0.0.1:{port}"),
            "-servername".into(),
            "hallmark.localhost".into(),
            "-CAfile".into(),
            hm.p("root.pem"),
            "-quiet".into(),
        ];
        if let Some(w) = who {
            args.extend(["-cert".into(), hm.p(&format!("{w}.pem"))]);
            args.extend(["-key".into(), hm.p(&format!("{w}.key"))]);
        }
        let mut child = std::process::Command::new("openssl")
            .args(&args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: hallmark.localhost\r\nConnection: close\r\n{headers}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(request.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let over_tls = |who: Option<&str>, method: &str, path: &str, body: &str| {
        on(admin_port, who, method, path, "", body)
    };
    let status = |text: &str| text.split_whitespace().nth(1).unwrap_or("").to_string();
    let r = over_tls(Some("admin"), "GET", "/api/v1/certificates", "");
    assert_eq!(status(&r), "200", "{r}");
    let r = over_tls(Some("other"), "GET", "/api/v1/certificates", "");
    assert_eq!(status(&r), "401", "{r}");
    // The running server follows `admin-cert add` and `remove`.
    let other_fp = hm.ok(&["admin-cert", "add", "--cert", &hm.p("other.pem")]);
    eventually("the added certificate to be allowed", || {
        status(&over_tls(Some("other"), "GET", "/api/v1/certificates", "")) == "200"
    });
    hm.ok(&["admin-cert", "remove", other_fp.trim()]);
    eventually("the removed certificate to be refused", || {
        status(&over_tls(Some("other"), "GET", "/api/v1/certificates", "")) == "401"
    });
    // A certificate TLS clients cannot use (no clientAuth) is refused.
    hm.issue(
        "tls-server",
        "server",
        "CN=srv.example.hk",
        &["--dns", "srv.example.hk"],
    );
    let e = hm.fails(&["admin-cert", "add", "--cert", &hm.p("tls-server.pem")]);
    assert!(e.contains("no clientAuth"), "{e}");
    // A wrong token decides, whatever the certificate.
    let r = on(
        admin_port,
        Some("admin"),
        "GET",
        "/api/v1/certificates",
        "Authorization: Bearer hm_wrong\r\n",
        "",
    );
    assert_eq!(status(&r), "401", "{r}");
    // The admin listener serves nobody without a certificate.
    let r = over_tls(None, "GET", "/healthz", "");
    assert!(!r.contains("HTTP/1.1"), "{r}");
    // The public listener asks for none, and (admin_api = "admin-tls")
    // has no admin API: a client certificate opens nothing there, and
    // clients without one are served the rest.
    let r = on(
        public_port,
        Some("admin"),
        "GET",
        "/api/v1/certificates",
        "",
        "",
    );
    assert_eq!(status(&r), "404", "{r}");
    assert!(r.contains("admin-api-elsewhere"), "{r}");
    let r = on(public_port, None, "GET", "/healthz", "", "");
    assert_eq!(status(&r), "200", "{r}");
    // An action over mutual TLS is audited under the certificate's name.
    let r = over_tls(
        Some("admin"),
        "POST",
        &format!("/api/v1/certificates/{other_serial}/revoke"),
        r#"{"reason":"affiliationChanged"}"#,
    );
    assert_eq!(status(&r), "200", "{r}");
    let actor = hm.sql_ok("SELECT actor FROM audit_log WHERE action = 'certificate.revoke'");
    assert!(
        actor.contains(&format!("api:cert:CN=Admin One,C=HK ({admin_serial})")),
        "{actor}"
    );
    // A revoked admin certificate no longer opens the API.
    hm.ok(&["cert", "revoke", &admin_serial, "--reason", "keyCompromise"]);
    let listed = hm.ok(&["admin-cert", "list"]);
    assert!(listed.contains("REVOKED"), "{listed}");
    let r = over_tls(Some("admin"), "GET", "/api/v1/certificates", "");
    assert_eq!(status(&r), "401", "{r}");
    let e = hm.fails(&["admin-cert", "add", "--cert", &hm.p("admin.pem")]);
    assert!(e.contains("not a valid certificate"), "{e}");
    let e = hm.fails(&["admin-cert", "add", "--cert", &hm.p("root.pem")]);
    assert!(e.contains("is a CA certificate"), "{e}");
    // A client certificate from elsewhere (made by OpenSSL).
    openssl_ok(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-subj",
        "/CN=Foreign Admin",
        "-addext",
        "basicConstraints=critical,CA:FALSE",
        "-addext",
        "extendedKeyUsage=clientAuth",
        "-days",
        "1",
        "-keyout",
        &hm.p("foreign.key"),
        "-out",
        &hm.p("foreign.pem"),
    ]);
    let e = hm.fails(&["admin-cert", "add", "--cert", &hm.p("foreign.pem")]);
    assert!(e.contains("not issued by this installation"), "{e}");
    drop(srv);
    hm.ok(&["admin-cert", "remove", fp.trim()]);
    assert!(hm.ok(&["admin-cert", "list"]).trim().is_empty());
    let e = hm.fails(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--admin-https-listen",
        "127.0.0.1:0",
    ]);
    assert!(e.contains("admin-cert add"), "{e}");
}

/// `admin-token rotate` prints a new token once; a running server accepts
/// it and refuses the old one within its poll, and the rotation is audited
/// without the token.
fn admin_token_rotation(b: Backend) {
    let hm = setup!(b);
    let srv = hm.serve();
    let list = |token: &str| {
        srv.request(
            "GET",
            "/api/v1/certificates",
            &[("Authorization", &format!("Bearer {token}"))],
            b"",
        )
        .0
    };
    assert_eq!(list(&hm.token), 200);
    let new = hm.ok(&["admin-token", "rotate"]).trim().to_string();
    assert!(new.starts_with("hm_") && new != hm.token, "{new}");
    eventually("the new token to be accepted", || list(&new) == 200);
    assert_eq!(list(&hm.token), 401);
    let cfg = std::fs::read_to_string(hm.path("hallmark.toml")).unwrap();
    assert!(!cfg.contains(&new), "the token itself is never stored");
    let details =
        hm.sql_ok("SELECT details FROM audit_log WHERE action = 'config.admin-token.rotate'");
    assert!(
        !details.trim().is_empty() && !details.contains(&new),
        "{details}"
    );
    // The server audited when the new token took effect.
    eventually("the reload to be audited", || {
        hm.sql_ok("SELECT details FROM audit_log WHERE action = 'config.admin-access.reload'")
            .contains("\"token_changed\":true")
    });
    // The scheme name is case-insensitive (RFC 9110 §11.1).
    let (st, _) = srv.request(
        "GET",
        "/api/v1/certificates",
        &[("Authorization", &format!("bearer {new}"))],
        b"",
    );
    assert_eq!(st, 200);
    // A broken edit of the token digest: commands refuse the file and say
    // what is wrong; the running server keeps the token in force.
    let path = hm.path("hallmark.toml");
    let broken = cfg.replace(
        &format!(
            "admin_token_sha256 = \"{}",
            &cfg.split("admin_token_sha256 = \"").nth(1).unwrap()[..64]
        ),
        "admin_token_sha256 = \"not-a-digest",
    );
    assert_ne!(broken, cfg);
    std::fs::write(&path, &broken).unwrap();
    let err = hm.fails(&["cert", "list"]);
    assert!(
        err.contains("admin_token_sha256 must be 64 hex digits") && err.contains("rotate"),
        "{err}"
    );
    std::thread::sleep(std::time::Duration::from_secs(6));
    assert_eq!(list(&new), 200);
    // `admin-token rotate` repairs it (also with the line gone).
    let without: String = broken
        .lines()
        .filter(|l| !l.starts_with("admin_token_sha256"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&path, &without).unwrap();
    let newest = hm.ok(&["admin-token", "rotate"]).trim().to_string();
    eventually("the repaired token to be accepted", || list(&newest) == 200);
    assert_eq!(list(&new), 401);
    hm.ok(&["cert", "list"]);
}
