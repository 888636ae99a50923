//! The holder's keys after approval: a smart card (a SoftHSM2 token)
//! personalised at the counter, judged by OpenSC's pkcs11-tool and OpenSSL
//! (the key was made on the card and never leaves it, the certificate on
//! the card verifies and is good at the responder, and the card's key
//! signs what the certificate's key verifies); a campaign's waiting key
//! moved onto a card; and an escrowed encipherment key recovered under
//! dual control, which decrypts what OpenSSL encrypted to its certificate.

use super::*;

on_both!(
    a_card_holds_the_key_it_made_and_its_certificate,
    a_campaign_key_moves_onto_a_card_and_its_copy_is_deleted,
    an_escrowed_key_is_recovered_under_dual_control
);

/// Applies online for `r` with `profile`, approves it as the signed-in
/// `officer` and prints the mailer; returns the reference and the PIN.
fn approved(
    hm: &Hm,
    srv: &Server,
    officer: &mut Client,
    r: &Resident,
    profile: &str,
) -> (String, String) {
    let mut applicant = Client::new(srv, "applicant-browser");
    let done = applicant.submit(
        "/ra/apply",
        "/ra/apply",
        &[
            ("id_number", &r.id_number),
            ("name_zh", &r.name_zh),
            ("name_en", &r.name_en),
            ("date_of_birth", &r.date_of_birth),
            ("phone", "9123 4567"),
            ("email", ""),
            ("address", "香港中環皇后大道中1號10樓"),
            ("profile", profile),
        ],
    );
    assert_eq!(done.status, 200, "{}", done.text());
    let reference = done.by_id("reference");
    assert_eq!(officer.act(&reference, "approve").status, 200);
    let (_, pin) = common::ra::print_mailer(hm, officer, &reference, &format!("m-{reference}"));
    (reference, pin)
}

/// `pkcs11-tool` on the card, logged in with its PIN.
fn p11tool(card: &SoftHsmToken, args: &[&str]) -> String {
    let mut all = vec![
        "--module",
        hallmark_testkit::softhsm::SOFTHSM_MODULE,
        "--token-label",
        &card.label,
        "--login",
        "--pin",
        &card.pin,
    ];
    all.extend_from_slice(args);
    let o = std::process::Command::new("pkcs11-tool")
        .args(&all)
        .output()
        .expect("pkcs11-tool is needed (Debian: apt-get install opensc)");
    let t = text(&o);
    assert!(o.status.success(), "pkcs11-tool {args:?}: {t}");
    t
}

/// Runs `card personalise` for `reference` as `who` with the holder's PIN.
fn personalise(
    hm: &Hm,
    who: (&str, &str),
    reference: &str,
    card: &SoftHsmToken,
    card_pin_file: &str,
    holder_pin: &str,
) -> std::process::Output {
    let code = hallmark_testkit::judges::totp_now(who.1);
    hm.command()
        .env("HALLMARK_STAFF_PASSWORD", common::ra::STAFF_PASSWORD)
        .env("HALLMARK_HOLDER_PIN", holder_pin)
        .args([
            "card",
            "personalise",
            "--reference",
            reference,
            "--module",
            hallmark_testkit::softhsm::SOFTHSM_MODULE,
            "--card",
            &card.label,
            "--card-pin-file",
            card_pin_file,
            "--as",
            who.0,
            "--code",
            &code,
        ])
        .output()
        .unwrap()
}

/// Reads the certificate off the card into `name`.pem and checks it with
/// OpenSSL: the chain verifies, pkilint is clean, and the card's key signs
/// what the certificate's public key verifies.
fn judge_card(hm: &Hm, card: &SoftHsmToken, reference: &str, name: &str) -> String {
    let label = format!("e-Cert {reference}");
    let der = hm.p(&format!("{name}.der"));
    p11tool(
        card,
        &[
            "--read-object",
            "--type",
            "cert",
            "--label",
            &label,
            "--output-file",
            &der,
        ],
    );
    let pem = hm.p(&format!("{name}.pem"));
    openssl_ok(&["x509", "-inform", "DER", "-in", &der, "-out", &pem]);
    assert!(verify_chain(hm, &pem).contains(": OK"));
    pkilint_clean("lint_pkix_cert", &[], &hm.path(&format!("{name}.pem")));
    let data = hm.path(&format!("{name}.data"));
    std::fs::write(&data, format!("signed on the card of {reference}")).unwrap();
    let sig = hm.p(&format!("{name}.sig"));
    // The card signs the SHA-256 digest (plain CKM_ECDSA, as most cards
    // offer); OpenSSL hashes the data and verifies.
    let digest = hm.p(&format!("{name}.sha256"));
    openssl_ok(&[
        "dgst",
        "-sha256",
        "-binary",
        "-out",
        &digest,
        &data.display().to_string(),
    ]);
    p11tool(
        card,
        &[
            "--sign",
            "--mechanism",
            "ECDSA",
            "--label",
            &label,
            "--input-file",
            &digest,
            "--output-file",
            &sig,
            "--signature-format",
            "openssl",
        ],
    );
    let public = openssl_ok(&["x509", "-in", &pem, "-noout", "-pubkey"]);
    let pub_file = hm.path(&format!("{name}.pub"));
    std::fs::write(&pub_file, public).unwrap();
    let verified = openssl_text(&[
        "dgst",
        "-sha256",
        "-verify",
        &pub_file.display().to_string(),
        "-signature",
        &sig,
        &data.display().to_string(),
    ]);
    assert!(verified.contains("Verified OK"), "{verified}");
    pem
}

