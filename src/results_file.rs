//! Which job a results file belongs to. A results file is resumed by
//! counting its complete lines (the cursor to continue after), which is
//! only right when those lines are this job's: resuming a file written for
//! another job, or by `dfscan score`, would skip as many of this job's
//! results as the file has lines, and lose them. So the job a file is
//! written for is recorded beside it, in `FILE.dfscan-job` (JSON), before
//! its first result, and a non-empty file is resumed only for that job.
//! Anything else is refused with the ways out (`--attach`, `--overwrite`,
//! another `--output`), never silently appended to or replaced.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// What is recorded beside a results file.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Owner {
    job_id: String,
    /// The submit's idempotency key, so that running the same submit again
    /// (same key, same file) resumes instead of being refused.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    idempotency_key: String,
}

/// `FILE.dfscan-job` for `FILE`.
fn owner_path(output: &Path) -> PathBuf {
    let mut name = output.file_name().unwrap_or_default().to_os_string();
    name.push(".dfscan-job");
    output.with_file_name(name)
}

fn holds_results(output: &Path) -> anyhow::Result<bool> {
    match std::fs::metadata(output) {
        Ok(meta) => Ok(meta.len() > 0),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("reading {}", output.display())),
    }
}

fn read_owner(output: &Path) -> anyhow::Result<Option<Owner>> {
    let path = owner_path(output);
    match std::fs::read(&path) {
        Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Why `output` cannot take this job's results, and the ways out.
fn refusal(output: &Path, owner: Option<&Owner>) -> anyhow::Error {
    let file = output.display();
    match owner {
        Some(owner) => anyhow::anyhow!(
            "{file} holds results of job {job}: finish that job with \
             `dfscan submit --attach {job} --output {file}`, replace its results with \
             --overwrite, or choose another --output",
            job = owner.job_id
        ),
        None => anyhow::anyhow!(
            "{file} already holds results that no dfscan job recorded as its own \
             (a `dfscan score` output, or another file): replace them with --overwrite, \
             or choose another --output"
        ),
    }
}

/// Before a new job is uploaded for `output`: refuses a non-empty file
/// unless it is to be overwritten or is this same submit's (its
/// idempotency key), so nothing is uploaded that could not be written.
pub fn check_new_job(output: &Path, idempotency_key: &str, overwrite: bool) -> anyhow::Result<()> {
    if overwrite || !holds_results(output)? {
        return Ok(());
    }
    match read_owner(output)? {
        Some(owner) if !idempotency_key.is_empty() && owner.idempotency_key == idempotency_key => {
            Ok(())
        }
        owner => Err(refusal(output, owner.as_ref())),
    }
}

/// Makes `output` job `job_id`'s before its results are written: a file
/// already recorded as this job's is resumed; an empty or missing one, or
/// one to be overwritten, is emptied and recorded; any other is refused.
pub fn claim(
    output: &Path,
    job_id: &str,
    idempotency_key: &str,
    overwrite: bool,
) -> anyhow::Result<()> {
    let owner = read_owner(output)?;
    if holds_results(output)? && !overwrite {
        return match owner {
            Some(owner) if owner.job_id == job_id => Ok(()),
            owner => Err(refusal(output, owner.as_ref())),
        };
    }
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(output)
        .with_context(|| format!("opening {}", output.display()))?;
    let owner = Owner {
        job_id: job_id.to_string(),
        idempotency_key: idempotency_key.to_string(),
    };
    let path = owner_path(output);
    let temporary = path.with_extension("dfscan-job.tmp");
    std::fs::write(&temporary, serde_json::to_vec(&owner)?)
        .and_then(|()| std::fs::rename(&temporary, &path))
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_with(dir: &Path, name: &str, contents: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    #[test]
    fn a_file_is_resumed_only_for_its_own_job() {
        let dir = tempfile::tempdir().unwrap();
        let output = dir.path().join("results.jsonl");
        check_new_job(&output, "", false).unwrap();
        claim(&output, "job-1", "", false).unwrap();
        assert_eq!(read_owner(&output).unwrap().unwrap().job_id, "job-1");
        std::fs::write(&output, "{}\n{}\n").unwrap();

        claim(&output, "job-1", "", false).unwrap();
        assert_eq!(std::fs::read_to_string(&output).unwrap(), "{}\n{}\n");

        let refused = check_new_job(&output, "", false).unwrap_err().to_string();
        assert!(refused.contains("--attach job-1"), "{refused}");
        let refused = claim(&output, "job-2", "", false).unwrap_err().to_string();
        assert!(refused.contains("holds results of job job-1"), "{refused}");
        assert_eq!(std::fs::read_to_string(&output).unwrap(), "{}\n{}\n");

        claim(&output, "job-2", "", true).unwrap();
        assert_eq!(std::fs::read_to_string(&output).unwrap(), "");
        assert_eq!(read_owner(&output).unwrap().unwrap().job_id, "job-2");
    }

    #[test]
    fn a_file_no_job_recorded_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let output = file_with(dir.path(), "scores.csv", "path,label\n");
        for refused in [
            check_new_job(&output, "key", false).unwrap_err(),
            claim(&output, "job-1", "", false).unwrap_err(),
        ] {
            assert!(refused.to_string().contains("--overwrite"), "{refused}");
        }
        check_new_job(&output, "", true).unwrap();
        // An empty file is as good as none.
        let empty = file_with(dir.path(), "empty.jsonl", "");
        check_new_job(&empty, "", false).unwrap();
        claim(&empty, "job-1", "", false).unwrap();
    }

    #[test]
    fn the_same_submit_again_may_resume() {
        let dir = tempfile::tempdir().unwrap();
        let output = dir.path().join("results.jsonl");
        claim(&output, "job-1", "batch-7", false).unwrap();
        std::fs::write(&output, "{}\n").unwrap();
        check_new_job(&output, "batch-7", false).unwrap();
        assert!(check_new_job(&output, "batch-8", false).is_err());
        assert!(check_new_job(&output, "", false).is_err());
        // The key now names another job (the first one expired): refused.
        assert!(claim(&output, "job-9", "batch-7", false).is_err());
    }
}
