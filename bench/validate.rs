//! Benchmark: time to validate 1,000 runbooks (parse, deserialize, check
//! templates, cron and time zones), the work `drover daemon` does at start and
//! on reload. Target: under 1 s in all. Run: `cargo bench --bench validate`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const RUNBOOKS: usize = 1_000;
const ROUNDS: usize = 5;

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("runbooks");
    let files = drover::runbook::find_files(&[dir]).expect("runbooks folder");
    let texts: Vec<(PathBuf, String)> = files
        .iter()
        .map(|f| {
            (
                f.clone(),
                std::fs::read_to_string(f).expect("readable runbook"),
            )
        })
        .collect();
    let bytes: usize = texts.iter().map(|(_, t)| t.len()).sum::<usize>() * RUNBOOKS / texts.len();

    let mut rounds: Vec<Duration> = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let start = Instant::now();
        for i in 0..RUNBOOKS {
            let (path, text) = &texts[i % texts.len()];
            let runbook = drover::runbook::parse(text, path).expect("shipped runbooks are valid");
            std::hint::black_box(runbook);
        }
        rounds.push(start.elapsed());
    }
    rounds.sort();
    let median = rounds[ROUNDS / 2];
    println!(
        "validate {RUNBOOKS} runbooks ({} KiB of YAML): median {:.1} ms, best {:.1} ms, worst {:.1} ms over {ROUNDS} rounds ({:.0} runbooks/s); target < 1000 ms: {}",
        bytes / 1024,
        median.as_secs_f64() * 1e3,
        rounds[0].as_secs_f64() * 1e3,
        rounds[ROUNDS - 1].as_secs_f64() * 1e3,
        RUNBOOKS as f64 / median.as_secs_f64(),
        if median < Duration::from_secs(1) {
            "met"
        } else {
            "MISSED"
        }
    );
}
