//! A request body of the admin API, read as every operation reads it.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    hallmark_server::fuzz_bodies(data);
});
