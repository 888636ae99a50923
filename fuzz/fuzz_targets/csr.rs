//! A CSR, PEM or DER: parsed within its budgets and its signature checked.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = hallmark_pki::csr::verify(data);
});