fn status_of(hm: &Hm, reference: &str) -> String {
    hm.sql_ok(&format!(
        "SELECT status FROM ra_applications WHERE reference = '{reference}'"
    ))
    .trim()
    .to_string()
}

fn a_card_holds_the_key_it_made_and_its_certificate(b: Backend) {
    let hm = setup!(b);
    let people = hm.registry(3);
    // Separate accounts: a TOTP code is good once per account and step.
    let olive = hm.staff("olive", "officer", "Kowloon");
    let otto = hm.staff("otto", "officer", "Kowloon");
    let ned = hm.staff("ned", "officer", "Kowloon");
    let mia = hm.staff("mia", "officer", "Kowloon");
    let kim = hm.staff("kim", "officer", "Kowloon");
    let aud = hm.staff("aud", "auditor", "Kowloon");
    let srv = hm.serve();
    hm.fetch_ca_files(&srv);
    let mut officer = Client::new(&srv, "officer-browser");
    assert_eq!(officer.sign_in("olive", &olive).status, 303);
    let (reference, pin) = approved(&hm, &srv, &mut officer, &people[0], "personal");
    let card = SoftHsmToken::new(&format!("hm-card-{}-{:?}", std::process::id(), b));
    let wrong_pin = hm.path("wrong-card.pin");
    std::fs::write(&wrong_pin, "000000\n").unwrap();

    // A wrong card PIN: refused, and the holder's PIN is untouched.
    let o = personalise(
        &hm,
        ("otto", &otto),
        &reference,
        &card,
        &wrong_pin.display().to_string(),
        &pin,
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("wrong card's PIN"), "{}", text(&o));
    assert_eq!(status_of(&hm, &reference), "approved");
    // The holder's PIN wrong: refused, counted.
    let card_pin = card.pin_file.display().to_string();
    let o = personalise(
        &hm,
        ("ned", &ned),
        &reference,
        &card,
        &card_pin,
        "AAAA-BBBB-CCCC",
    );
    assert!(!o.status.success());
    assert!(
        text(&o).contains("reference or PIN is wrong"),
        "{}",
        text(&o)
    );
    // An auditor may not personalise cards.
    let o = personalise(&hm, ("aud", &aud), &reference, &card, &card_pin, &pin);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("Only registration officers"),
        "{}",
        text(&o)
    );
    assert_eq!(status_of(&hm, &reference), "approved");
    assert!(!p11tool(&card, &["--list-objects"]).contains("e-Cert"));

    let o = personalise(&hm, ("mia", &mia), &reference, &card, &card_pin, &pin);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("key on-card"), "{}", text(&o));
    assert_eq!(status_of(&hm, &reference), "activated");

    // pkcs11-tool: the key was made on the card and cannot leave it.
    let objects = p11tool(&card, &["--list-objects"]);
    assert!(objects.contains("Certificate Object"), "{objects}");
    assert!(objects.contains("Private Key Object; EC"), "{objects}");
    let private = objects
        .split("Private Key Object")
        .nth(1)
        .unwrap()
        .split("Object;")
        .next()
        .unwrap();
    for flag in ["sensitive", "never extractable", "local"] {
        assert!(private.contains(flag), "{flag}: {private}");
    }
    let pem = judge_card(&hm, &card, &reference, "card");
    let subject = openssl_ok(&["x509", "-in", &pem, "-noout", "-subject", "-serial"]);
    assert!(
        subject.contains(&format!("CN = {}", people[0].name_en)),
        "{subject}"
    );
    let said = ocsp_ask(&hm, &srv, "issuing.pem", &["-cert", &pem], &[]);
    assert!(said.contains(": good"), "{said}");

    // Which card holds which certificate.
    let serial = hm
        .sql_ok(&format!(
            "SELECT serial FROM ra_applications WHERE reference = '{reference}'"
        ))
        .trim()
        .to_string();
    assert!(
        subject.to_lowercase().contains(&serial.to_lowercase()),
        "{subject} vs {serial}"
    );
    let card_serial = hm
        .sql_ok(&format!(
            "SELECT card_serial FROM ra_cards WHERE reference = '{reference}' AND key_origin = 'on-card' AND personalised_by = 'staff:mia'"
        ))
        .trim()
        .to_string();
    assert!(!card_serial.is_empty());
    let shown = hm.ok(&["card", "show", &card_serial]);
    assert!(
        shown.contains(&reference) && shown.contains(&serial),
        "{shown}"
    );
    let shown = hm.ok(&["card", "show", &reference]);
    assert!(shown.contains(&card_serial), "{shown}");

    // Once: the PIN is spent, and the card keeps what it holds.
    let o = personalise(&hm, ("kim", &kim), &reference, &card, &card_pin, &pin);
    assert!(!o.status.success());
    assert!(text(&o).contains("no PIN to use"), "{}", text(&o));
    assert_eq!(p11tool(&card, &["--list-objects"]), objects);
    drop(srv);
    let audit = hm.ok(&["audit", "verify"]);
    assert!(audit.contains("OK"), "{audit}");
    assert_eq!(
        count(
            &hm,
            &format!(
                "SELECT COUNT(*) FROM audit_log WHERE action = 'ra.card.personalise' AND actor = 'staff:mia' AND details LIKE '%{card_serial}%'"
            )
        ),
        1
    );
}

