//! The binary end to end: a quick run of two scenarios writes a report
//! that reads back well formed, with its plots.

use std::process::Command;

#[test]
fn a_quick_run_writes_a_well_formed_report() {
    let dir = std::env::temp_dir().join(format!("aio-bench-report-{}", std::process::id()));
    let output = Command::new(env!("CARGO_BIN_EXE_aio-bench"))
        .args([
            "--quick",
            "--no-pin",
            "--scenario",
            "bottom-half",
            "--scenario",
            "churn",
        ])
        .args(["--variants", "epoll"])
        .arg("--out")
        .arg(&dir)
        .env("CI", "true")
        .output()
        .expect("aio-bench runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("report.json reads back well formed"),
        "{stdout}"
    );
    assert!(stdout.contains("== targets"), "{stdout}");

    let json = std::fs::read_to_string(dir.join("report.json")).unwrap();
    let run = aio_bench::output::check_report(&json, &["churn", "bottom-half"]).unwrap();
    let names: Vec<&str> = run.scenarios.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["churn", "bottom-half"], "in the canonical order");
    // The filter keeps the epoll variants and the references only (the
    // one-shot bottom half's floor is its target's reference).
    let floor = aio_bench::scenarios::bottom_half::QUEUE;
    for group in run.scenarios.iter().flat_map(|s| &s.groups) {
        for row in &group.rows {
            assert!(
                row.name.contains("epoll") || row.name == group.reference || row.name == floor,
                "{} in {}",
                row.name,
                group.id
            );
        }
    }
    for file in [
        "report.md",
        "readme-section.md",
        "churn.svg",
        "bottom-half.svg",
    ] {
        assert!(dir.join(file).is_file(), "{file}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
