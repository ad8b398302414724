//! The hash chain of `audit_events`: `hash = sha256(prev_hash || canonical event)`,
//! where the canonical event is the JSON of `seq, at, actor, kind, run_id,
//! step_id, data` with object keys sorted. Pure: the store feeds it rows.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// `prev_hash` of the first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One event as stored.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Event {
    /// Position in the chain, from 1.
    pub seq: i64,
    /// When (RFC 3339, UTC).
    pub at: String,
    /// Who: a user, a token name, `scheduler`, `drover`.
    pub actor: String,
    /// What, e.g. `run.started`, `step.intent`, `approval`.
    pub kind: String,
    /// The run concerned.
    pub run_id: Option<String>,
    /// The step concerned.
    pub step_id: Option<String>,
    #[schema(value_type = Object)]
    pub data: Value,
    /// Hash of the event before.
    pub prev_hash: String,
    /// This event's hash.
    pub hash: String,
}

/// The canonical text of an event (keys sorted; `serde_json` maps are ordered).
pub fn canonical(
    seq: i64,
    at: &str,
    actor: &str,
    kind: &str,
    run_id: Option<&str>,
    step_id: Option<&str>,
    data: &Value,
) -> String {
    json!({
        "seq": seq,
        "at": at,
        "actor": actor,
        "kind": kind,
        "run_id": run_id,
        "step_id": step_id,
        "data": data,
    })
    .to_string()
}

/// `sha256(prev_hash || canonical)`, lowercase hex.
pub fn link(prev_hash: &str, canonical: &str) -> String {
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(canonical.as_bytes());
    hex::encode(h.finalize())
}

/// The hash `e` must have when it follows an event whose hash is `prev`.
pub fn hash_after(prev: &str, e: &Event) -> String {
    link(
        prev,
        &canonical(
            e.seq,
            &e.at,
            &e.actor,
            &e.kind,
            e.run_id.as_deref(),
            e.step_id.as_deref(),
            &e.data,
        ),
    )
}

/// The first place the chain is broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit chain broken at event {seq}: {reason}")]
pub struct BrokenLink {
    /// The first event that does not verify.
    pub seq: i64,
    pub reason: String,
}

/// Recomputes the chain over events in `seq` order.
pub fn verify<'a>(events: impl IntoIterator<Item = &'a Event>) -> Result<u64, BrokenLink> {
    let mut prev = GENESIS.to_string();
    let mut count = 0;
    for (expected_seq, e) in (1..).zip(events) {
        if e.seq != expected_seq {
            return Err(BrokenLink {
                seq: expected_seq,
                reason: format!("event {expected_seq} is missing (next is {})", e.seq),
            });
        }
        if e.prev_hash != prev {
            return Err(BrokenLink {
                seq: e.seq,
                reason: "prev_hash does not match the hash of the event before".into(),
            });
        }
        if hash_after(&prev, e) != e.hash {
            return Err(BrokenLink {
                seq: e.seq,
                reason: "content does not match its hash (the event was altered)".into(),
            });
        }
        prev = e.hash.clone();
        count += 1;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<Event> {
        let mut prev = GENESIS.to_string();
        (1..=n)
            .map(|seq| {
                let data = json!({"n": seq, "b": [1, 2], "a": "x"});
                let at = format!("2026-11-26T00:00:{seq:02}.000Z");
                let hash = link(
                    &prev,
                    &canonical(seq, &at, "alice", "run.started", Some("r"), None, &data),
                );
                let e = Event {
                    seq,
                    at,
                    actor: "alice".into(),
                    kind: "run.started".into(),
                    run_id: Some("r".into()),
                    step_id: None,
                    data,
                    prev_hash: prev.clone(),
                    hash: hash.clone(),
                };
                prev = hash;
                e
            })
            .collect()
    }

    #[test]
    fn an_intact_chain_verifies() {
        assert_eq!(verify(&chain(5)), Ok(5));
        assert_eq!(verify(&[]), Ok(0));
    }

    #[test]
    fn each_kind_of_tampering_names_the_first_broken_event() {
        let mut altered = chain(5);
        altered[2].actor = "mallory".into();
        assert_eq!(verify(&altered).unwrap_err().seq, 3);

        let mut rehashed = chain(5);
        rehashed[1].data = json!({"n": 99});
        rehashed[1].hash = link(
            &rehashed[1].prev_hash,
            &canonical(
                2,
                &rehashed[1].at,
                "alice",
                "run.started",
                Some("r"),
                None,
                &rehashed[1].data,
            ),
        );
        let err = verify(&rehashed).unwrap_err();
        assert_eq!(
            err.seq, 3,
            "re-hashing one event breaks the link of the next: {err}"
        );

        let mut deleted = chain(5);
        deleted.remove(3);
        assert_eq!(verify(&deleted).unwrap_err().seq, 4);
    }

    #[test]
    fn canonical_text_sorts_keys() {
        let text = canonical(1, "t", "a", "k", None, None, &json!({"z": 1, "a": 2}));
        assert_eq!(
            text,
            r#"{"actor":"a","at":"t","data":{"a":2,"z":1},"kind":"k","run_id":null,"seq":1,"step_id":null}"#
        );
    }
}
