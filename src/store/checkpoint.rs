//! Signed checkpoints of the audit chain: the head (the last event's
//! sequence number and hash) signed with an ed25519 key the database never
//! holds. Whoever holds the database can recompute the whole chain after
//! changing an event, but cannot sign the new head: verified against an
//! earlier checkpoint kept elsewhere, a modified, deleted or re-chained
//! event shows.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::audit::{self, Event};
use super::{Store, StoreError};
use crate::signing::{PublicKey, SigningKey};

/// The `format` of a checkpoint file (and of the signed message).
pub const FORMAT: &str = "drover-audit-checkpoint/1";

/// A signed statement "the chain's event `seq` has hash `head`".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// Always [`FORMAT`].
    pub format: String,
    /// The last event covered, from 1.
    pub seq: i64,
    /// That event's hash.
    pub head: String,
    /// When it was signed (RFC 3339, UTC).
    pub at: String,
    /// The base64 ed25519 key that verifies it.
    pub public_key: String,
    /// The base64 signature of [`Checkpoint::message`].
    pub signature: String,
}

/// Why the chain does not match a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    /// The signature does not verify with the trusted key.
    #[error("the checkpoint's signature does not verify with the configured public key")]
    BadSignature,
    /// Signed by another key than the trusted one.
    #[error("the checkpoint was signed by key {found}, not by the configured key {trusted}")]
    OtherKey { found: String, trusted: String },
    /// Not a checkpoint this version reads.
    #[error("unknown checkpoint format `{0}` (expected `{FORMAT}`)")]
    Format(String),
    /// The chain itself is broken.
    #[error(transparent)]
    Broken(#[from] audit::BrokenLink),
    /// Fewer events than the checkpoint covers.
    #[error(
        "the chain ends at event {last} but the checkpoint of {at} covers {seq} events: events were deleted"
    )]
    Truncated { last: i64, seq: i64, at: String },
    /// The event at the checkpoint has another hash: the chain was rewritten.
    #[error(
        "event {seq} has hash {found}, but the checkpoint of {at} signed {signed}: the chain up to event {seq} was rewritten"
    )]
    Rewritten {
        seq: i64,
        found: String,
        signed: String,
        at: String,
    },
}

impl Checkpoint {
    /// Signs the head `(seq, head)` at `at`.
    pub fn sign(seq: i64, head: &str, at: &str, key: &SigningKey) -> Checkpoint {
        let mut checkpoint = Checkpoint {
            format: FORMAT.into(),
            seq,
            head: head.into(),
            at: at.into(),
            public_key: key.public_key().to_string(),
            signature: String::new(),
        };
        checkpoint.signature = key.sign(&checkpoint.message());
        checkpoint
    }

    /// The signed bytes: the format, sequence number, head and time, one per line.
    pub fn message(&self) -> Vec<u8> {
        format!(
            "{}\nseq {}\nhead {}\nat {}\n",
            self.format, self.seq, self.head, self.at
        )
        .into_bytes()
    }

    /// Checks the signature with the trusted key (never the key the file names).
    pub fn check_signature(&self, trusted: &PublicKey) -> Result<(), Mismatch> {
        if self.format != FORMAT {
            return Err(Mismatch::Format(self.format.clone()));
        }
        let trusted_text = trusted.to_string();
        if self.public_key != trusted_text {
            return Err(Mismatch::OtherKey {
                found: self.public_key.clone(),
                trusted: trusted_text,
            });
        }
        if !trusted.verifies(&self.message(), &self.signature) {
            return Err(Mismatch::BadSignature);
        }
        Ok(())
    }

    /// Checks the signature, then that `events` (the whole chain, in order)
    /// verify and hold this checkpoint's head at its position. The count of
    /// events verified.
    pub fn verify(&self, trusted: &PublicKey, events: &[Event]) -> Result<u64, Mismatch> {
        self.check_signature(trusted)?;
        let count = audit::verify(events)?;
        let last = events.last().map_or(0, |e| e.seq);
        let Some(event) = usize::try_from(self.seq - 1)
            .ok()
            .and_then(|i| events.get(i))
        else {
            return Err(Mismatch::Truncated {
                last,
                seq: self.seq,
                at: self.at.clone(),
            });
        };
        if event.hash != self.head {
            return Err(Mismatch::Rewritten {
                seq: self.seq,
                found: event.hash.clone(),
                signed: self.head.clone(),
                at: self.at.clone(),
            });
        }
        Ok(count)
    }
}

