//! Online renewal with re-key: the holder signs a new key's CSR with the
//! current certificate's key (OpenSSL makes both); the new certificate
//! chains, keeps the holder's name, and OCSP says the old one is revoked
//! as superseded. A signature by another key, and a revoked certificate,
//! are refused.

use super::*;

on_both!(a_holder_renews_with_a_new_key_and_the_old_certificate_is_superseded);

fn b64(hm: &Hm, file: &str) -> String {
    let o = std::process::Command::new("base64")
        .args(["-w0", &hm.p(file)])
        .output()
        .unwrap();
    String::from_utf8(o.stdout).unwrap()
}

fn a_holder_renews_with_a_new_key_and_the_old_certificate_is_superseded(b: Backend) {
    let hm = setup!(b);
    let people = hm.registry(3);
    let amy = hm.staff("amy", "officer", "Central");
    let srv = hm.serve();
    hm.fetch_ca_files(&srv);
    let mut officer = Client::new(&srv, "amy");
    assert_eq!(officer.sign_in("amy", &amy).status, 303);
    let c = hm.collected(&srv, &mut officer, &people[0], "renew@example.hk");
    std::fs::write(hm.path("old.p12"), &c.pkcs12).unwrap();
    let pass = format!("pass:{}", c.pin.replace('-', ""));
    let pem = openssl_ok(&[
        "pkcs12",
        "-in",
        &hm.p("old.p12"),
        "-passin",
        &pass,
        "-nokeys",
        "-clcerts",
    ]);
    std::fs::write(hm.path("old.pem"), &pem).unwrap();
    openssl_ok(&[
        "pkcs12",
        "-in",
        &hm.p("old.p12"),
        "-passin",
        &pass,
        "-nocerts",
        "-nodes",
        "-out",
        &hm.p("old.key"),
    ]);
    // The new key and its CSR (the subject in it is ignored), signed with
    // the old key.
    openssl_ok(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &hm.p("new.key"),
        "-subj",
        "/CN=anything",
        "-outform",
        "DER",
        "-out",
        &hm.p("new.csr"),
    ]);
    openssl_ok(&[
        "dgst",
        "-sha256",
        "-sign",
        &hm.p("old.key"),
        "-out",
        &hm.p("new.sig"),
        &hm.p("new.csr"),
    ]);
    openssl_ok(&[
        "dgst",
        "-sha256",
        "-sign",
        &hm.p("new.key"),
        "-out",
        &hm.p("wrong.sig"),
        &hm.p("new.csr"),
    ]);

    let mut holder = Client::new(&srv, "holder");
    let form = holder.get("/ra/renew");
    assert!(
        form.text().contains("續期電子證書") && form.text().contains("openssl dgst -sha256 -sign"),
        "{}",
        form.text()
    );
    let renew = |holder: &mut Client, sig: &str| {
        holder.submit(
            "/ra/renew",
            "/ra/renew",
            &[
                ("certificate", &pem),
                ("csr", &b64(&hm, "new.csr")),
                ("signature", &b64(&hm, sig)),
            ],
        )
    };
    // Signed by the new key, not the old one: refused, nothing issued.
    let wrong = renew(&mut holder, "wrong.sig");
    assert_eq!(wrong.status, 401, "{}", wrong.text());
    assert!(
        wrong.text().contains("續期申請不獲接納"),
        "{}",
        wrong.text()
    );
    let garbage = holder.submit(
        "/ra/renew",
        "/ra/renew",
        &[("certificate", "x"), ("csr", "%%"), ("signature", "")],
    );
    assert_eq!(garbage.status, 422, "{}", garbage.text());

    let ok = renew(&mut holder, "new.sig");
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(
        ok.header("content-type").as_deref(),
        Some("application/pem-certificate-chain")
    );
    std::fs::write(hm.path("new.pem"), &ok.body).unwrap();
    assert!(verify_chain(&hm, &hm.p("new.pem")).contains(": OK"));
    let subject = openssl_ok(&["x509", "-in", &hm.p("new.pem"), "-noout", "-subject"]);
    assert!(
        subject.contains(&format!("CN = {}", people[0].name_en)),
        "{subject}"
    );
    // The new certificate is for the new key.
    let cert_key = openssl_ok(&["x509", "-in", &hm.p("new.pem"), "-noout", "-pubkey"]);
    let new_key = openssl_ok(&["pkey", "-in", &hm.p("new.key"), "-pubout"]);
    assert_eq!(cert_key, new_key);
    let old = ocsp_ask(&hm, &srv, "issuing.pem", &["-cert", &hm.p("old.pem")], &[]);
    assert!(
        old.contains(": revoked") && old.contains("Reason: superseded"),
        "{old}"
    );
    let new = ocsp_ask(&hm, &srv, "issuing.pem", &["-cert", &hm.p("new.pem")], &[]);
    assert!(new.contains(": good"), "{new}");
    // The superseded certificate cannot renew again.
    let again = renew(&mut holder, "new.sig");
    assert_eq!(again.status, 409, "{}", again.text());

    drop(srv);
    let log = hm.sql_ok("SELECT actor || ' ' || action FROM audit_log ORDER BY seq");
    assert!(log.contains("holder ra.certificate.renew"), "{log}");
    let v = hm.ok(&["audit", "verify"]);
    assert!(v.contains("OK"), "{v}");
}
