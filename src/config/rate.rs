//! `cloud.rate`: how fast this process calls each cloud service, and how
//! often one request is sent again when the API gateway throttles it (429).

use schemars::JsonSchema;
use serde::Deserialize;

use crate::yaml::{Checked, Located, Sink};

/// Default number of times one request is sent again after a 429.
pub const DEFAULT_THROTTLE_RETRIES: u32 = 8;

/// Request budgets per service, shared by every run of the process.
#[derive(Debug, Clone, PartialEq)]
pub struct RateConfig {
    /// EVS requests per second (`None`: no budget).
    pub evs: Option<f64>,
    /// SDRS requests per second (`None`: no budget).
    pub sdrs: Option<f64>,
    /// Requests a service may take at once after a quiet spell (default:
    /// one second's worth, at least 1).
    pub burst: Option<u32>,
    /// How many times one request is sent again after a 429, waiting what
    /// `Retry-After` asks (or 1 s, 2 s, 4 s ... up to 30 s); not counted
    /// against the step's retries.
    pub throttle_retries: u32,
}

impl Default for RateConfig {
    fn default() -> Self {
        RateConfig {
            evs: None,
            sdrs: None,
            burst: None,
            throttle_retries: DEFAULT_THROTTLE_RETRIES,
        }
    }
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRate {
    #[serde(default)]
    evs: Checked<Located<f64>>,
    #[serde(default)]
    sdrs: Checked<Located<f64>>,
    #[serde(default)]
    burst: Checked<Located<u32>>,
    #[serde(default)]
    throttle_retries: Checked<Located<u32>>,
}

pub(super) fn build(raw: RawRate, sink: &Sink) -> RateConfig {
    let per_second = |value: Checked<Located<f64>>, key: &str| {
        let v = value.0?;
        if !(v.value.is_finite() && v.value > 0.0 && v.value <= 100_000.0) {
            sink.error(
                &v.loc,
                format!("cloud.rate.{key} must be a number of requests per second above 0 (at most 100000)"),
            );
            return None;
        }
        Some(v.value)
    };
    let evs = per_second(raw.evs, "evs");
    let sdrs = per_second(raw.sdrs, "sdrs");
    let burst = raw.burst.0.and_then(|b| {
        if b.value == 0 {
            sink.error(&b.loc, "cloud.rate.burst must be at least 1");
            return None;
        }
        Some(b.value)
    });
    let throttle_retries = match raw.throttle_retries.0 {
        Some(n) if n.value > 100 => {
            sink.error(&n.loc, "cloud.rate.throttle_retries must be at most 100");
            DEFAULT_THROTTLE_RETRIES
        }
        Some(n) => n.value,
        None => DEFAULT_THROTTLE_RETRIES,
    };
    RateConfig {
        evs,
        sdrs,
        burst,
        throttle_retries,
    }
}

#[cfg(test)]
mod tests {
    use crate::config::tests::{messages, parse};

    #[test]
    fn budgets_are_per_service_and_unset_by_default() {
        let c = parse("", &[]).unwrap();
        assert_eq!(c.cloud.rate, super::RateConfig::default());
        let c = parse(
            "cloud:\n  rate: { evs: 20, sdrs: 2.5, burst: 5, throttle_retries: 3 }\n",
            &[("DROVER_CLOUD__RATE__SDRS", "4")],
        )
        .unwrap();
        assert_eq!(
            (c.cloud.rate.evs, c.cloud.rate.sdrs, c.cloud.rate.burst),
            (Some(20.0), Some(4.0), Some(5))
        );
        assert_eq!(c.cloud.rate.throttle_retries, 3);
    }

    #[test]
    fn a_bad_budget_names_its_line_and_field() {
        let errors = messages(parse(
            "cloud:\n  rate:\n    evs: 0\n    burst: 0\n    throttle_retries: 1000\n",
            &[],
        ));
        let all = errors.join("\n");
        for (line, field) in [
            (3, "cloud.rate.evs"),
            (4, "cloud.rate.burst"),
            (5, "cloud.rate.throttle_retries"),
        ] {
            assert!(
                errors
                    .iter()
                    .any(|e| e.contains(&format!("drover.yaml:{line}")) && e.contains(field)),
                "{field} at line {line}: {all}"
            );
        }
    }
}
