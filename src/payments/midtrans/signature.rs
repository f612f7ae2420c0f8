//! `signature_key = lowercase_hex(SHA512(order_id + status_code + gross_amount + server_key))`,
//! over the strings exactly as they appear in the notification.
use sha2::{Digest, Sha512};

pub fn signature(order_id: &str, status_code: &str, gross_amount: &str, server_key: &str) -> String {
    let mut h = Sha512::new();
    h.update(order_id.as_bytes());
    h.update(status_code.as_bytes());
    h.update(gross_amount.as_bytes());
    h.update(server_key.as_bytes());
    hex::encode(h.finalize())
}

/// Compares in time independent of where the strings differ, so the expected signature cannot
/// be discovered byte by byte.
pub fn verify(order_id: &str, status_code: &str, gross_amount: &str, server_key: &str, given: &str) -> bool {
    let expected = signature(order_id, status_code, gross_amount, server_key);
    let given = given.trim().to_ascii_lowercase();
    if given.len() != expected.len() {
        return false;
    }
    expected.bytes().zip(given.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "askvnoibnosifnboseofinbofinfgbiufglnbfg";

    #[test]
    fn midtrans_documentation_test_vector() {
        let s = signature("1111", "200", "100000.00", KEY);
        assert_eq!(
            s,
            "edc076b21793ebe3e17926350f5b8ae67d902fe657b3d0aa31b932d5c127e2375d308a2bc94f3265ac2d80a1f181a79b997ac178a236fcff35af263fc4d4c231"
        );
        assert!(s.starts_with("edc076b2") && s.ends_with("4c231"));
        assert!(verify("1111", "200", "100000.00", KEY, &s));
        assert!(verify("1111", "200", "100000.00", KEY, &s.to_uppercase()));
    }

    #[test]
    fn any_change_breaks_the_signature() {
        let s = signature("1111", "200", "100000.00", KEY);
        assert!(!verify("1111", "200", "100000", KEY, &s));
        assert!(!verify("1112", "200", "100000.00", KEY, &s));
        assert!(!verify("1111", "201", "100000.00", KEY, &s));
        assert!(!verify("1111", "200", "100000.00", "other", &s));
        assert!(!verify("1111", "200", "100000.00", KEY, &s[..100]));
        assert!(!verify("1111", "200", "100000.00", KEY, ""));
    }
}
