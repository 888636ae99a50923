//! A person's particulars as the application form takes them, validated
//! field by field with messages in both languages, and synthetic residents
//! for demos, tests and benchmarks (no real personal data anywhere).

use serde::{Deserialize, Serialize};

use crate::hkid::{Hkid, HkidError};
use crate::{RaError, Result};

/// A message in English and Traditional Chinese.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Text {
    pub en: String,
    pub zh: String,
}

impl Text {
    pub fn new(en: impl Into<String>, zh: impl Into<String>) -> Self {
        Self {
            en: en.into(),
            zh: zh.into(),
        }
    }

    /// A message that has only one wording (e.g. from the store).
    pub fn same(s: impl Into<String>) -> Self {
        let s = s.into();
        Self {
            en: s.clone(),
            zh: s,
        }
    }

    pub fn get(&self, lang: &str) -> &str {
        if lang == "en" { &self.en } else { &self.zh }
    }
}

/// The particulars sealed with an application (and a registry record).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Personal {
    /// Canonical HKID number (`A1234563`).
    pub id_number: String,
    pub name_zh: String,
    /// As on the card: surname first, upper case (`CHAN Tai Man`).
    pub name_en: String,
    /// `YYYY-MM-DD`.
    pub date_of_birth: String,
    #[serde(default)]
    pub phone: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default)]
    pub email_in_certificate: bool,
}

impl std::fmt::Debug for Personal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Personal { .. }")
    }
}

/// A CSV row that does not parse, named by its line (imports).
pub(crate) fn csv_error(line: usize, e: csv::Error) -> RaError {
    RaError::invalid(
        "csv",
        format!("line {line}: {e}"),
        format!("第 {line} 行：{e}"),
    )
}

/// A form field refused in a CSV row, named by its line and field (imports).
pub(crate) fn at_line(line: usize, e: RaError) -> RaError {
    match e {
        RaError::Invalid { field, message } => RaError::invalid(
            "csv",
            format!("line {line}, {field}: {}", message.en),
            format!("第 {line} 行，{field}：{}", message.zh),
        ),
        other => other,
    }
}

/// The form as typed, before validation.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Form {
    #[serde(default)]
    pub id_number: String,
    #[serde(default)]
    pub name_zh: String,
    #[serde(default)]
    pub name_en: String,
    #[serde(default)]
    pub date_of_birth: String,
    #[serde(default)]
    pub phone: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub address: String,
    #[serde(default)]
    pub email_in_certificate: Option<String>,
    /// Opt-in to marketing of value-added services (unticked: no).
    #[serde(default)]
    pub marketing_consent: Option<String>,
}

fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `YYYY-MM-DD`, a real calendar day between 1900-01-01 and `today`.
pub fn check_date(s: &str, today: (i32, u32, u32)) -> Option<String> {
    let p: Vec<&str> = s.trim().split('-').collect();
    let [y, m, d] = p.as_slice() else { return None };
    let (y, m, d): (i32, u32, u32) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1900..=9999).contains(&y) || !(1..=12).contains(&m) || d == 0 || d > days[(m - 1) as usize]
    {
        return None;
    }
    if (y, m, d) > today {
        return None;
    }
    Some(format!("{y:04}-{m:02}-{d:02}"))
}

/// Today's date (UTC) from a Unix time, for [`check_date`].
pub fn civil_date(unix: u64) -> (i32, u32, u32) {
    // Howard Hinnant's days-to-civil algorithm.
    let z = (unix / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = (yoe + era * 400 + i64::from(m <= 2)) as i32;
    (y, m, d)
}

/// `YYYY-MM-DD HH:MM` (UTC) of a Unix time.
pub fn civil_time(unix: i64) -> String {
    let u = unix.max(0) as u64;
    let (y, m, d) = civil_date(u);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        u % 86_400 / 3600,
        u % 3600 / 60
    )
}

