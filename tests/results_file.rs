//! A results file belongs to one job. `dfscan submit --output FILE` and
//! `dfscan jobs results JOB --output FILE` resume FILE by counting its
//! lines, so a FILE written for another job (or by `dfscan score`) must be
//! refused, not resumed: resuming it would skip as many of this job's
//! results as it has lines. Each case runs against a real cluster
//! (redis-server, `dfscan-coordinator`, one `dfscan worker`).

mod common;

use std::path::Path;
use std::process::Output;

use common::cluster::*;
use common::{dfscan, model_dir};

const ITEMS: usize = 6;

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn ok(out: Output) -> Output {
    assert!(out.status.success(), "{}", stderr(&out));
    out
}

fn refused(out: &Output, says: &str) {
    assert!(!out.status.success(), "accepted: {}", stderr(out));
    assert!(stderr(out).contains(says), "{}", stderr(out));
}

/// The job id `submit` announced on stderr.
fn job_id(out: &Output) -> String {
    stderr(out)
        .lines()
        .find_map(|l| l.strip_prefix("job ")?.split([' ', ':']).next())
        .unwrap_or_else(|| panic!("no job line in: {}", stderr(out)))
        .to_string()
}

fn jobs_listed(c: &Cluster) -> usize {
    String::from_utf8(ok(c.jobs(&["list"])).stdout)
        .unwrap()
        .lines()
        .count()
}

/// Each of the `n` images of `dir` exactly once, by id.
fn assert_holds_all_of(output: &Path, dir: &Path) {
    let lines = read_jsonl(output);
    assert_eq!(lines.len(), ITEMS, "one line per item");
    let ids = by_id(&lines);
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        assert!(
            ids.keys()
                .any(|id| id.ends_with(&*path.file_name().unwrap().to_string_lossy())),
            "{} missing",
            path.display()
        );
    }
}

#[test]
fn a_second_job_never_resumes_the_first_jobs_file() {
    let _one = exclusive();
    let tmp = tempfile::tempdir().unwrap();
    let first = write_images(&tmp.path().join("first"), ITEMS);
    let second = write_images(&tmp.path().join("second"), ITEMS);
    let mut c = Cluster::start(false, &[]);
    c.start_worker(&[]);
    let output = tmp.path().join("results.jsonl");

    let job1 = job_id(&ok(c.submit(&first, &output, &[])));
    assert_holds_all_of(&output, &first);
    let before = std::fs::read(&output).unwrap();

    // The README's next step: another submit into the same file. Refused
    // before anything is uploaded, the file untouched.
    let out = c.submit(&second, &output, &[]);
    refused(&out, &format!("holds results of job {job1}"));
    refused(&out, &format!("--attach {job1}"));
    assert_eq!(std::fs::read(&output).unwrap(), before);
    assert_eq!(jobs_listed(&c), 1, "nothing was uploaded");

    // `jobs results` of another job into it: refused too.
    let other = tmp.path().join("other.jsonl");
    let job2 = job_id(&ok(c.submit(&second, &other, &[])));
    let out = c.jobs(&["results", &job2, "--output", output.to_str().unwrap()]);
    refused(&out, &format!("holds results of job {job1}"));
    assert_eq!(std::fs::read(&output).unwrap(), before);

    // Attaching to its own job resumes it: a torn tail is completed, with
    // no line twice.
    let text = String::from_utf8(before.clone()).unwrap();
    let kept: String = text.lines().take(2).map(|l| format!("{l}\n")).collect();
    std::fs::write(&output, format!("{kept}{{\"id\":\"tor")).unwrap();
    let url = c.url();
    c.command_output(&[
        "submit",
        "--coordinator",
        &url,
        "--attach",
        &job1,
        "--output",
        output.to_str().unwrap(),
    ]);
    assert_holds_all_of(&output, &first);

    // --overwrite replaces it with the new job's results, all of them.
    let out = ok(c.submit(&second, &output, &["--overwrite"]));
    assert_ne!(job_id(&out), job1);
    assert_holds_all_of(&output, &second);
    // ...and the file is now that job's: `jobs results` of it resumes.
    ok(c.jobs(&[
        "results",
        &job_id(&out),
        "--output",
        output.to_str().unwrap(),
    ]));
    assert_holds_all_of(&output, &second);
}

