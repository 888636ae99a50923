//! Printable letters: the sealed PIN mailer an officer prints on approval.
//! A4 PDFs in Chinese and English with a CJK font embedded (subset to the
//! glyphs used, so a letter is tens of kilobytes, not the font's 19 MB).

use std::sync::OnceLock;

use krilla::Document;
use krilla::geom::{PathBuilder, Point, Rect};
use krilla::page::PageSettings;
use krilla::paint::{Stroke, StrokeDash};
use krilla::text::{Font, TextDirection};

use crate::{RaError, Result};

/// Where the CJK font is looked for (Debian's `fonts-noto-cjk`; Noto Sans
/// CJK TC is face 3 of the collection). `HALLMARK_CJK_FONT=FILE[#FACE]`
/// names another.
const FONT_CANDIDATES: &[(&str, u32)] = &[
    ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", 3),
    ("/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc", 3),
];

fn font() -> Result<Font> {
    static FONT: OnceLock<std::result::Result<Font, String>> = OnceLock::new();
    FONT.get_or_init(|| {
        let mut tried = Vec::new();
        let env = std::env::var("HALLMARK_CJK_FONT").ok().map(|v| match v.rsplit_once('#') {
            Some((f, i)) => (f.to_string(), i.parse().unwrap_or(0)),
            None => (v, 0),
        });
        let candidates = env
            .into_iter()
            .chain(FONT_CANDIDATES.iter().map(|(f, i)| (f.to_string(), *i)));
        for (file, face) in candidates {
            match std::fs::read(&file) {
                Ok(data) => {
                    return Font::new(data.into(), face)
                        .ok_or_else(|| format!("{file} face {face} is not a usable font"));
                }
                Err(_) => tried.push(file),
            }
        }
        Err(format!(
            "no CJK font for letters: install Debian's fonts-noto-cjk or set HALLMARK_CJK_FONT (looked in {})",
            tried.join(", ")
        ))
    })
    .clone()
    .map_err(RaError::Internal)
}

/// What a PIN mailer says.
pub struct PinMailer<'a> {
    pub reference: &'a str,
    pub name_zh: &'a str,
    pub name_en: &'a str,
    pub masked_id: &'a str,
    pub address: Option<&'a str>,
    pub pin: &'a str,
    /// Reports the certificate lost (`/ra/lost`), even without the card;
    /// on an activation mailer only.
    pub revocation_code: Option<&'a str>,
    /// A key recovery's mailer: the serial of the certificate whose key is
    /// recovered (the reference is then the recovery's number).
    pub recovery_of: Option<&'a str>,
    pub activate_url: &'a str,
    pub printed_on: &'a str,
    pub mailer_number: i64,
}

struct Page<'s, 'p> {
    s: &'s mut krilla::surface::Surface<'p>,
    font: Font,
}

impl Page<'_, '_> {
    fn text(&mut self, x: f32, y: f32, size: f32, t: &str) {
        self.s.draw_text(
            Point::from_xy(x, y),
            self.font.clone(),
            size,
            t,
            false,
            TextDirection::Auto,
        );
    }

    fn rect(&mut self, x: f32, y: f32, w: f32, h: f32, dashed: bool) {
        let mut pb = PathBuilder::new();
        if let Some(r) = Rect::from_xywh(x, y, w, h) {
            pb.push_rect(r);
        }
        if let Some(path) = pb.finish() {
            self.s.set_fill(None);
            self.s.set_stroke(Some(Stroke {
                width: 0.8,
                dash: dashed.then(|| StrokeDash {
                    array: vec![4.0, 3.0],
                    offset: 0.0,
                }),
                ..Stroke::default()
            }));
            self.s.draw_path(&path);
            self.s.set_stroke(None);
            self.s.set_fill(Some(krilla::paint::Fill::default()));
        }
    }
}