impl Form {
    /// Validates every field; the first bad one is the error.
    pub fn validate(&self, now: u64) -> Result<Personal> {
        let id = Hkid::parse(&self.id_number).map_err(|e| match e {
            HkidError::Format => RaError::invalid(
                "id_number",
                "Enter the identity card number as on the card, e.g. A123456(3).",
                "請按身份證上所示輸入身份證號碼，例如 A123456(3)。",
            ),
            HkidError::CheckDigit => RaError::invalid(
                "id_number",
                "The check digit (in brackets) does not match this identity card number.",
                "括號內的核對數字與身份證號碼不符。",
            ),
        })?;
        let name_zh = collapse(&self.name_zh);
        if name_zh.is_empty()
            || name_zh.chars().count() > 20
            || name_zh
                .chars()
                .any(|c| c.is_ascii_digit() || c.is_control() || "<>&\"\\".contains(c))
        {
            return Err(RaError::invalid(
                "name_zh",
                "Enter the Chinese name as on the card (up to 20 characters).",
                "請按身份證輸入中文姓名（最多 20 字）。",
            ));
        }
        let name_en = collapse(&self.name_en).to_uppercase();
        if name_en.is_empty()
            || name_en.len() > 60
            || !name_en
                .chars()
                .all(|c| c.is_ascii_uppercase() || " -'.".contains(c))
        {
            return Err(RaError::invalid(
                "name_en",
                "Enter the English name as on the card: letters, spaces, hyphens (up to 60).",
                "請按身份證輸入英文姓名：只可用英文字母、空格及連字號（最多 60 個）。",
            ));
        }
        let date_of_birth = check_date(&self.date_of_birth, civil_date(now)).ok_or_else(|| {
            RaError::invalid(
                "date_of_birth",
                "Enter the date of birth as YYYY-MM-DD (a real date, not in the future).",
                "請以 年-月-日（YYYY-MM-DD）格式輸入出生日期。",
            )
        })?;
        let phone: String = self.phone.chars().filter(|c| !" -".contains(*c)).collect();
        let digits = phone.strip_prefix('+').unwrap_or(&phone);
        if !(8..=15).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RaError::invalid(
                "phone",
                "Enter a contact phone number of 8 to 15 digits.",
                "請輸入 8 至 15 位數字的聯絡電話。",
            ));
        }
        let email = Some(self.email.trim().to_string()).filter(|e| !e.is_empty());
        if let Some(e) = &email {
            let ok = e.len() <= 254
                && e.split('@').count() == 2
                && e.split('@').all(|p| !p.is_empty())
                && e.rsplit('@').next().is_some_and(|d| d.contains('.'))
                && !e
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || "<>\"\\,;".contains(c));
            if !ok {
                return Err(RaError::invalid(
                    "email",
                    "Enter an e-mail address such as name@example.hk, or leave it empty.",
                    "請輸入電郵地址（例如 name@example.hk），或留空。",
                ));
            }
        }
        let address = Some(collapse(&self.address)).filter(|a| !a.is_empty());
        if address.as_ref().is_some_and(|a| a.chars().count() > 200) {
            return Err(RaError::invalid(
                "address",
                "The postal address is too long (up to 200 characters).",
                "郵寄地址太長（最多 200 字）。",
            ));
        }
        if email.is_none() && address.is_none() {
            return Err(RaError::invalid(
                "email",
                "Give an e-mail address or a postal address, so that we can reach you.",
                "請提供電郵地址或郵寄地址，以便聯絡。",
            ));
        }
        let email_in_certificate = self.email_in_certificate.is_some();
        if email_in_certificate && email.is_none() {
            return Err(RaError::invalid(
                "email_in_certificate",
                "To put an e-mail address in the certificate, give the address.",
                "如要在證書內載入電郵地址，請填寫電郵地址。",
            ));
        }
        Ok(Personal {
            id_number: id.canonical().to_string(),
            name_zh,
            name_en,
            date_of_birth,
            phone,
            email,
            address,
            email_in_certificate,
        })
    }
}

// ------------------------------------------------------------ synthetic

/// Surnames with their Hong Kong romanisation.
const SURNAMES: &[(&str, &str)] = &[
    ("陳", "CHAN"),
    ("李", "LEE"),
    ("張", "CHEUNG"),
    ("黃", "WONG"),
    ("何", "HO"),
    ("林", "LAM"),
    ("吳", "NG"),
    ("劉", "LAU"),
    ("梁", "LEUNG"),
    ("鄭", "CHENG"),
    ("郭", "KWOK"),
    ("馬", "MA"),
    ("羅", "LAW"),
    ("謝", "TSE"),
    ("蔡", "CHOI"),
    ("許", "HUI"),
    ("曾", "TSANG"),
    ("鄧", "TANG"),
    ("麥", "MAK"),
    ("葉", "YIP"),
];

/// Given-name characters with their romanisation.
const GIVEN: &[(&str, &str)] = &[
    ("大", "Tai"),
    ("文", "Man"),
    ("小", "Siu"),
    ("明", "Ming"),
    ("美", "Mei"),
    ("玲", "Ling"),
    ("嘉", "Ka"),
    ("欣", "Yan"),
    ("志", "Chi"),
    ("偉", "Wai"),
    ("俊", "Chun"),
    ("詠", "Wing"),
    ("雅", "Nga"),
    ("子", "Tsz"),
    ("浩", "Ho"),
    ("樂", "Lok"),
    ("晴", "Ching"),
    ("芷", "Tsz"),
    ("家", "Ka"),
    ("寶", "Po"),
    ("英", "Ying"),
    ("國", "Kwok"),
    ("秀", "Sau"),
    ("德", "Tak"),
    ("麗", "Lai"),
];

/// Two-letter prefixes for synthetic numbers, chosen from ones we have not
/// seen on real cards, so a synthetic resident is never mistaken for one.
const PREFIXES: &[&str] = &["ZA", "ZB", "ZC", "ZD", "ZE", "ZF", "ZG", "ZH"];

