//! API keys. A key is a random token shown once, when created; the store keeps only its SHA-256.
//! The tokens carry 128 random bits, so a fast hash is enough: nobody can brute-force the space,
//! and a stolen database gives no usable token (GitHub stores its tokens the same way).
//!
//! Who may do what: an operator reaches every shop; a merchant key reaches its own shop only; an
//! agent key opens the agent websocket and sees the conversations of that agent's queues.

use sha2::Digest;

use crate::domain::Role;

/// Prefix of every token, so a leaked one is recognisable (secret scanners, logs).
pub const TOKEN_PREFIX: &str = "hd_";

/// A new token: the prefix and 128 random bits in hex.
pub fn new_token() -> String {
    format!("{TOKEN_PREFIX}{}", super::ws::random_token())
}

/// What the store keeps of a token.
pub fn hash_token(token: &str) -> String {
    sha2::Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Create a key for `role`: the store keeps its hash, the token is returned to show once.
pub fn create_key(
    store: &dyn crate::store::ChatStore,
    role: &Role,
    label: &str,
) -> Result<String, crate::store::StoreError> {
    let token = new_token();
    store.add_key(
        &hash_token(&token),
        role,
        label,
        &crate::domain::now().to_rfc3339(),
    )?;
    Ok(token)
}

/// HMAC-SHA256 of `message` under `key`, hex: how a merchant signs its logged-in user's id.
pub fn hmac_sha256_hex(key: &[u8], message: &[u8]) -> String {
    // RFC 2104 with SHA-256's 64-byte block.
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&sha2::Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = sha2::Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    inner.update(message);
    let mut outer = sha2::Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Compare without an early exit, so the time taken does not reveal how much of a secret matched.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231() {
        // RFC 4231 test cases 1 and 2.
        assert_eq!(
            hmac_sha256_hex(&[0x0b; 20], b"Hi There"),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        assert_eq!(
            hmac_sha256_hex(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Case 6: a key longer than the block is hashed first.
        assert_eq!(
            hmac_sha256_hex(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            ),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn roles_reach_their_own_shops() {
        let m = Role::Merchant {
            shop: "demo".into(),
        };
        assert!(m.may_manage("demo") && !m.may_manage("other"));
        assert!(Role::Operator.may_manage("other"));
        assert!(!Role::Agent {
            agent: "amy".into()
        }
        .may_manage("demo"));
        let t = new_token();
        assert!(t.starts_with(TOKEN_PREFIX) && t.len() == 35);
        assert_ne!(hash_token(&t), t);
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
    }
}
