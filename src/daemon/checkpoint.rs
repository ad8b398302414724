//! Signing the audit chain's head on a schedule (`audit.checkpoint_interval`),
//! so that a rewrite of the trail shows against a checkpoint even when nobody
//! ran `drover audit checkpoint` by hand.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::signing::SigningKey;
use crate::store::Store;

/// The actor of the daemon's checkpoints.
pub const ACTOR: &str = "daemon";

/// Every `interval` until `stop`: signs the head when events were added
/// since the last checkpoint (a checkpoint's own event does not count).
pub async fn every(store: Store, key: SigningKey, interval: Duration, stop: CancellationToken) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut signed: Option<i64> = None;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        signed = sign_if_grown(&store, &key, signed).await;
    }
}

/// Signs the head unless the only event since the checkpoint of `signed`
/// is that checkpoint's own; the sequence number signed last.
async fn sign_if_grown(store: &Store, key: &SigningKey, signed: Option<i64>) -> Option<i64> {
    let head = match store.head().await {
        Ok((seq, _)) => seq,
        Err(e) => {
            tracing::warn!(error = %e, "Cannot read the audit chain's head.");
            return signed;
        }
    };
    if head == 0 || signed.is_some_and(|s| head <= s + 1) {
        return signed;
    }
    match store.checkpoint(key, ACTOR).await {
        Ok(Some(c)) => {
            tracing::info!(seq = c.seq, head = %c.head, "Audit checkpoint signed.");
            Some(c.seq)
        }
        Ok(None) => signed,
        Err(e) => {
            tracing::warn!(error = %e, "Cannot write an audit checkpoint.");
            signed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn signs_when_the_chain_grew_and_only_then() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("d.db").display());
        let store = Store::open(&url).await.unwrap();
        let key = SigningKey::generate();
        let event = || store.record_event("alice", "test.event", None, serde_json::json!({}));
        let seqs = async || -> Vec<i64> {
            store
                .checkpoints(10)
                .await
                .unwrap()
                .iter()
                .map(|c| c.seq)
                .collect()
        };

        let signed = sign_if_grown(&store, &key, None).await;
        assert_eq!((signed, seqs().await), (None, vec![]), "empty chain");
        event().await.unwrap();
        event().await.unwrap();
        let signed = sign_if_grown(&store, &key, signed).await;
        assert_eq!((signed, seqs().await), (Some(2), vec![2]));
        let signed = sign_if_grown(&store, &key, signed).await;
        assert_eq!(seqs().await, [2], "only the checkpoint's own event since");
        event().await.unwrap();
        let signed = sign_if_grown(&store, &key, signed).await;
        assert_eq!((signed, seqs().await), (Some(4), vec![4, 2]));
    }
}