/// SplitMix64: a small deterministic generator, so `--seed` repeats a set.
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn pick<'a, T>(&mut self, from: &'a [T]) -> &'a T {
        &from[(self.next() % from.len() as u64) as usize]
    }
}

/// The `i`-th synthetic resident of the set `seed`: a unique valid ID
/// number (for `i` below 8 million), a name in both languages, a date of
/// birth, a phone and an e-mail address under `example.hk`.
pub fn synthetic(seed: u64, i: u64) -> Personal {
    let mut r = Mix(seed ^ i.wrapping_mul(0xD1B5_4A32_D192_ED03));
    let prefix = PREFIXES[((i / 1_000_000) as usize) % PREFIXES.len()];
    // A bijection of 0..1_000_000 (multiplier coprime to it) spreads
    // consecutive residents over the number range.
    let number = ((i % 1_000_000) * 7_919 + seed % 1_000_000) % 1_000_000;
    let id = Hkid::from_parts(prefix, number as u32).map(|h| h.canonical().to_string());
    let (sz, se) = *r.pick(SURNAMES);
    let (g1z, g1e) = *r.pick(GIVEN);
    let (g2z, g2e) = *r.pick(GIVEN);
    let year = 1940 + (r.next() % 66) as i32;
    let month = 1 + (r.next() % 12) as u32;
    let day = 1 + (r.next() % 28) as u32;
    Personal {
        id_number: id.unwrap_or_default(),
        name_zh: format!("{sz}{g1z}{g2z}"),
        name_en: format!("{se} {g1e} {g2e}").to_uppercase(),
        date_of_birth: format!("{year:04}-{month:02}-{day:02}"),
        phone: format!("5{:07}", r.next() % 10_000_000),
        email: Some(format!("resident{i}@example.hk")),
        address: None,
        email_in_certificate: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_796_601_600; // 2026-12-07

    fn form() -> Form {
        Form {
            id_number: "A123456(3)".into(),
            name_zh: "陳大文".into(),
            name_en: "Chan Tai  Man".into(),
            date_of_birth: "1980-02-29".into(),
            phone: "9123 4567".into(),
            email: "chan@example.hk".into(),
            ..Form::default()
        }
    }

    #[test]
    fn a_good_form_is_normalised() {
        let p = form().validate(NOW).unwrap();
        assert_eq!(p.name_en, "CHAN TAI MAN");
        assert_eq!(p.phone, "91234567");
        assert_eq!(p.id_number, "A1234563");
    }

    #[test]
    fn each_bad_field_is_named_in_both_languages() {
        type Edit = Box<dyn Fn(&mut Form)>;
        let cases: Vec<(&str, Edit)> = vec![
            ("id_number", Box::new(|f| f.id_number = "A123456(4)".into())),
            ("name_zh", Box::new(|f| f.name_zh = " ".into())),
            ("name_en", Box::new(|f| f.name_en = "陳".into())),
            (
                "date_of_birth",
                Box::new(|f| f.date_of_birth = "1981-02-29".into()),
            ),
            (
                "date_of_birth",
                Box::new(|f| f.date_of_birth = "2030-01-01".into()),
            ),
            ("phone", Box::new(|f| f.phone = "12ab".into())),
            ("email", Box::new(|f| f.email = "a@b@c".into())),
            ("email", Box::new(|f| f.email = String::new())),
        ];
        for (field, change) in cases {
            let mut f = form();
            change(&mut f);
            match f.validate(NOW) {
                Err(RaError::Invalid {
                    field: got,
                    message,
                }) => {
                    assert_eq!(got, field);
                    assert!(message.zh.chars().any(|c| c > '\u{2e80}'), "{message:?}");
                    assert!(message.en.is_ascii());
                }
                other => panic!("{field}: {other:?}"),
            }
        }
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_date(0), (1970, 1, 1));
        assert_eq!(civil_date(NOW), (2026, 12, 7));
        assert_eq!(civil_date(951_782_400), (2000, 2, 29));
    }

    #[test]
    fn synthetic_residents_are_valid_unique_and_repeatable() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..20_000 {
            let p = synthetic(7, i);
            assert!(Hkid::parse(&p.id_number).is_ok());
            assert!(seen.insert(p.id_number.clone()), "repeat at {i}");
            let f = Form {
                id_number: p.id_number.clone(),
                name_zh: p.name_zh.clone(),
                name_en: p.name_en.clone(),
                date_of_birth: p.date_of_birth.clone(),
                phone: p.phone.clone(),
                email: p.email.clone().unwrap_or_default(),
                ..Form::default()
            };
            assert!(f.validate(NOW).is_ok(), "{i}");
        }
        assert!(synthetic(7, 5) == synthetic(7, 5));
        assert!(synthetic(7, 5) != synthetic(8, 5));
    }
}