fn a_campaign_key_moves_onto_a_card_and_its_copy_is_deleted(b: Backend) {
    let hm = setup!(b);
    hm.registry(3);
    let otto = hm.staff("otto", "officer", "Kowloon");
    let mia = hm.staff("mia", "officer", "Kowloon");
    let ned = hm.staff("ned", "officer", "Kowloon");
    let sue = hm.staff("sue", "supervisor", "Kowloon");
    let csv = hm.p("campaign.csv");
    hm.ok(&[
        "campaign", "synth", "--count", "3", "--seed", "11", "--out", &csv,
    ]);
    let o = as_staff(&hm, "otto", &otto, &["campaign", "import", &csv]);
    assert!(o.status.success(), "{}", text(&o));
    let batch = String::from_utf8_lossy(&o.stdout)
        .trim()
        .lines()
        .last()
        .unwrap()
        .to_string();
    hm.ok(&["campaign", "check", &batch]);
    let o = as_staff(&hm, "sue", &sue, &["campaign", "approve", &batch]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        hm.ok(&["campaign", "issue", &batch])
            .contains("3 certificates issued")
    );
    let dir = hm.p("mailers");
    let o = as_staff(
        &hm,
        "mia",
        &mia,
        &["campaign", "mailers", &batch, "--out", &dir, "--limit", "1"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let first = std::fs::read_dir(&dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let name = first.file_name().unwrap().to_string_lossy().to_string();
    let reference = name
        .split_once('-')
        .unwrap()
        .1
        .trim_end_matches(".pdf")
        .to_string();
    let mailer = hallmark_testkit::judges::pdftotext(&first);
    let pin = mailer
        .split_whitespace()
        .find(|w| w.len() == 14 && w.matches('-').count() == 2 && *w != reference)
        .unwrap()
        .to_string();
    let issued_serial = hm
        .sql_ok(&format!(
            "SELECT serial FROM ra_applications WHERE reference = '{reference}' AND key_sealed IS NOT NULL"
        ))
        .trim()
        .to_string();
    assert!(!issued_serial.is_empty());

    let card = SoftHsmToken::new(&format!("hm-ccard-{}-{:?}", std::process::id(), b));
    let card_pin = card.pin_file.display().to_string();
    let o = personalise(&hm, ("ned", &ned), &reference, &card, &card_pin, &pin);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("key imported"), "{}", text(&o));
    // The sealed copy is gone, and the card holds the campaign's
    // certificate with a key that stays on it from now on.
    assert_eq!(
        count(
            &hm,
            &format!(
                "SELECT COUNT(*) FROM ra_applications WHERE reference = '{reference}' AND key_sealed IS NULL AND status = 'activated'"
            )
        ),
        1
    );
    let objects = p11tool(&card, &["--list-objects"]);
    let private = objects
        .split("Private Key Object")
        .nth(1)
        .unwrap_or_else(|| panic!("{objects}"))
        .split("Object;")
        .next()
        .unwrap();
    // Imported: sensitive and not extractable, but not made on the card.
    assert!(private.contains("Access:     sensitive"), "{private}");
    assert!(!private.contains("extractable"), "{private}");
    assert!(!private.contains("local"), "{private}");
    let srv = hm.serve();
    hm.fetch_ca_files(&srv);
    let pem = judge_card(&hm, &card, &reference, "campaign-card");
    let serial = openssl_ok(&["x509", "-in", &pem, "-noout", "-serial"]);
    assert!(
        serial
            .to_lowercase()
            .contains(&issued_serial.to_lowercase()),
        "{serial} vs {issued_serial}"
    );
    // Collecting it as a download now fails: it was delivered once.
    let mut holder = Client::new(&srv, "holder-browser");
    let again = holder.submit(
        "/ra/collect",
        "/ra/collect",
        &[("reference", &reference), ("pin", &pin)],
    );
    assert_eq!(again.status, 401, "{}", again.text());
    drop(srv);
    assert!(hm.ok(&["audit", "verify"]).contains("OK"));
}

fn an_escrowed_key_is_recovered_under_dual_control(b: Backend) {
    let hm = setup!(b);
    let people = hm.registry(3);
    let olive = hm.staff("olive", "officer", "Kowloon");
    let otto = hm.staff("otto", "officer", "Kowloon");
    let olga = hm.staff("olga", "officer", "Kowloon");
    let sam = hm.staff("sam", "supervisor", "Kowloon");
    let sue = hm.staff("sue", "supervisor", "Kowloon");
    let fay = hm.staff("fay", "supervisor", "Island");
    let srv = hm.serve();
    hm.fetch_ca_files(&srv);
    let mut officer = Client::new(&srv, "officer-browser");
    assert_eq!(officer.sign_in("olive", &olive).status, 303);
    let (signing, signing_pin) = approved(&hm, &srv, &mut officer, &people[0], "personal");
    let (reference, pin) = approved(&hm, &srv, &mut officer, &people[1], "encipherment");
    let mut holder = Client::new(&srv, "holder-browser");
    let p12 = holder.submit(
        "/ra/collect",
        "/ra/collect",
        &[("reference", &signing), ("pin", &signing_pin)],
    );
    assert_eq!(p12.status, 200, "{}", p12.text());
    let p12 = holder.submit(
        "/ra/collect",
        "/ra/collect",
        &[("reference", &reference), ("pin", &pin)],
    );
    assert_eq!(p12.status, 200, "{}", p12.text());
    std::fs::write(hm.path("enc.p12"), &p12.body).unwrap();
    let pass = format!("pass:{}", pin.replace('-', ""));
    let cert = openssl_ok(&[
        "pkcs12",
        "-in",
        &hm.p("enc.p12"),
        "-passin",
        &pass,
        "-nokeys",
        "-clcerts",
    ]);
    std::fs::write(hm.path("enc.pem"), &cert).unwrap();
    let usage = openssl_ok(&[
        "x509",
        "-in",
        &hm.p("enc.pem"),
        "-noout",
        "-ext",
        "keyUsage",
    ]);
    assert!(usage.contains("Key Agreement"), "{usage}");
    // Someone sends the holder a document encrypted to the certificate.
    std::fs::write(hm.path("letter.txt"), "給陳大文的密函 · a sealed letter").unwrap();
    openssl_ok(&[
        "cms",
        "-encrypt",
        "-aes256",
        "-in",
        &hm.p("letter.txt"),
        "-recip",
        &hm.p("enc.pem"),
        "-out",
        &hm.p("letter.cms"),
        "-outform",
        "PEM",
    ]);
    // ... and the holder loses the key.
    std::fs::remove_file(hm.path("enc.p12")).unwrap();

    // No other key can be recovered: the signing certificate's was not kept.
    let o = as_staff(
        &hm,
        "otto",
        &otto,
        &["recovery", "request", "--reference", &signing],
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("not escrowed"), "{}", text(&o));
    assert_eq!(count(&hm, "SELECT COUNT(*) FROM ra_recoveries"), 0);

    // The supervisor sam requests; sam may not approve it, nor an officer,
    // nor a supervisor of another centre.
    let o = as_staff(
        &hm,
        "sam",
        &sam,
        &["recovery", "request", "--reference", &reference],
    );
    assert!(o.status.success(), "{}", text(&o));
    let id = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert!(id.starts_with("KR-"), "{id}");
    let mailer = hm.p("recovery.pdf");
    for (who, secret, why) in [("fay", &fay, "another"), ("olga", &olga, "supervisor")] {
        let o = as_staff(
            &hm,
            who,
            secret,
            &["recovery", "approve", &id, "--mailer", &mailer],
        );
        assert!(!o.status.success(), "{who}");
        assert!(text(&o).contains(why), "{who}: {}", text(&o));
    }
    // sam's code for this step was spent on the request: wait for the next.
    wait_next_totp_step();
    let o = as_staff(
        &hm,
        "sam",
        &sam,
        &["recovery", "approve", &id, "--mailer", &mailer],
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("Dual control"), "{}", text(&o));
    assert!(!hm.path("recovery.pdf").exists());
    let listed = hm.ok(&["recovery", "list"]);
    assert!(
        listed.contains(&id) && listed.contains("requested"),
        "{listed}"
    );

    let o = as_staff(
        &hm,
        "sue",
        &sue,
        &["recovery", "approve", &id, "--mailer", &mailer],
    );
    assert!(o.status.success(), "{}", text(&o));
    let letter = hallmark_testkit::judges::pdftotext(&hm.path("recovery.pdf"));
    assert!(letter.contains(&id), "{letter}");
    assert!(letter.contains("Recovery number"), "{letter}");
    assert!(letter.contains(&people[1].name_zh), "{letter}");
    let new_pin = letter
        .split_whitespace()
        .find(|w| {
            w.len() == 14
                && w.matches('-').count() == 2
                && !w.starts_with("KR")
                && w.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        .unwrap_or_else(|| panic!("no PIN in the mailer:\n{letter}"))
        .to_string();
    assert_ne!(new_pin, pin);

    // The old PIN does nothing; a wrong one counts; the new one delivers once.
    let old = holder.submit(
        "/ra/collect",
        "/ra/collect",
        &[("reference", &id), ("pin", &pin)],
    );
    assert_eq!(old.status, 401, "{}", old.text());
    assert_eq!(
        count(
            &hm,
            &format!("SELECT pin_failures FROM ra_recoveries WHERE id = '{id}'")
        ),
        1
    );
    let p12 = holder.submit(
        "/ra/collect",
        "/ra/collect",
        &[("reference", &id), ("pin", &new_pin)],
    );
    assert_eq!(p12.status, 200, "{}", p12.text());
    std::fs::write(hm.path("recovered.p12"), &p12.body).unwrap();
    let pass = format!("pass:{}", new_pin.replace('-', ""));
    let key = openssl_ok(&[
        "pkcs12",
        "-in",
        &hm.p("recovered.p12"),
        "-passin",
        &pass,
        "-nocerts",
        "-nodes",
    ]);
    std::fs::write(hm.path("recovered.key"), &key).unwrap();
    let recovered_cert = openssl_ok(&[
        "pkcs12",
        "-in",
        &hm.p("recovered.p12"),
        "-passin",
        &pass,
        "-nokeys",
        "-clcerts",
    ]);
    std::fs::write(hm.path("recovered.pem"), &recovered_cert).unwrap();
    assert!(verify_chain(&hm, &hm.p("recovered.pem")).contains(": OK"));
    // The recovered key opens the letter sent before it was lost.
    let opened = openssl_ok(&[
        "cms",
        "-decrypt",
        "-in",
        &hm.p("letter.cms"),
        "-inform",
        "PEM",
        "-inkey",
        &hm.p("recovered.key"),
        "-recip",
        &hm.p("recovered.pem"),
    ]);
    assert_eq!(opened, "給陳大文的密函 · a sealed letter");
    let again = holder.submit(
        "/ra/collect",
        "/ra/collect",
        &[("reference", &id), ("pin", &new_pin)],
    );
    assert_eq!(again.status, 401, "{}", again.text());
    drop(srv);
    assert!(hm.ok(&["audit", "verify"]).contains("OK"));
    for (action, actor) in [
        ("ra.recovery.request", "staff:sam"),
        ("ra.recovery.approve", "staff:sue"),
        ("ra.recovery.collect", "holder"),
    ] {
        assert_eq!(
            count(
                &hm,
                &format!(
                    "SELECT COUNT(*) FROM audit_log WHERE action = '{action}' AND actor = '{actor}' AND details LIKE '%{id}%'"
                )
            ),
            1,
            "{action}"
        );
    }
    let state = hm.sql_ok(&format!(
        "SELECT state FROM ra_recoveries WHERE id = '{id}'"
    ));
    assert_eq!(state.trim(), "collected");
}

/// Waits until the 30-second TOTP step changes.
fn wait_next_totp_step() {
    let step = unix_now() / 30;
    while unix_now() / 30 == step {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}