#[test]
fn a_score_output_or_csv_of_another_job_is_refused() {
    let _one = exclusive();
    let tmp = tempfile::tempdir().unwrap();
    let images = write_images(tmp.path(), ITEMS);
    let mut c = Cluster::start(false, &[]);
    c.start_worker(&[]);

    // A file `dfscan score` wrote: no job owns it.
    let scored = tmp.path().join("scores.jsonl");
    let score = ok(dfscan()
        .args(["score", "--format", "jsonl", "--model"])
        .arg(model_dir("tiny-a"))
        .arg(&images)
        .output()
        .unwrap());
    std::fs::write(&scored, &score.stdout).unwrap();
    let out = c.submit(&images, &scored, &[]);
    refused(&out, "no dfscan job recorded as its own");
    refused(&out, "--overwrite");
    assert_eq!(
        std::fs::read(&scored).unwrap(),
        score.stdout,
        "left as it was"
    );
    ok(c.submit(&images, &scored, &["--overwrite"]));
    assert_holds_all_of(&scored, &images);

    // CSV the same way.
    let csv = tmp.path().join("results.csv");
    let job = job_id(&ok(c.submit(&images, &csv, &["--format", "csv"])));
    let out = c.submit(&images, &csv, &["--format", "csv"]);
    refused(&out, &format!("holds results of job {job}"));
    let rows = std::fs::read_to_string(&csv).unwrap().lines().count();
    assert_eq!(rows, ITEMS + 1, "the header and one row per item, once");

    // The same submit again (same idempotency key, same file) resumes.
    let keyed = tmp.path().join("keyed.jsonl");
    let extra = ["--idempotency-key", "batch-7"];
    let first = job_id(&ok(c.submit(&images, &keyed, &extra)));
    let again = ok(c.submit(&images, &keyed, &extra));
    assert_eq!(job_id(&again), first);
    assert_holds_all_of(&keyed, &images);
}

#[test]
fn the_printed_attach_command_finishes_the_file_and_a_closed_stdout_is_no_error() {
    let _one = exclusive();
    let tmp = tempfile::tempdir().unwrap();
    let images = write_images(tmp.path(), ITEMS);
    let mut c = Cluster::start(false, &[]);
    c.start_worker(&[]);

    // The command submit prints names this coordinator and the format:
    // without them it would attach to the default coordinator, in JSON Lines.
    let csv = tmp.path().join("results.csv");
    let out = ok(c.submit(&images, &csv, &["--format", "csv"]));
    let hint = stderr(&out)
        .lines()
        .find_map(|l| Some(l.split_once("finish with: ")?.1.to_string()))
        .unwrap_or_else(|| panic!("no attach hint in: {}", stderr(&out)));
    let job = job_id(&out);
    assert_eq!(
        hint,
        format!(
            "dfscan submit --coordinator {} --attach {job} --output {} --format csv",
            c.url(),
            csv.display()
        )
    );
    // Run as printed after an interruption (the last rows lost), it
    // finishes the file.
    let text = std::fs::read_to_string(&csv).unwrap();
    let kept: String = text.lines().take(3).map(|l| format!("{l}\n")).collect();
    std::fs::write(&csv, kept).unwrap();
    let words: Vec<&str> = hint.split(' ').collect();
    c.command_output(&words[1..]);
    let rows = std::fs::read_to_string(&csv).unwrap().lines().count();
    assert_eq!(rows, ITEMS + 1, "the header and one row per item, once");

    // A reader that stops reading (`| head`) ends the command quietly.
    let url = c.url();
    for args in [
        &["jobs", "--coordinator", &url, "results", &job][..],
        &["jobs", "--coordinator", &url, "list"],
        &["models", "--coordinator", &url],
    ] {
        let out = common::output_with_closed_stdout(dfscan().args(args));
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        assert!(
            !stderr(&out).contains("error"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}
