//! An RFC 6960 GET path: percent-decoded, base64-decoded, then parsed.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(path) = std::str::from_utf8(data)
        && let Some(der) = hallmark_pki::ocsp::decode_get_path(path)
    {
        let _ = hallmark_pki::ocsp::parse_request(&der);
    }
});
