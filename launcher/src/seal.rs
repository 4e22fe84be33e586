//! Tokens at rest: envelope encryption. Each token is sealed with AES-256-GCM
//! under a fresh data key; in Lambda the data key comes from KMS
//! (`GenerateDataKey`, and `Decrypt` on the one fetch) and only its
//! KMS-encrypted form is stored next to the ciphertext. `launcher serve`
//! uses a key that lives in the process's memory only.
//!
//! The item's key is bound to both layers (the KMS encryption context and
//! the AEAD's associated data), so a sealed token copied to another item
//! does not open.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use launcher_core::ports::BoxFut;
use rand::RngCore;

/// AES-GCM nonce length.
const NONCE_LEN: usize = 12;
/// The KMS encryption context key that carries the item's key.
pub const CONTEXT_KEY: &str = "microvm-launcher:item";

/// A sealed secret: the wrapped data key and `nonce || ciphertext`.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    pub wrapped_key: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealed(..)")
    }
}

#[derive(Debug, thiserror::Error)]
#[error("sealing: {0}")]
pub struct SealError(pub String);

/// Seals and opens secrets bound to `context` (the item's key).
pub trait Sealer: Send + Sync {
    fn seal<'a>(
        &'a self,
        context: &'a str,
        plaintext: &'a [u8],
    ) -> BoxFut<'a, Result<Sealed, SealError>>;
    fn open<'a>(
        &'a self,
        context: &'a str,
        sealed: &'a Sealed,
    ) -> BoxFut<'a, Result<Vec<u8>, SealError>>;
}

fn aead_seal(key: &[u8], context: &str, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
    let cipher = Aes256Gcm::new_from_slice(key).map_err(|_| SealError("bad data key".into()))?;
    let mut nonce = [0u8; NONCE_LEN];
    rand::rng().fill_bytes(&mut nonce);
    let ct = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: context.as_bytes(),
            },
        )
        .map_err(|_| SealError("encryption failed".into()))?;
    Ok([nonce.as_slice(), &ct].concat())
}

fn aead_open(key: &[u8], context: &str, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
    if sealed.len() < NONCE_LEN {
        return Err(SealError("ciphertext too short".into()));
    }
    let cipher = Aes256Gcm::new_from_slice(key).map_err(|_| SealError("bad data key".into()))?;
    let (nonce, ct) = sealed.split_at(NONCE_LEN);
    cipher
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ct,
                aad: context.as_bytes(),
            },
        )
        .map_err(|_| SealError("the sealed token does not open (wrong key or item)".into()))
}

/// A key held in this process only (`launcher serve`): tokens sealed by one
/// process cannot be opened by another.
pub struct LocalSealer {
    key: [u8; 32],
}

impl std::fmt::Debug for LocalSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LocalSealer(<key redacted>)")
    }
}

impl LocalSealer {
    pub fn random() -> LocalSealer {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        LocalSealer { key }
    }
}

impl Sealer for LocalSealer {
    fn seal<'a>(
        &'a self,
        context: &'a str,
        plaintext: &'a [u8],
    ) -> BoxFut<'a, Result<Sealed, SealError>> {
        Box::pin(async move {
            Ok(Sealed {
                wrapped_key: b"local".to_vec(),
                ciphertext: aead_seal(&self.key, context, plaintext)?,
            })
        })
    }

    fn open<'a>(
        &'a self,
        context: &'a str,
        sealed: &'a Sealed,
    ) -> BoxFut<'a, Result<Vec<u8>, SealError>> {
        Box::pin(async move { aead_open(&self.key, context, &sealed.ciphertext) })
    }
}

/// Data keys from KMS (`TOKEN_KMS_KEY_ID`): one `GenerateDataKey` per token
/// sealed, one `Decrypt` per token opened.
#[derive(Debug, Clone)]
pub struct KmsSealer {
    client: aws_sdk_kms::Client,
    key_id: String,
}

impl KmsSealer {
    pub fn new(client: aws_sdk_kms::Client, key_id: impl Into<String>) -> KmsSealer {
        KmsSealer {
            client,
            key_id: key_id.into(),
        }
    }
}

fn kms_err(op: &str, e: impl std::error::Error) -> SealError {
    SealError(format!(
        "KMS {op}: {}",
        aws_sdk_kms::error::DisplayErrorContext(e)
    ))
}

impl Sealer for KmsSealer {
    fn seal<'a>(
        &'a self,
        context: &'a str,
        plaintext: &'a [u8],
    ) -> BoxFut<'a, Result<Sealed, SealError>> {
        Box::pin(async move {
            let out = self
                .client
                .generate_data_key()
                .key_id(&self.key_id)
                .key_spec(aws_sdk_kms::types::DataKeySpec::Aes256)
                .encryption_context(CONTEXT_KEY, context)
                .send()
                .await
                .map_err(|e| kms_err("GenerateDataKey", e))?;
            let key = out
                .plaintext()
                .ok_or_else(|| SealError("GenerateDataKey returned no plaintext key".into()))?;
            let wrapped = out
                .ciphertext_blob()
                .ok_or_else(|| SealError("GenerateDataKey returned no wrapped key".into()))?;
            Ok(Sealed {
                wrapped_key: wrapped.as_ref().to_vec(),
                ciphertext: aead_seal(key.as_ref(), context, plaintext)?,
            })
        })
    }

    fn open<'a>(
        &'a self,
        context: &'a str,
        sealed: &'a Sealed,
    ) -> BoxFut<'a, Result<Vec<u8>, SealError>> {
        Box::pin(async move {
            let out = self
                .client
                .decrypt()
                .key_id(&self.key_id)
                .ciphertext_blob(aws_sdk_kms::primitives::Blob::new(
                    sealed.wrapped_key.clone(),
                ))
                .encryption_context(CONTEXT_KEY, context)
                .send()
                .await
                .map_err(|e| kms_err("Decrypt", e))?;
            let key = out
                .plaintext()
                .ok_or_else(|| SealError("Decrypt returned no plaintext key".into()))?;
            aead_open(key.as_ref(), context, &sealed.ciphertext)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_sealed_token_opens_only_for_its_own_item_and_hides_the_plaintext() {
        let s = LocalSealer::random();
        let sealed = s.seal("req#a", b"token-value-123").await.unwrap();
        assert!(
            !sealed
                .ciphertext
                .windows(b"token-value-123".len())
                .any(|w| w == b"token-value-123")
        );
        assert_eq!(s.open("req#a", &sealed).await.unwrap(), b"token-value-123");
        assert!(s.open("req#b", &sealed).await.is_err());
        assert!(LocalSealer::random().open("req#a", &sealed).await.is_err());
        let again = s.seal("req#a", b"token-value-123").await.unwrap();
        assert_ne!(again.ciphertext, sealed.ciphertext, "fresh nonce each time");
    }
}
