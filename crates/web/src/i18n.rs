//! The pages' words in Traditional Chinese (the default) and English.
//! Templates read them as `t.KEY`; a key missing here is a missing word on
//! the page, so the test of this module checks both languages have each.

use std::collections::BTreeMap;

/// (key, English, 繁體中文)
const WORDS: &[(&str, &str, &str)] = &[
    ("site", "Hallmark e-Cert", "Hallmark 電子證書"),
    (
        "renew",
        "Renew your certificate with a new key",
        "以新密碼匙續期證書",
    ),
    ("renew_title", "Renew your e-Cert", "續期電子證書"),
    (
        "renew_intro",
        "Make a new key and its certificate signing request, and sign the request with the key of your current e-Cert, for example with OpenSSL as below. Your new certificate keeps your name and type; the current one is revoked as superseded.",
        "請產生新的密碼匙及其證書簽署要求，並以現有電子證書的密碼匙簽署該要求（例如以下列 OpenSSL 指令）。新證書沿用你的姓名及類別；現有證書會以「已被取代」撤銷。",
    ),
    (
        "renew_current",
        "Your current certificate (PEM)",
        "現有證書（PEM）",
    ),
    (
        "renew_csr",
        "The new certificate signing request (PEM or base64)",
        "新的證書簽署要求（PEM 或 base64）",
    ),
    (
        "renew_signature",
        "The request signed with your current key (base64)",
        "以現有密碼匙作出的簽署（base64）",
    ),
    ("renew_submit", "Renew", "續期"),
    ("fee", "Fee", "費用"),
    (
        "fee_due",
        "for the years after the free first year, due by",
        "首年免費期後的費用，繳費限期：",
    ),
    ("fee_paid", "Paid; receipt no.", "已繳付；收據編號"),
    ("pay", "Pay online", "網上繳費"),
    (
        "download_receipt",
        "Download the receipt (PDF)",
        "下載收據（PDF）",
    ),
    ("test_pay_title", "Test payment provider", "測試付款服務"),
    (
        "test_pay_intro",
        "This page stands in for a payment provider's checkout: nothing is charged.",
        "此頁面模擬付款服務的結帳頁面，不會收取任何費用。",
    ),
    ("test_pay_pay", "Pay", "付款"),
    ("test_pay_decline", "Decline", "拒絕"),
    (
        "test_paid",
        "Payment received. Follow your application to download the receipt.",
        "已收到付款。請查詢申請以下載收據。",
    ),
    (
        "test_declined",
        "The payment was declined; nothing was charged.",
        "付款被拒絕，沒有收取費用。",
    ),
    ("lang_other", "中文", "English"),
    ("lang_other_code", "zh", "en"),
    ("skip", "Skip to content", "跳至內容"),
    ("home_title", "e-Cert services", "電子證書服務"),
    (
        "home_intro",
        "Apply for a personal e-Cert, follow your application, or collect your certificate with the PIN from your PIN mailer.",
        "申請個人電子證書、查詢申請進度，或以密碼信封內的個人密碼下載證書。",
    ),
    ("apply", "Apply", "申請"),
    ("track", "Track an application", "查詢申請進度"),
    ("collect", "Collect your certificate", "下載證書"),
    ("staff", "Staff sign-in", "職員登入"),
    (
        "apply_title",
        "Apply for a personal e-Cert",
        "申請個人電子證書",
    ),
    (
        "apply_intro",
        "Fill in your particulars exactly as on your Hong Kong identity card. We check them against the population registry before an officer approves your application.",
        "請按香港身份證所載填寫個人資料。登記主任批核前，我們會與人口登記資料核對。",
    ),
    ("id_number", "Identity card number", "身份證號碼"),
    ("id_number_hint", "e.g. A123456(3)", "例如 A123456(3)"),
    ("name_zh", "Name in Chinese", "中文姓名"),
    (
        "name_en",
        "Name in English (surname first)",
        "英文姓名（姓氏先行）",
    ),
    ("date_of_birth", "Date of birth", "出生日期"),
    ("date_hint", "YYYY-MM-DD", "年-月-日（YYYY-MM-DD）"),
    ("phone", "Contact phone", "聯絡電話"),
    ("email", "E-mail address", "電郵地址"),
    ("address", "Postal address", "郵寄地址"),
    (
        "contact_hint",
        "Give an e-mail address, a postal address, or both.",
        "請提供電郵地址或郵寄地址（或兩者）。",
    ),
    (
        "email_in_certificate",
        "Put my e-mail address in the certificate (after it is verified)",
        "在證書內載入我的電郵地址（經核實後）",
    ),
    ("profile", "Certificate type", "證書類別"),
    ("profile_personal", "Personal e-Cert", "個人電子證書"),
    (
        "profile_encipherment",
        "Encipherment e-Cert (key kept for recovery)",
        "加密電子證書（密碼匙備份，可恢復）",
    ),
    ("submit", "Submit application", "遞交申請"),
    ("applied_title", "Application received", "已收到申請"),
    ("reference", "Application reference", "申請編號"),
    (
        "keep_reference",
        "Keep this reference: you need it, with your date of birth, to follow your application, and with your PIN to collect the certificate.",
        "請保存此編號：查詢進度時須連同出生日期輸入，下載證書時須連同個人密碼輸入。",
    ),
    ("status", "Status", "狀態"),
    (
        "email_pending",
        "Not confirmed yet: open the link we sent to this address. The certificate is issued once it is confirmed.",
        "尚未確認：請開啟我們寄往此地址的連結。確認後才會簽發證書。",
    ),
    (
        "email_confirmed",
        "Confirmed; it will be in your certificate.",
        "已確認；證書將載有此地址。",
    ),
    (
        "email_resend",
        "Send the confirmation link again",
        "重新寄出確認連結",
    ),
    (
        "email_resent",
        "A new link is on its way; the earlier one no longer works.",
        "新的連結已寄出；之前的連結已失效。",
    ),
    (
        "email_title",
        "Confirm your e-mail address",
        "確認你的電郵地址",
    ),
    (
        "email_intro",
        "Press the button to confirm that this mailbox is yours, so that its address can go into your e-Cert.",
        "請按下按鈕，確認此郵箱屬於你，以便在你的電子證書內載入此地址。",
    ),
    ("email_confirm", "Confirm", "確認"),
    (
        "marketing_consent",
        "Send me information about value-added services (optional; you can withdraw at any time)",
        "向我發送增值服務資訊（選填；可隨時撤回）",
    ),
    (
        "marketing_yes",
        "You agreed to receive information about value-added services.",
        "你已同意接收增值服務資訊。",
    ),
    ("marketing_withdraw", "Withdraw my consent", "撤回我的同意"),
    (
        "marketing_withdrawn",
        "Your consent is withdrawn: no more information will be sent.",
        "你的同意已撤回，我們不會再發送資訊。",
    ),
    ("my_data", "Your data", "你的資料"),
    (
        "export",
        "Download all data held about this application (JSON)",
        "下載此申請的全部資料（JSON）",
    ),
    ("batches_link", "Campaign batches", "批次申請"),
    ("accounts_link", "Accounts", "帳戶"),
    ("recoveries_link", "Key recovery", "密碼匙恢復"),
    ("recoveries_title", "Key recovery", "密碼匙恢復"),
    (
        "recoveries_intro",
        "Only an escrowed encipherment key can be recovered, for its holder, who is here with their identity document. An officer requests; a supervisor of the same office who did not request it approves and prints the recovery's PIN mailer; the holder downloads the key at the collection page with the recovery number and that PIN, once.",
        "只有已備份的加密用密碼匙可為其持有人恢復，持有人須攜同身份證明文件親臨。由登記主任提出申請，再由同一登記處另一名主管批核並列印恢復密碼信封；持有人以恢復編號及該密碼於下載頁面下載密碼匙，只限一次。",
    ),
    (
        "recovery_reference_hint",
        "The reference of the holder's encipherment certificate application.",
        "持有人加密證書申請的申請編號。",
    ),
    (
        "recovery_request",
        "Request a key recovery",
        "申請恢復密碼匙",
    ),
    ("recovery_number", "Recovery number", "恢復編號"),
    ("recovery_certificate", "Certificate", "證書"),
    ("recovery_requested_by", "Requested by", "申請人員"),
    (
        "recovery_state_requested",
        "Waiting for a supervisor",
        "待主管批核",
    ),
    (
        "recovery_state_approved",
        "Mailer printed",
        "已列印密碼信封",
    ),
    ("recovery_state_collected", "Collected", "已下載"),
    ("recovery_state_cancelled", "Cancelled", "已取消"),
    (
        "recovery_approve",
        "Approve and print the mailer",
        "批核並列印密碼信封",
    ),
    ("recovery_cancel", "Cancel", "取消"),
    (
        "recovery_requested_note",
        "requested; a supervisor of this office approves it.",
        "已提出申請，待本登記處主管批核。",
    ),
    ("recovery_cancelled_note", "cancelled.", "已取消。"),
    (
        "recoveries_empty",
        "No key recoveries yet.",
        "暫無密碼匙恢復申請。",
    ),
    ("accounts_title", "Staff accounts", "職員帳戶"),
    (
        "accounts_intro",
        "Dual control: an account proposed here cannot sign in until a second administrator approves it; the approver then hands over its initial password and authenticator secret, shown once. Disabling an account takes effect at once and ends its sessions.",
        "雙重控制：於此建議的帳戶須經另一名管理員批准後方可登入；批准者須把只顯示一次的初始密碼及驗證器密鑰交予該職員。停用帳戶即時生效，並結束其所有登入。",
    ),
    ("account_username", "Username", "用戶名稱"),
    (
        "account_username_hint",
        "1 to 32 of a-z, 0-9, '.', '_' and '-'.",
        "1 至 32 個 a-z、0-9、「.」、「_」或「-」。",
    ),
    ("account_name", "Name", "姓名"),
    ("account_role", "Role", "職級"),
    ("account_centre", "Centre", "登記中心"),
    (
        "account_centre_hint",
        "The registration centre, or partner:BANK for a partner's office; officers and supervisors need one.",
        "登記中心，或合作夥伴辦事處的 partner:銀行；登記主任及主管必須填寫。",
    ),
    ("account_state", "State", "狀態"),
    (
        "account_state_proposed",
        "Waiting for a second administrator",
        "待另一名管理員批准",
    ),
    ("account_state_active", "Active", "使用中"),
    ("account_state_disabled", "Disabled", "已停用"),
    ("account_proposed_by", "Proposed by", "建議者"),
    ("account_actions", "Actions", "操作"),
    ("account_approve", "Approve", "批准"),
    ("account_disable", "Disable", "停用"),
    ("account_propose_title", "Propose an account", "建議新帳戶"),
    (
        "account_propose_intro",
        "Another administrator approves it before it can be used.",
        "須經另一名管理員批准方可使用。",
    ),
    ("account_propose", "Propose", "提交建議"),
    (
        "account_proposed_note",
        "proposed; a second administrator approves it.",
        "已建議，待另一名管理員批准。",
    ),
    ("account_disabled_note", "disabled.", "已停用。"),
    ("account_approved_title", "Account approved", "帳戶已批准"),
    (
        "account_approved_intro",
        "Hand these to the person in private; they are shown only now. They sign in with the password and a code from an authenticator app enrolled with the secret.",
        "請私下交予該職員；以下資料只顯示這一次。職員以此密碼及以密鑰登記的驗證器應用程式所產生的驗證碼登入。",
    ),
    ("account_initial_password", "Initial password", "初始密碼"),
    ("account_totp_secret", "Authenticator secret", "驗證器密鑰"),
    ("account_totp_uri", "Authenticator link", "驗證器連結"),
    ("accounts_back", "Back to the accounts", "返回帳戶"),
    ("batches_title", "Campaign batches", "批次申請"),
    (
        "batches_intro",
        "Batches imported at registration centres (hallmark campaign import), by stage. A supervisor of the batch's centre, other than the officer who imported it, approves every application the registry confirmed with one action; certificates are then issued with hallmark campaign issue. Not confirmed: the registry does not know the person, or holds other particulars.",
        "各登記中心匯入的批次申請（hallmark campaign import）及其進度。批次須由該中心的主管（匯入人員以外）一次批核所有經登記冊核實的申請；其後以 hallmark campaign issue 簽發證書。未能核實：登記冊沒有此人，或所載資料不同。",
    ),
    (
        "batches_empty",
        "No batch has been imported.",
        "尚未匯入任何批次。",
    ),
    ("batch", "Batch", "批次"),
    ("batch_centre", "Centre", "登記中心"),
    ("batch_rows", "Applications", "申請數目"),
    ("batch_importing", "import not complete", "匯入未完成"),
    ("batch_to_check", "To check", "待核對"),
    ("batch_unconfirmed", "Not confirmed", "未能核實"),
    ("batch_awaiting", "Awaiting approval", "待批核"),
    ("batch_to_issue", "To issue", "待簽發"),
    ("batch_issued", "To collect", "待領取"),
    ("batch_collected", "Collected", "已領取"),
    ("batch_approve", "Approve the batch", "批核此批次"),
    (
        "batch_approved_note",
        "Applications approved",
        "已批核的申請",
    ),
    ("statistics_link", "Statistics", "統計"),
    ("statistics_title", "Service statistics", "服務統計"),
    (
        "statistics_intro",
        "Certificates issued in the last twelve months:",
        "過去十二個月簽發的證書：",
    ),
    (
        "issued_per_month",
        "Certificates issued per month, by type",
        "每月簽發的證書（按類別）",
    ),
    (
        "revocations_by_reason",
        "Revocations by reason",
        "撤銷證書（按原因）",
    ),
    (
        "applications_by_channel",
        "Applications by channel",
        "申請（按途徑）",
    ),
    ("collected", "certificate collected", "已下載證書"),
    ("not_collected", "not (yet) collected", "尚未下載"),
    ("no_data", "Nothing to show yet.", "暫無資料。"),
    ("figures", "The figures", "數字"),
    ("appointment", "Counter appointment", "預約到登記處"),
    (
        "appointment_intro",
        "Bring your Hong Kong identity card to a registration office for an officer to check it. Times are Hong Kong time.",
        "請帶同香港身份證到登記處，由登記主任核對。時間為香港時間。",
    ),
    ("appointment_booked", "Booked", "已預約"),
    ("booking_code", "Booking", "預約編號"),
    ("seats_free", "places free", "個名額"),
    ("book", "Book this time", "預約此時段"),
    ("rebook", "Change to this time", "改為此時段"),
    ("cancel_booking", "Cancel the appointment", "取消預約"),
    (
        "no_slots",
        "No times are free in the next 30 days.",
        "未來 30 日沒有可預約的時段。",
    ),
    (
        "booking_done",
        "Your appointment is booked.",
        "已為你預約。",
    ),
    (
        "booking_cancelled",
        "Your appointment is cancelled.",
        "已取消預約。",
    ),
    (
        "lost",
        "Report a lost certificate or card",
        "掛失證書或身份證",
    ),
    (
        "lost_intro",
        "Enter the application reference and the revocation code from your PIN mailer. The certificate is revoked at once and cannot be used again; apply for a new one afterwards.",
        "請輸入申請編號及密碼信封上的掛失密碼。證書會即時撤銷，不能再使用；其後請重新申請。",
    ),
    ("revocation_code", "Revocation code", "掛失密碼"),
    ("lost_submit", "Revoke my certificate", "撤銷我的證書"),
    (
        "lost_done",
        "Your certificate is revoked: it no longer works anywhere.",
        "你的證書已撤銷，不能再使用。",
    ),
    ("lost_revoked", "reported lost; revoked", "已報失並撤銷"),
    ("lost_report", "Paper lost report", "書面掛失報告"),
    (
        "lost_waiting",
        "awaiting a supervisor; entered by",
        "等待主任確認；輸入人員：",
    ),
    (
        "lost_request",
        "Enter a paper lost report",
        "輸入書面掛失報告",
    ),
    (
        "lost_confirm",
        "Confirm the lost report and revoke (supervisor)",
        "確認掛失並撤銷（主任）",
    ),
    (
        "lost_requested_note",
        "The lost report is entered; a supervisor must confirm it before the certificate is revoked.",
        "掛失報告已輸入；須由主任確認後才會撤銷證書。",
    ),
    (
        "lost_revoked_note",
        "Confirmed: the certificate is revoked.",
        "已確認：證書已撤銷。",
    ),
    (
        "email_in_cert_pending",
        "to go into the certificate; the applicant has not confirmed it yet",
        "將載入證書；申請人尚未確認",
    ),
    (
        "email_in_cert_confirmed",
        "to go into the certificate; confirmed by the applicant",
        "將載入證書；申請人已確認",
    ),
    ("track_title", "Track an application", "查詢申請進度"),
    ("show_status", "Show status", "顯示狀態"),
    (
        "collect_title",
        "Collect your certificate",
        "下載你的電子證書",
    ),
    (
        "collect_intro",
        "Enter the reference and the PIN from your PIN mailer (for a recovered key, the recovery number KR-… instead of the reference). Your certificate and its key are delivered once, as a PKCS#12 file protected by the same PIN.",
        "請輸入申請編號及密碼信封內的個人密碼（恢復密碼匙則輸入恢復編號 KR-…）。證書及其密碼匙只會交付一次，以 PKCS#12 檔案形式提供，並以同一個人密碼保護。",
    ),
    ("pin", "PIN", "個人密碼"),
    ("download", "Download certificate", "下載證書"),
    ("error_title", "Please check", "請檢查"),
    ("sign_in_title", "Staff sign-in", "職員登入"),
    ("username", "Username", "用戶名稱"),
    ("password", "Password", "密碼"),
    (
        "code",
        "One-time code from your authenticator",
        "驗證程式的一次性驗證碼",
    ),
    ("sign_in", "Sign in", "登入"),
    ("sign_out", "Sign out", "登出"),
    ("signed_in_as", "Signed in as", "已登入："),
    (
        "queue_title",
        "Applications awaiting approval",
        "待批核申請",
    ),
    (
        "queue_empty",
        "No application is waiting.",
        "沒有待批核的申請。",
    ),
    ("next_page", "Next page", "下一頁"),
    ("channel", "Channel", "途徑"),
    ("received", "Received", "收到日期"),
    ("entered_by", "Entered by", "輸入人員"),
    ("approved_by", "Approved by", "批核人員"),
    ("registry", "Registry check", "人口登記核對"),
    ("open", "Open", "開啟"),
    (
        "approve",
        "Approve (I have seen the original identity document)",
        "批核（本人已核對身份證明文件正本）",
    ),
    (
        "print_mailer",
        "Print PIN mailer (a new PIN; any earlier one stops working)",
        "列印密碼信封（新密碼；之前的密碼即告失效）",
    ),
    ("mailers", "PIN mailers printed", "已列印密碼信封"),
    (
        "counter_title",
        "Enter an application at the counter",
        "於櫃位輸入申請",
    ),
    ("counter_link", "New counter application", "新櫃位申請"),
    ("queue_link", "Approval queue", "批核隊列"),
    ("certificate", "Certificate", "證書"),
    ("back_to_queue", "Back to the queue", "返回隊列"),
    (
        "approved_note",
        "Approved. Print the PIN mailer and send it to the applicant in a sealed envelope.",
        "已批核。請列印密碼信封，並以密封信封寄交申請人。",
    ),
];

/// The words of one language as a template value.
pub fn words(lang: &str) -> BTreeMap<&'static str, &'static str> {
    WORDS
        .iter()
        .map(|(k, en, zh)| (*k, if lang == "en" { *en } else { *zh }))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_has_both_languages_and_keys_are_unique() {
        let mut keys = std::collections::HashSet::new();
        for (k, en, zh) in WORDS {
            assert!(keys.insert(*k), "duplicate key {k}");
            assert!(!en.is_empty() && !zh.is_empty(), "{k}");
        }
        // Every `t.KEY` a template uses exists.
        let mut used = 0;
        for (name, src) in crate::TEMPLATES {
            let b = src.as_bytes();
            for i in 0..b.len().saturating_sub(2) {
                let starts = b[i] == b't' && b[i + 1] == b'.';
                let alone = i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
                if starts && alone {
                    let key: String = src[i + 2..]
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    assert!(keys.contains(key.as_str()), "{name} uses t.{key}");
                    used += 1;
                }
            }
        }
        assert!(used > 50, "the check found the templates' words ({used})");
    }
}
