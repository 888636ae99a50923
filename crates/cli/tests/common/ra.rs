//! The registration authority's side of the harness: synthetic residents in
//! the registry, staff accounts, and a cookie-keeping form client for the
//! pages (the browser tests drive Chromium instead).

use std::collections::BTreeMap;

use super::{Hm, Server};
use hallmark_testkit::judges::pdftotext;

/// A synthetic resident as `hallmark registry synth` wrote it.
#[derive(Clone, Debug)]
pub struct Resident {
    pub id_number: String,
    pub name_zh: String,
    pub name_en: String,
    pub date_of_birth: String,
}

impl Hm {
    /// Writes `count` synthetic residents, imports them, and returns them.
    pub fn registry(&self, count: u32) -> Vec<Resident> {
        let csv = self.p("residents.csv");
        self.ok(&[
            "registry",
            "synth",
            "--count",
            &count.to_string(),
            "--seed",
            "11",
            "--out",
            &csv,
        ]);
        let out = self.ok(&["registry", "import", &csv]);
        assert!(
            out.contains(&format!("{count} residents imported")),
            "{out}"
        );
        std::fs::read_to_string(&csv)
            .unwrap()
            .lines()
            .skip(1)
            .map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                Resident {
                    id_number: f[0].into(),
                    name_zh: f[1].into(),
                    name_en: f[2].into(),
                    date_of_birth: f[3].into(),
                }
            })
            .collect()
    }

    /// Adds a staff account; returns its TOTP secret (base32).
    pub fn staff(&self, username: &str, role: &str, centre: &str) -> String {
        let out = self
            .command()
            .env("HALLMARK_STAFF_PASSWORD", STAFF_PASSWORD)
            .args([
                "staff",
                "add",
                "--username",
                username,
                "--name",
                &format!("{username} (test)"),
                "--role",
                role,
                "--centre",
                centre,
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "staff add: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text.lines()
            .find_map(|l| l.split("shown once): ").nth(1))
            .expect("staff add prints the TOTP secret")
            .trim()
            .to_string()
    }
}

pub const STAFF_PASSWORD: &str = "a long staff password";

/// An HTTP response of the pages.
pub struct Page {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Page {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The CSRF token of the page's (first) form.
    pub fn csrf(&self) -> String {
        let t = self.text();
        let at = t
            .find("name=\"csrf\" value=\"")
            .unwrap_or_else(|| panic!("no form on the page:\n{t}"));
        t[at + 19..].split('"').next().unwrap().to_string()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }

    /// The value of `data-status` on the page.
    pub fn data_status(&self) -> String {
        let t = self.text();
        let at = t
            .find("data-status=\"")
            .unwrap_or_else(|| panic!("no status on the page:\n{t}"));
        t[at + 13..].split('"').next().unwrap().to_string()
    }

    /// The text of the element with `id`.
    pub fn by_id(&self, id: &str) -> String {
        let t = self.text();
        let key = format!("id=\"{id}\"");
        let at = t
            .find(&key)
            .unwrap_or_else(|| panic!("no #{id} on the page:\n{t}"));
        let rest = &t[at..];
        let start = rest.find('>').unwrap() + 1;
        rest[start..].split('<').next().unwrap().trim().to_string()
    }
}

/// A client that keeps cookies, as a browser would, with its user agent.
pub struct Client<'s> {
    srv: &'s Server,
    pub jar: BTreeMap<String, String>,
    pub agent: String,
}

pub fn form_encode(fields: &[(&str, &str)]) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                b' ' => "+".into(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

impl<'s> Client<'s> {
    pub fn new(srv: &'s Server, agent: &str) -> Self {
        Self {
            srv,
            jar: BTreeMap::new(),
            agent: agent.into(),
        }
    }

    fn send(&mut self, method: &str, path: &str, body: &[u8], extra: &[(&str, &str)]) -> Page {
        let cookie = self
            .jar
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let mut headers = vec![("User-Agent", self.agent.as_str())];
        if !cookie.is_empty() {
            headers.push(("Cookie", cookie.as_str()));
        }
        if method == "POST" {
            headers.push(("Content-Type", "application/x-www-form-urlencoded"));
        }
        headers.extend_from_slice(extra);
        let (status, head, body) = self.srv.request_full(method, path, &headers, body);
        for l in head.lines() {
            if let Some((k, v)) = l.split_once(':')
                && k.eq_ignore_ascii_case("set-cookie")
            {
                let pair = v.trim().split(';').next().unwrap();
                let (n, val) = pair.split_once('=').unwrap();
                if val.is_empty() || v.contains("Max-Age=0") {
                    self.jar.remove(n);
                } else {
                    self.jar.insert(n.into(), val.into());
                }
            }
        }
        Page { status, head, body }
    }

    pub fn get(&mut self, path: &str) -> Page {
        self.send("GET", path, b"", &[])
    }

    pub fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        self.send("POST", path, form_encode(fields).as_bytes(), &[])
    }

    /// GETs the form at `path`, then POSTs `fields` to `action` with its CSRF token.
    pub fn submit(&mut self, path: &str, action: &str, fields: &[(&str, &str)]) -> Page {
        let csrf = self.get(path).csrf();
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        self.post(action, &all)
    }

    /// Signs in with password and a TOTP code computed by PyOTP.
    pub fn sign_in(&mut self, username: &str, secret: &str) -> Page {
        let code = hallmark_testkit::judges::totp_now(secret);
        self.submit(
            "/ra/staff/sign-in",
            "/ra/staff/sign-in",
            &[
                ("username", username),
                ("password", STAFF_PASSWORD),
                ("code", &code),
            ],
        )
    }

    /// Posts an application form (online or at the counter) for `r`.
    pub fn apply(&mut self, form_path: &str, r: &Resident, email: &str) -> Page {
        self.submit(
            form_path,
            form_path,
            &[
                ("id_number", &r.id_number),
                ("name_zh", &r.name_zh),
                ("name_en", &r.name_en),
                ("date_of_birth", &r.date_of_birth),
                ("phone", "9123 4567"),
                ("email", email),
                ("profile", "personal"),
            ],
        )
    }

    /// POSTs an action button of an application page (approve, mailer).
    pub fn act(&mut self, reference: &str, action: &str) -> Page {
        let page = format!("/ra/staff/applications/{reference}");
        self.submit(&page, &format!("{page}/{action}"), &[])
    }
}

/// Prints a mailer through the officer's page; returns the PDF's path and
/// the PIN read back from it by pdftotext.
pub fn print_mailer(
    hm: &Hm,
    officer: &mut Client,
    reference: &str,
    name: &str,
) -> (std::path::PathBuf, String) {
    let pdf = officer.act(reference, "mailer");
    assert_eq!(pdf.status, 200, "{}", pdf.text());
    assert_eq!(
        pdf.header("content-type").as_deref(),
        Some("application/pdf")
    );
    let file = hm.path(&format!("{name}.pdf"));
    std::fs::write(&file, &pdf.body).unwrap();
    let text = pdftotext(&file);
    let pin = text
        .split_whitespace()
        .find(|w| {
            w.len() == 14
                && w.matches('-').count() == 2
                && w.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-')
        })
        .unwrap_or_else(|| panic!("no PIN in the mailer:\n{text}"))
        .to_string();
    (file, pin)
}

/// A certificate collected through the pages.
pub struct Collected {
    pub reference: String,
    pub pin: String,
    /// The PIN mailer's text (pdftotext).
    pub mailer: String,
    pub pkcs12: Vec<u8>,
}

impl Hm {
    /// Applies, approves, mails and collects for `r`; `email` empty means a
    /// postal address only.
    pub fn collected(
        &self,
        srv: &Server,
        officer: &mut Client,
        r: &Resident,
        email: &str,
    ) -> Collected {
        self.collected_as(srv, officer, r, email, "personal")
    }

    /// [`Hm::collected`] for a certificate of `profile`.
    pub fn collected_as(
        &self,
        srv: &Server,
        officer: &mut Client,
        r: &Resident,
        email: &str,
        profile: &str,
    ) -> Collected {
        let hm = self;
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
                ("email", email),
                (
                    "address",
                    if email.is_empty() {
                        "香港中環皇后大道中1號10樓"
                    } else {
                        ""
                    },
                ),
                ("profile", profile),
            ],
        );
        assert_eq!(done.status, 200, "{}", done.text());
        let reference = done.by_id("reference");
        assert_eq!(officer.act(&reference, "approve").status, 200);
        let (_, pin) = print_mailer(hm, officer, &reference, &format!("mailer-{reference}"));
        let mut holder = Client::new(srv, "holder-browser");
        let p12 = holder.submit(
            "/ra/collect",
            "/ra/collect",
            &[("reference", &reference), ("pin", &pin)],
        );
        assert_eq!(p12.status, 200, "{}", p12.text());
        let mailer = pdftotext(&hm.path(&format!("mailer-{reference}.pdf")));
        Collected {
            reference,
            pin,
            mailer,
            pkcs12: p12.body,
        }
    }
}

/// Runs a command as a member of staff (password and TOTP).
pub fn as_staff(hm: &Hm, who: &str, secret: &str, args: &[&str]) -> std::process::Output {
    let mut all: Vec<&str> = args.to_vec();
    let code = hallmark_testkit::judges::totp_now(secret);
    all.extend_from_slice(&["--as", who, "--code", &code]);
    hm.command()
        .env("HALLMARK_STAFF_PASSWORD", STAFF_PASSWORD)
        .args(&all)
        .output()
        .unwrap()
}

pub fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A number the SQL query counts.
pub fn count(hm: &Hm, sql: &str) -> i64 {
    hm.sql_ok(sql).trim().parse().unwrap()
}
