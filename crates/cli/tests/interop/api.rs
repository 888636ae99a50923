//! The HTTP API: issuing and revoking with a bearer token, RFC 9457 problem
//! details for every refusal, and answers that match the OpenAPI document
//! the server publishes (judged by openapi-core).

use super::*;

on_both!(
    api_issue_and_problems,
    api_matches_its_openapi_document,
    api_fuzzed_by_schemathesis,
);

/// schemathesis (property-based fuzzing from the OpenAPI document) over
/// every operation: with the admin token no answer is a 5xx and every one
/// conforms to the document (status, content type, headers, schema); with
/// no token, every answer is a 401 problem. Deterministic (derandomized),
/// so a failure reproduces.
fn api_fuzzed_by_schemathesis(b: Backend) {
    let hm = setup!(b);
    let srv = hm.serve();
    let auth = format!("Authorization: Bearer {}", hm.token);
    let run = |extra: &[&str], cassette: &str| {
        let out = std::process::Command::new("schemathesis")
            .args(["run", &srv.url("/api/v1/openapi.json")])
            .args([
                "--experimental=openapi-3.1",
                "--checks",
                "all",
                "--hypothesis-max-examples",
                "150",
                "--hypothesis-derandomize",
                "--cassette-path",
                cassette,
            ])
            .args(extra)
            .env("SCHEMATHESIS_HOOKS", "")
            .current_dir(&hm.dir)
            .output()
            .expect("schemathesis is needed (scripts/test.sh installs it)");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "schemathesis {extra:?}:\n{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains("not_a_server_error") && text.contains("passed"),
            "{text}"
        );
        std::fs::read_to_string(cassette).unwrap()
    };
    let with_token = run(&["-H", &auth], &hm.p("with-token.yaml"));
    let codes = |c: &str| -> Vec<String> {
        c.lines()
            .filter_map(|l| l.trim().strip_prefix("code: "))
            .map(|v| v.trim_matches('\'').to_string())
            .collect()
    };
    let seen = codes(&with_token);
    assert!(seen.len() > 100, "{} requests", seen.len());
    assert!(seen.iter().all(|c| !c.starts_with('5')), "{seen:?}");
    assert!(
        seen.iter().any(|c| c == "200"),
        "nothing succeeded with the token"
    );
    let without = run(
        &["--generation-with-security-parameters=false"],
        &hm.p("without-token.yaml"),
    );
    let seen = codes(&without);
    assert!(
        seen.len() > 50 && seen.iter().all(|c| c == "401"),
        "{seen:?}"
    );
}