impl PinMailer<'_> {
    /// The mailer as an A4 PDF.
    pub fn pdf(&self) -> Result<Vec<u8>> {
        let font = font()?;
        let mut doc = Document::new();
        let settings = PageSettings::from_wh(595.0, 842.0)
            .ok_or_else(|| RaError::Internal("page size".into()))?;
        let mut page = doc.start_page_with(settings);
        let mut surface = page.surface();
        let mut p = Page {
            s: &mut surface,
            font,
        };
        p.text(56.0, 70.0, 18.0, "Hallmark 電子證書 · e-Cert");
        p.text(
            56.0,
            94.0,
            12.0,
            "個人密碼信封 PIN Mailer — 機密 CONFIDENTIAL",
        );
        // The address window of a C5 envelope.
        p.rect(50.0, 120.0, 300.0, 100.0, false);
        p.text(62.0, 145.0, 14.0, self.name_zh);
        p.text(62.0, 166.0, 12.0, self.name_en);
        let addr = self.address.unwrap_or("");
        for (i, line) in wrap(addr, 30).iter().take(2).enumerate() {
            p.text(62.0, 188.0 + 16.0 * i as f32, 10.0, line);
        }
        p.text(
            380.0,
            145.0,
            10.0,
            if self.recovery_of.is_some() {
                "恢復編號 Recovery number"
            } else {
                "申請編號 Reference"
            },
        );
        p.text(380.0, 162.0, 12.0, self.reference);
        p.text(380.0, 186.0, 10.0, "身份證號碼 ID card");
        p.text(380.0, 203.0, 12.0, self.masked_id);
        let activation_zh = [
            "你的電子證書申請已獲批准。請於以下網址輸入申請編號及下方的個人密碼，",
            "下載你的電子證書檔案（PKCS#12）。該檔案以同一個人密碼保護。",
            "個人密碼只可使用一次；請勿告訴任何人。如密碼信封已被拆開，請聯絡登記處。",
        ];
        let activation_en = [
            "Your e-Cert application is approved. At the address below, enter the reference",
            "and the PIN beneath to download your certificate file (PKCS#12), which the",
            "same PIN protects. The PIN works once; tell it to no one. If this mailer was",
            "opened before it reached you, contact the registration office.",
        ];
        let recovery_zh = [
            "你的加密證書密碼匙恢復申請已獲批准。請於以下網址輸入恢復編號及下方的",
            "個人密碼，下載密碼匙及證書檔案（PKCS#12），以解密你的舊文件。",
            "個人密碼只可使用一次；請勿告訴任何人。如密碼信封已被拆開，請聯絡登記處。",
        ];
        let recovery_en = [
            "Your request to recover the key of your encipherment certificate is approved.",
            "At the address below, enter the recovery number and the PIN beneath to download",
            "the key and certificate (PKCS#12) and decrypt your earlier documents. The PIN",
            "works once; tell it to no one. If this mailer was opened, contact the office.",
        ];
        let (lines_zh, lines_en) = if self.recovery_of.is_some() {
            (recovery_zh, recovery_en)
        } else {
            (activation_zh, activation_en)
        };
        let mut y = 262.0;
        for l in lines_zh {
            p.text(56.0, y, 11.0, l);
            y += 18.0;
        }
        y += 8.0;
        for l in lines_en {
            p.text(56.0, y, 10.5, l);
            y += 16.0;
        }
        y += 10.0;
        p.text(56.0, y, 11.0, self.activate_url);
        if let Some(code) = self.revocation_code {
            // The revocation code stays with the letter: kept apart from the
            // card, it still works when the card is lost.
            p.text(
                56.0,
                470.0,
                10.0,
                "掛失密碼 Revocation code（請與身份證分開存放 keep it apart from your card）",
            );
            p.text(56.0, 492.0, 13.0, code);
            p.text(
                56.0,
                514.0,
                9.0,
                "如證書或身份證遺失，請以此密碼於網上即時掛失（/ra/lost）。",
            );
            p.text(
                56.0,
                528.0,
                9.0,
                "If the certificate or the card is lost, report it online at /ra/lost with this code.",
            );
        }
        if let Some(serial) = self.recovery_of {
            p.text(56.0, 470.0, 10.0, "恢復的證書 Certificate recovered");
            p.text(56.0, 492.0, 11.0, serial);
        }
        // The PIN sits in the tear-off part, behind the security tint.
        let top = 560.0;
        p.rect(40.0, top, 515.0, 180.0, true);
        p.text(
            56.0,
            top + 30.0,
            10.0,
            "沿虛線撕開 Tear along the dotted line",
        );
        p.text(56.0, top + 70.0, 12.0, "個人密碼 PIN");
        p.text(56.0, top + 110.0, 26.0, &group(self.pin));
        p.text(
            56.0,
            top + 150.0,
            9.0,
            &format!(
                "申請編號 Reference {} · 第 {} 封 Mailer no. {} · 列印日期 Printed {}",
                self.reference, self.mailer_number, self.mailer_number, self.printed_on
            ),
        );
        surface.finish();
        page.finish();
        doc.finish()
            .map_err(|e| RaError::Internal(format!("PDF: {e:?}")))
    }
}

/// A PIN in groups of four, easier to read and type.
pub fn group(pin: &str) -> String {
    pin.as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("-")
}

fn wrap(s: &str, width: usize) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    chars.chunks(width).map(|c| c.iter().collect()).collect()
}

/// A letter to a holder who gave only a postal address (a reminder, a
/// notice): the address window, the date, then the text in Chinese and in
/// English, one paragraph per line as given.
pub struct Letter<'a> {
    pub name_zh: &'a str,
    pub name_en: &'a str,
    pub address: &'a str,
    pub dated: &'a str,
    pub subject: &'a str,
    pub zh: &'a [String],
    pub en: &'a [String],
}

impl Letter<'_> {
    pub fn pdf(&self) -> Result<Vec<u8>> {
        let font = font()?;
        let mut doc = Document::new();
        let settings = PageSettings::from_wh(595.0, 842.0)
            .ok_or_else(|| RaError::Internal("page size".into()))?;
        let mut page = doc.start_page_with(settings);
        let mut surface = page.surface();
        let mut p = Page {
            s: &mut surface,
            font,
        };
        p.text(56.0, 70.0, 18.0, "Hallmark 電子證書 · e-Cert");
        p.rect(50.0, 120.0, 300.0, 100.0, false);
        p.text(62.0, 145.0, 14.0, self.name_zh);
        p.text(62.0, 166.0, 12.0, self.name_en);
        for (i, line) in wrap(self.address, 30).iter().take(2).enumerate() {
            p.text(62.0, 188.0 + 16.0 * i as f32, 10.0, line);
        }
        p.text(380.0, 145.0, 10.0, "日期 Date");
        p.text(380.0, 162.0, 12.0, self.dated);
        p.text(56.0, 262.0, 13.0, self.subject);
        let mut y = 292.0;
        for para in self.zh {
            for l in wrap(para, 38) {
                p.text(56.0, y, 11.0, &l);
                y += 18.0;
            }
            y += 6.0;
        }
        y += 10.0;
        for para in self.en {
            for l in wrap_words(para, 84) {
                p.text(56.0, y, 10.5, &l);
                y += 16.0;
            }
            y += 6.0;
        }
        surface.finish();
        page.finish();
        doc.finish()
            .map_err(|e| RaError::Internal(format!("PDF: {e:?}")))
    }
}

fn wrap_words(s: &str, width: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut line = String::new();
    for w in s.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + w.len() > width {
            out.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(w);
    }
    if !line.is_empty() {
        out.push(line);
    }
    out
}
