//! hallmark.toml, parsed and validated.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(c) = toml::from_str::<hallmark_install::Config>(text)
    {
        let _ = c.validate();
    }
});