impl Store {
    /// Signs the chain's current head with `key`, stores the checkpoint and
    /// appends the event `audit.checkpoint` after it, in one transaction.
    /// `None` when the chain is empty; the stored one when this key already
    /// signed this head.
    pub async fn checkpoint(
        &self,
        key: &SigningKey,
        actor: &str,
    ) -> Result<Option<Checkpoint>, StoreError> {
        self.write(async |tx| {
            let (seq, head) = self.head_in(tx).await?;
            if seq == 0 {
                return Ok(None);
            }
            let checkpoint = Checkpoint::sign(seq, &head, &super::now(), key);
            let exists = sqlx::query(
                "SELECT at, signature FROM audit_checkpoints WHERE seq = $1 AND public_key = $2",
            )
            .bind(seq)
            .bind(&checkpoint.public_key)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(row) = exists {
                return Ok(Some(Checkpoint {
                    at: row.get(0),
                    signature: row.get(1),
                    ..checkpoint
                }));
            }
            sqlx::query(
                "INSERT INTO audit_checkpoints (seq, head, at, public_key, signature) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(seq)
            .bind(&checkpoint.head)
            .bind(&checkpoint.at)
            .bind(&checkpoint.public_key)
            .bind(&checkpoint.signature)
            .execute(&mut *tx)
            .await?;
            let data = serde_json::json!({ "seq": seq, "head": head, "public_key": checkpoint.public_key });
            self.append(tx, actor, "audit.checkpoint", None, None, data)
                .await?;
            Ok(Some(checkpoint))
        })
        .await
    }

    /// The chain's head as committed: the last event's sequence number and
    /// hash (0 and the genesis hash when there is none).
    pub async fn head(&self) -> Result<(i64, String), StoreError> {
        let last = sqlx::query("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *self.db.read().await)
            .await?;
        Ok(last.map_or_else(
            || (0, audit::GENESIS.to_string()),
            |row| (row.get(0), row.get(1)),
        ))
    }

    /// Stored checkpoints, newest first.
    pub async fn checkpoints(&self, limit: u32) -> Result<Vec<Checkpoint>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, head, at, public_key, signature FROM audit_checkpoints ORDER BY seq DESC, at DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&mut *self.db.read().await)
        .await?;
        Ok(rows
            .iter()
            .map(|r| Checkpoint {
                format: FORMAT.into(),
                seq: r.get(0),
                head: r.get(1),
                at: r.get(2),
                public_key: r.get(3),
                signature: r.get(4),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn trail(store: &Store, n: usize) {
        for i in 0..n {
            store
                .record_event("alice", "test.event", None, serde_json::json!({ "i": i }))
                .await
                .unwrap();
        }
    }

    #[tokio::test]
    async fn a_checkpoint_verifies_until_the_chain_is_tampered_with() {
        let (stores, _dir) = crate::store::tests::stores().await;
        let key = SigningKey::generate();
        let trusted = key.public_key();
        for store in stores {
            trail(&store, 5).await;
            let checkpoint = store.checkpoint(&key, "alice").await.unwrap().unwrap();
            assert_eq!(checkpoint.seq, 5);
            trail(&store, 2).await;
            let events = store.events(None).await.unwrap();
            assert_eq!(checkpoint.verify(&trusted, &events), Ok(8), "intact");
            assert_eq!(
                store.checkpoints(10).await.unwrap(),
                vec![checkpoint.clone()]
            );
            assert_eq!(events[5].kind, "audit.checkpoint", "event 6 records it");

            // Modified: the chain itself breaks.
            let mut modified = events.clone();
            modified[2].actor = "mallory".into();
            assert!(matches!(
                checkpoint.verify(&trusted, &modified),
                Err(Mismatch::Broken(_))
            ));

            // Modified and re-chained: the chain verifies, the checkpoint does not.
            let rechained = rechain(modified);
            assert!(audit::verify(&rechained).is_ok());
            let e = checkpoint.verify(&trusted, &rechained).unwrap_err();
            assert!(matches!(e, Mismatch::Rewritten { seq: 5, .. }), "{e}");

            // Deleted and re-chained: one event fewer, renumbered.
            let mut deleted = events.clone();
            deleted.remove(3);
            let e = checkpoint.verify(&trusted, &rechain(deleted)).unwrap_err();
            assert!(matches!(e, Mismatch::Rewritten { .. }), "{e}");

            // Cut back to before the checkpoint.
            let cut = events[..3].to_vec();
            let e = checkpoint.verify(&trusted, &cut).unwrap_err();
            assert!(
                matches!(
                    e,
                    Mismatch::Truncated {
                        last: 3,
                        seq: 5,
                        ..
                    }
                ),
                "{e}"
            );
        }
    }

    /// The chain recomputed from the first event, as someone holding the
    /// database would after changing it.
    fn rechain(mut events: Vec<Event>) -> Vec<Event> {
        let mut prev = audit::GENESIS.to_string();
        for (seq, e) in (1..).zip(events.iter_mut()) {
            e.seq = seq;
            e.prev_hash = prev.clone();
            e.hash = audit::hash_after(&prev, e);
            prev = e.hash.clone();
        }
        events
    }

    #[test]
    fn a_forged_or_foreign_checkpoint_is_refused() {
        let key = SigningKey::generate();
        let mallory = SigningKey::generate();
        let good = Checkpoint::sign(3, "ab", "2026-12-03T00:00:00Z", &key);
        assert_eq!(good.check_signature(&key.public_key()), Ok(()));

        let mut moved = good.clone();
        moved.seq = 2;
        assert_eq!(
            moved.check_signature(&key.public_key()),
            Err(Mismatch::BadSignature),
            "a changed field breaks the signature"
        );
        let foreign = Checkpoint::sign(3, "ab", "2026-12-03T00:00:00Z", &mallory);
        assert!(matches!(
            foreign.check_signature(&key.public_key()),
            Err(Mismatch::OtherKey { .. })
        ));
        let mut claimed = foreign.clone();
        claimed.public_key = key.public_key().to_string();
        assert_eq!(
            claimed.check_signature(&key.public_key()),
            Err(Mismatch::BadSignature),
            "naming the trusted key does not help"
        );
    }
}
