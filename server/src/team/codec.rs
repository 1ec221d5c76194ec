//! The encoding of a value stored in Redis: a version tag and a blake3 checksum in front of the bytes.
//!
//! A value whose checksum does not match (truncated, damaged, or written by something else)
//! opens as nothing, so the caller treats it as a miss and never serves it.

/// Version tag in front of every sealed value.
const TAG: &[u8; 4] = b"ctv1";
const HEADER: usize = TAG.len() + 32;

/// `value` with its tag and checksum in front.
pub fn seal(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + value.len());
    out.extend_from_slice(TAG);
    out.extend_from_slice(blake3::hash(value).as_bytes());
    out.extend_from_slice(value);
    out
}

/// The value inside `sealed`, when its tag and checksum are right.
pub fn open(sealed: &[u8]) -> Option<&[u8]> {
    if sealed.len() < HEADER || &sealed[..TAG.len()] != TAG {
        return None;
    }
    let (sum, value) = sealed[TAG.len()..].split_at(32);
    (blake3::hash(value).as_bytes() == sum).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_and_any_damage_is_refused() {
        let sealed = seal(b"{\"text\":\"answer\"}");
        assert_eq!(open(&sealed), Some(&b"{\"text\":\"answer\"}"[..]));
        for at in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[at] ^= 0x40;
            assert_eq!(open(&bad), None, "flipped byte {at}");
        }
        assert_eq!(open(&sealed[..sealed.len() - 1]), None);
        assert_eq!(open(b""), None);
        assert_eq!(open(b"plain text someone else wrote here"), None);
        assert_eq!(open(&seal(b"")), Some(&b""[..]));
    }
}
