//! Ed25519 keys for signed audit checkpoints: the private key (a 32-byte
//! seed, from the environment only, never printed) signs; the public key
//! (in the config) verifies. Both are written as standard base64.
//!
//! The signing itself is aws-lc-rs, the crypto library the TLS stack already
//! builds; this module only parses, wraps and hides keys.

use std::fmt;

use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret, SecretSlice};

/// Bytes of an Ed25519 seed and of a public key.
const KEY_LEN: usize = 32;

/// Why a key or signature could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not base64 of 32 bytes. The text is never echoed: it may be a secret.
    #[error("expected the base64 of 32 bytes (e.g. from `drover audit keygen`), found {0}")]
    Malformed(String),
    /// aws-lc refused the seed.
    #[error("the key was rejected")]
    Rejected,
}

/// The private signing key. `Debug` shows no byte of it.
#[derive(Clone)]
pub struct SigningKey {
    seed: SecretSlice<u8>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey([REDACTED])")
    }
}

/// A public key that verifies checkpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey([u8; KEY_LEN]);

fn decode32(text: &str) -> Result<[u8; KEY_LEN], KeyError> {
    let bytes = STANDARD
        .decode(text.trim())
        .map_err(|_| KeyError::Malformed("text that is not base64".into()))?;
    <[u8; KEY_LEN]>::try_from(bytes.as_slice())
        .map_err(|_| KeyError::Malformed(format!("{} bytes", bytes.len())))
}

impl SigningKey {
    /// Reads a base64 seed.
    pub fn parse(text: &str) -> Result<SigningKey, KeyError> {
        let seed = decode32(text)?;
        let key = SigningKey {
            seed: SecretSlice::from(seed.to_vec()),
        };
        key.pair()?;
        Ok(key)
    }

    /// A new random key.
    pub fn generate() -> SigningKey {
        let mut seed = [0u8; KEY_LEN];
        // The operating system's generator failing is not something to go on from.
        aws_lc_rs::rand::fill(&mut seed).expect("the system random generator failed");
        SigningKey {
            seed: SecretSlice::from(seed.to_vec()),
        }
    }

    fn pair(&self) -> Result<Ed25519KeyPair, KeyError> {
        Ed25519KeyPair::from_seed_unchecked(self.seed.expose_secret())
            .map_err(|_| KeyError::Rejected)
    }

    /// The seed as base64: only for `drover audit keygen` to hand it over once.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.seed.expose_secret())
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        let pair = self.pair().expect("a seed checked when it was read");
        let mut bytes = [0u8; KEY_LEN];
        bytes.copy_from_slice(pair.public_key().as_ref());
        PublicKey(bytes)
    }

    /// The signature of `message`, base64.
    pub fn sign(&self, message: &[u8]) -> String {
        let pair = self.pair().expect("a seed checked when it was read");
        STANDARD.encode(pair.sign(message).as_ref())
    }
}

impl PublicKey {
    /// Reads a base64 public key.
    pub fn parse(text: &str) -> Result<PublicKey, KeyError> {
        decode32(text).map(PublicKey)
    }

    /// Whether `signature` (base64) is this key's signature of `message`.
    pub fn verifies(&self, message: &[u8], signature: &str) -> bool {
        let Ok(signature) = STANDARD.decode(signature.trim()) else {
            return false;
        };
        UnparsedPublicKey::new(&ED25519, self.0)
            .verify(message, &signature)
            .is_ok()
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&STANDARD.encode(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_with_its_key_only() {
        let key = SigningKey::generate();
        let other = SigningKey::generate();
        let signature = key.sign(b"seq=3");
        assert!(key.public_key().verifies(b"seq=3", &signature));
        assert!(
            !key.public_key().verifies(b"seq=4", &signature),
            "other message"
        );
        assert!(
            !other.public_key().verifies(b"seq=3", &signature),
            "other key"
        );
        assert!(
            !key.public_key().verifies(b"seq=3", "not base64!"),
            "garbage"
        );
    }

    #[test]
    fn keys_round_trip_through_base64() {
        let key = SigningKey::generate();
        let again = SigningKey::parse(&key.to_base64()).unwrap();
        assert_eq!(again.public_key(), key.public_key());
        let public = PublicKey::parse(&key.public_key().to_string()).unwrap();
        assert_eq!(public, key.public_key());
    }

    #[test]
    fn malformed_keys_are_refused_without_echoing_them() {
        for (text, why) in [
            ("c2hvcnQ=", "5 bytes"),
            ("hunter2 hunter2", "not base64"),
            ("", "0 bytes"),
        ] {
            let e = SigningKey::parse(text).unwrap_err().to_string();
            assert!(e.contains(why), "{text}: {e}");
            assert!(text.is_empty() || !e.contains(text), "{text} echoed: {e}");
        }
        assert!(format!("{:?}", SigningKey::generate()).contains("REDACTED"));
    }
}
