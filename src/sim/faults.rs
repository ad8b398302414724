//! Fault injection: per endpoint (or `*` for all), the probability of each of
//! 408/502/503/504, a connection reset, the "ambiguous" fault (the server acts,
//! then answers 504), and added latency; plus forced faults that hit the next
//! matching requests in order, for deterministic tests. A seed makes random
//! faults reproducible.

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// Endpoint names faults and the journal use.
pub const ENDPOINTS: &[&str] = &[
    "iam.token",
    "evs.list",
    "evs.get",
    "evs.action",
    "sdrs.list",
    "sdrs.get",
    "sdrs.action",
    "sdrs.job",
    "sdrs.drill.create",
    "sdrs.drill.list",
    "sdrs.drill.get",
    "sdrs.drill.delete",
    "sdrs.rename",
    "sdrs.drill.rename",
    "versions",
];

/// One injected fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// Answer 400 without acting (forced faults only).
    #[serde(rename = "400")]
    Status400,
    /// Answer 403 without acting (forced faults only).
    #[serde(rename = "403")]
    Status403,
    /// Answer 404 without acting (forced faults only).
    #[serde(rename = "404")]
    Status404,
    /// Answer 409 without acting (forced faults only).
    #[serde(rename = "409")]
    Status409,
    /// API gateway throttling: answer 429 (`APIG.0308`) without acting.
    #[serde(rename = "429")]
    Status429,
    /// Answer 408 without acting.
    #[serde(rename = "408")]
    Status408,
    /// Answer 502 without acting.
    #[serde(rename = "502")]
    Status502,
    /// Answer 503 without acting.
    #[serde(rename = "503")]
    Status503,
    /// Answer 504 without acting.
    #[serde(rename = "504")]
    Status504,
    /// Drop the connection mid-answer without acting.
    Reset,
    /// Act, then answer 504.
    Ambiguous,
}

impl Fault {
    /// The HTTP status answered, for the status faults and `Ambiguous`.
    pub fn status(self) -> Option<u16> {
        match self {
            Fault::Status400 => Some(400),
            Fault::Status403 => Some(403),
            Fault::Status404 => Some(404),
            Fault::Status409 => Some(409),
            Fault::Status429 => Some(429),
            Fault::Status408 => Some(408),
            Fault::Status502 => Some(502),
            Fault::Status503 => Some(503),
            Fault::Status504 | Fault::Ambiguous => Some(504),
            Fault::Reset => None,
        }
    }
}

/// Random faults of one endpoint. Probabilities are 0 to 1 and add up to at most 1.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultRule {
    /// Probability of a 408.
    pub p408: f64,
    /// Probability of a 502.
    pub p502: f64,
    /// Probability of a 503.
    pub p503: f64,
    /// Probability of a 504.
    pub p504: f64,
    /// Probability of a connection reset.
    pub reset: f64,
    /// Probability of the ambiguous fault.
    pub ambiguous: f64,
    /// Latency added to every request, milliseconds.
    pub latency_ms: u64,
    /// `Retry-After` seconds sent with injected 503s and 429s.
    pub retry_after: Option<u64>,
    /// Requests the API gateway lets through per second (counted per
    /// endpoint named, or over all endpoints for `*`); beyond it, 429.
    pub per_second: Option<u32>,
}

/// Faults that hit the next matching requests, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Forced {
    /// Endpoint name or `*`.
    pub endpoint: String,
    pub fault: Fault,
    /// How many requests it hits (default 1).
    #[serde(default = "one")]
    pub count: u32,
}

fn one() -> u32 {
    1
}

/// The whole fault configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Random faults by endpoint name, `*` for every endpoint without its own rule.
    pub rules: BTreeMap<String, FaultRule>,
    /// Forced faults, used before any random draw.
    pub forced: Vec<Forced>,
    /// Requests counted against `per_second`: rule name to (second, count).
    #[serde(skip)]
    pub(super) windows: BTreeMap<String, (u64, u32)>,
}

impl Faults {
    /// Checks names and probabilities.
    pub fn validate(&self) -> Result<(), String> {
        let known = |e: &str| e == "*" || ENDPOINTS.contains(&e);
        for (endpoint, rule) in &self.rules {
            if !known(endpoint) {
                return Err(format!(
                    "unknown endpoint `{endpoint}`; known: *, {}",
                    ENDPOINTS.join(", ")
                ));
            }
            let ps = [
                rule.p408,
                rule.p502,
                rule.p503,
                rule.p504,
                rule.reset,
                rule.ambiguous,
            ];
            if ps.iter().any(|p| !(0.0..=1.0).contains(p)) || ps.iter().sum::<f64>() > 1.0 + 1e-9 {
                return Err(format!(
                    "probabilities of `{endpoint}` must be 0 to 1 and add up to at most 1"
                ));
            }
        }
        for f in &self.forced {
            if !known(&f.endpoint) {
                return Err(format!("unknown endpoint `{}`", f.endpoint));
            }
        }
        Ok(())
    }

