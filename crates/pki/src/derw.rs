//! A minimal DER writer for structures Hallmark assembles from parts
//! (OCSP responses, PKCS#12, CRL bodies). Parsing always goes through `der`.
//!
//! Why not `der`'s encoder for these too: the hot paths (a pre-signed OCSP
//! response, a CRL of a million entries) append to one buffer from bytes
//! already encoded, where building `der` types first would copy each entry
//! twice. Everything written here is read back by `der` or by OpenSSL in
//! the tests.

use const_oid::ObjectIdentifier;

pub use crate::cert::push_len;

pub fn wrap(tag: u8, body: &[u8], out: &mut Vec<u8>) {
    out.push(tag);
    push_len(out, body.len());
    out.extend_from_slice(body);
}

pub fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 6);
    wrap(tag, body, &mut out);
    out
}

pub fn seq(parts: &[&[u8]]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

pub fn set(parts: &[&[u8]]) -> Vec<u8> {
    tlv(0x31, &parts.concat())
}

pub fn oid(o: &ObjectIdentifier) -> Vec<u8> {
    tlv(0x06, o.as_bytes())
}

pub fn octets(b: &[u8]) -> Vec<u8> {
    tlv(0x04, b)
}

pub fn uint(v: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(10);
    crate::crl::push_uint(&mut out, &v.to_be_bytes());
    out
}

/// `[n] EXPLICIT` (constructed context tag).
pub fn explicit(n: u8, body: &[u8]) -> Vec<u8> {
    tlv(0xa0 | n, body)
}

pub const NULL: [u8; 2] = [0x05, 0x00];
