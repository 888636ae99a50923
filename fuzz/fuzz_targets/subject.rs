//! An RFC 4514 subject: whatever parses must display as a string that
//! parses to the same name (what `cert show` prints can be given back).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(name) = hallmark_pki::subject::parse(text) {
        let shown = hallmark_pki::subject::display(&name);
        let again = hallmark_pki::subject::parse(&shown).unwrap_or_else(|e| {
            panic!("{text:?} displays as {shown:?}, which does not parse: {e}")
        });
        assert_eq!(
            again, name,
            "{text:?} displays as {shown:?}, a different name"
        );
    }
});