    /// The rule that applies to `endpoint`.
    pub fn rule(&self, endpoint: &str) -> Option<&FaultRule> {
        self.rules.get(endpoint).or_else(|| self.rules.get("*"))
    }

    /// Decides the fault for one request at `second` of the simulator's
    /// life: forced first, then the throttling budget, then a random draw.
    pub fn draw(&mut self, endpoint: &str, second: u64, rng: &mut StdRng) -> Option<Fault> {
        if let Some(i) = self
            .forced
            .iter()
            .position(|f| f.endpoint == endpoint || f.endpoint == "*")
        {
            let fault = self.forced[i].fault;
            self.forced[i].count = self.forced[i].count.saturating_sub(1);
            if self.forced[i].count == 0 {
                self.forced.remove(i);
            }
            return Some(fault);
        }
        let name = if self.rules.contains_key(endpoint) {
            endpoint
        } else {
            "*"
        };
        let rule = self.rules.get(name)?;
        if let Some(limit) = rule.per_second {
            let window = self.windows.entry(name.to_string()).or_insert((second, 0));
            if window.0 != second {
                *window = (second, 0);
            }
            if window.1 >= limit {
                return Some(Fault::Status429);
            }
            window.1 += 1;
        }
        let r: f64 = rng.random();
        let mut edge = 0.0;
        for (p, fault) in [
            (rule.p408, Fault::Status408),
            (rule.p502, Fault::Status502),
            (rule.p503, Fault::Status503),
            (rule.p504, Fault::Status504),
            (rule.reset, Fault::Reset),
            (rule.ambiguous, Fault::Ambiguous),
        ] {
            edge += p;
            if r < edge {
                return Some(fault);
            }
        }
        None
    }
}

/// A seeded random source.
pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forced_faults_come_first_and_run_out() {
        let mut f = Faults {
            forced: vec![Forced {
                endpoint: "evs.action".into(),
                fault: Fault::Ambiguous,
                count: 2,
            }],
            ..Faults::default()
        };
        let mut r = rng(1);
        assert_eq!(
            f.draw("evs.get", 0, &mut r),
            None,
            "other endpoints are untouched"
        );
        assert_eq!(f.draw("evs.action", 0, &mut r), Some(Fault::Ambiguous));
        assert_eq!(f.draw("evs.action", 0, &mut r), Some(Fault::Ambiguous));
        assert_eq!(f.draw("evs.action", 0, &mut r), None);
    }

    #[test]
    fn random_faults_follow_their_probabilities_and_the_seed() {
        let mut f = Faults::default();
        f.rules.insert(
            "*".into(),
            FaultRule {
                p503: 0.3,
                ..FaultRule::default()
            },
        );
        let draws = |seed| {
            let mut f = f.clone();
            let mut r = rng(seed);
            (0..10_000)
                .map(|_| f.draw("evs.get", 0, &mut r))
                .collect::<Vec<_>>()
        };
        let a = draws(7);
        assert_eq!(a, draws(7), "the same seed gives the same faults");
        let hits = a.iter().filter(|x| **x == Some(Fault::Status503)).count();
        assert!(
            (2_700..3_300).contains(&hits),
            "about 30% of 10,000, got {hits}"
        );
        assert!(a.iter().all(|x| matches!(x, None | Some(Fault::Status503))));
    }

    #[test]
    fn validation_names_the_problem() {
        let mut f = Faults::default();
        f.rules.insert("evs.acton".into(), FaultRule::default());
        assert!(
            f.validate()
                .unwrap_err()
                .contains("unknown endpoint `evs.acton`")
        );
        let mut f = Faults::default();
        f.rules.insert(
            "*".into(),
            FaultRule {
                p503: 0.8,
                p504: 0.5,
                ..FaultRule::default()
            },
        );
        assert!(f.validate().is_err());
        let json = r#"{"rules": {"*": {"p503": 0.3}}, "forced": [{"endpoint": "evs.action", "fault": "ambiguous"}, {"endpoint": "*", "fault": "503", "count": 2}]}"#;
        let parsed: Faults = serde_json::from_str(json).unwrap();
        assert_eq!(parsed.forced[1].fault, Fault::Status503);
        assert_eq!(parsed.forced[0].count, 1);
        assert_eq!(parsed.validate(), Ok(()));
    }
}
