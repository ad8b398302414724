//! `drover report`: one run's evidence report, or the compliance summary of
//! a period, read from the configured store.

use std::io::Write;

use anyhow::Context;
use chrono::{DateTime, Utc};

use super::ReportArgs;
use crate::app::{self, Outcome};
use crate::report::RunReport;
use crate::report::summary::Summary;

pub(super) async fn report(args: ReportArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let config = app::load_config(args.config.as_deref())?;
    let store = app::open_store(&config).await?;
    let trusted = config.audit.public_key.as_ref();
    let json = args.format == "json";
    let document = match (&args.run, &args.since) {
        (Some(run), _) => {
            let well_formed = !run.is_empty()
                && run.len() <= 64
                && run.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
            anyhow::ensure!(
                well_formed,
                "run id `{}`: expected a run's UUID, as `drover audit list` shows it",
                run.escape_debug()
            );
            let report = RunReport::gather(&store, run, trusted).await?;
            if json {
                serde_json::to_string_pretty(&report)?
            } else {
                report.to_html()?
            }
        }
        (None, Some(since)) => {
            let now = Utc::now();
            let since = window_start(since, now)?;
            let max_age = age(&args.max_drill_age)
                .with_context(|| format!("--max-drill-age {}", args.max_drill_age))?;
            let summary =
                Summary::gather(&store, since, args.runbook.as_deref(), max_age, now).await?;
            if json {
                serde_json::to_string_pretty(&summary)?
            } else {
                summary.to_html()?
            }
        }
        (None, None) => anyhow::bail!("give a run id or --since"),
    };
    match &args.out {
        Some(path) => {
            std::fs::write(path, &document)
                .with_context(|| format!("cannot write {}", path.display()))?;
            writeln!(out, "report written to {}", path.display())?;
        }
        None => writeln!(out, "{document}")?,
    }
    Ok(Outcome::Success)
}

/// A length of time in days (`90d`), weeks (`12w`) or a runbook duration (`36h`).
fn age(text: &str) -> anyhow::Result<std::time::Duration> {
    let day = 24 * 3600;
    let counted = |suffix: char, unit: u64| -> Option<u64> {
        text.strip_suffix(suffix)?
            .parse::<u64>()
            .ok()?
            .checked_mul(unit)
    };
    if let Some(secs) = counted('d', day).or_else(|| counted('w', 7 * day)) {
        return Ok(std::time::Duration::from_secs(secs));
    }
    crate::runbook::model::parse_duration(text)
        .map_err(|e| anyhow::anyhow!("expected `90d`, `12w` or a duration such as `36h`: {e}"))
}

/// The start of `--since`: a length back from `now`, or a date or time.
fn window_start(text: &str, now: DateTime<Utc>) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(length) = age(text) {
        let length = chrono::Duration::from_std(length).context("--since: too long")?;
        return now
            .checked_sub_signed(length)
            .with_context(|| format!("--since {text}: too long ago"));
    }
    super::audit::parse_since(text).map_err(|_| {
        anyhow::anyhow!(
            "--since {text}: expected a length such as `90d`, `12w` or `36h`, or a date or time such as 2026-09-01"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_read_as_lengths_or_dates() {
        let now = DateTime::parse_from_rfc3339("2026-12-03T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        for (text, start) in [
            ("90d", "2026-09-04T12:00:00+00:00"),
            ("2w", "2026-11-19T12:00:00+00:00"),
            ("36h", "2026-12-02T00:00:00+00:00"),
            ("2026-09-01", "2026-09-01T00:00:00+00:00"),
        ] {
            assert_eq!(
                window_start(text, now).unwrap().to_rfc3339(),
                start,
                "{text}"
            );
        }
        for bad in ["ninety days", "-3d", "99999999999999999999d"] {
            let e = window_start(bad, now).unwrap_err().to_string();
            assert!(e.contains("--since"), "{bad}: {e}");
        }
    }
}
