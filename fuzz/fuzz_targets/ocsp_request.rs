//! An OCSP request body (POST): parsed as the responder parses it.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = hallmark_pki::ocsp::parse_request(data);
});