fn api_issue_and_problems(b: Backend) {
    let hm = setup!(b);
    let srv = hm.serve();
    let auth = format!("Bearer {}", hm.token);
    let csr = std::fs::read_to_string(hm.p256_csr("r", "/CN=ignored")).unwrap();
    let body = serde_json::json!({"profile": "server", "subject": "CN=api.example.hk", "csr": csr, "dns_names": ["api.example.hk"]});
    let post = |path: &str, body: &[u8], auth: &str| {
        srv.request(
            "POST",
            path,
            &[
                ("Authorization", auth),
                ("Content-Type", "application/json"),
            ],
            body,
        )
    };
    let (st, resp) = post("/api/v1/certificates", body.to_string().as_bytes(), &auth);
    assert_eq!(st, 201, "{}", String::from_utf8_lossy(&resp));
    let v: serde_json::Value = serde_json::from_slice(&resp).unwrap();
    std::fs::write(hm.path("api.pem"), v["certificate"].as_str().unwrap()).unwrap();
    std::fs::write(hm.path("chain.pem"), v["chain"][0].as_str().unwrap()).unwrap();
    hm.fetch_ca_files(&srv);
    assert!(verify_chain(&hm, &hm.p("api.pem")).contains(": OK"));
    let serial = v["serial"].as_str().unwrap();
    let (st, resp) = srv.request(
        "GET",
        &format!("/api/v1/certificates/{serial}"),
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(st, 200);
    let got: serde_json::Value = serde_json::from_slice(&resp).unwrap();
    assert_eq!(got["status"], "issued");

    let problem = |st: u16, resp: &[u8], kind: &str| {
        let v: serde_json::Value = serde_json::from_slice(resp)
            .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(resp)));
        assert_eq!(v["status"], st);
        assert_eq!(v["type"], format!("urn:hallmark:problem:{kind}"), "{v}");
        assert!(!v["detail"].as_str().unwrap().is_empty());
    };
    let (st, resp) = post(
        "/api/v1/certificates",
        body.to_string().as_bytes(),
        "Bearer hm_wrong",
    );
    assert_eq!(st, 401);
    problem(401, &resp, "unauthorized");
    let (st, head, _) = srv.request_full("GET", "/api/v1/certificates", &[], b"");
    assert_eq!(st, 401);
    assert!(
        head.to_ascii_lowercase()
            .contains("www-authenticate: bearer"),
        "{head}"
    );
    // Methods a route does not take: 405 problems that say what it takes.
    for (method, path, allowed) in [
        ("DELETE", "/api/v1/certificates/00ff", "get"),
        ("GET", "/ocsp", "post"),
        ("PUT", "/crl/issuing.crl", "get"),
    ] {
        let (st, head, resp) = srv.request_full(method, path, &[("Authorization", &auth)], b"");
        assert_eq!(st, 405, "{method} {path}");
        problem(405, &resp, "method-not-allowed");
        let allow = head
            .to_ascii_lowercase()
            .lines()
            .find(|l| l.starts_with("allow:"))
            .unwrap_or_default()
            .to_string();
        assert!(allow.contains(allowed), "{method} {path}: {head}");
    }
    // A bad limit, and cursors that no page gave (a NUL byte, which
    // PostgreSQL refuses in text, must not reach it).
    for query in [
        "limit=abc",
        "before=10:%00",
        "before=-1:00ff",
        "before=10:00FF",
        "before=10:",
        "before=10",
    ] {
        let (st, resp) = srv.request(
            "GET",
            &format!("/api/v1/certificates?{query}"),
            &[("Authorization", &auth)],
            b"",
        );
        assert_eq!(st, 400, "{query}");
        problem(400, &resp, "invalid");
    }
    let (st, resp) = post("/api/v1/certificates", b"{not json", &auth);
    assert_eq!(st, 400);
    problem(400, &resp, "malformed-json");
    let mut bad = body.clone();
    bad["profile"] = "gold".into();
    let (st, resp) = post("/api/v1/certificates", bad.to_string().as_bytes(), &auth);
    problem(st, &resp, "unknown-profile");
    let mut bad = body.clone();
    bad["csr"] = csr.replace('M', "N").into();
    let (st, resp) = post("/api/v1/certificates", bad.to_string().as_bytes(), &auth);
    assert_eq!(st, 400, "{}", String::from_utf8_lossy(&resp));
    let (st, resp) = post("/api/v1/certificates", &vec![b'x'; 200_000], &auth);
    assert_eq!(st, 413);
    problem(413, &resp, "too-large");
    let (st, resp) = post(
        "/api/v1/certificates/00ff/revoke",
        br#"{"reason":"keyCompromise"}"#,
        &auth,
    );
    problem(st, &resp, "not-found");
    let (st, resp) = srv.get("/api/v1/openapi.json");
    assert_eq!(st, 200);
    let doc: serde_json::Value = serde_json::from_slice(&resp).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let (st, _) = srv.get("/api/v1/certificates");
    assert_eq!(st, 401);
    let listed = hm.ok(&["cert", "list"]);
    assert_eq!(
        listed.lines().count(),
        1,
        "only the one good request issued a certificate"
    );
    // Listing into a pipe closed early (`hallmark cert list | head`) ends
    // quietly, as a process killed by SIGPIPE does, without a panic.
    let mut child = hm
        .command()
        .args(["cert", "list"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// Every kind of answer the API gives, success and problem alike, matches
/// the OpenAPI document it publishes, as openapi-core judges it.
fn api_matches_its_openapi_document(b: Backend) {
    let hm = setup!(b);
    let people = hm.registry(2);
    let srv = hm.serve();
    // A CSR to send (the seed certificate itself is not used).
    hm.issue("seed", "personal", "CN=Seed,C=HK", &[]);
    let csr = std::fs::read_to_string(hm.path("seed.csr")).unwrap();
    let auth = format!("Bearer {}", hm.token);
    let mut exchanges = Vec::new();
    let mut call = |method: &str, path: &str, body: Option<serde_json::Value>, token: &str| {
        let raw = body.as_ref().map(|b| b.to_string()).unwrap_or_default();
        let (status, head, resp) = srv.request_full(
            method,
            &format!("/api/v1{path}"),
            &[
                ("Authorization", token),
                ("Content-Type", "application/json"),
            ],
            raw.as_bytes(),
        );
        let content_type = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-type:")
                    .map(|v| v.trim().to_string())
            })
            .unwrap_or_default();
        let (path_only, query) = path.split_once('?').unwrap_or((path, ""));
        let query: serde_json::Map<String, serde_json::Value> = query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.into()))
            .collect();
        let body_text = String::from_utf8_lossy(&resp).to_string();
        exchanges.push(serde_json::json!({
            "method": method, "path": path_only, "query": query, "request_body": raw,
            "status": status, "content_type": content_type, "body": body_text,
        }));
        (status, body_text)
    };
    let issue =
        serde_json::json!({"profile": "personal", "subject": "CN=Contract,C=HK", "csr": csr});
    let (st, created) = call("POST", "/certificates", Some(issue.clone()), &auth);
    assert_eq!(st, 201, "{created}");
    let serial = serde_json::from_str::<serde_json::Value>(&created).unwrap()["serial"]
        .as_str()
        .unwrap()
        .to_string();
    let expected: &[(&str, String, Option<serde_json::Value>, &str, u16)] = &[
        ("GET", "/certificates?limit=2".into(), None, &auth, 200),
        ("GET", format!("/certificates/{serial}"), None, &auth, 200),
        ("GET", "/certificates/00ff".into(), None, &auth, 404),
        ("GET", "/certificates?limit=0".into(), None, &auth, 400),
        ("GET", "/certificates".into(), None, "Bearer wrong", 401),
        (
            "POST",
            "/certificates".into(),
            Some(serde_json::json!({"profile": "gold", "subject": "CN=X", "csr": csr})),
            &auth,
            400,
        ),
        (
            "POST",
            "/certificates".into(),
            Some(
                serde_json::json!({"profile": "server", "subject": "CN=x.example.hk", "csr": csr}),
            ),
            &auth,
            422,
        ),
        (
            "POST",
            format!("/certificates/{serial}/revoke"),
            Some(serde_json::json!({"reason": "keyCompromise"})),
            &auth,
            200,
        ),
        (
            "POST",
            format!("/certificates/{serial}/revoke"),
            Some(serde_json::json!({"reason": "superseded"})),
            &auth,
            409,
        ),
        ("POST", "/crls".into(), None, &auth, 200),
    ];
    for (method, path, body, token, status) in expected {
        let (st, text) = call(method, path, body.clone(), token);
        assert_eq!(st, *status, "{method} {path}: {text}");
    }
    // The registration authority's applications from partners' systems.
    let person = |channel: &str, id: &str| {
        serde_json::json!({
            "channel": channel, "centre": "Campaign centre 1", "id_number": id,
            "name_zh": people[0].name_zh, "name_en": people[0].name_en,
            "date_of_birth": people[0].date_of_birth, "phone": "9123 4567",
            "address": "香港中環皇后大道中1號",
        })
    };
    let (st, app) = call(
        "POST",
        "/ra/applications",
        Some(person("campaign", &people[0].id_number)),
        &auth,
    );
    assert_eq!(st, 201, "{app}");
    let app: serde_json::Value = serde_json::from_str(&app).unwrap();
    assert_eq!(app["status"], "awaiting-approval", "{app}");
    assert_eq!(app["registry"], "confirmed", "{app}");
    let reference = app["reference"].as_str().unwrap().to_string();
    let mut unknown_field = person("campaign", &people[1].id_number);
    unknown_field["colour"] = "blue".into();
    let ra_expected: Vec<(&str, String, Option<serde_json::Value>, &str, u16)> = vec![
        (
            "GET",
            format!("/ra/applications/{reference}"),
            None,
            &auth,
            200,
        ),
        (
            "GET",
            "/ra/applications/HM-AAAA-AAAA-AAAA".into(),
            None,
            &auth,
            404,
        ),
        (
            "GET",
            format!("/ra/applications/{reference}"),
            None,
            "Bearer wrong",
            401,
        ),
        (
            "POST",
            "/ra/applications".into(),
            Some(person("online", &people[1].id_number)),
            &auth,
            422,
        ),
        (
            "POST",
            "/ra/applications".into(),
            Some(person("campaign", "A1234567")),
            &auth,
            422,
        ),
        (
            "POST",
            "/ra/applications".into(),
            Some(unknown_field),
            &auth,
            400,
        ),
    ];
    for (method, path, body, token, status) in ra_expected {
        let (st, text) = call(method, &path, body, token);
        assert_eq!(st, status, "{method} {path}: {text}");
    }
    std::fs::write(
        hm.path("exchanges.json"),
        serde_json::to_vec(&exchanges).unwrap(),
    )
    .unwrap();
    let (st, doc) = srv.get("/api/v1/openapi.json");
    assert_eq!(st, 200);
    std::fs::write(hm.path("openapi.json"), doc).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/openapi_check.py");
    let out = std::process::Command::new("python3")
        .args([script, &hm.p("openapi.json"), &hm.p("exchanges.json")])
        .output()
        .expect("python from the test venv (scripts/test.sh installs openapi-core)");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
